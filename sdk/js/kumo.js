// Write Kumo functions in JavaScript.
//
// A Kumo function is a WebAssembly component for the `wasi:http/proxy`
// world; componentize-js builds one from an ES module. With this module a
// function is one (async) function from a fetch `Request` to a response,
// exported as the component's `wasi:http/incoming-handler`:
//
//   import { serve, log, env } from "./kumo.js";
//
//   export const incomingHandler = serve(async (request) => {
//     log.info(`${request.method} ${new URL(request.url).pathname}`);
//     return `${env.get("GREETING", "hello")} from Kumo`;
//   });
//
// A handler answers with a `Response`, a string (text/plain), bytes
// (`Uint8Array` or `ArrayBuffer`), a number (a status with no body),
// nothing (an empty 200), or any other value as JSON (`json(value, status)`
// sets a status). Throwing `HttpError` answers its status and message; an
// `EventError` answers 400. Anything else thrown answers 500 with a body
// that says only `internal server error`: its stack goes to standard
// error, so it is in `kumo logs`, never in the response.
//
// `serve` exports the handler itself rather than listening for the
// engine's `fetch` event: StarlingMonkey's fetch event serves one request
// per instance (StarlingMonkey issue 247), and Kumo reuses instances.
//
// `event` reads the events Kumo's storage, watch and timer triggers send,
// `files` reads and writes the folders mounted with `files` in kumo.toml,
// `log` writes level-tagged lines, `env` reads the configured variables.

import { getEnvironment } from "wasi:cli/environment@0.2.10";
import { getDirectories } from "wasi:filesystem/preopens@0.2.10";
import { Fields, IncomingBody, OutgoingBody, OutgoingResponse, ResponseOutparam } from "wasi:http/types@0.2.10";

const TEXT = "text/plain; charset=utf-8";
const OCTET_STREAM = "application/octet-stream";
const JSON_TYPE = "application/json";

/** An error that answers `status` with `message` as text. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** The request is not the event it should be: answers 400 (no retry). */
export class EventError extends Error {
  constructor(message) {
    super(message);
    this.name = "EventError";
  }
}

/** A JSON answer of `value` with `status` (200 by default). */
export function json(value, status = 200) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": JSON_TYPE },
  });
}

/** A text answer with `status` (200 by default). */
export function text(value, status = 200) {
  return new Response(String(value), {
    status,
    headers: { "content-type": TEXT },
  });
}

/** What a handler's return value answers (see the top of this module). */
export function intoResponse(value) {
  if (value instanceof Response) return value;
  if (typeof value === "string") return text(value);
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
    return new Response(value, { headers: { "content-type": OCTET_STREAM } });
  }
  if (typeof value === "number") return new Response(null, { status: value });
  if (value === undefined || value === null) return new Response(null, { status: 200 });
  return json(value);
}

function describe(request) {
  let path = request.url;
  try {
    path = new URL(request.url).pathname;
  } catch {
    // Keep the URL as it came.
  }
  return `${request.method} ${path}`;
}

/**
 * Calls `handler` with `request` and makes its answer a `Response`. Never
 * throws: see the top of this module for what errors answer.
 */
export async function respond(handler, request) {
  try {
    return intoResponse(await handler(request));
  } catch (error) {
    if (error instanceof HttpError) {
      log.write(error.status >= 500 ? "error" : "warn", `${describe(request)} answered ${error.status}: ${error.message}`);
      return text(error.message, error.status);
    }
    if (error instanceof EventError) {
      log.warn(`${describe(request)} answered 400: ${error.message}`);
      return text(error.message, 400);
    }
    log.error(`${describe(request)} threw ${error}`);
    if (error && error.stack) console.error(String(error.stack));
    return text("internal server error\n", 500);
  }
}

// ---- the wasi:http export ------------------------------------------------

/** The most bytes asked of the request body stream in one read. */
const READ_SIZE = 65536n;
/** The most bytes `blocking-write-and-flush` takes in one call. */
const WRITE_SIZE = 4096;
/** Response headers the host forbids: they belong to the connection. */
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "te", "http2-settings"]);

/** Whether a WASI stream error says the stream ended. */
function isClosed(error) {
  const variant = error && error.payload !== undefined ? error.payload : error;
  return variant && variant.tag === "closed";
}

