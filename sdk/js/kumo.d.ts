// Types of kumo.js, Kumo's JavaScript SDK.

/** What a handler may return (see `intoResponse`). */
export type Answer = Response | string | Uint8Array | ArrayBuffer | number | null | undefined | object;

/** A handler: a fetch `Request` in, an answer (or a promise of one) out. */
export type Handler = (request: Request) => Answer | Promise<Answer>;

/** An error that answers `status` with `message` as text. */
export class HttpError extends Error {
  constructor(status: number, message: string);
  status: number;
}

/** The request is not the event it should be: answers 400 (no retry). */
export class EventError extends Error {
  constructor(message: string);
}

/** The component's `wasi:http/incoming-handler` export. */
export interface IncomingHandler {
  handle(request: unknown, responseOut: unknown): Promise<void>;
}

/**
 * The `wasi:http/incoming-handler` serving every request (and event) with
 * `handler`: `export const incomingHandler = serve(handler);`.
 */
export function serve(handler: Handler): IncomingHandler;
/** Calls `handler` and makes its answer a `Response`; never throws. */
export function respond(handler: Handler, request: Request): Promise<Response>;
/** What a handler's return value answers. */
export function intoResponse(value: Answer): Response;
/** A JSON answer with `status` (200 by default). */
export function json(value: unknown, status?: number): Response;
/** A text answer with `status` (200 by default). */
export function text(value: string, status?: number): Response;

export type LogLevel = "debug" | "info" | "warn" | "error";

/** One `"<level> <message>"` line on standard error per call. */
export const log: {
  formatLine(level: LogLevel, message: string): string;
  write(level: LogLevel, message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

/** The variables configured for the function (`env` in kumo.toml). */
export const env: {
  get(name: string): string | undefined;
  get<T>(name: string, fallback: T): string | T;
  all(): Record<string, string>;
};

/** One object created or removed, whichever format the trigger used. */
export interface ObjectEvent {
  /** `ObjectCreated:PutObject`, `ObjectRemoved:DeleteObject`, ... */
  eventName: string;
  bucket: string;
  /** The key, decoded. */
  key: string;
  size: number;
  etag: string;
  eventTime: string;
  triggerName: string | null;
}

/** A timer firing. */
export interface TimerEvent {
  triggerTime: string;
  triggerName: string;
  payload: string;
}

/** A file completely written into a watched folder. */
export interface FileEvent {
  triggerName: string;
  folder: string;
  path: string;
  size: number;
  modifiedTime: string;
  eventTime: string;
}

/** The CloudEvents attributes of an event (its `ce-*` headers). */
export interface CloudEventAttributes {
  specVersion: string;
  id: string;
  source: string;
  type: string;
  time: string | null;
  subject: string | null;
  dataContentType: string | null;
}

/** An event Kumo delivered. */
export interface KumoEvent {
  attributes: CloudEventAttributes;
  /** The delivery attempt, 1 for the first, when sent. */
  attempt: number | null;
  /** The hop count: send it on in `kumo-event-hops` on S3 writes. */
  hops: number;
  /** The document as text. */
  text: string;
  /** The document by `ce-type`. */
  body(): ObjectEvent[] | TimerEvent | FileEvent;
}

export const event: {
  /** Reads the event a request delivers; throws `EventError` for a plain request. */
  fromRequest(request: Request): Promise<KumoEvent>;
};

/** The object events of an OSS, S3 or structured CloudEvents document. */
export function parseObjectEvents(text: string): ObjectEvent[];

/** The folders mounted with `files` in kumo.toml. */
export const files: {
  mounts(): string[];
  read(path: string): Uint8Array;
  readText(path: string): string;
  write(path: string, data: string | Uint8Array): void;
};
