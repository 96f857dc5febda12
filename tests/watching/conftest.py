"""Fixtures for the watcher-service tests (helpers live in helpers.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from store import Store
from tests.watching.helpers import Env, make_env


@pytest.fixture
def env(repo: Path) -> Env:
    """A repository (main) with worktrees wt-a and wt-b, registered in a fresh store."""
    return make_env(repo)


@pytest.fixture
async def agents(env: Env):
    """The agents' side: a second connection to the same store file."""
    async with Store(env.db, actor="agent") as s:
        yield s
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftovers, leftovers
