"""Requests, responses, and what a handler may return.

Everything here is plain Python: it runs (and is tested) on the host as
well as inside the component.
"""

import json
import sys
import traceback
from urllib.parse import parse_qs, urlsplit

TEXT = "text/plain; charset=utf-8"
OCTET_STREAM = "application/octet-stream"
JSON = "application/json"


class Headers:
    """HTTP headers: names are case-insensitive, a name may repeat."""

    def __init__(self, items=()):
        self._items = []
        pairs = items.items() if isinstance(items, dict) else items
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value) -> None:
        """Adds a value (``str`` or ``bytes``) under ``name``."""
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        self._items.append((name.lower(), str(value)))

    def set(self, name: str, value) -> None:
        """Replaces every value of ``name`` with ``value``."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        """Removes every value of ``name``."""
        lower = name.lower()
        self._items = [(n, v) for n, v in self._items if n != lower]

    def get(self, name: str, default=None):
        """The first value of ``name``, or ``default``."""
        lower = name.lower()
        for item_name, value in self._items:
            if item_name == lower:
                return value
        return default

    def get_all(self, name: str) -> list:
        """Every value of ``name``, in order."""
        lower = name.lower()
        return [value for item_name, value in self._items if item_name == lower]

    def items(self) -> list:
        """``(name, value)`` pairs, names lowercase, in order."""
        return list(self._items)

    def __contains__(self, name) -> bool:
        return self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Request:
    """An HTTP request with its whole body.

    ``method`` is upper case (``"GET"``); ``url`` is the path and query,
    with scheme and authority when the host gave them; ``path`` and
    ``query`` are its parts; ``headers`` is a :class:`Headers`; ``body`` is
    ``bytes``.
    """

    def __init__(self, method="GET", url="/", headers=(), body=b""):
        self.method = method
        self.url = url
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)
        parts = urlsplit(url)
        self.path = parts.path or "/"
        self.query = parts.query

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    def json(self):
        """The body parsed as JSON."""
        return json.loads(self.body)

    def query_param(self, name: str, default=None):
        """The first value of the query parameter ``name``, decoded
        (``%xx`` escapes and ``+`` for space), or ``default``."""
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else default

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url}, {len(self.body)} bytes)"


class Response:
    """An HTTP response: a status, headers and a whole body (``bytes``;
    ``str`` is encoded as UTF-8)."""

    def __init__(self, body=b"", status: int = 200, headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.body = bytes(body)
        self.status = int(status)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)

    def __repr__(self) -> str:
        return f"Response({self.status}, {len(self.body)} bytes)"


class Json:
    """A JSON answer of any value ``json.dumps`` takes, with
    ``content-type: application/json``."""

    def __init__(self, value, status: int = 200):
        self.value = value
        self.status = status


class HttpError(Exception):
    """Raise it to answer ``status`` with ``message`` as text (logged at
    ``warn``, or ``error`` for a 5xx)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)
        self.message = message


def _with_type(body, content_type: str, status: int = 200) -> Response:
    return Response(body, status, [("content-type", content_type)])


def into_response(value) -> Response:
    """What a handler's return value answers.

    - :class:`Response`: itself.
    - ``str``: 200, ``text/plain; charset=utf-8``.
    - ``bytes``, ``bytearray``: 200, ``application/octet-stream``.
    - :class:`Json`, ``dict``, ``list``: 200, ``application/json``.
    - ``int``: that status, no body.
    - ``None``: 200, no body.
    - ``(status, value)``: ``value``'s answer with that status.
    """
    if isinstance(value, Response):
        return value
    if isinstance(value, str):
        return _with_type(value, TEXT)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _with_type(bytes(value), OCTET_STREAM)
    if isinstance(value, Json):
        return _with_type(json.dumps(value.value), JSON, value.status)
    if isinstance(value, (dict, list)):
        return _with_type(json.dumps(value), JSON)
    if isinstance(value, bool):
        raise TypeError("a handler returned a bool; hint: return a str, bytes, dict, int status or kumo.Response")
    if isinstance(value, int):
        return Response(b"", value)
    if value is None:
        return Response(b"", 200)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        response = into_response(value[1])
        response.status = value[0]
        return response
    raise TypeError(
        f"a handler returned {type(value).__name__}, which is no answer; "
        "hint: return a str, bytes, dict, list, int status, (status, value) or kumo.Response"
    )


def respond(handler, request: Request) -> Response:
    """Calls ``handler`` with ``request`` and makes its answer a
    :class:`Response`. Never raises: an :class:`HttpError` answers its
    status, an ``EventError`` 400, anything else 500 with its traceback on
    standard error and only ``internal server error`` in the body."""
    from kumo.event import EventError
    from kumo import log

    try:
        return into_response(handler(request))
    except HttpError as error:
        level = "error" if error.status >= 500 else "warn"
        log.log(level, f"{request.method} {request.path} answered {error.status}: {error.message}")
        return _with_type(error.message, TEXT, error.status)
    except EventError as error:
        log.warn(f"{request.method} {request.path} answered 400: {error}")
        return _with_type(str(error), TEXT, 400)
    except Exception as error:  # noqa: BLE001: every failure becomes an answer
        log.error(f"{request.method} {request.path} raised {type(error).__name__}: {error}")
        sys.stderr.write(traceback.format_exc())
        sys.stderr.flush()
        return _with_type("internal server error\n", TEXT, 500)
