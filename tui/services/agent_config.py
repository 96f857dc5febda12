"""What every installer of Tower into an agent's or git's files shares (hooks, MCP, the commit guard).

How to run this very Tower from another program, which worktree an install
targets, and reading and writing the agents' JSON files: strictly (a file
JSON cannot hold is refused naming its line, never rewritten) and atomically
(the file is whole before and after, its mode kept). No click here.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.errors import BadInput, NotFound


def tower_program() -> list[str]:
    """How to run this very Tower: the absolute path of the ``tower`` script that is running."""
    import shutil

    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).startswith("tower") and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    found = shutil.which("tower")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "tui.cli"]


def explicit_db(option: str | None) -> Path | str | None:
    """``--db`` (else ``TOWER_DB``) as an absolute path, or a ``postgresql://`` URL as it is;
    None when neither is given.

    It goes into the agent's hook file, which is often committed and which every
    local user may read: a URL holding a password is refused (exit 2); the
    password belongs in ``~/.pgpass`` (docs/postgres.md)."""
    from core.locate import has_password, is_url, redact

    explicit = option or os.environ.get("TOWER_DB")
    if not explicit:
        return None
    if is_url(explicit):
        if has_password(explicit):
            raise BadInput(f"refusing to write the store URL {redact(explicit)} into an agent's hook file: it holds"
                           " a password, which anyone reading the file would see; put the password in ~/.pgpass"
                           " (or the file PGPASSFILE names) and pass the URL without it", code="password_in_url")
        return explicit
    return Path(explicit).expanduser().absolute()


def target_root(name: str | None, cwd: Path, worktrees: Callable[[], Iterable[tuple[str, str, Any]]],
                has_store: bool) -> Path:
    """The worktree an install edits: ``name`` (a directory, or a worktree Tower knows), else ``cwd``'s.

    ``worktrees``: the store's ``(name, path, active)`` rows, read only when a
    name must be looked up.
    """
    from core.gitrepo import discover

    if name:
        if Path(name).expanduser().is_dir():
            info = discover(Path(name).expanduser())
            return info.worktree_root if info else Path(name).expanduser().resolve()
        if not has_store:
            raise NotFound(f"no worktree {name}: no Tower store to look it up in", code="worktree_not_found")
        match = next((path for n, path, _ in worktrees() if n == name), None)
        if match is None:
            raise NotFound(f"no worktree {name} (see `tower worktree list`)", code="worktree_not_found")
        return Path(match)
    info = discover(cwd)
    if info is None:
        raise BadInput("not inside a git worktree: run this in one, or pass --worktree")
    return info.worktree_root


class _NotJSON(ValueError):
    """A number Python's json would accept but JSON (and the agents) would not."""

    def __init__(self, token: str, why: str) -> None:
        super().__init__(token)
        self.token, self.why = token, why


def _no_constant(token: str):
    raise _NotJSON(token, "is not a JSON value")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NotJSON(token, "is out of range for a JSON number")
    return value


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when missing or blank); BadInput (one line, naming the line) else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); fix it first") from None
    except _NotJSON as exc:
        line = text.count("\n", 0, max(text.find(exc.token), 0)) + 1
        raise BadInput(f"{path} line {line}: not valid JSON ({exc.token} {exc.why}); fix it first") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a JSON object")
    return data


def write_text_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` by ``text`` whole (written aside, synced, renamed), keeping its mode
    (``mode`` when given; 0644 for a new file)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            try:
                mode = path.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
