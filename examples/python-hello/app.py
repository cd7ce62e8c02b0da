"""python-hello: the smallest Kumo function in Python.

Answers ``Hello from Kumo in Python`` (or ``?name=`` instead of Kumo);
``/python-hello/fail`` raises, to show that an exception answers 500 and
leaves its traceback in ``kumo logs python-hello``, not in the answer.
"""

import kumo


def handle(request: kumo.Request):
    if request.path.endswith("/fail"):
        raise RuntimeError("python-hello was asked to fail")
    name = request.query_param("name", "Kumo")
    return f"Hello from {name} in Python\n"


IncomingHandler = kumo.http_handler(handle)
