"""Logging to the host through standard error.

Every call writes exactly one line, ``"<level> <message>\\n"``, to standard
error. Kumo reads a function's standard error line by line, keeps the
lines in the function's log (``kumo logs NAME``) and logs each message at
the level its first word names (``debug``, ``info``, ``warn``, ``error``).
Line breaks inside a message become spaces, so one call is one line::

    kumo.log.info("looking up /orders/7")
    kumo.log.warn("cache miss\\nfalling back")
    # standard error now holds:
    # info looking up /orders/7
    # warn cache miss falling back
"""

import sys

LEVELS = ("debug", "info", "warn", "error")


def format_line(level: str, message: str) -> str:
    """The line for ``message`` at ``level``, line breaks made spaces."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; hint: use one of {', '.join(LEVELS)}")
    flat = str(message).replace("\r", " ").replace("\n", " ")
    return f"{level} {flat}\n"


def log(level: str, message: str) -> None:
    """Writes ``message`` at ``level`` as one line in one write."""
    sys.stderr.write(format_line(level, message))
    sys.stderr.flush()


def debug(message: str) -> None:
    """Writes ``message`` at the ``debug`` level."""
    log("debug", message)


def info(message: str) -> None:
    """Writes ``message`` at the ``info`` level."""
    log("info", message)


def warn(message: str) -> None:
    """Writes ``message`` at the ``warn`` level."""
    log("warn", message)


def error(message: str) -> None:
    """Writes ``message`` at the ``error`` level."""
    log("error", message)