/** Drops a WASI resource now (a stream must go before its body finishes). */
function drop(resource) {
  const dispose = resource && resource[Symbol.dispose];
  if (dispose) dispose.call(resource);
}

function readAll(stream) {
  const chunks = [];
  let length = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(READ_SIZE);
    } catch (error) {
      if (isClosed(error)) break;
      throw error;
    }
    chunks.push(chunk);
    length += chunk.length;
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** The fetch `Request` for a `wasi:http` incoming request, body read whole. */
function fetchRequest(incoming) {
  const method = incoming.method();
  const name = method.tag === "other" ? method.val : method.tag.toUpperCase();
  const scheme = incoming.scheme();
  const schemeName = !scheme ? "http" : scheme.tag === "other" ? scheme.val : scheme.tag;
  const url = `${schemeName}://${incoming.authority() ?? "localhost"}${incoming.pathWithQuery() ?? "/"}`;
  const headers = new Headers();
  const decoder = new TextDecoder();
  for (const [key, value] of incoming.headers().entries()) headers.append(key, decoder.decode(value));
  let body = null;
  if (name !== "GET" && name !== "HEAD") {
    const incomingBody = incoming.consume();
    const stream = incomingBody.stream();
    body = readAll(stream);
    drop(stream);
    IncomingBody.finish(incomingBody);
  }
  return new Request(url, { method: name, headers, body });
}

/** Sends `response` through the host's `response-outparam`. */
async function sendResponse(response, responseOut) {
  const bytes = new Uint8Array(await response.arrayBuffer());
  const encoder = new TextEncoder();
  const entries = [];
  for (const [key, value] of response.headers) {
    if (!CONNECTION_HEADERS.has(key) && !key.startsWith("proxy-")) entries.push([key, encoder.encode(value)]);
  }
  if (!response.headers.has("content-length")) entries.push(["content-length", encoder.encode(String(bytes.length))]);
  let fields;
  try {
    fields = Fields.fromList(entries);
  } catch {
    // One header the host refuses: skip it rather than all of them.
    fields = new Fields();
    for (const [key, value] of entries) {
      try {
        fields.append(key, value);
      } catch (error) {
        log.warn(`kumo: skipping response header ${key}: ${error}`);
      }
    }
  }
  const outgoing = new OutgoingResponse(fields);
  outgoing.setStatusCode(response.status);
  const body = outgoing.body();
  ResponseOutparam.set(responseOut, { tag: "ok", val: outgoing });
  if (bytes.length > 0) {
    const stream = body.write();
    for (let start = 0; start < bytes.length; start += WRITE_SIZE) {
      stream.blockingWriteAndFlush(bytes.subarray(start, start + WRITE_SIZE));
    }
    drop(stream);
  }
  OutgoingBody.finish(body, undefined);
}

/**
 * The `wasi:http/incoming-handler` implementation serving every request
 * (and event) with `handler`. Export it from the module componentize-js
 * builds: `export const incomingHandler = serve(handler);`.
 */
export function serve(handler) {
  return {
    async handle(incoming, responseOut) {
      let request;
      try {
        request = fetchRequest(incoming);
      } catch (error) {
        log.error(`kumo: cannot read the request: ${error}`);
        ResponseOutparam.set(responseOut, { tag: "err", val: { tag: "internal-error", val: `cannot read the request: ${error}` } });
        return;
      }
      await sendResponse(await respond(handler, request), responseOut);
    },
  };
}

/** Logging to the host: one `"<level> <message>"` line on standard error per call. */
export const log = {
  /** The line for `message` at `level`, line breaks made spaces. */
  formatLine(level, message) {
    if (!["debug", "info", "warn", "error"].includes(level)) {
      throw new Error(`unknown log level ${level}; hint: use debug, info, warn or error`);
    }
    return `${level} ${String(message).replace(/[\r\n]/g, " ")}`;
  },
  write(level, message) {
    console.error(log.formatLine(level, message));
  },
  debug(message) {
    log.write("debug", message);
  },
  info(message) {
    log.write("info", message);
  },
  warn(message) {
    log.write("warn", message);
  },
  error(message) {
    log.write("error", message);
  },
};

