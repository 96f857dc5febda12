"""Snapshots of the control room (pytest-textual-snapshot).

Deterministic: the data is built through the store verbs with a frozen clock,
the app runs on the same frozen clock, local time is UTC (conftest), no
animation, no cursor blink, a fixed terminal size. Update with
``pytest tests/tui --snapshot-update`` and look at the report before accepting.
"""

from __future__ import annotations

import asyncio

import pytest

from store import Store
from tui_helpers import SIZE, T0, Clock, make_app, ready, seed_busy, wait_for
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.reject import RejectDialog


@pytest.fixture
def busy_db(db):
    asyncio.run(seed_busy(db, clock=lambda: T0))
    return db


@pytest.fixture
def empty_db(db):
    async def create():
        async with Store(db, create=True, clock=lambda: T0):
            pass

    asyncio.run(create())
    return db


def frozen_app(db):
    return make_app(db, clock=Clock(T0 + 30))


class TestMainScreen:
    def test_empty(self, snap_compare, empty_db):
        assert snap_compare(frozen_app(empty_db), terminal_size=SIZE, run_before=ready)

    def test_busy(self, snap_compare, busy_db):
        assert snap_compare(frozen_app(busy_db), terminal_size=SIZE, run_before=ready)


class TestRejectDialog:
    def test_reject_dialog_with_a_reason_typed(self, snap_compare, busy_db):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("3", "r")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, RejectDialog))
            await pilot.press(*"not on a Friday")

        assert snap_compare(frozen_app(busy_db), terminal_size=SIZE, run_before=run_before)


class TestHelp:
    def test_help(self, snap_compare, busy_db):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

        assert snap_compare(frozen_app(busy_db), terminal_size=SIZE, run_before=run_before)


class TestConflicts:
    def test_conflict_highlighted(self, snap_compare, busy_db):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("4", "j")  # the second one: out of scope
            assert pilot.app.conflicts_pane.cursor_key == "C2"

        assert snap_compare(frozen_app(busy_db), terminal_size=SIZE, run_before=run_before)


class TestDetails:
    def test_approval_details(self, snap_compare, busy_db):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen)
                           and pilot.app.screen.pending_approval)

        assert snap_compare(frozen_app(busy_db), terminal_size=SIZE, run_before=run_before)
