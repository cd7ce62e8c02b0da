"""Environment variables configured for the function (``env`` in
``kumo.toml``). A function sees only these, never the host's."""

import os


def var(name: str, default=None):
    """The value of ``name``, or ``default`` when it is not set."""
    return os.environ.get(name, default)


def variables() -> dict:
    """Every configured variable, as a new ``dict``."""
    return dict(os.environ)
