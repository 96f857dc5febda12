"""Snapshots of the control room (pytest-textual-snapshot).

Deterministic: the data is built through the store verbs with a frozen clock,
the app runs on the same frozen clock, local time is UTC (conftest), no
animation, no cursor blink, a fixed terminal size. Every screen is taken at
160x48 and at 80x24 (the compact layout), in the dark theme; the main screen
also in two light themes and without colour (NO_COLOR). Update with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the report
before accepting.
"""

from __future__ import annotations

import asyncio

import pytest

from store import Store
from tui_helpers import T0, Clock, make_app, ready, seed_agents, seed_busy, wait_for
from tui.room.screens.confirm import ConfirmDialog
from tui.room.screens.detail import DetailScreen
from tui.room.screens.help import HelpScreen
from tui.room.screens.reject import RejectDialog

LARGE = (160, 48)
SMALL = (80, 24)
SIZES = pytest.mark.parametrize("size", [LARGE, SMALL], ids=["160x48", "80x24"])


@pytest.fixture
def busy_db(db):
    asyncio.run(seed_busy(db, clock=lambda: T0))
    return db


@pytest.fixture
def agents_db(db):
    asyncio.run(seed_agents(db, clock=lambda: T0))
    return db


@pytest.fixture
def empty_db(db):
    async def create():
        async with Store(db, create=True, clock=lambda: T0):
            pass

    asyncio.run(create())
    return db


def frozen_app(db, theme: str | None = None):
    app = make_app(db, clock=Clock(T0 + 30))
    if theme is not None:
        app.theme = theme
    return app


class TestMainScreen:
    def test_empty(self, snap_compare, empty_db):
        assert snap_compare(frozen_app(empty_db), terminal_size=LARGE, run_before=ready)

    @SIZES
    def test_busy(self, snap_compare, busy_db, size):
        assert snap_compare(frozen_app(busy_db), terminal_size=size, run_before=ready)

    @SIZES
    @pytest.mark.parametrize("theme", ["catppuccin-latte", "textual-light"])
    def test_busy_light(self, snap_compare, busy_db, size, theme):
        assert snap_compare(frozen_app(busy_db, theme), terminal_size=size, run_before=ready)

    @SIZES
    def test_busy_without_colour(self, snap_compare, busy_db, size, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        assert snap_compare(frozen_app(busy_db), terminal_size=size, run_before=ready)

    def test_approvals_at_80x24(self, snap_compare, busy_db):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("3")

        assert snap_compare(frozen_app(busy_db), terminal_size=SMALL, run_before=run_before)


class TestRejectDialog:
    @SIZES
    def test_reject_dialog_with_a_reason_typed(self, snap_compare, busy_db, size):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("3", "r")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, RejectDialog))
            await pilot.press(*"not on a Friday")

        assert snap_compare(frozen_app(busy_db), terminal_size=size, run_before=run_before)


class TestConfirm:
    @SIZES
    def test_quit_while_approvals_wait(self, snap_compare, busy_db, size):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))

        assert snap_compare(frozen_app(busy_db), terminal_size=size, run_before=run_before)


class TestHelp:
    @SIZES
    def test_help(self, snap_compare, busy_db, size):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

        assert snap_compare(frozen_app(busy_db), terminal_size=size, run_before=run_before)


class TestConflicts:
    def test_conflict_highlighted(self, snap_compare, busy_db):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("4", "j")  # the second one: out of scope
            assert pilot.app.conflicts_pane.cursor_key == "C2"

        assert snap_compare(frozen_app(busy_db), terminal_size=LARGE, run_before=run_before)


class TestDetails:
    @SIZES
    def test_approval_details(self, snap_compare, busy_db, size):
        async def run_before(pilot):
            await ready(pilot)
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen)
                           and pilot.app.screen.pending_approval)

        assert snap_compare(frozen_app(busy_db), terminal_size=size, run_before=run_before)


class TestAgents:
    """Agents in every state: waiting on Tower approvals and at their own prompt, stalled,
    working, idle, ended."""

    @staticmethod
    async def agents(pilot):
        await ready(pilot)
        await wait_for(pilot, lambda: len(pilot.app.agents_pane.shown_keys) == 9, what="every session")
        await pilot.press("6")

    @SIZES
    def test_agents_pane(self, snap_compare, agents_db, size):
        assert snap_compare(frozen_app(agents_db), terminal_size=size, run_before=self.agents)

    @SIZES
    def test_agents_pane_light(self, snap_compare, agents_db, size):
        assert snap_compare(frozen_app(agents_db, "catppuccin-latte"), terminal_size=size, run_before=self.agents)

    @SIZES
    def test_agents_pane_without_colour(self, snap_compare, agents_db, size, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        assert snap_compare(frozen_app(agents_db), terminal_size=size, run_before=self.agents)

    @SIZES
    def test_session_details(self, snap_compare, agents_db, size):
        async def run_before(pilot):
            await self.agents(pilot)
            await pilot.press("j", "j", "enter")  # S9: the hooked Claude Code session waiting on A1
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen) and pilot.app.screen.links)
            await pilot.pause()

        assert snap_compare(frozen_app(agents_db), terminal_size=size, run_before=run_before)
