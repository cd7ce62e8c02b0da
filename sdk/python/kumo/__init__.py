"""Write Kumo functions in Python.

A Kumo function is a WebAssembly component for the ``wasi:http/proxy``
world; componentize-py builds one from a Python module. With this package
a function is one plain Python function from a :class:`Request` to a
response, and one line that exports it::

    import kumo

    def handle(request: kumo.Request):
        kumo.log.info(f"{request.method} {request.path}")
        greeting = kumo.env.var("GREETING", "hello")
        return f"{greeting} from {request.path}"

    IncomingHandler = kumo.http_handler(handle)

A handler answers with a :class:`Response`, text (``str``), bytes,
:class:`Json` (or a ``dict`` or ``list``, sent as JSON), an ``int``
status, ``None`` (an empty 200), or a ``(status, value)`` pair. Raising
:class:`HttpError` answers its status and message; raising
:class:`kumo.event.EventError` answers 400. Any other exception answers
500 with a body that says only ``internal server error``: its traceback
goes to standard error, so it is in ``kumo logs``, never in the response.

:mod:`kumo.event` reads the events Kumo's storage, watch and timer
triggers send; :mod:`kumo.log` writes level-tagged lines to standard
error; :mod:`kumo.env` reads the variables the function is configured
with. The standard library's ``open``, ``os`` and ``pathlib`` reach the
folders a function mounts with ``files`` in ``kumo.toml``.
"""

from kumo import env, event, log
from kumo.http import (
    HttpError,
    Json,
    Request,
    Response,
    into_response,
    respond,
)

__all__ = [
    "HttpError",
    "Json",
    "Request",
    "Response",
    "env",
    "event",
    "http_handler",
    "into_response",
    "log",
    "respond",
]


def http_handler(handler):
    """Exports ``handler`` as the component's ``wasi:http/incoming-handler``.

    ``handler`` takes a :class:`Request` and returns anything
    :func:`into_response` accepts. Assign the result to ``IncomingHandler``
    at module level in the module componentize-py builds::

        IncomingHandler = kumo.http_handler(handle)
    """
    # The WASI bridge imports the bindings componentize-py generates, which
    # exist only inside the component; everything else runs on the host.
    from kumo._wasi import incoming_handler_class

    return incoming_handler_class(handler)
