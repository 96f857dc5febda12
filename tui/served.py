"""One control room served in a browser: the program ``tower serve`` starts per session.

textual-serve runs :func:`tui.services.serve.child_command` for each browser
session; that is ``python -m tui.served``, which runs the real control room
(Textual) on the store, as ``tower`` does in a terminal. It lives outside
``tui/services`` because it is the room itself, not a service behind it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from core.display import printable
from tui.services.serve import AGENT_ENV


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this process when the server dies, so no control room outlives it.

    A served app only loses its stdin and stdout when the server dies: Textual's
    web driver then stops reading but keeps running (polling the store, holding
    the watcher's lock), and its orderly exit blocks on the dead pipe, so the
    signal is SIGKILL. Nothing is lost by it: every write is one SQLite
    transaction, and nobody is left to see the screen.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the server died before the line above
        sys.exit(0)


class _PrintableLines:
    """A text stream that escapes control characters in every line written to it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write("\n".join(printable(line) for line in text.split("\n")))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def child_main(argv: list[str]) -> None:
    """``python -m tui.served --db DB --person LOGIN --parent PID [--no-watch]``: one served session.

    Runs the real control room (``tui.room.app.run_app``, what ``tower`` runs) on the store.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="tower serve (session)")
    parser.add_argument("--db", required=True)
    parser.add_argument("--person", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--no-watch", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    # The control room records its decisions as person:<login> (getpass reads
    # LOGNAME first); the login was fixed by the server, and no agent identity
    # passes through.
    for name in AGENT_ENV:
        os.environ.pop(name, None)
    os.environ["LOGNAME"] = os.environ["USER"] = args.person
    # textual-serve copies a session's stderr to the server's terminal as is:
    # stored text (agents') in an error must not reach it raw.
    sys.stderr = _PrintableLines(sys.stderr)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # run_app, not `tower` itself: the command line refuses to open the control
    # room without a terminal, and here the terminal is textual-serve's pipe
    # (TEXTUAL_DRIVER is its web driver).
    from tui.room.app import run_app
    from tui.clikit import report

    try:
        code = run_app(args.db, watch=not args.no_watch)  # a path, or a postgresql:// URL (run_app keeps it)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line and the contract's exit code, never a traceback
        code = report(exc)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    child_main(sys.argv[1:])
