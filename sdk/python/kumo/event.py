"""Typed events: what Kumo sends a function for an object upload or
removal, a timer, or a file in a watched folder.

Kumo delivers every event as an HTTP ``POST /`` with CloudEvents 1.0
binary-mode headers (``ce-id``, ``ce-source``, ``ce-type``, ``ce-time``,
``ce-subject``) and the event document as the body::

    from kumo.event import Event, ObjectEvent, TimerEvent, FileEvent

    def handle(request):
        event = Event.from_request(request)   # EventError (a 400) if it is none
        for item in event.body():             # a list of ObjectEvent, or one
            ...                               # TimerEvent or FileEvent

A 2xx answer acknowledges the event; any other answer, a trap or a
timeout makes Kumo retry it (see ``docs/triggers.md``). The documents and
headers are those of the Rust SDK and the runtime (``protocol/`` in the
Kumo repository).
"""

import json
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, unquote_plus

STORAGE_TYPE_PREFIX = "kumo.storage."
TIMER_TYPE = "kumo.timer"
FILE_CREATED_TYPE = "kumo.file.created"
ATTEMPT_HEADER = "kumo-attempt"
HOPS_HEADER = "kumo-event-hops"


class EventError(Exception):
    """The request is not the event it should be; a handler that lets it
    escape answers 400 (no retry)."""


@dataclass
class CloudEventAttributes:
    """The CloudEvents attributes of an event (its ``ce-*`` headers)."""

    spec_version: str
    id: str
    source: str
    event_type: str
    time: Optional[str] = None
    subject: Optional[str] = None
    data_content_type: Optional[str] = None


@dataclass
class ObjectEvent:
    """One object created or removed, whichever format the trigger used
    (OSS, S3 or CloudEvents)."""

    event_name: str
    bucket: str
    key: str
    size: int
    etag: str
    event_time: str
    trigger_name: Optional[str] = None


@dataclass
class TimerEvent:
    """A timer firing (Function Compute's timer event)."""

    trigger_time: str
    trigger_name: str
    payload: str = ""


@dataclass
class FileEvent:
    """A file completely written into a watched folder."""

    trigger_name: str
    folder: str
    path: str
    size: int
    modified_time: str
    event_time: str


def _parse_json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise EventError(f"the event document does not parse: {error}") from None


def _field(mapping, *path, default=None, required=True):
    value = mapping
    for name in path:
        if not isinstance(value, dict) or name not in value:
            if required:
                raise EventError(f"the event document does not parse: missing field `{'.'.join(path)}`")
            return default
        value = value[name]
    return value


def s3_decode_key(key: str) -> str:
    """An S3 document's key decoded: ``+`` is a space, ``%XX`` a byte."""
    return unquote_plus(key)


def parse_object_events(body: bytes) -> list:
    """The object events of a document in any of the three formats: OSS
    (``{"events":[...]}``), S3 (``{"Records":[...]}``, keys URL-decoded) or
    a structured CloudEvent (``{"specversion":..., "data":{...}}``)."""
    document = _parse_json(body)
    if not isinstance(document, dict):
        raise EventError("the event document does not parse: not a JSON object")
    if "events" in document:
        return [
            ObjectEvent(
                event_name=_field(record, "eventName"),
                bucket=_field(record, "oss", "bucket", "name"),
                key=_field(record, "oss", "object", "key"),
                size=_field(record, "oss", "object", "size", default=0, required=False),
                etag=_field(record, "oss", "object", "eTag", default="", required=False),
                event_time=_field(record, "eventTime"),
                trigger_name=_field(record, "oss", "ruleId", required=False),
            )
            for record in document["events"]
        ]
    if "Records" in document:
        return [
            ObjectEvent(
                event_name=_field(record, "eventName"),
                bucket=_field(record, "s3", "bucket", "name"),
                key=s3_decode_key(_field(record, "s3", "object", "key")),
                size=_field(record, "s3", "object", "size", default=0, required=False),
                etag=_field(record, "s3", "object", "eTag", default="", required=False),
                event_time=_field(record, "eventTime"),
                trigger_name=_field(record, "s3", "configurationId", required=False),
            )
            for record in document["Records"]
        ]
    if "specversion" in document:
        return [
            ObjectEvent(
                event_name=_field(document, "data", "eventName"),
                bucket=_field(document, "data", "bucket"),
                key=_field(document, "data", "key"),
                size=_field(document, "data", "size", default=0, required=False),
                etag=_field(document, "data", "eTag", default="", required=False),
                event_time=_field(document, "time", default="", required=False),
            )
        ]
    raise EventError(
        "the event document does not parse: neither an OSS (`events`), an S3 (`Records`) "
        "nor a CloudEvents (`specversion`) document"
    )


class Event:
    """An event received by a function: its attributes and its request."""

    def __init__(self, request, attributes: CloudEventAttributes):
        self.request = request
        self.attributes = attributes

    @classmethod
    def from_request(cls, request) -> "Event":
        """Reads the CloudEvents attributes of ``request``; raises
        :class:`EventError` when a required ``ce-*`` header is missing."""

        def required(name):
            value = request.headers.get(name)
            if value is None:
                raise EventError(
                    f"not an event: the request has no `{name}` header; "
                    "hint: events come as POST / from Kumo's triggers"
                )
            return value

        subject = request.headers.get("ce-subject")
        attributes = CloudEventAttributes(
            spec_version=required("ce-specversion"),
            id=required("ce-id"),
            source=required("ce-source"),
            event_type=required("ce-type"),
            time=request.headers.get("ce-time"),
            subject=unquote(subject) if subject is not None else None,
            data_content_type=request.headers.get("content-type"),
        )
        return cls(request, attributes)

    @property
    def attempt(self) -> Optional[int]:
        """The delivery attempt's number (1 for the first), when sent."""
        value = self.request.headers.get(ATTEMPT_HEADER)
        return int(value) if value and value.isdigit() else None

    @property
    def hops(self) -> int:
        """The event's hop count (0 unless a function's write caused it).
        Send it on, unchanged, in a ``kumo-event-hops`` header of an S3
        request made while handling the event."""
        value = self.request.headers.get(HOPS_HEADER)
        return int(value) if value and value.isdigit() else 0

    def body(self):
        """The document by its ``ce-type``: a list of :class:`ObjectEvent`,
        a :class:`TimerEvent` or a :class:`FileEvent`."""
        event_type = self.attributes.event_type
        if event_type.startswith(STORAGE_TYPE_PREFIX):
            return self.objects()
        if event_type == TIMER_TYPE:
            return self.timer()
        if event_type == FILE_CREATED_TYPE:
            return self.file()
        raise EventError(
            f"unknown event type `{event_type}`; "
            "hint: Kumo sends kumo.storage.*, kumo.timer and kumo.file.created"
        )

    def objects(self) -> list:
        """The object events of a storage trigger (any format)."""
        return parse_object_events(self.request.body)

    def timer(self) -> TimerEvent:
        """The timer event of a timer trigger."""
        document = _parse_json(self.request.body)
        return TimerEvent(
            trigger_time=_field(document, "triggerTime"),
            trigger_name=_field(document, "triggerName"),
            payload=_field(document, "payload", default="", required=False),
        )

    def file(self) -> FileEvent:
        """The file event of a watch trigger."""
        document = _parse_json(self.request.body)
        return FileEvent(
            trigger_name=_field(document, "triggerName"),
            folder=_field(document, "folder"),
            path=_field(document, "path"),
            size=_field(document, "size"),
            modified_time=_field(document, "modifiedTime"),
            event_time=_field(document, "eventTime"),
        )
