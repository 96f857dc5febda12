"""Fixtures for the watcher tests (helpers live in watcher_testkit.py)."""

from __future__ import annotations

import asyncio

import pytest

from core.watcher import Watcher


@pytest.fixture
async def make_watcher():
    """Build watchers that are always stopped and awaited, and check nothing is left running."""
    made: list[Watcher] = []

    def make(*args, **kwargs) -> Watcher:
        kwargs.setdefault("rescan_interval", None)
        w = Watcher(*args, **kwargs)
        made.append(w)
        return w

    yield make
    for w in made:
        await w.aclose()
        assert not w._tasks, "watcher tasks left running"
        assert w.status == "stopped"
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftovers, leftovers
