"""Pilot tests of the control room against a real store file, with other
processes writing to it the way agents do (the ``tower`` command line)."""

from __future__ import annotations

import asyncio
import textwrap

from textual import events

from store import Store
from tui_helpers import (
    ACTOR,
    SIZE,
    T0,
    Clock,
    aiosqlite_threads,
    create_store,
    make_app,
    palette_offers,
    python,
    ready,
    seed_audit,
    seed_busy,
    run_cli,
    screen_text,
    threads_ended,
    wait_for,
)
from tui.room.app import TowerApp
from tui.room.screens.confirm import ConfirmDialog
from tui.room.screens.detail import DetailScreen
from tui.room.screens.help import HelpScreen
from tui.room.screens.reject import RejectDialog


async def read(db, fn):
    async with Store(db) as s:
        return await fn(s)


class TestOtherProcesses:
    async def test_task_lease_approval_conflict_and_audit_appear_in_their_panes(self, db):
        await create_store(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.queue_pane.shown_keys == []

            await run_cli(db, "task", "add", "Write the parser", "--priority", "2")
            await wait_for(pilot, lambda: "T1" in app.queue_pane.shown_keys, what="T1 in the queue")
            assert app.queue_pane.records["T1"].status == "pending"

            claim = await run_cli(db, "task", "claim", "--ttl", "600")
            assert claim["data"]["lease_id"] == "L1"
            await wait_for(pilot, lambda: "L1" in app.leases_pane.shown_keys, what="L1 in the leases")
            await wait_for(pilot, lambda: app.queue_pane.records["T1"].status == "leased")
            assert app.leases_pane.records["L1"].agent == "agent-x"

            await run_cli(db, "claim", "L1", "src/parser.py")
            await wait_for(pilot, lambda: app.leases_pane.records["L1"].claims == ("src/parser.py",))

            bells = app.bells
            await run_cli(db, "approval", "request", "--kind", "command", "--summary", "rm -rf dist",
                        "--lease", "L1")
            await wait_for(pilot, lambda: "A1" in app.approvals_pane.shown_keys, what="A1 in the approvals")
            assert app.approvals_pane.records["A1"].status == "pending"
            assert app.bells == bells + 1  # announced (notification + bell)
            await wait_for(pilot, lambda: app.counts.pending_approvals == 1)
            assert app.alert_bar.display

            await python(textwrap.dedent(f"""
                import asyncio
                from store import Store
                async def main():
                    async with Store({str(db)!r}) as s:
                        await s.record_conflict(kind="claimed_by_other", path="src/parser.py", worktree="wt-b",
                                                other_worktree="wt-a", other_lease_id=1, message="x")
                asyncio.run(main())
            """), cwd=db.parent)
            await wait_for(pilot, lambda: "C1" in app.conflicts_pane.shown_keys, what="C1 in the conflicts")
            assert 1 in app.leases_pane.conflicted  # the lease shows it too

            head = (await read(db, lambda s: s.audit_head()))[0]
            await wait_for(pilot, lambda: app.audit_tail.head == head, what="audit tail at the head")
            assert app.audit_tail._events.get(head).event == "conflict.opened"
            assert app.counts.audit_seq == head

    async def test_cursor_stays_on_the_same_row_when_rows_arrive(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("1", "j", "j", "j", "j")
            key = app.queue_pane.cursor_key
            assert app.queue_pane.records[key].status == "pending"
            index = app.queue_pane.table.cursor_row
            await run_cli(db, "task", "add", "Urgent: fix prod", "--priority", "99")
            await wait_for(pilot, lambda: "T9" in app.queue_pane.shown_keys)
            assert app.queue_pane.cursor_key == key
            assert app.queue_pane.table.cursor_row == index + 1  # the new row sorted above it


class TestDecisions:
    async def test_3_then_a_approves(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3")
            assert app.approvals_pane.cursor_key == "A1"  # oldest pending first
            assert app.check_action("approve", ()) is True
            await pilot.press("a")
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "approved",
                           what="A1 approved on screen")
            approval = await read(db, lambda s: s.get_approval(1))
            assert approval.status == "approved"
            assert approval.decided_by == ACTOR
            events = await read(db, lambda s: s.audit_tail(5))
            decided = [e for e in events if e.event == "approval.approved" and e.approval_id == 1]
            assert decided and decided[0].actor == ACTOR
            # the cursor went on to the next request waiting
            assert app.approvals_pane.cursor_key == "A2"

    async def test_3_then_a_typed_in_one_burst_approves(self, db):
        """A terminal delivers "3a" at once: ``a`` must act on the pane ``3`` just focused."""
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            app.post_message(events.Key("3", "3"))
            app.post_message(events.Key("a", "a"))
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "approved")

    async def test_a_shows_done_only_after_commit(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            gate = asyncio.Event()
            real = app.store.decide_approval

            async def slow_decide(*args, **kwargs):
                await gate.wait()  # the commit takes its time
                return await real(*args, **kwargs)

            app.store.decide_approval = slow_decide
            await pilot.press("3", "a")
            await wait_for(pilot, lambda: app.approvals_pane.in_flight.get(1) == "approving…", what="in flight")
            # not committed yet: shown in flight, not as approved
            assert app.approvals_pane.records["A1"].status == "pending"
            assert app.approvals_pane.in_flight.get(1) == "approving…"
            assert app.approvals_pane.table.get_cell("A1", "status").plain == "approving…"
            assert app.check_action("approve", ()) is None  # no second press while in flight
            gate.set()
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "approved")
            assert 1 not in app.approvals_pane.in_flight
            assert "approved" in app.approvals_pane.table.get_cell("A1", "status").plain

    async def test_r_reason_enter_rejects_with_that_reason(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "r")
            await wait_for(pilot, lambda: isinstance(app.screen, RejectDialog))
            await pilot.press(*"too risky on main")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "rejected")
            approval = await read(db, lambda s: s.get_approval(1))
            assert (approval.status, approval.reason, approval.decided_by) == ("rejected", "too risky on main", ACTOR)

    async def test_a_reason_typed_right_behind_r_is_kept(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3")
            for key in ["r", *"no way", "enter"]:
                app.post_message(events.Key("space" if key == " " else key, key if key != "enter" else "\r"))
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "rejected")
            assert (await read(db, lambda s: s.get_approval(1))).reason == "no way"

    async def test_escape_in_the_dialog_changes_nothing(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            head_before = await read(db, lambda s: s.audit_head())
            await pilot.press("3", "r")
            await wait_for(pilot, lambda: isinstance(app.screen, RejectDialog))
            await pilot.press(*"nope", "escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, RejectDialog))
            await pilot.pause(0.2)
            assert (await read(db, lambda s: s.get_approval(1))).status == "pending"
            assert await read(db, lambda s: s.audit_head()) == head_before
            assert app.approvals_pane.records["A1"].status == "pending"
            assert not app.approvals_pane.in_flight

    async def test_reject_needs_a_reason(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "r", "enter")
            await pilot.pause()
            assert isinstance(app.screen, RejectDialog)  # still asking
            assert "required" in str(app.screen.query_one("#reject-error").render())
            await pilot.press("escape")
            assert (await read(db, lambda s: s.get_approval(1))).status == "pending"

    async def test_approve_is_greyed_out_without_a_pending_approval(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.check_action("approve", ()) is None  # queue pane focused
            await pilot.press("3", "j", "j")  # past the two pending: a decided one
            assert app.approvals_pane.selected.status != "pending"
            assert app.check_action("approve", ()) is None
            assert app.check_action("reject", ()) is None
            head = await read(db, lambda s: s.audit_head())
            await pilot.press("a")
            await pilot.pause(0.2)
            assert await read(db, lambda s: s.audit_head()) == head

    async def test_a_decision_refused_by_the_store_is_shown_not_faked(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await pilot.press("3")
            # someone else rejects A1 from a shell first; the app has not seen it yet
            await run_cli(db, "approval", "reject", "A1", "--reason", "from the shell")
            app.approve_approval(1)
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "rejected")
            assert (await read(db, lambda s: s.get_approval(1))).status == "rejected"
            await wait_for(pilot, lambda: any("already rejected" in n.message for n in app._notifications))

    async def test_x_acknowledges_the_selected_conflict(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("4")
            assert app.conflicts_pane.cursor_key == "C1"
            await pilot.press("x")
            await wait_for(pilot, lambda: "C1" not in app.conflicts_pane.shown_keys)
            conflict = await read(db, lambda s: s.get_conflict(1))
            assert (conflict.status, conflict.closed_by) == ("acked", ACTOR)
            assert app.conflicts_pane.cursor_key == "C2"


class TestLeases:
    async def test_countdown_turns_amber_then_the_app_reaps(self, db):
        clock = Clock(T0)
        await create_store(db)
        async with Store(db, clock=clock) as s:
            await s.add_task("short one")
            await s.claim_task(agent="claude", worktree="wt", ttl=60)
        app = make_app(db, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            cell = lambda: app.leases_pane.table.get_cell("L1", "expires")  # noqa: E731
            assert cell().plain == "1m00s"
            assert not cell().style.bold  # calm
            clock.advance(50)
            app._tick()
            assert cell().plain == "10s" and cell().style.bold  # amber, bold: about to expire
            clock.advance(15)  # past expiry: the app reaps it by itself
            await wait_for(pilot, lambda: "L1" not in app.leases_pane.shown_keys, what="L1 reaped")
            lease = await read(db, lambda s: s.get_lease(1))
            assert lease.status == "expired"
            await wait_for(pilot, lambda: app.queue_pane.records["T1"].status == "pending")


class TestFilter:
    async def test_slash_filters_the_current_pane_and_escape_clears(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            everything = app.queue_pane.shown_keys
            assert len(everything) == 8
            await pilot.press("1", "slash", *"config")
            await wait_for(pilot, lambda: app.queue_pane.shown_keys == ["T1"])
            await pilot.press("enter")  # keep the filter, back to the rows
            assert app.focused is app.queue_pane.table
            assert "filter" in str(app.queue_pane.border_subtitle)
            # a new matching row from another process shows; a non-matching one does not
            await run_cli(db, "task", "add", "config: drop the YAML fallback")
            await run_cli(db, "task", "add", "unrelated")
            await wait_for(pilot, lambda: len(app.queue_pane.records) == 10)
            assert app.queue_pane.shown_keys == ["T1", "T9"]
            await pilot.press("escape")
            assert len(app.queue_pane.shown_keys) == 10
            assert app.queue_pane.filter_text == ""

    async def test_keys_typed_right_behind_the_slash_go_to_the_filter(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            for key in ["slash", "c", "o", "n", "f"]:  # one burst, as a terminal delivers it
                app.post_message(events.Key(key, "/" if key == "slash" else key))
            await wait_for(pilot, lambda: app.queue_pane.filter_text == "conf")
            assert app.queue_pane.shown_keys == ["T1"]
            assert app.audit_tail.follow  # "f" was typed, not the follow key

    async def test_filter_matches_ids_and_people(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "slash", *"codex")
            await wait_for(pilot, lambda: app.approvals_pane.shown_keys == ["A4"])
            await pilot.press("escape")  # escape in the filter line clears it too
            assert len(app.approvals_pane.shown_keys) == 4
            assert app.focused is app.approvals_pane.table

    async def test_audit_filter_searches_the_whole_log(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            tail = app.audit_tail
            await pilot.press("5", "slash", *"approval.")
            await wait_for(pilot, lambda: tail.seqs is not None and tail.filter_text == "approval.")
            events = await read(db, lambda s: s.audit_tail(1000))
            expected = [e.seq for e in events if e.event.startswith("approval.")]
            assert tail.seqs == expected
            await pilot.press("enter")
            await run_cli(db, "approval", "request", "--kind", "custom", "--summary", "ok?")
            await run_cli(db, "task", "add", "not an approval")
            await wait_for(pilot, lambda: tail.head == len(events) + 2)
            assert tail.seqs == expected + [len(events) + 1]
            await pilot.press("escape")
            assert tail.seqs is None and tail.line_count == tail.head


class TestAuditTail:
    async def test_follow_pauses_counts_new_events_and_resumes(self, db):
        await seed_audit(db, 150)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            tail = app.audit_tail
            assert tail.follow and tail.scroll_y == tail.max_scroll_y
            await pilot.press("f")
            assert not tail.follow
            await run_cli(db, "task", "add", "one")
            await run_cli(db, "task", "add", "two")
            await wait_for(pilot, lambda: tail.head == 152)
            assert tail.new_events == 2
            assert "2 new events" in str(app.audit_pane.border_subtitle)
            assert tail.scroll_y < tail.max_scroll_y  # did not move under the reader
            await pilot.press("f")
            assert tail.follow and tail.new_events == 0
            await pilot.pause()
            assert tail.scroll_y == tail.max_scroll_y

    async def test_scrolling_up_pauses_and_scrolling_to_the_bottom_resumes(self, db):
        await seed_audit(db, 150)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            tail = app.audit_tail
            await pilot.press("5", "pageup")
            assert not tail.follow
            await run_cli(db, "task", "add", "while reading")
            await wait_for(pilot, lambda: tail.head == 151)
            assert tail.new_events == 1
            tail.scroll_to(y=tail.max_scroll_y, animate=False, immediate=True)  # as the wheel would
            await pilot.pause()
            assert tail.follow and tail.new_events == 0
            await pilot.press("k")  # the cursor goes up from the last line: paused again
            assert not tail.follow and tail.cursor == tail.line_count - 1
            await pilot.press("k")
            assert tail.cursor == tail.line_count - 2
            await pilot.press("end")
            assert tail.follow and tail.cursor is None

    async def test_the_tail_reads_only_what_is_on_screen(self, db):
        await seed_audit(db, 1200)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            tail = app.audit_tail
            assert tail.line_count == 1200
            assert len(tail._events) < 400  # the preload and what was on screen, never the log
            await pilot.press("5", "home")
            await wait_for(pilot, lambda: tail._events.get(1) is not None, what="seq 1 fetched on demand")
            assert len(tail._events) < 600
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await wait_for(pilot, lambda: "entry hash" in screen_text(app))
            await pilot.press("escape")


class TestScreens:
    async def test_enter_opens_details_with_the_approval_detail_json(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await wait_for(pilot, lambda: "/repo/wt-a" in screen_text(app), what="detail JSON")
            await pilot.press("a")  # approve from the details
            await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "approved")
            assert not isinstance(app.screen, DetailScreen)

    async def test_enter_on_a_task_shows_its_leases_and_claims(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            app.queue_pane.select_key("T1")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await wait_for(pilot, lambda: "src/config/schema.py" in screen_text(app))
            assert "claude-a" in screen_text(app)

    async def test_help_lists_every_key(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("a")  # keys of the main screen do nothing under the help
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            assert (await read(db, lambda s: s.get_approval(1))).status == "pending"

    async def test_palette_offers_tower_actions(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+p")
            await pilot.press(*"retry task T5")
            await palette_offers(pilot, "T5")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.queue_pane.records["T5"].status == "pending", what="T5 retried")
            assert (await read(db, lambda s: s.get_task(5))).status == "pending"

    async def test_tab_and_numbers_move_between_panes(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            order = []
            for _ in range(6):
                order.append(app.current_pane)
                await pilot.press("tab")
            assert order == ["queue", "leases", "approvals", "conflicts", "audit", "agents"]
            assert app.current_pane == "queue"
            await pilot.press("shift+tab")
            assert app.current_pane == "agents"
            for key, pane in zip("123456", ["queue", "leases", "approvals", "conflicts", "audit", "agents"]):
                await pilot.press(key)
                assert app.current_pane == pane


class TestLifecycle:
    async def test_quitting_closes_every_connection(self, db):
        await seed_busy(db)
        before = set(aiosqlite_threads())
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert set(aiosqlite_threads()) - before  # the app's one connection
            await pilot.press("5", "home")  # start some reads too
            await pilot.press("q")
            # two approvals wait: asked first, enter quits
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("enter")
        assert not app.store.is_open
        assert threads_ended(before)

    async def test_a_missing_store_is_shown_not_a_crash(self, tmp_path):
        app = make_app(tmp_path / "nowhere" / "tower.db")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.store_error is not None, what="the error")
            assert "cannot open the store" in app.store_error
            assert app.alert_bar.display
            await pilot.press("3", "a", "5", "f")  # nothing to do, nothing breaks
        assert not app.store.is_open

    async def test_a_broken_store_mid_session_is_shown_then_recovers(self, db):
        await seed_busy(db)
        app = make_app(db)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            real = app.store.audit_after

            async def broken(*args, **kwargs):
                raise OSError("disk I/O error")

            app.store.audit_after = broken
            await run_cli(db, "task", "add", "during the outage")
            await wait_for(pilot, lambda: app.store_error is not None, what="the error")
            assert "disk I/O error" in app.store_error
            app.store.audit_after = real
            await wait_for(pilot, lambda: app.store_error is None, timeout=5, what="recovery")
            await wait_for(pilot, lambda: "T9" in app.queue_pane.shown_keys)


class TestWatcher:
    async def test_the_watcher_runs_in_the_app_and_its_conflicts_show(self, repo):
        db = repo / ".git" / "tower" / "tower.db"
        await run_cli(db, "init", cwd=repo)
        await run_cli(db, "worktree", "add", "wt-a", cwd=repo)
        await run_cli(db, "worktree", "add", "wt-b", cwd=repo)
        wt_a, wt_b = repo.parent / "repo-wt-a", repo.parent / "repo-wt-b"
        await run_cli(db, "task", "add", "Refactor the app", "--scope", "src/**", cwd=repo)
        await run_cli(db, "task", "claim", cwd=wt_a)
        await run_cli(db, "claim", "L1", "src/app.py", cwd=wt_a)
        before = set(aiosqlite_threads())
        app = TowerApp(db, watch=True, actor=ACTOR)
        app.animation_level = "none"
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await wait_for(pilot, lambda: (app.header_bar.watcher or ("",))[0] == "watching", timeout=20,
                           what="the watcher running")
            assert "watching 3 worktrees" in app.header_bar._shown.plain
            (wt_b / "src" / "app.py").write_text("print('from b')\n")
            await wait_for(pilot, lambda: any(r.kind == "claimed_by_other" and r.worktree == "wt-b"
                                              for r in app.conflicts_pane.records.values()),
                           timeout=20, what="the conflict in the pane")
            assert 1 in app.leases_pane.conflicted
            assert len(set(aiosqlite_threads()) - before) == 1  # the watcher shares the app's connection
            await pilot.press("q")
        assert not app.store.is_open
        assert threads_ended(before)