/** The variables configured for the function (`env` in kumo.toml). */
export const env = {
  /** The value of `name`, or `fallback` when it is not set. */
  get(name, fallback = undefined) {
    for (const [key, value] of getEnvironment()) {
      if (key === name) return value;
    }
    return fallback;
  },
  /** Every configured variable, as an object. */
  all() {
    return Object.fromEntries(getEnvironment());
  },
};

// ---- events ---------------------------------------------------------------

const STORAGE_TYPE_PREFIX = "kumo.storage.";
const TIMER_TYPE = "kumo.timer";
const FILE_CREATED_TYPE = "kumo.file.created";

function parseJson(textBody) {
  try {
    return JSON.parse(textBody);
  } catch (error) {
    throw new EventError(`the event document does not parse: ${error.message}`);
  }
}

function field(object, path, fallback) {
  let value = object;
  for (const name of path) {
    if (value === null || typeof value !== "object" || !(name in value)) {
      if (fallback !== undefined) return fallback;
      throw new EventError(`the event document does not parse: missing field \`${path.join(".")}\``);
    }
    value = value[name];
  }
  return value;
}

function s3DecodeKey(key) {
  try {
    return decodeURIComponent(key.replace(/\+/g, " "));
  } catch {
    return key;
  }
}

/**
 * The object events of a document in any of the three formats: OSS
 * (`{"events":[...]}`), S3 (`{"Records":[...]}`, keys URL-decoded) or a
 * structured CloudEvent (`{"specversion":..., "data":{...}}`).
 */
export function parseObjectEvents(textBody) {
  const document = parseJson(textBody);
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    throw new EventError("the event document does not parse: not a JSON object");
  }
  if ("events" in document) {
    return document.events.map((record) => ({
      eventName: field(record, ["eventName"]),
      bucket: field(record, ["oss", "bucket", "name"]),
      key: field(record, ["oss", "object", "key"]),
      size: field(record, ["oss", "object", "size"], 0),
      etag: field(record, ["oss", "object", "eTag"], ""),
      eventTime: field(record, ["eventTime"]),
      triggerName: field(record, ["oss", "ruleId"], null),
    }));
  }
  if ("Records" in document) {
    return document.Records.map((record) => ({
      eventName: field(record, ["eventName"]),
      bucket: field(record, ["s3", "bucket", "name"]),
      key: s3DecodeKey(field(record, ["s3", "object", "key"])),
      size: field(record, ["s3", "object", "size"], 0),
      etag: field(record, ["s3", "object", "eTag"], ""),
      eventTime: field(record, ["eventTime"]),
      triggerName: field(record, ["s3", "configurationId"], null),
    }));
  }
  if ("specversion" in document) {
    return [
      {
        eventName: field(document, ["data", "eventName"]),
        bucket: field(document, ["data", "bucket"]),
        key: field(document, ["data", "key"]),
        size: field(document, ["data", "size"], 0),
        etag: field(document, ["data", "eTag"], ""),
        eventTime: field(document, ["time"], ""),
        triggerName: null,
      },
    ];
  }
  throw new EventError(
    "the event document does not parse: neither an OSS (`events`), an S3 (`Records`) nor a CloudEvents (`specversion`) document",
  );
}

