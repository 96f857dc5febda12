"""``tower guard``: git hooks that refuse commits and pushes breaking Tower's rules.

The work is done in ``tui/services/guard.py``; this module is the click surface.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from core.errors import BadInput, Refused
from tui.clikit import agent_name, common_options, db_path, emit, json_mode, opt, parse, person, repo, run

_SHOWN = 20  # refused files listed one per line; the rest are counted


@click.group()
def guard() -> None:
    """Git hooks that refuse commits touching files other agents hold (and risky pushes)."""


def _root() -> Path:
    info = repo()
    if info is None:
        raise BadInput("not inside a git worktree: run this in one")
    return info.worktree_root


@guard.command("install")
@common_options
def guard_install() -> None:
    """Install the pre-commit and pre-push hooks, shared by every worktree of the repository.

    Honours core.hooksPath; a hook already there is kept and run first; running
    it again changes nothing.
    """
    from tui.services.agent_config import tower_program
    from tui.services.guard import install_hooks

    root = _root()
    explicit = opt("db") or os.environ.get("TOWER_DB")
    db = str(Path(explicit).expanduser().absolute()) if explicit else None
    result = install_hooks(root, tower_program(), db)
    note = ""
    hooks = Path(result["hooks_dir"])
    info = repo()
    if hooks.is_relative_to(root.resolve()) and not (info is not None and hooks.is_relative_to(info.common_dir)):
        note = " (core.hooksPath points into this worktree: other worktrees use their own copy of it)"
        result["per_worktree"] = True
    chained = f"; runs the existing {', '.join(result['chained'])} first" if result["chained"] else ""
    verb = "installed" if result["changed"] else "already installed:"
    emit(result, f"{verb} Tower's pre-commit and pre-push hooks in {result['hooks_dir']}{chained}{note}")


@guard.command("uninstall")
@common_options
def guard_uninstall() -> None:
    """Remove Tower's hooks and put back the hooks they chained."""
    from tui.services.guard import uninstall_hooks

    result = uninstall_hooks(_root())
    if result["removed"]:
        back = f"; restored {', '.join(result['restored'])}" if result["restored"] else ""
        human = f"removed Tower's {' and '.join(result['removed'])} hooks from {result['hooks_dir']}{back}"
    else:
        human = f"Tower's hooks are not in {result['hooks_dir']}"
    emit(result, human)


@guard.command("check")
@click.option("--staged", is_flag=True, help="Check what is staged (pre-commit) instead of every change.")
@click.option("--push", is_flag=True, help="Check a push: git's pre-push lines on stdin.")
@click.option("--hook", type=click.Choice(["pre-commit", "pre-push"]), default=None,
              help="Set by the installed hook: quiet when nothing is refused.")
@click.argument("git_args", nargs=-1)
@common_options
def guard_check(staged, push, hook, git_args) -> None:
    """Refuse (exit 4) a commit touching a file another worktree's lease claims, or outside the
    committing lease's task scope; with --push, an agent's force push, branch deletion or push
    to a protected branch. Refusals are audited (guard.refused).

    With no store the check passes with a warning; a store that cannot be read
    refuses, naming --no-verify as the person's way past.
    """
    from tui.services import guard as svc

    root = _root()
    db = db_path()
    if not db.exists():
        what = "push" if push else "commit"
        click.echo(f"tower guard: no Tower store at {db} (run `tower init`); {what} not checked by Tower", err=True)
        emit({"checked": False, "reason": "no_store", "store": str(db)})
        return
    lease_env = os.environ.get("TOWER_LEASE")
    try:
        lease_hint = parse("lease", lease_env) if lease_env else None
        if push:
            updates = svc.parse_push_lines(sys.stdin.read())

            def body(s):
                return svc.check_push(s, root=root, updates=updates, actor=person(), agent=agent_name())
        else:
            paths = svc.changed_paths(root, staged=staged)

            def body(s):
                return svc.check_commit(s, root=root, paths=paths, actor=person(), agent=agent_name(),
                                        lease_hint=lease_hint, hook=hook)

        verdict = run(body, actor=person())
    except Refused as exc:
        if exc.code != "guard_refused":
            raise svc.broken(exc) from None
        refusals = exc.data.get("refusals", [])
        if not json_mode() and len(refusals) > 1:
            for r in refusals[:_SHOWN]:
                click.echo(f"  {r['message']}", err=True)
            if len(refusals) > _SHOWN:
                click.echo(f"  … and {len(refusals) - _SHOWN} more", err=True)
        raise
    except Exception as exc:  # noqa: BLE001 - Tower failing to judge must say so, never pass silently
        raise svc.broken(exc) from None
    what = "refs" if push else "files"
    emit({"checked": verdict.checked, "leases": verdict.leases},
         None if hook else f"{verdict.checked} {what} checked: nothing refused")
