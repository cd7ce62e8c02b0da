"""The bridge between a handler and ``wasi:http/incoming-handler``: reads
the whole request, calls the handler through :func:`kumo.http.respond`,
writes the response. Imports the bindings componentize-py generates
(``wit_world``), so it runs only inside the component."""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import streams

try:
    # The world `kumo wit` writes also imports wasi:filesystem/types, so the
    # bindings name wasi:http/types by its package.
    from wit_world.imports import wasi_http_types as http_types
except ImportError:  # a world that imports only the proxy world's interfaces
    from wit_world.imports import types as http_types

from kumo import log
from kumo.http import Headers, Request, Response, respond

# The most bytes asked of the request body stream in one read.
READ_SIZE = 64 * 1024
# The most bytes `blocking-write-and-flush` takes in one call.
WRITE_SIZE = 4096
# Response headers the host forbids: they belong to the connection.
CONNECTION_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "te",
    "http2-settings",
}

METHODS = {
    http_types.Method_Get: "GET",
    http_types.Method_Head: "HEAD",
    http_types.Method_Post: "POST",
    http_types.Method_Put: "PUT",
    http_types.Method_Delete: "DELETE",
    http_types.Method_Connect: "CONNECT",
    http_types.Method_Options: "OPTIONS",
    http_types.Method_Trace: "TRACE",
    http_types.Method_Patch: "PATCH",
}


def _method(method) -> str:
    if isinstance(method, http_types.Method_Other):
        return method.value
    return METHODS[type(method)]


def _url(request: http_types.IncomingRequest) -> str:
    path = request.path_with_query() or "/"
    scheme = request.scheme()
    authority = request.authority()
    if scheme is None or authority is None:
        return path
    if isinstance(scheme, http_types.Scheme_Http):
        name = "http"
    elif isinstance(scheme, http_types.Scheme_Https):
        name = "https"
    elif isinstance(scheme, http_types.Scheme_Other):
        name = scheme.value
    else:
        return path
    return f"{name}://{authority}{path}"


def _read_body(request: http_types.IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    chunks = []
    try:
        while True:
            chunks.append(stream.blocking_read(READ_SIZE))
    except Err as error:
        if not isinstance(error.value, streams.StreamError_Closed):
            raise
    finally:
        stream.__exit__(None, None, None)
    http_types.IncomingBody.finish(body)
    return b"".join(chunks)


def _read_request(request: http_types.IncomingRequest) -> Request:
    method = _method(request.method())
    headers = Headers(request.headers().entries())
    # A GET, HEAD or OPTIONS with no framing headers, or a declared empty
    # body, has no body to wait for (RFC 9110 8.6, RFC 9112 6.3).
    framed = "content-length" in headers or "transfer-encoding" in headers
    no_body = headers.get("content-length") == "0" or (
        not framed and method in ("GET", "HEAD", "OPTIONS")
    )
    body = b"" if no_body else _read_body(request)
    return Request(method, _url(request), headers, body)


def _send(response: Response, response_out: http_types.ResponseOutparam) -> None:
    entries = [
        (name, value.encode("latin-1"))
        for name, value in response.headers.items()
        if name not in CONNECTION_HEADERS and not name.startswith("proxy-")
    ]
    if "content-length" not in response.headers:
        entries.append(("content-length", str(len(response.body)).encode()))
    try:
        fields = http_types.Fields.from_list(entries)
    except Err:
        # One header the host refuses: skip it rather than all of them.
        fields = http_types.Fields()
        for name, value in entries:
            try:
                fields.append(name, value)
            except Err as error:
                log.warn(f"kumo: skipping response header {name}: {error.value}")
    outgoing = http_types.OutgoingResponse(fields)
    try:
        outgoing.set_status_code(response.status)
    except Err:
        log.error(f"kumo: {response.status} is no HTTP status; answering 500")
        outgoing.set_status_code(500)
    outgoing_body = outgoing.body()
    http_types.ResponseOutparam.set(response_out, Ok(outgoing))
    if response.body:
        stream = outgoing_body.write()
        try:
            view = memoryview(response.body)
            for start in range(0, len(view), WRITE_SIZE):
                stream.blocking_write_and_flush(bytes(view[start : start + WRITE_SIZE]))
        finally:
            stream.__exit__(None, None, None)
    http_types.OutgoingBody.finish(outgoing_body, None)


def incoming_handler_class(handler):
    """A class componentize-py exports as ``wasi:http/incoming-handler``,
    serving every request with ``handler``."""

    class IncomingHandler(exports.IncomingHandler):
        def handle(self, request: http_types.IncomingRequest, response_out: http_types.ResponseOutparam) -> None:
            try:
                typed_request = _read_request(request)
            except Exception as error:  # noqa: BLE001: answered, not raised
                log.error(f"kumo: cannot read the request: {error!r}")
                http_types.ResponseOutparam.set(
                    response_out, Err(http_types.ErrorCode_InternalError(f"cannot read the request: {error!r}"))
                )
                return
            _send(respond(handler, typed_request), response_out)

    return IncomingHandler
