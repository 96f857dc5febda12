"""Register the repository's git worktrees with Tower."""

from __future__ import annotations

from pathlib import Path

import click

from core.display import printable_line as cell
from core.errors import BadInput, NotFound
from core.gitrepo import RepoInfo
from tui.clikit import agent_name, check_path_length, common_options, emit, person, repo, run, short
from tui.services.worktrees import add_worktree, check_same_repository, sync_worktrees


def _need_repo() -> RepoInfo:
    info = repo()
    if info is None:
        raise NotFound("not inside a git repository", code="not_a_repo")
    return info


@click.group()
def worktree() -> None:
    """Add, list and sync worktrees."""


@worktree.command("add")
@click.argument("name")
@click.option("--path", "path", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the worktree lives (default: ../<repo>-<name>).")
@click.option("--branch", "-b", default=None, help="Branch to check out (created if missing; default: NAME).")
@common_options
def worktree_add(name, path, branch) -> None:
    """Create a git worktree (unless PATH already is one of this repository) and register it.

    Everything that can be refused is checked before git runs: the name and the
    path must not be registered as another worktree (exit 4), and an existing
    PATH must be a worktree of this repository (exit 2).
    """
    info = _need_repo()
    if not name.strip():
        raise BadInput("a worktree needs a name")
    check_path_length(name, "worktree name")  # it becomes a folder name
    if path is not None:
        check_path_length(path, "--path")
    main_root = info.common_dir.parent if info.common_dir.name == ".git" else info.worktree_root
    target = (path or main_root.parent / f"{main_root.name}-{name}").absolute()
    branch = branch or name
    create = not target.exists()
    if not create:
        check_same_repository(info, target)
    w = run(lambda s: add_worktree(s, info, name, target, branch, create=create, agent=agent_name(), actor=person()))
    emit(w, f"worktree {cell(w.name)} at {cell(w.path)} (branch {cell(w.branch or '-')})")


@worktree.command("list")
@common_options
def worktree_list() -> None:
    """List registered worktrees."""
    items = run(lambda s: s.list_worktrees())
    emit(items, lambda: "\n".join(
        f"{cell(w.name):<12} {'active' if w.active else 'gone':<7} {cell(w.branch or '-'):<16} {cell(w.path)}"
        f"  {cell(w.agent or '')} {short(w.last_seen) if w.last_seen else ''}"
        f"{'  on ' + cell(w.host) if w.host else ''}".rstrip()
        for w in items) or "no worktrees")


@worktree.command("sync")
@common_options
def worktree_sync() -> None:
    """Register every worktree git knows of; forget the ones it no longer has."""
    info = _need_repo()

    async def body(s):
        names = await sync_worktrees(s, info, actor=person())
        return names, await s.list_worktrees()

    names, items = run(body)
    emit(items, f"{len(names)} worktree{'s' if len(names) != 1 else ''}: {', '.join(cell(n) for n in names)}")
