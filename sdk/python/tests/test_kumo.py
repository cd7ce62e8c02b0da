"""The Python SDK's pure parts, on the host's Python: responses, errors,
requests, events, logging. Run: python3 -m unittest discover -s tests
(from sdk/python); the integration tests run them too."""

import io
import json
import os
import sys
import unittest
from contextlib import redirect_stderr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import kumo  # noqa: E402
from kumo.event import Event, EventError, FileEvent, ObjectEvent, TimerEvent, parse_object_events  # noqa: E402

OSS = '{"events":[{"eventName":"ObjectCreated:PutObject","eventSource":"acs:oss","eventTime":"2026-11-23T06:45:43.120Z","eventVersion":"1.0","oss":{"bucket":{"name":"photos","arn":"acs:oss:local:kumo:photos","ownerIdentity":"kumo"},"object":{"key":"in/a b.png","size":122539,"deltaSize":122539,"eTag":"688A7BF4"},"ossSchemaVersion":"1.0","ruleId":"thumbs"},"region":"local","requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"requestId":"r"},"userIdentity":{"principalId":"kumo"}}]}'
S3 = '{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"local","eventTime":"2026-11-23T06:45:43.120Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"thumbs","bucket":{"name":"photos","arn":"arn:aws:s3:::photos"},"object":{"key":"in/a+b%2B%C3%A9.png","size":122539,"eTag":"688a7bf4","sequencer":"1"}}}]}'
CLOUDEVENT = '{"specversion":"1.0","id":"ev-1","source":"/kumo/storage/photos","type":"kumo.storage.ObjectCreated:PutObject","subject":"in/a.png","time":"2026-11-23T06:45:43.120Z","datacontenttype":"application/json","data":{"bucket":"photos","key":"in/a.png","size":122539,"eTag":"688a7bf4","eventName":"ObjectCreated:PutObject","sourceIPAddress":null,"requestId":"r"}}'
CE = [
    ("ce-specversion", "1.0"),
    ("ce-id", "ev-1"),
    ("ce-source", "/kumo/storage/photos"),
    ("ce-type", "kumo.storage.ObjectCreated:PutObject"),
]


def answer(handler, request=None):
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        response = kumo.respond(handler, request or kumo.Request("GET", "/x"))
    return response, stderr.getvalue()


class Responses(unittest.TestCase):
    def test_what_a_handler_returns_becomes_an_answer(self):
        cases = [
            ("hi", 200, "text/plain; charset=utf-8", b"hi"),
            (b"\x00\x01", 200, "application/octet-stream", b"\x00\x01"),
            ({"a": 1}, 200, "application/json", b'{"a": 1}'),
            ([1, 2], 200, "application/json", b"[1, 2]"),
            (kumo.Json({"b": 2}, 201), 201, "application/json", b'{"b": 2}'),
            (204, 204, None, b""),
            (None, 200, None, b""),
            ((404, "nope"), 404, "text/plain; charset=utf-8", b"nope"),
            (kumo.Response("x", 202, {"x-a": "1"}), 202, None, b"x"),
        ]
        for value, status, content_type, body in cases:
            with self.subTest(value=value):
                response, _ = answer(lambda _request, value=value: value)
                self.assertEqual(response.status, status)
                self.assertEqual(response.headers.get("content-type"), content_type)
                self.assertEqual(response.body, body)

    def test_a_raised_exception_is_a_500_with_the_traceback_on_stderr_only(self):
        def handler(_request):
            raise ValueError("secret detail")

        response, stderr = answer(handler, kumo.Request("POST", "/orders?x=1"))
        self.assertEqual(response.status, 500)
        self.assertEqual(response.body, b"internal server error\n")
        self.assertNotIn(b"secret", response.body)
        self.assertIn("error POST /orders raised ValueError: secret detail", stderr)
        self.assertIn("Traceback (most recent call last)", stderr)
        self.assertIn('raise ValueError("secret detail")', stderr)

    def test_chosen_errors_answer_their_status(self):
        cases = [
            (kumo.HttpError(404, "no such order"), 404, b"no such order", "warn "),
            (kumo.HttpError(503, "try later"), 503, b"try later", "error "),
            (EventError("not an event"), 400, b"not an event", "warn "),
            (TypeError("x"), 500, b"internal server error\n", "error "),
        ]
        for error, status, body, level in cases:
            with self.subTest(error=error):

                def handler(_request, error=error):
                    raise error

                response, stderr = answer(handler)
                self.assertEqual((response.status, response.body), (status, body))
                self.assertTrue(stderr.startswith(level), stderr)

    def test_a_value_that_is_no_answer_is_a_500_naming_its_type(self):
        response, stderr = answer(lambda _request: object())
        self.assertEqual(response.status, 500)
        self.assertIn("returned object, which is no answer", stderr)


