// The JavaScript SDK's pure parts on node: answers, errors, events,
// logging, environment. Run from sdk/js: npm test (the integration tests
// run it too).
import { test } from "node:test";
import assert from "node:assert/strict";

import { EventError, HttpError, env, event, intoResponse, json, log, parseObjectEvents, respond } from "../kumo.js";

const OSS = '{"events":[{"eventName":"ObjectCreated:PutObject","eventSource":"acs:oss","eventTime":"2026-11-23T06:45:43.120Z","eventVersion":"1.0","oss":{"bucket":{"name":"photos","arn":"acs:oss:local:kumo:photos","ownerIdentity":"kumo"},"object":{"key":"in/a b.png","size":122539,"deltaSize":122539,"eTag":"688A7BF4"},"ossSchemaVersion":"1.0","ruleId":"thumbs"},"region":"local","requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"requestId":"r"},"userIdentity":{"principalId":"kumo"}}]}';
const S3 = '{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"local","eventTime":"2026-11-23T06:45:43.120Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"thumbs","bucket":{"name":"photos","arn":"arn:aws:s3:::photos"},"object":{"key":"in/a+b%2B%C3%A9.png","size":122539,"eTag":"688a7bf4","sequencer":"1"}}}]}';
const CLOUDEVENT = '{"specversion":"1.0","id":"ev-1","source":"/kumo/storage/photos","type":"kumo.storage.ObjectCreated:PutObject","subject":"in/a.png","time":"2026-11-23T06:45:43.120Z","datacontenttype":"application/json","data":{"bucket":"photos","key":"in/a.png","size":122539,"eTag":"688a7bf4","eventName":"ObjectCreated:PutObject","sourceIPAddress":null,"requestId":"r"}}';
const CE = {
  "ce-specversion": "1.0",
  "ce-id": "ev-1",
  "ce-source": "/kumo/storage/photos",
  "ce-type": "kumo.storage.ObjectCreated:PutObject",
};

/** Runs `fn` with console.error captured; returns [result, captured text]. */
async function capturingStderr(fn) {
  const original = console.error;
  const lines = [];
  console.error = (...parts) => lines.push(parts.join(" "));
  try {
    return [await fn(), lines.join("\n")];
  } finally {
    console.error = original;
  }
}

test("what a handler returns becomes an answer", async () => {
  const cases = [
    ["hi", 200, "text/plain; charset=utf-8", "hi"],
    [new Uint8Array([104, 105]), 200, "application/octet-stream", "hi"],
    [{ a: 1 }, 200, "application/json", '{"a":1}'],
    [[1, 2], 200, "application/json", "[1,2]"],
    [json({ b: 2 }, 201), 201, "application/json", '{"b":2}'],
    [204, 204, null, ""],
    [undefined, 200, null, ""],
    [new Response("x", { status: 202 }), 202, "text/plain;charset=UTF-8", "x"],
  ];
  for (const [value, status, type, body] of cases) {
    const response = intoResponse(value);
    assert.equal(response.status, status, String(value));
    assert.equal(response.headers.get("content-type"), type, String(value));
    assert.equal(await response.text(), body, String(value));
  }
});

test("a thrown error is a 500 with its stack on stderr only", async () => {
  const [response, stderr] = await capturingStderr(() =>
    respond(async () => {
      throw new Error("secret detail");
    }, new Request("http://localhost/orders?x=1", { method: "POST" })),
  );
  assert.equal(response.status, 500);
  assert.equal(await response.text(), "internal server error\n");
  assert.match(stderr, /^error POST \/orders threw Error: secret detail/);
  assert.match(stderr, /at .*kumo\.test\.mjs/);
});

test("chosen errors answer their status", async () => {
  const cases = [
    [new HttpError(404, "no such order"), 404, "no such order", /^warn /],
    [new HttpError(503, "try later"), 503, "try later", /^error /],
    [new EventError("not an event"), 400, "not an event", /^warn /],
    [new TypeError("x"), 500, "internal server error\n", /^error /],
  ];
  for (const [error, status, body, level] of cases) {
    const [response, stderr] = await capturingStderr(() =>
      respond(() => {
        throw error;
      }, new Request("http://localhost/")),
    );
    assert.equal(response.status, status);
    assert.equal(await response.text(), body);
    assert.match(stderr, level);
  }
});

test("object events parse in every format", () => {
  const expected = (key, eventName, etag, triggerName) => ({
    eventName,
    bucket: "photos",
    key,
    size: 122539,
    etag,
    eventTime: "2026-11-23T06:45:43.120Z",
    triggerName,
  });
  assert.deepEqual(parseObjectEvents(OSS), [expected("in/a b.png", "ObjectCreated:PutObject", "688A7BF4", "thumbs")]);
  assert.deepEqual(parseObjectEvents(S3), [expected("in/a b+é.png", "ObjectCreated:Put", "688a7bf4", "thumbs")]);
  assert.deepEqual(parseObjectEvents(CLOUDEVENT), [expected("in/a.png", "ObjectCreated:PutObject", "688a7bf4", null)]);
  for (const bad of ['{"hello":1}', "not json", "[1]", '{"events":[{"eventName":"x"}]}']) {
    assert.throws(() => parseObjectEvents(bad), EventError, bad);
  }
});

test("events carry their attributes, attempt and hops", async () => {
  const request = new Request("http://localhost/", {
    method: "POST",
    headers: { ...CE, "ce-subject": "in/%C3%A4 b.png", "kumo-attempt": "2", "kumo-event-hops": "3" },
    body: OSS,
  });
  const delivered = await event.fromRequest(request);
  assert.equal(delivered.attributes.id, "ev-1");
  assert.equal(delivered.attributes.subject, "in/ä b.png");
  assert.equal(delivered.attempt, 2);
  assert.equal(delivered.hops, 3);
  assert.equal(delivered.body()[0].key, "in/a b.png");
  await assert.rejects(event.fromRequest(new Request("http://localhost/")), /no `ce-specversion` header/);
});

test("timer and file events parse by type", async () => {
  const request = (type, body) =>
    new Request("http://localhost/", { method: "POST", headers: { ...CE, "ce-type": type }, body: JSON.stringify(body) });
  const timer = await event.fromRequest(request("kumo.timer", { triggerTime: "t", triggerName: "n", payload: "p" }));
  assert.deepEqual(timer.body(), { triggerTime: "t", triggerName: "n", payload: "p" });
  const file = { triggerName: "w", folder: "/srv/in", path: "a.txt", size: 4, modifiedTime: "m", eventTime: "e" };
  assert.deepEqual((await event.fromRequest(request("kumo.file.created", file))).body(), file);
  const odd = await event.fromRequest(request("com.example", {}));
  assert.throws(() => odd.body(), /unknown event type `com.example`/);
});

test("log lines and the environment", () => {
  assert.equal(log.formatLine("info", "server ready"), "info server ready");
  assert.equal(log.formatLine("error", "a\nb\r\nc"), "error a b  c");
  assert.throws(() => log.formatLine("fatal", "x"), /unknown log level fatal/);
  assert.equal(env.get("GREETING"), "hi");
  assert.equal(env.get("EMPTY", "fallback"), "");
  assert.equal(env.get("MISSING", "fallback"), "fallback");
  assert.deepEqual(env.all(), { GREETING: "hi", EMPTY: "" });
});
