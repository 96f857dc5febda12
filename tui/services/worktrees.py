"""Worktrees: register one (creating it with git if need be), keep the store in step with git."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import BadInput, Refused
from core.paths import PathError, normalize
from core.gitrepo import RepoInfo, discover, git, list_worktrees, worktree_name
from core.models import Worktree

if TYPE_CHECKING:
    from store import Store


async def sync_worktrees(store: Store, info: RepoInfo, *, actor: str) -> list[str]:
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
                await store.add_worktree(name, str(wt.path), branch=wt.branch, actor=actor)
        else:
            # a free name is chosen inside the registering transaction: names are global
            # across hosts, and another host may register one meanwhile
            w = await store.add_worktree(worktree_name(info, wt.path), str(wt.path), branch=wt.branch,
                                         actor=actor, rename_if_taken=True)
            name = w.name
        result.append(name)
    present = {wt.path for wt in found}
    for path, w in known.items():
        if w.active and path not in present:
            await store.remove_worktree(w.name, actor=actor)
    return result


async def add_worktree(store: Store, info: RepoInfo, name: str, target: Path, branch: str, *, create: bool,
                       agent: str | None, actor: str) -> Worktree:
    """Register ``target`` as worktree ``name``; with ``create``, ``git worktree add`` it first
    (on ``branch``, created if missing). What the store would refuse is refused before git runs."""
    where = str(target.resolve())  # as the store will record it (the real path)
    _check_unregistered(await store.list_worktrees(), name, where, store.host)
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
    return await store.add_worktree(name, str(final), branch=(wt_info.branch if wt_info else branch),
                                    agent=agent, actor=actor)


def check_same_repository(info: RepoInfo, target: Path) -> None:
    """An existing PATH must be the top of a git worktree of this very repository (exit 2 otherwise)."""
    if not (target / ".git").exists():
        raise BadInput(f"{target} exists and is not a git worktree", code="bad_path")
    other = discover(target)
    if other is None or other.worktree_root.resolve() != target.resolve():
        raise BadInput(f"{target} exists and is not a git worktree", code="bad_path")
    if other.common_dir.resolve() != info.common_dir.resolve():
        raise BadInput(f"{target} is a worktree of another repository (git dir {other.common_dir}),"
                       f" not of this one ({info.common_dir})", code="other_repository")


def _check_unregistered(known: list[Worktree], name: str, path: str, host: str | None) -> None:
    """Refuse (exit 4) what the store would refuse, before git creates anything."""
    for w in known:
        if w.name == name and host is not None and w.host not in (None, host):
            raise Refused(f"worktree {name} is already registered on host {w.host}", code="worktree_exists")
        if w.path == path and w.name != name and (host is None or w.host in (None, host)):
            raise Refused(f"{path} is already registered as worktree {w.name}", code="worktree_exists")
    for w in known:
        if w.name == name and w.path != path and w.active:
            raise Refused(f"worktree {name} is already registered at {w.path}", code="worktree_exists")



async def resolve_worktree(store: Store, hint: str | None, info: RepoInfo | None, *, agent: str | None,
                           register: bool = True) -> tuple[str | None, Path | None]:
    """The worktree a command or a session acts in: ``(name, root)``. A name given (``--worktree``,
    ``TOWER_WORKTREE``) wins; else the registered worktree that is ``info``'s (the git worktree
    of the current directory); an unregistered one is registered (unless ``register`` is false)
    under its default name."""
    known = await store.worktree_rows()  # plain rows: the agents' path
    if hint:
        path = next((p for name, p, _ in known if name == hint), None)
        return hint, Path(path) if path else None
    if info is None:
        return None, None
    root = info.worktree_root.resolve()
    match = next((name for name, p, _ in known if Path(p) == root), None)
    if match:
        return match, root
    if not register:
        return None, root
    w = await store.add_worktree(worktree_name(info, root), str(root), branch=info.branch, actor=agent,
                                 rename_if_taken=True)
    return w.name, root


def normalize_paths(paths: list[str], root: Path | None, cwd: Path, *, files_only: bool = True) -> list[str]:
    """Repository-relative paths, as ``tower claim`` makes them; a bad one is BadInput (exit 2)."""
    base = root or cwd
    out = []
    for p in paths:
        try:
            rel = normalize(p, base, cwd)
        except PathError as exc:
            raise BadInput(str(exc), code="bad_path") from None
        if files_only and (base / rel).is_dir():
            raise BadInput(f"{rel} is a directory: claim the files you will write", code="bad_path")
        out.append(rel)
    return out
