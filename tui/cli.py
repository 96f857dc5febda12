"""``tower``: the command line agents call, and the door to the control room.

Subcommands live in ``tui/commands/`` and are imported only when used, so
``tower task claim`` pays for what it runs and never for Textual.
"""

from __future__ import annotations

import importlib
import os
import sys

from tui import hookguard  # noqa: E402 - first: it answers for the hook if anything below fails

# Tower uses no pydantic plugins; looking for them scans every installed
# package's entry points on each command.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

try:
    import click  # noqa: E402

    from core.errors import BadInput  # noqa: E402
    from tui.clikit import check_text, common_options, fail, json_mode, report  # noqa: E402
except BaseException as exc:  # a broken install: an agent's hook must still deny, not crash
    hookguard.broken_install(exc)
    raise

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
    "guard": "tui.commands.guard:guard",
    "mcp": "tui.commands.mcp:mcp",
    "agent": "tui.commands.agents:agent",
    "demo": "tui.commands.demo:demo",
    "serve": "tui.commands.serve:serve",
    "key": "tui.commands.key:key",
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

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name in COMMANDS or name.startswith("-") or ctx.resilient_parsing:
            return super().resolve_command(ctx, args)
        # the commands load lazily, so click's own "did you mean" has nothing to compare with
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise click.UsageError(f"No such command {name!r}.{hint} (tower --help lists them)", ctx=ctx)


TERMINAL_NEEDED = "the control room needs a terminal; see `tower --help`"


def require_terminal() -> None:
    """The control room draws on a terminal and waits for keys: without one (an agent's
    shell tool, a pipe, cron) it would hang its caller. Say so and stop (exit 2)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput(TERMINAL_NEEDED, code="no_terminal")


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--no-watch", is_flag=True, help="Control room: do not run the worktree watcher.")
@common_options
@click.version_option(package_name="agent-tower", prog_name="tower")
@click.pass_context
def cli(ctx: click.Context, no_watch: bool) -> int | None:
    """Tower: a control room for AI coding agents working in git worktrees.

    With no command, opens the control room on this repository's store.
    """
    if ctx.invoked_subcommand is None:
        require_terminal()
        from tui.room.app import run_app
        from tui.clikit import db_path

        return run_app(db_path(), watch=not no_watch)
    return None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if hookguard.is_hook(args) and not {"-h", "--help"} & set(args):
        # one decision on stdout and exit 0 whatever happens (see tui/hookguard.py)
        hookguard.run(lambda: cli.main(args=args, prog_name="tower", standalone_mode=False))
    try:
        for n, arg in enumerate(args, 1):
            check_text(arg, f"argument {n}")
        result = cli.main(args=args, prog_name="tower", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        # a group without its command (`tower task`): its help, as help, not folded into one line
        if json_mode() or "--json" in args:
            group = exc.ctx.command
            names = ", ".join(group.list_commands(exc.ctx) if isinstance(group, click.Group) else ())
            code = fail("usage", f"{exc.ctx.command_path}: which command? ({names})", 2)
        else:
            click.echo(exc.ctx.get_help(), err=True)
            code = 2
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