function decodeHeader(value) {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Reading the events Kumo delivers (`POST /` with CloudEvents headers). */
export const event = {
  /**
   * Reads the event a request delivers: its CloudEvents attributes, its
   * attempt and hop count, and its document by `ce-type` (`body`: a list
   * of object events, or a timer or file event). Throws `EventError` when
   * the request is no event.
   */
  async fromRequest(request) {
    const headers = request.headers;
    const required = (name) => {
      const value = headers.get(name);
      if (value === null) {
        throw new EventError(`not an event: the request has no \`${name}\` header; hint: events come as POST / from Kumo's triggers`);
      }
      return value;
    };
    const attributes = {
      specVersion: required("ce-specversion"),
      id: required("ce-id"),
      source: required("ce-source"),
      type: required("ce-type"),
      time: headers.get("ce-time"),
      subject: headers.get("ce-subject") === null ? null : decodeHeader(headers.get("ce-subject")),
      dataContentType: headers.get("content-type"),
    };
    const attempt = headers.get("kumo-attempt");
    const hops = headers.get("kumo-event-hops");
    const textBody = await request.text();
    return {
      attributes,
      attempt: attempt === null ? null : Number(attempt),
      hops: hops === null ? 0 : Number(hops),
      text: textBody,
      body() {
        if (attributes.type.startsWith(STORAGE_TYPE_PREFIX)) return parseObjectEvents(textBody);
        if (attributes.type === TIMER_TYPE) {
          const document = parseJson(textBody);
          return {
            triggerTime: field(document, ["triggerTime"]),
            triggerName: field(document, ["triggerName"]),
            payload: field(document, ["payload"], ""),
          };
        }
        if (attributes.type === FILE_CREATED_TYPE) {
          const document = parseJson(textBody);
          return {
            triggerName: field(document, ["triggerName"]),
            folder: field(document, ["folder"]),
            path: field(document, ["path"]),
            size: field(document, ["size"]),
            modifiedTime: field(document, ["modifiedTime"]),
            eventTime: field(document, ["eventTime"]),
          };
        }
        throw new EventError(`unknown event type \`${attributes.type}\`; hint: Kumo sends kumo.storage.*, kumo.timer and kumo.file.created`);
      },
    };
  },
};

// ---- files ----------------------------------------------------------------

/** The mounted folder holding `path`, and `path` relative to it. */
function locate(path) {
  if (!path.startsWith("/")) {
    throw new Error(`${path} is not an absolute path; hint: files live under a mount's path, such as /data/a.txt`);
  }
  let best = null;
  for (const [descriptor, mount] of getDirectories()) {
    const prefix = mount.endsWith("/") ? mount : `${mount}/`;
    if (path.startsWith(prefix) && (best === null || mount.length > best[1].length)) {
      best = [descriptor, mount, path.slice(prefix.length)];
    }
  }
  if (best === null) {
    const mounts = getDirectories().map(([, mount]) => mount);
    throw new Error(`${path} is in no mounted folder (mounted: ${mounts.join(", ") || "none"}); hint: add it to the function's files in kumo.toml`);
  }
  return [best[0], best[2]];
}

function wasiError(path, what, error) {
  const code = error && error.payload !== undefined ? error.payload : error;
  return new Error(`cannot ${what} ${path}: ${code}`);
}

/** The folders mounted with `files` in kumo.toml, read and written by path. */
export const files = {
  /** The mounted folders' paths, such as `["/in", "/out"]`. */
  mounts() {
    return getDirectories().map(([, mount]) => mount);
  },
  /** The whole file at `path`, as bytes. */
  read(path) {
    const [folder, relative] = locate(path);
    let file;
    try {
      file = folder.openAt({ symlinkFollow: false }, relative, {}, { read: true });
    } catch (error) {
      throw wasiError(path, "open", error);
    }
    const stream = file.readViaStream(0n);
    try {
      return readAll(stream);
    } catch (error) {
      throw wasiError(path, "read", error);
    } finally {
      drop(stream);
      drop(file);
    }
  },
  /** The whole file at `path`, as UTF-8 text. */
  readText(path) {
    return new TextDecoder().decode(files.read(path));
  },
  /** Writes `data` (a string or bytes) as the whole file at `path`. */
  write(path, data) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
    const [folder, relative] = locate(path);
    const parts = relative.split("/");
    let directory = folder;
    for (const part of parts.slice(0, -1)) {
      try {
        directory.createDirectoryAt(part);
      } catch (error) {
        if (!(error && error.payload === "exist")) throw wasiError(path, "create a folder for", error);
      }
      directory = directory.openAt({ symlinkFollow: false }, part, { directory: true }, { read: true, mutateDirectory: true });
    }
    let file;
    try {
      file = directory.openAt({ symlinkFollow: false }, parts[parts.length - 1], { create: true, truncate: true }, { write: true });
    } catch (error) {
      throw wasiError(path, "create", error);
    }
    const stream = file.writeViaStream(0n);
    try {
      for (let start = 0; start < bytes.length; start += WRITE_SIZE) {
        stream.blockingWriteAndFlush(bytes.subarray(start, start + WRITE_SIZE));
      }
    } catch (error) {
      throw wasiError(path, "write", error);
    } finally {
      drop(stream);
      drop(file);
    }
  },
};
