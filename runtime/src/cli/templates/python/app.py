"""{{name}}: a Kumo function in Python.

`handle` gets every request to the function's routes; what it returns is
the answer (text, bytes, a dict as JSON, kumo.Response ...). See the kumo
package's docstring, or docs/languages.md in the Kumo repository.
"""

import kumo


def handle(request: kumo.Request):
    kumo.log.info(f"{request.method} {request.path}")
    name = request.query_param("name", "world")
    return f"Hello, {name}, from {{name}} in Python!\n"


IncomingHandler = kumo.http_handler(handle)
