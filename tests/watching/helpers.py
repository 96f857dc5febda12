"""Helpers for the watcher-service tests: a real repository with worktrees, a real store file."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from store import Store
from tests.conftest import git, run_tower
from tui.services.watch import ConflictEvent, WatchService, WatchStatus

T = TypeVar("T")


@dataclass
class Env:
    repo: Path
    db: Path
    wt: dict[str, Path]

    def tower(self, *args: str, cwd: Path | None = None):
        result = run_tower(*args, cwd=cwd or self.repo)
        assert result.code == 0, (args, result.stdout, result.stderr)
        return result

    def write(self, worktree: str, rel: str, text: str) -> Path:
        path = self.wt[worktree] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def read(self, worktree: str, rel: str) -> str:
        return (self.wt[worktree] / rel).read_text()


def make_env(repo: Path, names: tuple[str, ...] = ("wt-a", "wt-b")) -> Env:
    """``repo`` (tests/conftest.py) plus a .gitignore, `tower init` and `tower worktree add` per name."""
    (repo / ".gitignore").write_text("*.log\ngenerated/\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "guide.md").write_text("# guide\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "ignore rules", cwd=repo)
    env = Env(repo, repo / ".git" / "tower" / "tower.db", {"main": repo})
    env.tower("init")
    for name in names:
        env.tower("worktree", "add", name)
        env.wt[name] = (repo.parent / f"{repo.name}-{name}").resolve()
        assert (env.wt[name] / "src" / "app.py").exists()
    return env


async def wait_until(probe: Callable[[], Awaitable[T]], what: str, timeout: float = 10.0,
                     interval: float = 0.02) -> T:
    """Poll ``probe`` until it returns something truthy (bounded; never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last: {value!r}")
        await asyncio.sleep(interval)


def keyed(conflicts) -> set[tuple]:
    return {(c.kind, c.path, c.worktree, c.other_worktree) for c in conflicts}


async def open_conflict(store: Store, kind: str, path: str, worktree: str, timeout: float = 10.0):
    async def probe():
        return next((c for c in await store.list_conflicts("open")
                     if c.kind == kind and c.path == path and c.worktree == worktree), None)

    return await wait_until(probe, f"an open {kind} conflict on {worktree}:{path}", timeout)


async def closed(store: Store, conflict_id: int, timeout: float = 10.0):
    async def probe():
        c = await store.get_conflict(conflict_id)
        return c if c.status != "open" else None

    return await wait_until(probe, f"conflict C{conflict_id} to close", timeout)


@dataclass
class Running:
    service: WatchService
    store: Store
    task: asyncio.Task
    events: list[ConflictEvent] = field(default_factory=list)
    statuses: list[WatchStatus] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_service(db: Path, **kwargs: Any) -> AsyncIterator[Running]:
    """A WatchService on its own store connection (as in `tower watch`), ready; always stopped."""
    events: list[ConflictEvent] = []
    statuses: list[WatchStatus] = []
    kwargs.setdefault("rescan_interval", None)
    async with Store(db, actor="watch-test") as store:
        service = WatchService(store, on_conflict=events.append, on_status=statuses.append, **kwargs)
        task = asyncio.create_task(service.run())
        try:
            ready = asyncio.ensure_future(service.wait_ready())
            done, _ = await asyncio.wait({ready, task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                task.result()  # raises what run() raised
                pytest.fail("the service stopped before it was ready")
            if ready not in done:
                ready.cancel()
                pytest.fail(f"the service was not ready within 15 s: {service.snapshot_status()}")
            yield Running(service, store, task, events, statuses)
        finally:
            service.stop()
            await asyncio.wait_for(task, 15)
            assert service.status == "stopped"
