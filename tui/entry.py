"""The ``tower`` script: agent hooks straight to their runner, everything else to the click CLI.

An agent runs ``tower hook <agent>`` on every tool call, so the hook's command
line is read here, by hand, without importing click (the CLI framework and
the command modules are a third of a hook call's time). Only the plain form
that ``tower hook install`` writes takes this path::

    tower [--db P] [--agent A] [--worktree W] [--json] hook <agent> [--event E] [--deadline N] [same options]

Anything else (help, an unknown or malformed option) goes through the click
CLI (tui/cli.py), which answers for a hook just as well, only slower.
"""

from __future__ import annotations

import os
import sys

from tui import hookguard  # first: it answers for the hook if anything below fails

_VALUED = ("--db", "--agent", "--worktree", "--event", "--deadline")
_GLOBAL = ("--db", "--agent", "--worktree")  # the options `tower` itself takes before a command


def hook_args(args: list[str]) -> tuple[str, dict[str, str]] | None:
    """``(agent kind, options)`` for the plain hook command line, None for anything else."""
    opts: dict[str, str] = {}
    i, kind = 0, None
    while i < len(args):
        word = args[i]
        if kind is None and word == "hook":
            if i + 1 >= len(args) or args[i + 1] not in hookguard.AGENT_KINDS:
                return None
            kind = args[i + 1]
            i += 2
            continue
        if word == "--json":
            i += 1
            continue
        name, eq, value = word.partition("=")
        allowed = _VALUED if kind is not None else _GLOBAL
        if name not in allowed or (name == "--event" and kind == "claude-code"):
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 1
        opts[name[2:]] = value
        i += 1
    return (kind, opts) if kind is not None else None


def main() -> None:
    args = sys.argv[1:]
    if hookguard.is_hook(args):
        parsed = hook_args(args)
        if parsed is not None:
            kind, opts = parsed

            def run() -> None:
                from tui.services import hook_runner

                hook_runner.run(kind, opts.get("event"), opts.get("deadline"), db=opts.get("db"),
                                agent=opts.get("agent"), worktree=opts.get("worktree"))

            hookguard.run(run)  # answers once and exits; never returns
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from tui.cli import main as cli_main

    cli_main()
