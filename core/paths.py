"""Repo-relative path normalisation.

Every path that reaches Tower (a claim, a hook's ``file_path``, a watcher
event) is reduced to one canonical spelling: a POSIX path relative to the
worktree's real root, with the symlinks of its existing part resolved.  Two
spellings of one file therefore map to one claim, and nothing outside the
worktree (or inside its ``.git``) can be named at all.
"""

from __future__ import annotations

import os
from pathlib import Path


class PathError(ValueError):
    """A path that cannot name a file of the repository; ``str()`` is one line for the user."""


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` is ``root`` or lies below it.

    Both sides are compared as real paths (symlinks of their existing parts
    resolved), so ``/tmp/x`` is within ``/private/tmp`` on macOS and
    ``/repo2`` is never within ``/repo``.
    """
    return _within(os.path.realpath(path), os.path.realpath(root))


def normalize(
    path: str | os.PathLike[str], root: Path, cwd: Path | None = None
) -> str:
    """Return ``path`` as a POSIX path relative to the worktree ``root``.

    A relative ``path`` is taken relative to ``cwd`` (default: ``root``); an
    absolute one must lie inside ``root``.  Symlinks along the existing part of
    the path are resolved (the file itself need not exist yet), ``.``, ``..``
    and repeated slashes are collapsed.  Raises :class:`PathError` for an empty
    path, a NUL byte, a path outside the worktree (directly, through ``..`` or
    through a symlink), the worktree root itself, or anything in its top-level
    ``.git``.
    """
    raw = os.fsdecode(os.fspath(path))
    shown = _quote(raw)
    if not raw:
        raise PathError("empty path")
    if "\0" in raw:
        raise PathError(f"path {shown} contains a NUL byte")

    real_root = os.path.realpath(root)
    joined = os.path.join(os.path.abspath(root if cwd is None else cwd), raw)
    # realpath resolves symlinks component by component before applying "..",
    # as the kernel does, and appends the part that does not exist yet as is.
    resolved = os.path.realpath(joined)
    if not _within(resolved, real_root):
        raise PathError(f"path {shown} {_why_outside(raw, joined, root, real_root)}")

    rel = os.path.relpath(resolved, real_root).replace(os.sep, "/")
    if rel == ".":
        raise PathError(f"path {shown} is the repository root, not a file")
    # Case-folded like git itself, which refuses ".GIT" on every platform:
    # on a case-insensitive filesystem it is the same directory.
    if rel.split("/", 1)[0].casefold() == ".git":
        raise PathError(f"path {shown} is inside .git")
    return rel


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _why_outside(raw: str, joined: str, root: Path, real_root: str) -> str:
    # Only the wording depends on this; the decision was made on real paths.
    lexical = os.path.normpath(joined)
    if _within(lexical, os.path.abspath(root)) or _within(lexical, real_root):
        return "goes through a symlink to outside the repository"
    if ".." in Path(raw).parts:
        return "escapes the repository"
    return "is outside the repository"


def _quote(raw: str) -> str:
    return f"'{raw}'" if raw.isprintable() else repr(raw)