class Requests(unittest.TestCase):
    def test_parts_headers_and_query(self):
        request = kumo.Request(
            "POST",
            "http://localhost/a/b?q=hello+world&page=2&q=again",
            [("Content-Type", b"application/json"), ("X-Multi", "1"), ("x-multi", "2")],
            b'{"k": [1]}',
        )
        self.assertEqual(request.path, "/a/b")
        self.assertEqual(request.query_param("q"), "hello world")
        self.assertEqual(request.query_param("page"), "2")
        self.assertIsNone(request.query_param("missing"))
        self.assertEqual(request.headers.get("content-type"), "application/json")
        self.assertEqual(request.headers.get_all("X-MULTI"), ["1", "2"])
        self.assertEqual(request.json(), {"k": [1]})
        self.assertEqual(kumo.Request("GET", "").path, "/")


class Events(unittest.TestCase):
    def test_object_events_parse_in_every_format(self):
        def expected(key, name, etag, trigger):
            return ObjectEvent(name, "photos", key, 122539, etag, "2026-11-23T06:45:43.120Z", trigger)

        cases = [
            (OSS, expected("in/a b.png", "ObjectCreated:PutObject", "688A7BF4", "thumbs")),
            (S3, expected("in/a b+é.png", "ObjectCreated:Put", "688a7bf4", "thumbs")),
            (CLOUDEVENT, expected("in/a.png", "ObjectCreated:PutObject", "688a7bf4", None)),
        ]
        for document, object_event in cases:
            with self.subTest(document=document[:12]):
                event = Event.from_request(kumo.Request("POST", "/", CE, document.encode()))
                self.assertEqual(event.body(), [object_event])
                self.assertEqual(parse_object_events(document.encode()), [object_event])
        for bad in [b'{"hello":1}', b"not json", b"[1]", b'{"events":[{"eventName":"x"}]}']:
            with self.subTest(bad=bad):
                with self.assertRaises(EventError):
                    parse_object_events(bad)

    def test_attributes_attempt_and_hops_come_from_the_headers(self):
        headers = CE + [
            ("ce-time", "2026-11-23T06:45:43.120Z"),
            ("ce-subject", "in/%C3%A4 b.png"),
            ("content-type", "application/json"),
            ("kumo-attempt", "2"),
            ("kumo-event-hops", "3"),
        ]
        event = Event.from_request(kumo.Request("POST", "/", headers, OSS.encode()))
        self.assertEqual(event.attributes.id, "ev-1")
        self.assertEqual(event.attributes.subject, "in/ä b.png")
        self.assertEqual(event.attributes.data_content_type, "application/json")
        self.assertEqual((event.attempt, event.hops), (2, 3))
        plain = Event.from_request(kumo.Request("POST", "/", CE, OSS.encode()))
        self.assertEqual((plain.attempt, plain.hops), (None, 0))

    def test_plain_requests_are_not_events(self):
        for headers, missing in [([], "ce-specversion"), (CE[:2], "ce-source")]:
            with self.subTest(missing=missing):
                with self.assertRaisesRegex(EventError, f"no `{missing}` header"):
                    Event.from_request(kumo.Request("POST", "/", headers))

    def test_timer_and_file_events_parse_by_type(self):
        def request(event_type, body):
            headers = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "s"), ("ce-type", event_type)]
            return kumo.Request("POST", "/", headers, json.dumps(body).encode())

        timer = Event.from_request(request("kumo.timer", {"triggerTime": "t", "triggerName": "n", "payload": "p"}))
        self.assertEqual(timer.body(), TimerEvent("t", "n", "p"))
        file_document = {
            "triggerName": "w",
            "folder": "/srv/in",
            "path": "a.txt",
            "size": 4,
            "modifiedTime": "m",
            "eventTime": "e",
        }
        file_event = Event.from_request(request("kumo.file.created", file_document))
        self.assertEqual(file_event.body(), FileEvent("w", "/srv/in", "a.txt", 4, "m", "e"))
        with self.assertRaisesRegex(EventError, "unknown event type `com.example`"):
            Event.from_request(request("com.example", {})).body()


class Logging(unittest.TestCase):
    def test_one_line_per_call_with_its_level(self):
        cases = [
            ("info", "server ready", "info server ready\n"),
            ("error", "first\nsecond\r\nthird", "error first second  third\n"),
            ("warn", "", "warn \n"),
        ]
        for level, message, line in cases:
            self.assertEqual(kumo.log.format_line(level, message), line)
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            kumo.log.debug("x=1")
        self.assertEqual(stderr.getvalue(), "debug x=1\n")
        with self.assertRaisesRegex(ValueError, "unknown log level 'fatal'"):
            kumo.log.format_line("fatal", "x")


class Environment(unittest.TestCase):
    def test_variables(self):
        os.environ["KUMO_SDK_TEST_VARIABLE"] = "yes"
        self.assertEqual(kumo.env.var("KUMO_SDK_TEST_VARIABLE"), "yes")
        self.assertEqual(kumo.env.var("KUMO_SDK_TEST_MISSING", "fallback"), "fallback")
        self.assertEqual(kumo.env.variables()["KUMO_SDK_TEST_VARIABLE"], "yes")


if __name__ == "__main__":
    unittest.main()
