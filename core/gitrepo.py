"""Find the git repository, worktree and Tower store for a directory.

Agents call ``tower`` for every step, so discovery reads ``.git`` files
directly instead of spawning ``git rev-parse`` (a subprocess costs more than
the rest of a command). Only worktree creation and listing shell out to git.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.records import record

STORE_DIRNAME = "tower"
DB_NAME = "tower.db"
KEY_NAME = "audit.key"
POLICY_NAME = "policy.toml"


@record(frozen=True)
class RepoInfo:
    worktree_root: Path  # the working tree containing the start directory
    git_dir: Path  # this worktree's git dir (.git, or .git/worktrees/NAME)
    common_dir: Path  # shared by every worktree of the repository

    @property
    def store_dir(self) -> Path:
        return self.common_dir / STORE_DIRNAME

    @property
    def branch(self) -> str | None:
        return head_branch(self.git_dir)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def git_dirs(root: Path | str) -> tuple[Path, Path] | None:
    """``(git dir, common dir)`` of the worktree whose top is ``root``, or None if it is not one.

    ``root/.git`` is a directory in the main worktree and a ``gitdir: ...`` file in
    a linked one, whose git dir names the common dir in its ``commondir`` file.
    """
    root = Path(root)
    dotgit = root / ".git"
    try:
        if dotgit.is_dir():
            git_dir = dotgit
        elif dotgit.is_file():
            text = dotgit.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = root / text[len("gitdir:") :].strip()
        else:
            return None
        git_dir = git_dir.resolve()
        common = _read(git_dir / "commondir")
    except OSError:
        return None
    return git_dir, (git_dir / common).resolve() if common else git_dir


def discover(start: Path | str | None = None) -> RepoInfo | None:
    """The repository containing ``start`` (default: the current directory), or None."""
    here = Path(start or os.getcwd()).resolve()
    for directory in (here, *here.parents):
        dirs = git_dirs(directory)
        if dirs is not None:
            return RepoInfo(worktree_root=directory, git_dir=dirs[0], common_dir=dirs[1])
    return None


def head_branch(git_dir: Path) -> str | None:
    head = _read(git_dir / "HEAD")
    if head and head.startswith("ref: refs/heads/"):
        return head[len("ref: refs/heads/") :]
    return None


def git(args: list[str], cwd: Path) -> str:
    """Run git; raise RuntimeError with git's own one-line complaint on failure."""
    import subprocess
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"git {' '.join(args)} failed")
    return proc.stdout


@record(frozen=True)
class GitWorktree:
    path: Path
    branch: str | None
    bare: bool = False


def list_worktrees(repo: RepoInfo) -> list[GitWorktree]:
    """Every worktree git knows of (``git worktree list --porcelain``)."""
    out = git(["worktree", "list", "--porcelain"], cwd=repo.worktree_root)
    result: list[GitWorktree] = []
    path: Path | None = None
    branch: str | None = None
    bare = False
    for line in [*out.splitlines(), ""]:
        if line.startswith("worktree "):
            path, branch, bare = Path(line[len("worktree ") :]), None, False
        elif line.startswith("branch refs/heads/"):
            branch = line[len("branch refs/heads/") :]
        elif line == "bare":
            bare = True
        elif not line and path is not None:
            if not bare:
                result.append(GitWorktree(path=path.resolve(), branch=branch))
            path = None
    return result


def worktree_name(repo: RepoInfo, root: Path) -> str:
    """The default name of a worktree: ``main`` for the main one, else its folder name."""
    if root.resolve() == repo.common_dir.parent.resolve() and repo.common_dir.name == ".git":
        return "main"
    return root.name
