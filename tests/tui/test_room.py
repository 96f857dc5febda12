"""The control room never acts on what the person did not mean, at any size, in any terminal.

Pilot tests against a real store file; other supervisors and agents act through
the real ``tower`` command line in other processes. The store is the oracle:
every test that presses a decision key reads back what the store holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap

import pytest

from store import Store
from tui_helpers import (
    ACTOR,
    SIZE,
    T0,
    Clock,
    create_store,
    make_app,
    palette_offers,
    python,
    ready,
    run_cli,
    screen_text,
    seed_audit,
    seed_busy,
    toasts,
    wait_for,
)
from tui.room import theme
from tui.room.screens.confirm import ConfirmDialog
from tui.room.screens.detail import DetailScreen
from tui.room.screens.help import HelpScreen

SMALL = (80, 24)


async def read(db, fn):
    async with Store(db) as s:
        return await fn(s)


async def status_of(db, approval_id: int) -> str:
    return (await read(db, lambda s: s.get_approval(approval_id))).status


async def seen_status(pilot, key: str, status: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.approvals_pane.records.get(key) is not None
                   and app.approvals_pane.records[key].status == status, what=f"{key} {status} on screen")
    await pilot.pause()


# -- 1. a key acts only on the row the person saw -----------------------------------------------


class TestTheRowThePersonSaw:
    async def test_decided_elsewhere_under_the_cursor_a_does_nothing(self, db):
        """A1 and A2 wait, the cursor is on A2; A2 is approved from another shell: `a` must
        not approve A1 (the cursor used to jump there without a word)."""
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await pilot.press("3", "j")
            assert app.approvals_pane.cursor_key == "A2"
            await run_cli(db, "approval", "approve", "A2", agent=None)
            await seen_status(pilot, "A2", "approved")
            head = await read(db, lambda s: s.audit_head())
            await pilot.press("a", "a")
            await pilot.pause(0.2)
            assert await status_of(db, 1) == "pending"
            assert len([t for t, _ in toasts(app) if "selection changed" in t]) == 1  # one at a time
            assert await read(db, lambda s: s.audit_head()) == head  # nothing written at all
            assert any("A2 was approved" in message for _, message in toasts(app))
            assert app.approvals_pane.cursor_key == "A2"  # it shows what became of A2
            # the person moves: the keys work again, on what they chose
            await pilot.press("n")
            assert app.approvals_pane.cursor_key == "A1"
            await pilot.press("a")
            await seen_status(pilot, "A1", "approved")
            assert await status_of(db, 1) == "approved"

    async def test_a_row_that_moved_under_the_cursor_is_not_acted_on(self, db):
        """A1 is decided elsewhere while the cursor is on A2: A2 moves up a line under the
        cursor; `a` and `r` wait until the person moves."""
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await pilot.press("3", "j")
            await run_cli(db, "approval", "reject", "A1", "--reason", "from the shell", agent=None)
            await seen_status(pilot, "A1", "rejected")
            assert app.approvals_pane.cursor_key == "A2"
            await pilot.press("a")
            await pilot.press("r")
            await pilot.pause(0.2)
            assert not isinstance(app.screen, ConfirmDialog)
            assert await status_of(db, 2) == "pending"
            assert any("moved" in message for _, message in toasts(app))
            await pilot.press("j", "k")  # away and back: the person chose A2 again
            assert app.approvals_pane.cursor_key == "A2"
            await pilot.press("a")
            await seen_status(pilot, "A2", "approved")

    async def test_x_waits_when_the_conflicts_changed_under_the_cursor(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await pilot.press("4")
            assert app.conflicts_pane.cursor_key == "C1"
            await run_cli(db, "conflict", "ack", "C1", agent=None)
            await wait_for(pilot, lambda: "C1" not in app.conflicts_pane.shown_keys)
            assert app.conflicts_pane.cursor_key == "C2"  # the next row slid under the cursor
            await pilot.press("x")
            await pilot.pause(0.2)
            assert (await read(db, lambda s: s.get_conflict(2))).status == "open"
            await pilot.press("k")
            await pilot.press("x")
            await wait_for(pilot, lambda: "C2" not in app.conflicts_pane.shown_keys)
            assert (await read(db, lambda s: s.get_conflict(2))).status == "acked"

    async def test_own_decisions_go_on_to_the_next_request(self, db):
        """Working through the list stays one key per request: after the person's own
        decision the next request waiting is theirs to act on."""
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "a")
            await seen_status(pilot, "A1", "approved")
            assert app.approvals_pane.cursor_key == "A2"
            await pilot.press("a")
            await seen_status(pilot, "A2", "approved")
            assert (await status_of(db, 1), await status_of(db, 2)) == ("approved", "approved")


# -- 2. confirmations where the key is not on the row ----------------------------------------------


class TestConfirmations:
    async def test_palette_enter_never_decides_and_approve_asks_naming_the_request(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            head = await read(db, lambda s: s.audit_head())
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press("enter")  # whatever is highlighted first
            await pilot.pause(0.3)
            if isinstance(app.screen, ConfirmDialog):  # a decision must ask, never act
                await pilot.press("escape")
            assert await read(db, lambda s: s.audit_head()) == head

            await pilot.press("ctrl+p")
            await pilot.press(*"approve a2")
            await palette_offers(pilot, "A2")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
            assert "Approve A2: Merge agent-b into main" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert await status_of(db, 2) == "pending"

            await pilot.press("ctrl+p")
            await pilot.press(*"approve a2")
            await palette_offers(pilot, "A2")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("enter")
            await seen_status(pilot, "A2", "approved")
            assert (await status_of(db, 1), await status_of(db, 2)) == ("pending", "approved")

    async def test_palette_cancel_asks_first(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+p", *"cancel task t8")
            await palette_offers(pilot, "T8")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            assert "Cancel T8: Profile the cold start" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert (await read(db, lambda s: s.get_task(8))).status == "pending"
            await pilot.press("ctrl+p", *"cancel task t8")
            await palette_offers(pilot, "T8")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.queue_pane.records["T8"].status == "cancelled")
            assert (await read(db, lambda s: s.get_task(8))).status == "cancelled"

    async def test_quit_asks_while_approvals_wait(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            assert "2 approvals are waiting: quit anyway?" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert app.is_running and not isinstance(app.screen, ConfirmDialog)
            await pilot.press("ctrl+q")  # the other way out asks too
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.is_running, what="the app quit")

    async def test_quit_without_pending_approvals_does_not_ask(self, db):
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, what="the app quit")


# -- 3. toasts and jumps lead to a request waiting ------------------------------------------------


class TestLeadingToRequests:
    async def test_3_selects_the_oldest_waiting_never_a_decided_row(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "j", "j")
            assert app.approvals_pane.selected.status != "pending"
            await pilot.press("1", "3")
            assert app.approvals_pane.cursor_key == "A1"

    async def test_n_goes_through_the_requests_waiting_from_anywhere(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("1", "n")
            assert (app.current_pane, app.approvals_pane.cursor_key) == ("approvals", "A1")
            assert "1 of 2 waiting" in str(app.approvals_pane.border_subtitle)
            await pilot.press("n")
            assert app.approvals_pane.cursor_key == "A2"
            assert "2 of 2 waiting" in str(app.approvals_pane.border_subtitle)
            await pilot.press("n")
            assert app.approvals_pane.cursor_key == "A1"
            await pilot.press("5", "n", "a")
            await seen_status(pilot, "A1", "approved")
            assert await status_of(db, 1) == "approved"

    async def test_the_toast_of_a_new_request_leads_to_it(self, db):
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await run_cli(db, "approval", "request", "--kind", "command", "--summary", "deploy v1 to staging")
            await wait_for(pilot, lambda: "A1" in app.approvals_pane.shown_keys)
            await pilot.pause()
            [(title, message)] = toasts(app)
            assert "A1 requested" in title and "press 3, then a or r" in message
            await run_cli(db, "approval", "request", "--kind", "command", "--summary", "drop the cache")
            await wait_for(pilot, lambda: "A2" in app.approvals_pane.shown_keys)
            await pilot.pause()
            [(title, message)] = toasts(app)  # the new announcement replaced the last one
            assert "A2 requested" in title
            assert "press 3" not in message and "press n" in message  # 3 leads to A1, the oldest
            await pilot.press("3", "a")
            await seen_status(pilot, "A1", "approved")
            assert (await status_of(db, 1), await status_of(db, 2)) == ("approved", "pending")


# -- 4. requests that end without the person ---------------------------------------------------------


class TestEndingsAndDeadlines:
    async def test_a_request_that_expires_is_announced_and_stays_visible(self, db):
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            waiter = asyncio.ensure_future(run_cli(db, "approval", "request", "--kind", "command", "--summary",
                                                   "push to prod", "--wait", "--timeout", "1"))
            await wait_for(pilot, lambda: "A1" in app.approvals_pane.shown_keys)
            bells = app.bells
            await waiter
            await seen_status(pilot, "A1", "expired")
            assert app.bells == bells + 1
            assert any("A1 expired" in title for title, _ in toasts(app))
            assert "expired" in app.approvals_pane.table.get_cell("A1", "status").plain

    async def test_a_request_cancelled_with_its_lease_is_announced(self, db):
        await create_store(db)
        await run_cli(db, "task", "add", "risky work")
        await run_cli(db, "task", "claim", "--ttl", "600")
        await run_cli(db, "approval", "request", "--kind", "command", "--summary", "rm -rf /tmp/x", "--lease", "L1")
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            bells = app.bells
            await run_cli(db, "task", "fail", "L1", "--reason", "gave up")
            await seen_status(pilot, "A1", "cancelled")
            assert app.bells == bells + 1
            assert any("A1 cancelled" in title for title, _ in toasts(app))
            assert "A1" in app.approvals_pane.shown_keys

    async def test_each_pending_request_shows_its_time_left(self, db):
        """A request a hook filed ends when the hook stops waiting (the policy's ask timeout);
        one filed from a shell has no deadline the store knows of, and says so."""
        (db.parent / "policy.toml").write_text('default = "ask"\n[ask]\ntimeout = 300\n')
        async with Store(db, create=True, actor="person:lead", clock=lambda: T0) as s:
            await s.request_approval(kind="command", summary="git push --force", requested_by="claude-a",
                                     detail={"source": "claude-code", "tool": "Bash", "command": "git push -f"})
            await s.request_approval(kind="custom", summary="may I?", requested_by="script")
            await s.request_approval(kind="custom", summary="damaged", requested_by="script",
                                     detail={"source": "claude-code"})
        con = sqlite3.connect(db)  # a damaged detail names no hook, and breaks nothing
        con.execute("UPDATE approvals SET detail = '{not json' WHERE id = 3")
        con.commit()
        con.close()
        app = make_app(db, clock=Clock(T0 + 30))
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.approvals_pane.table.get_cell("A1", "left").plain == "4m30s"
            assert app.approvals_pane.table.get_cell("A2", "left").plain == ""
            assert app.approvals_pane.table.get_cell("A3", "left").plain == ""
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.pending_approval)
            await wait_for(pilot, lambda: "(in 4m30s) unless someone decides:" in screen_text(app))
            assert "the claude-code hook stops" in " ".join(screen_text(app).split())
            await pilot.press("escape", "j", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.ident == 2
                           and app.screen.pending_approval)
            assert "none known: it waits for a decision" in screen_text(app)


# -- 5. NO_COLOR -------------------------------------------------------------------------------------


class TestNoColor:
    async def test_the_room_runs_and_reads_without_colour(self, db, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("escape", "5", "question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert "approve the selected request" in screen_text(app)
            await pilot.press("escape")
            assert "2 approvals waiting" in screen_text(app)
        assert app.return_code in (None, 0)


# -- 6. themes ---------------------------------------------------------------------------------------


def contrast(fg: str, bg: str) -> float:
    from textual.color import Color

    def lum(c: Color) -> float:
        def ch(v: int) -> float:
            v /= 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b)

    a, b = lum(Color.parse(fg)), lum(Color.parse(bg))
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


class TestThemes:
    @pytest.mark.parametrize("name", ["textual-light", "catppuccin-latte", "tower-light", "tower", "nord"])
    async def test_text_is_readable_in_every_theme(self, db, name):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            app.theme = name
            await pilot.pause()
            surface = app.get_css_variables()["surface"]
            cell = app.queue_pane.table.get_cell("T1", "title")
            assert contrast(str(cell.style.color.triplet.hex), surface) >= 4.5
            for style in (theme.S_TEXT, theme.S_MUTED, theme.S_DIM, theme.S_WARN, theme.S_BAD, theme.S_OK,
                          theme.S_INFO):
                assert contrast(style.color.triplet.hex, surface) >= 3.0, (name, style)
            for badge in (theme.S_PENDING_BADGE, theme.S_CONFLICT_BADGE):
                assert contrast(badge.color.triplet.hex, badge.bgcolor.triplet.hex) >= 3.0

    async def test_the_chosen_theme_is_kept_for_next_time(self, db, own_config_dir):
        await seed_busy(db)
        app = make_app(db, settings_path=...)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            app.theme = "catppuccin-latte"
            await pilot.pause()
        assert (own_config_dir / "tower" / "settings.json").exists()
        again = make_app(db, settings_path=...)
        async with again.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert again.theme == "catppuccin-latte"

    async def test_a_damaged_settings_file_means_the_defaults(self, db, own_config_dir):
        (own_config_dir / "tower").mkdir(parents=True)
        (own_config_dir / "tower" / "settings.json").write_text("{not json")
        await create_store(db)
        app = make_app(db, settings_path=...)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.theme == "tower"

    def test_the_stylesheet_names_no_colour_of_its_own(self):
        import re
        from pathlib import Path

        import tui.room

        css = (Path(tui.room.__file__).parent / "app.tcss").read_text()
        assert not re.findall(r"#[0-9a-fA-F]{3,8}\b", css)


# -- 7. small terminals ---------------------------------------------------------------------------


class TestSizes:
    @pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (160, 48), (220, 60)])
    async def test_columns_fit_and_what_matters_stays(self, db, size):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=size) as pilot:
            await ready(pilot)
            for name in ("queue", "leases", "approvals", "conflicts"):
                await pilot.press(str(("queue", "leases", "approvals", "conflicts").index(name) + 1))
                await pilot.pause()
                pane = app.pane(name)
                table = pane.table
                used = sum(c.get_render_width(table) for c in table.columns.values())
                assert used <= pane.content_region.width, (name, size)
                keys = {c.key.value for c in table.columns.values()}
                must = {"queue": {"id", "status", "title"}, "leases": {"id", "holder", "expires", "claims"},
                        "approvals": {"id", "status", "summary", "age"},
                        "conflicts": {"id", "kind", "path"}}[name]
                assert must <= keys, (name, size, keys)
            assert table.columns  # noqa: B018
            title = app.queue_pane.table.columns
            assert next(c for c in title.values() if c.key.value == "title").width >= 30
            header = screen_text(app).splitlines()[0]
            assert "2 approvals" in header and "2 conflicts" in header

    async def test_at_80x24_one_pane_at_a_time_with_tabs(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot)
            assert app.compact and app.tab_strip.display
            assert app.queue_pane.display and not app.approvals_pane.region.height
            await pilot.press("3")
            await pilot.pause()
            text = screen_text(app)
            assert "A1" in text and "A2" in text and "A4" in text  # every request, not one row
            assert "●2" in text.splitlines()[2]  # the tabs count what waits
            await pilot.press("tab")
            assert app.current_pane == "conflicts"
            await pilot.resize_terminal(160, 48)
            await pilot.pause()
            assert not app.compact and app.queue_pane.region.height and app.approvals_pane.region.height

    async def test_wide_columns_show_whole_names(self, db):
        async with Store(db, create=True, actor="person:lead") as s:
            await s.record_conflict(kind="concurrent_edit", path="src/app.py", worktree="feature-payments-wt",
                                    other_worktree="feature-auth-wt", message="both wrote it")
        app = make_app(db)
        async with app.run_test(size=(220, 60)) as pilot:
            await ready(pilot)
            assert app.conflicts_pane.table.get_cell("C1", "where").plain == "feature-payments-wt ↔ feature-auth-wt"
            assert app.conflicts_pane.col_width("where") >= len("feature-payments-wt ↔ feature-auth-wt")

    async def test_help_fits_80x24(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause()
            box = app.screen.query_one("#help-box")
            assert box.region.right <= 80 and box.region.bottom <= 24
            text = screen_text(app)
            for words in ("next / previous pane", "approve the selected request", "this help"):
                assert words in text

    async def test_toasts_wait_while_a_dialog_is_open(self, db):
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SMALL, notifications=True) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            bells = app.bells
            await run_cli(db, "approval", "request", "--kind", "command", "--summary", "while you read")
            await wait_for(pilot, lambda: app.bells == bells + 1, what="the bell")
            await pilot.pause()
            assert toasts(app) == []  # nothing over the dialog
            await pilot.press("escape")
            await wait_for(pilot, lambda: toasts(app) != [], what="the toast after the dialog")
            assert "A1 requested" in toasts(app)[0][0]

    async def test_one_announcement_per_burst(self, db):
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SMALL, notifications=True) as pilot:
            await ready(pilot)
            await python(textwrap.dedent(f"""
                import asyncio
                from store import Store
                async def main():
                    async with Store({str(db)!r}, actor="agent-y") as s:
                        for i in range(5):
                            await s.request_approval(kind="command", summary=f"step {{i}}")
                        await s.record_conflict(kind="unleased_write", path="a.py", worktree="wt-a", message="x")
                asyncio.run(main())
            """), cwd=db.parent)
            await wait_for(pilot, lambda: len(app.approvals_pane.records) == 5 and app.conflicts_pane.records)
            await pilot.pause()
            assert len(toasts(app)) == 1


# -- 9. alerts for a person looking elsewhere -----------------------------------------------------


class TestAlerts:
    async def test_conflicts_ring_too_and_the_title_says_what_waits(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert "\x1b]2;Tower — 2 approvals, 2 conflicts\x07" in app.terminal_log
            bells = app.bells
            async with Store(db, actor="watcher") as s:
                await s.record_conflict(kind="unleased_write", path="b.py", worktree="wt-b", message="x")
            await wait_for(pilot, lambda: "C3" in app.conflicts_pane.shown_keys)
            await pilot.pause()
            assert app.bells == bells + 1
            assert "\x1b]2;Tower — 2 approvals, 3 conflicts\x07" in app.terminal_log

    async def test_desktop_notifications_are_sent_safely(self, db, monkeypatch):
        monkeypatch.setenv("TERM_PROGRAM", "WezTerm")
        monkeypatch.delenv("TMUX", raising=False)
        monkeypatch.delenv("STY", raising=False)
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await run_cli(db, "approval", "request", "--kind", "command",
                          "--summary", "evil \x1b]52;c;aGk=\x07 \x1b[2J done")
            await wait_for(pilot, lambda: any(s.startswith("\x1b]9;") for s in app.terminal_log))
            [sent] = [s for s in app.terminal_log if s.startswith("\x1b]9;")]
            body = sent[len("\x1b]9;"):-1]
            assert sent.endswith("\x07") and "\x1b" not in body and "\x07" not in body
            assert "A1 requested" in body and "\\e]52" in body


# -- 10. smaller things ---------------------------------------------------------------------------


class TestSmallerThings:
    async def test_the_queue_does_not_follow_a_finished_task_into_the_done_section(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("1")
            app.queue_pane.select_key("T2")
            row = app.queue_pane.table.cursor_row
            await run_cli(db, "task", "done", "L2", agent="claude-b")
            await wait_for(pilot, lambda: app.queue_pane.records["T2"].status == "done")
            assert app.queue_pane.table.cursor_row == row  # with the work in progress, not in "done"
            assert app.queue_pane.records[app.queue_pane.cursor_key].status != "done"

    async def test_audit_follow_survives_a_resize_and_a_cleared_filter(self, db):
        await seed_audit(db, 150)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            tail = app.audit_tail
            await pilot.press("5")
            assert tail.follow
            await pilot.resize_terminal(170, 60)
            await pilot.pause()
            await pilot.resize_terminal(150, 40)
            await pilot.pause()
            assert tail.follow
            await pilot.press("slash", *"task", "escape")
            await pilot.pause()
            await pilot.press("slash", *"generated task 14", "enter")
            await wait_for(pilot, lambda: tail.seqs is not None and tail.filter_text == "generated task 14")
            await pilot.press("escape")
            await pilot.pause()
            assert tail.seqs is None and tail.follow
            await run_cli(db, "task", "add", "one more")
            await wait_for(pilot, lambda: tail.head == 151)
            await pilot.pause()
            assert tail.scroll_y == tail.max_scroll_y

    async def test_x_in_the_conflict_details(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("4", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.open_conflict)
            await pilot.press("x")
            await wait_for(pilot, lambda: "C1" not in app.conflicts_pane.shown_keys)
            conflict = await read(db, lambda s: s.get_conflict(1))
            assert (conflict.status, conflict.closed_by) == ("acked", ACTOR)

    async def test_details_open_their_related_rows(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.links)
            first = app.screen
            assert [(link.kind, link.ident) for link in first.links] == [("lease", 1), ("task", 1)]
            await pilot.press("enter")  # the lease
            await wait_for(pilot, lambda: app.screen is not first and isinstance(app.screen, DetailScreen))
            assert (app.screen.kind, app.screen.ident) == ("lease", 1)
            await wait_for(pilot, lambda: "src/config/schema.py" in screen_text(app))
            await pilot.press("escape")
            assert app.screen is first
            await pilot.press("escape")
            assert not isinstance(app.screen, DetailScreen)

    async def test_details_follow_the_store(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.pending_approval)
            await run_cli(db, "approval", "reject", "A1", "--reason", "not now", agent=None)
            await wait_for(pilot, lambda: not app.screen.pending_approval, what="the details read again")
            await pilot.press("a")  # nothing to approve any more
            await pilot.pause(0.2)
            assert await status_of(db, 1) == "rejected"

    async def test_the_focused_pane_shows_without_colour(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            for key, name in zip("12345", ("queue", "leases", "approvals", "conflicts", "audit")):
                await pilot.press(key)
                await pilot.pause()
                kinds = {n: app.pane(n).styles.border_top[0] for n in ("queue", "leases", "approvals",
                                                                       "conflicts", "audit")}
                assert kinds[name] == "double", (name, kinds)
                assert all(kind != "double" for n, kind in kinds.items() if n != name)


# -- issue 9: damaged logs and hostile text ---------------------------------------------------------


class TestDamageAndHostileText:
    async def test_a_missing_seq_is_named_not_fetched_forever(self, db):
        await seed_audit(db, 300)
        con = sqlite3.connect(db)
        con.execute("DELETE FROM audit WHERE seq = 40")
        con.commit()
        con.close()
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            calls = []
            real = app.store.audit_events

            async def counting(seqs):
                calls.append(list(seqs))
                return await real(seqs)

            app.store.audit_events = counting
            await pilot.press("5", "home", "pagedown", "pagedown", "pagedown", *"jjjjjjjj")
            await wait_for(pilot, lambda: "seq 40 missing — run `tower audit verify`" in screen_text(app))
            before = len(calls)
            for _ in range(30):
                await pilot.pause()
            assert len(calls) <= before + 1

    async def test_agent_text_is_shown_literally_and_safely(self, db):
        hostile = "[red]red[/red] [@click=app.quit]click[/] \x1b]0;pwned\x07\x1b[2J\u202eevil"
        async with Store(db, create=True, actor="person:lead") as s:
            await s.add_worktree("wt-a", "/repo/wt-a")
            t = await s.add_task(hostile)
            claim = await s.claim_task(agent="[b]agent[/b]\x1b[31m", worktree="wt-a", task_id=t.id, ttl=900)
            await s.request_approval(kind="command", summary=hostile, lease_id=claim.lease_id,
                                     detail={"command": hostile})
            await s.record_conflict(kind="unleased_write", path="[x]/\x1b]52;c;aGk=\x07.py", worktree="wt-a",
                                    message=hostile)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            text = screen_text(app)
            assert "[red]red[/red]" in text  # literally, not as markup
            assert "\\e]0" in text and "\\u202e" in text  # control characters visible, not sent
            assert "\x1b" not in app.queue_pane.table.get_cell("T1", "title").plain
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.pending_approval)
            assert "[@click=app.quit]click[/]" in screen_text(app)
            await pilot.press("escape", "r")
            await pilot.pause()
            assert "[red]red[/red]" in screen_text(app)
            await pilot.press("escape", "ctrl+p", *"approve")
            await pilot.pause(0.5)
            assert "[red]red[/red]" in screen_text(app)
            await pilot.press("escape")
            assert app.is_running
            await pilot.press("5", "slash", *"[b]x[/b]", "enter")  # typed text shows as typed too
            await wait_for(pilot, lambda: app.audit_tail.filter_text == "[b]x[/b]")
            assert "filter “[b]x[/b]”" in screen_text(app)
