"""Register the repository's git worktrees with Tower."""

from __future__ import annotations

from pathlib import Path

import click

from core.display import printable_line as cell
from core.errors import BadInput, NotFound, Refused
from core.gitrepo import RepoInfo, git, list_worktrees, worktree_name
from tui.clikit import agent_name, check_path_length, common_options, emit, person, repo, run, short


async def sync_worktrees(store, info: RepoInfo) -> list[str]:
    """Register every git worktree; mark registered ones git no longer has as inactive."""
    try:
        found = list_worktrees(info)
    except (RuntimeError, OSError):
        return []
    # this host's worktrees only: another host's directories are not in this git's list
    known = {Path(w.path): w for w in await store.list_worktrees(local_only=True)}
    result = []
    for wt in found:
        existing = known.get(wt.path)
        if existing is not None:
            name = existing.name
            if not existing.active or (wt.branch and wt.branch != existing.branch):
                await store.add_worktree(name, str(wt.path), branch=wt.branch, actor=person())
        else:
            w = await store.add_worktree(worktree_name(info, wt.path), str(wt.path), branch=wt.branch,
                                         actor=person(), rename_if_taken=True)
            name = w.name
        result.append(name)
    present = {wt.path for wt in found}
    for path, w in known.items():
        if w.active and path not in present:
            await store.remove_worktree(w.name, actor=person())
    return result


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
    from core.gitrepo import discover

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
        _check_same_repository(info, target)
    where = str(target.resolve())  # as the store will record it (the real path)

    async def body(s):
        _check_unregistered(await s.list_worktrees(), name, where, s.host)
        if create:
            exists = bool(git(["branch", "--list", branch], cwd=info.worktree_root).strip())
            args = (["worktree", "add", str(target), branch] if exists
                    else ["worktree", "add", "-b", branch, str(target)])
            try:
                git(args, cwd=info.worktree_root)
            except RuntimeError as exc:
                raise BadInput(f"git worktree add failed: {exc}", code="git_failed") from None
        final = target.resolve()
        wt_info = discover(final)
        return await s.add_worktree(name, str(final), branch=(wt_info.branch if wt_info else branch),
                                    agent=agent_name(), actor=person())

    w = run(body)
    emit(w, f"worktree {cell(w.name)} at {cell(w.path)} (branch {cell(w.branch or '-')})")


def _check_same_repository(info: RepoInfo, target: Path) -> None:
    """An existing PATH must be the top of a git worktree of this very repository (exit 2 otherwise)."""
    from core.gitrepo import discover

    if not (target / ".git").exists():
        raise BadInput(f"{target} exists and is not a git worktree", code="bad_path")
    other = discover(target)
    if other is None or other.worktree_root.resolve() != target.resolve():
        raise BadInput(f"{target} exists and is not a git worktree", code="bad_path")
    if other.common_dir.resolve() != info.common_dir.resolve():
        raise BadInput(f"{target} is a worktree of another repository (git dir {other.common_dir}),"
                       f" not of this one ({info.common_dir})", code="other_repository")


def _check_unregistered(known, name: str, path: str, host: str | None) -> None:
    """Refuse (exit 4) what the store would refuse, before git creates anything."""
    for w in known:
        if w.name == name and host is not None and w.host not in (None, host):
            raise Refused(f"worktree {name} is already registered on host {w.host}", code="worktree_exists")
        if w.path == path and w.name != name and (host is None or w.host in (None, host)):
            raise Refused(f"{path} is already registered as worktree {w.name}", code="worktree_exists")
    for w in known:
        if w.name == name and w.path != path and w.active:
            raise Refused(f"worktree {name} is already registered at {w.path}", code="worktree_exists")


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
        names = await sync_worktrees(s, info)
        return names, await s.list_worktrees()

    names, items = run(body)
    emit(items, f"{len(names)} worktree{'s' if len(names) != 1 else ''}: {', '.join(cell(n) for n in names)}")
