"""Tower's error vocabulary.

Every failure a user or an agent can cause maps to one exception class, and
each class carries the exit code and the machine-readable error code of the
command-line contract (DESIGN.md). The store raises these; the command line
turns them into one line (or one JSON object) and an exit code.
"""

from __future__ import annotations

import os


class TowerError(Exception):
    """Base class: ``code`` goes into ``--json`` output, ``exit_code`` to the shell."""

    exit_code = 1
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, data: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data or {}


class BadInput(TowerError):
    """Bad input or usage: unknown option, invalid path, path outside the repo."""

    exit_code = 2
    code = "bad_input"


class NotFound(TowerError):
    """Task, lease, approval, conflict or the store itself does not exist."""

    exit_code = 3
    code = "not_found"


class Refused(TowerError):
    """The rules say no: claim conflict, lease not active, decision already made."""

    exit_code = 4
    code = "refused"


class TimedOut(TowerError):
    """An approval wait ran out, or the store stayed locked for too long."""

    exit_code = 5
    code = "timeout"


class StoreUnusable(TowerError):
    """Corrupt or unreadable database, bad audit key, newer schema."""

    exit_code = 6
    code = "store_unusable"


def describe_bug(exc: BaseException) -> str:
    """``TypeError: … at file.py:12``: an unexpected exception in one line, with the place it
    was raised, for an "internal error (a bug: please report it)" message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    at = ""
    if tb is not None:
        at = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    return f"{type(exc).__name__}: {exc}{at}"
