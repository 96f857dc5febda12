"""``tower``: the command line agents call, and the door to the control room.

Subcommands live in ``tui/commands/`` and are imported only when used, so
``tower task claim`` pays for what it runs and never for Textual.
"""

from __future__ import annotations

import importlib
import os
import sys

# Tower uses no pydantic plugins; looking for them scans every installed
# package's entry points (~8 ms) on each command.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import click  # noqa: E402

from tui.clikit import common_options, fail, report  # noqa: E402

# name -> "module:attribute"; the help order is this order
COMMANDS: dict[str, str] = {
    "init": "tui.commands.init:init",
    "task": "tui.commands.tasks:task",
    "lease": "tui.commands.tasks:lease",
    "reap": "tui.commands.tasks:reap",
    "claim": "tui.commands.tasks:claim",
    "release": "tui.commands.tasks:release",
    "worktree": "tui.commands.worktrees:worktree",
    "approval": "tui.commands.approvals:approval",
    "conflict": "tui.commands.conflicts:conflict",
    "audit": "tui.commands.audit:audit",
    "watch": "tui.commands.watch:watch",
    "hook": "tui.commands.hook:hook",
    "demo": "tui.commands.demo:demo",
    "serve": "tui.commands.serve:serve",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--no-watch", is_flag=True, help="Control room: do not run the worktree watcher.")
@common_options
@click.version_option(package_name="agent-tower", prog_name="tower")
@click.pass_context
def cli(ctx: click.Context, no_watch: bool) -> None:
    """Tower: a control room for AI coding agents working in git worktrees.

    With no command, opens the control room on this repository's store.
    """
    if ctx.invoked_subcommand is None:
        from tui.app import run_app
        from tui.clikit import db_path

        run_app(db_path(), watch=not no_watch)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="tower", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = fail("interrupted", "interrupted", 130)
    except KeyboardInterrupt:
        code = fail("interrupted", "interrupted", 130)
    except click.ClickException as exc:
        code = fail("usage", exc.format_message(), 2)
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        code = report(exc)
    sys.exit(code)


if __name__ == "__main__":
    main()
