"""Helpers for the watcher tests: real temp dirs, real files, real watchfiles."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.watcher import Change

OLD = time.time() - 3600  # an hour ago: files "checked out" long before the test (not racy)


def write(root: Path, rel: str, text: str = "x", *, old: bool = False) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def tree(root: Path, files: dict[str, str], *, old: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        write(root, rel, text, old=old)
    return root


def kinds(changes: list[Change]) -> set[tuple[str, str, str]]:
    return {(c.worktree, c.path, c.kind) for c in changes}


async def wait_changes(
    it: AsyncIterator[list[Change]],
    until: Callable[[list[Change]], bool],
    timeout: float = 10,
) -> list[Change]:
    """Read batches until ``until(everything so far)`` holds; fail after ``timeout`` seconds."""
    got: list[Change] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not until(got):
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            batch = await asyncio.wait_for(anext(it), max(remaining, 0.001))
        except TimeoutError:
            pytest.fail(f"timed out waiting for changes; got {sorted(kinds(got))}")
        got.extend(batch)
    return got


def has(*wanted: tuple[str, str, str]) -> Callable[[list[Change]], bool]:
    return lambda got: set(wanted) <= kinds(got)
