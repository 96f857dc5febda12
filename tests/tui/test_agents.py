"""The Agents pane under Pilot, with the store as the oracle.

Every write comes from another process (tests/tui/agent_writer.py): hook
payloads through the adapters' own mapping, and store verbs, on a real SQLite
file. What the pane shows is compared with what a separate connection reads
from the store (``list_sessions``) at the same moment of the app's clock.
"""

from __future__ import annotations

import time

import pytest

from store import Store
from tui.room.screens.detail import DetailScreen
from tui_helpers import SIZE, AgentWriter, claude, make_app, ready, screen_text, toasts, wait_for

SMALL = (80, 24)


class OffsetClock:
    """The wall clock (the writer process stamps events with it), moved ahead by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def seed(db) -> None:
    async with Store(db, create=True, actor="person:lead") as s:
        await s.add_worktree("wt-a", "/repo/wt-a")
        await s.add_worktree("wt-b", "/repo/wt-b")
        await s.add_task("Parse the config", scope=["src/**"])
        await s.add_task("Fix the flaky test")


async def oracle(db, clock=time.time) -> list:
    async with Store(db, clock=clock) as s:
        return await s.list_sessions(all=True)


def shown(app) -> dict[str, tuple[str, int | None]]:
    return {k: (r.state, r.waiting_for) for k, r in app.agents_pane.records.items()}


def expected(rows) -> dict[str, tuple[str, int | None]]:
    return {f"S{r.id}": (r.state, r.waiting_for) for r in rows}


def in_b(event: str, session: str = "sess-b", **fields) -> dict:
    return {**claude(event, session, **fields), "cwd": "/repo/wt-b"}


PERMISSION = {"message": "Claude needs your permission to use Bash", "notification_type": "permission_prompt"}


@pytest.fixture
async def seeded(db):
    await seed(db)
    return db


class TestStates:
    async def test_a_session_moves_through_every_state_as_the_store_says(self, seeded):
        db = seeded
        clock = OffsetClock()
        app = make_app(db, clock=clock)
        async with AgentWriter(db) as w, app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.agents_pane.records == {}
            await w.verb("claim_task", agent="claude-b", worktree="wt-b", ttl=3600)
            steps = [
                (in_b("SessionStart", source="startup"), "idle"),
                (in_b("UserPromptSubmit", prompt="fix it"), "working"),
                (in_b("PreToolUse", tool_name="Bash", tool_input={"command": "pytest -x"}, tool_use_id="t1"),
                 "working"),
                (in_b("Notification", **PERMISSION), "waiting"),
                (in_b("Stop"), "idle"),
            ]
            for payload, state in steps:
                await w.hook("claude-code", payload)
                truth = await oracle(db, clock)
                sid = next(f"S{r.id}" for r in truth if r.kind == "claude-code")
                assert expected(truth)[sid][0] == state
                await wait_for(pilot, lambda: shown(app) == expected(truth), what=f"{state} shown")
                label = app.agents_pane.table.get_cell(sid, "state").plain
                assert state.upper() in label.upper()
            # stalled: no event at all, only time (its lease is still active)
            await w.hook("claude-code", in_b("UserPromptSubmit", prompt="go on"))
            clock.offset = 301
            truth = await oracle(db, clock)
            assert expected(truth)[sid][0] == "stalled"
            await wait_for(pilot, lambda: shown(app) == expected(truth), what="stalled shown")
            clock.offset = 0
            await w.hook("claude-code", in_b("SessionEnd", reason="exit"))
            truth = await oracle(db, clock)
            assert expected(truth)[sid][0] == "ended"
            await wait_for(pilot, lambda: shown(app) == expected(truth), what="ended shown")

    async def test_waiting_sorts_first_then_stalled_working_idle_as_the_store_orders_them(self, seeded):
        db = seeded
        clock = OffsetClock()
        app = make_app(db, clock=clock)
        async with AgentWriter(db) as w, app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await w.verb("claim_task", agent="claude-b", worktree="wt-b", ttl=3600)
            await w.hook("claude-code", in_b("UserPromptSubmit", prompt="x"))  # will stall: lease, no event
            await w.hook("claude-code", claude("Stop", "idle-one"))
            await w.hook("claude-code", claude("UserPromptSubmit", "working-one", prompt="x"))
            await w.hook("claude-code", claude("Notification", "waiting-one", **PERMISSION))
            clock.offset = 301
            truth = await oracle(db, clock)
            order = [f"S{r.id}" for r in truth]
            # the command-line stand-in of the hooked session ended when its hooks reported
            assert [r.state for r in truth] == ["waiting", "stalled", "working", "idle", "ended"]
            await wait_for(pilot, lambda: app.agents_pane.shown_keys == order, what="the store's order")
            # and the same after a filter is cleared and at 80x24
            await pilot.press("6")
            await pilot.resize_terminal(*SMALL)
            await wait_for(pilot, lambda: app.compact)
            await pilot.pause()
            assert app.agents_pane.shown_keys == order
            text = screen_text(app)
            assert "WAITING" in text and "STALLED" in text and "6 Agen" in text


class TestDetail:
    async def test_enter_opens_the_session_with_its_tool_calls_lease_claims_and_approvals(self, seeded):
        db = seeded
        app = make_app(db)
        hostile = "src/x.py\x1b]0;pwned\x07[red]"
        async with AgentWriter(db) as w, app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            claim = await w.verb("claim_task", agent="claude-b", worktree="wt-b", ttl=3600)
            await w.verb("claim_files", lease_id=int(claim["lease_id"][1:]), paths=["src/config.py"])
            await w.hook("claude-code", in_b("PreToolUse", tool_name="Bash", tool_input={"command": "pytest -x"},
                                             tool_use_id="t1"))
            await w.hook("claude-code", in_b("PreToolUse", tool_name="Write",
                                             tool_input={"file_path": "/repo/wt-b/" + hostile, "content": ""},
                                             tool_use_id="t2"))
            approval = await w.verb("request_approval", kind="command", summary="make release",
                                    lease_id=int(claim["lease_id"][1:]))
            truth = await oracle(db)
            sid = next(f"S{r.id}" for r in truth if r.kind == "claude-code")
            await wait_for(pilot, lambda: shown(app) == expected(truth))
            await pilot.press("6")
            assert app.agents_pane.select_key(sid)
            app.agents_pane.mark_seen()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and bool(app.screen.links),
                           what="the session's details")
            screen = app.screen
            assert (screen.kind, screen.ident) == ("session", int(sid[1:]))
            async with Store(db) as s:
                detail = await s.session_detail(int(sid[1:]))
            text = screen_text(app)
            assert "pytest -x" in text and "src/config.py" in text and "make release" in text
            assert claim["lease_id"] in text and detail["lease"]["task_id"] in text
            assert "\\e]0;pwned" in text and "[red]" in text  # the agent's text, made visible
            links = {(link.kind, link.ident) for link in screen.links}
            assert ("approval", int(approval["id"][1:])) in links
            assert ("lease", int(claim["lease_id"][1:])) in links
            # a change to the session reads the screen again
            await w.hook("claude-code", in_b("PreToolUse", tool_name="Bash", tool_input={"command": "make lint"},
                                             tool_use_id="t3"))
            await wait_for(pilot, lambda: "make lint" in screen_text(app), what="the details read again")


class TestJump:
    async def test_w_jumps_to_the_approval_it_waits_for_only_if_still_what_was_seen(self, seeded):
        db = seeded
        app = make_app(db)
        async with AgentWriter(db) as w, app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            claim = await w.verb("claim_task", agent="claude-b", worktree="wt-b", ttl=3600)
            lease = int(claim["lease_id"][1:])
            await w.hook("claude-code", in_b("UserPromptSubmit", prompt="x"))
            await w.hook("claude-code", claude("UserPromptSubmit", "other", prompt="x"))
            a1 = await w.verb("request_approval", kind="command", summary="make release", lease_id=lease)
            truth = await oracle(db)
            sid = next(f"S{r.id}" for r in truth if r.session == "sess-b")
            assert expected(truth)[sid] == ("waiting", int(a1["id"][1:]))
            await wait_for(pilot, lambda: shown(app) == expected(truth))
            await pilot.press("6")
            assert app.agents_pane.cursor_key == sid  # waiting first
            await pilot.press("w")
            assert app.current_pane == "approvals"
            assert app.approvals_pane.cursor_key == a1["id"]

            # the agent now waits for another request: the key does nothing, and says why
            await pilot.press("6")
            assert app.agents_pane.cursor_key == sid
            await w.verb("decide_approval", approval_id=int(a1["id"][1:]), approve=True, actor="person:other")
            a2 = await w.verb("request_approval", kind="command", summary="git push", lease_id=lease)
            truth = await oracle(db)
            assert expected(truth)[sid] == ("waiting", int(a2["id"][1:]))
            await wait_for(pilot, lambda: shown(app) == expected(truth))
            await pilot.press("w")
            assert app.current_pane == "agents"
            assert any("changed under the cursor" in title for title, _ in toasts(app))
            await pilot.press("j", "k")  # seen again
            await pilot.press("w")
            assert app.current_pane == "approvals" and app.approvals_pane.cursor_key == a2["id"]


class TestAlerts:
    async def test_an_agent_at_its_prompt_is_announced_once_per_transition(self, seeded, monkeypatch):
        monkeypatch.setenv("TERM_PROGRAM", "WezTerm")
        monkeypatch.delenv("TMUX", raising=False)
        monkeypatch.delenv("STY", raising=False)
        db = seeded
        app = make_app(db)
        async with AgentWriter(db) as w, app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await w.hook("claude-code", claude("UserPromptSubmit", "sess-a", prompt="x"))
            await wait_for(pilot, lambda: shown(app).get("S1") == ("working", None))
            bells = app.bells
            await w.hook("claude-code", claude("Notification", "sess-a", **PERMISSION))
            await wait_for(pilot, lambda: app.bells == bells + 1, what="the bell")
            assert "\x1b]2;Tower — 1 agent\x07" in app.terminal_log
            assert any(s.startswith("\x1b]9;Tower: S1 ") and "waits at its prompt" in s for s in app.terminal_log)
            assert any("S1" in title and "waits at its prompt" in title for title, _ in toasts(app))
            await wait_for(pilot, lambda: "agent waiting at its prompt" in screen_text(app), what="the alert bar")
            # still waiting (another notification, another session's event): no second alert
            await w.hook("claude-code", claude("Notification", "sess-a", message="still waiting",
                                               notification_type="permission_prompt"))
            await w.hook("claude-code", claude("UserPromptSubmit", "sess-z", prompt="x"))
            await wait_for(pilot, lambda: "S2" in shown(app) and
                           "still waiting" in (app.agents_pane.records["S1"].waiting_reason or ""))
            await pilot.pause()
            assert app.bells == bells + 1
            # leaves, and comes back: announced again
            await w.hook("claude-code", claude("UserPromptSubmit", "sess-a", prompt="y"))
            await wait_for(pilot, lambda: shown(app)["S1"] == ("working", None))
            assert app.bells == bells + 1
            await w.hook("claude-code", claude("Notification", "sess-a", **PERMISSION))
            await wait_for(pilot, lambda: app.bells == bells + 2, what="the second bell")

    async def test_stalled_is_announced_without_any_event_and_once(self, seeded):
        db = seeded
        clock = OffsetClock()
        app = make_app(db, clock=clock)
        async with AgentWriter(db) as w, app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            await w.verb("claim_task", agent="claude-b", worktree="wt-b", ttl=3600)
            await w.hook("claude-code", in_b("UserPromptSubmit", prompt="x"))
            truth = await oracle(db, clock)
            sid = next(f"S{r.id}" for r in truth if r.kind == "claude-code")
            await wait_for(pilot, lambda: shown(app) == expected(truth))
            async with Store(db) as s:
                seq = (await s.counts()).audit_seq
                last_event_at = (await s.get_session(int(sid[1:]))).last_event_at
            bells = app.bells
            clock.offset = 301  # time passes; nobody writes
            await wait_for(pilot, lambda: app.bells == bells + 1, what="the stalled alert")
            truth = await oracle(db, clock)
            assert shown(app) == expected(truth) and expected(truth)[sid][0] == "stalled"
            assert any(sid in title and "stalled" in title for title, _ in toasts(app))
            assert "\x1b]2;Tower — 1 agent\x07" in app.terminal_log
            # the alert comes from reading the list (stalled is derived at read time); the room's
            # sweep writes it down on its own schedule: wait until the room has seen that commit
            await wait_for(pilot, lambda: app.counts is not None and app.counts.audit_seq > seq,
                           what="the room's sweep, audited")
            async with Store(db) as s:
                # nothing came from the agent: the one write is the room's own sweep, audited once
                session = await s.get_session(int(sid[1:]), stall_after=300)
                assert session.last_event_at == last_event_at and session.stored_state == "stalled"
                audited = [e for e in await s.audit_after(seq) if e.event == "agent.state"]
                assert [(e.actor, e.details["to"]) for e in audited] == [("tower", "stalled")]
            # the list read again with it still stalled (another agent's event): no second alert
            await w.hook("claude-code", claude("UserPromptSubmit", "sess-z", prompt="x"))
            await wait_for(pilot, lambda: len(shown(app)) == len(truth) + 1)
            await pilot.pause()
            assert app.bells == bells + 1
            async with Store(db) as s:
                audited = [e for e in await s.audit_after(seq) if e.event == "agent.state" and e.actor == "tower"]
                assert len(audited) == 1  # the sweep wrote it down once, not on every look
            # it moves again, then stalls again: announced again
            clock.offset = 0
            await w.hook("claude-code", in_b("PreToolUse", tool_name="Bash", tool_input={"command": "ls"},
                                             tool_use_id="t9"))
            await wait_for(pilot, lambda: shown(app)[sid] == ("working", None))
            clock.offset = 301
            await wait_for(pilot, lambda: app.bells == bells + 2, what="the second stalled alert")

    async def test_waiting_on_a_tower_approval_rings_once_for_the_approval(self, seeded):
        db = seeded
        app = make_app(db)
        async with AgentWriter(db) as w, app.run_test(size=SIZE, notifications=True) as pilot:
            await ready(pilot)
            claim = await w.verb("claim_task", agent="claude-b", worktree="wt-b", ttl=3600)
            await w.hook("claude-code", in_b("UserPromptSubmit", prompt="x"))
            await wait_for(pilot, lambda: shown(app).get("S2") == ("working", None))
            bells = app.bells
            await w.verb("request_approval", kind="command", summary="make release",
                         lease_id=int(claim["lease_id"][1:]))
            await wait_for(pilot, lambda: shown(app)["S2"] == ("waiting", 1))
            await wait_for(pilot, lambda: app.bells == bells + 1)
            await w.hook("claude-code", claude("UserPromptSubmit", "sess-z", prompt="x"))
            await wait_for(pilot, lambda: "S3" in shown(app))
            await pilot.pause()
            assert app.bells == bells + 1
            assert "agent waiting" not in screen_text(app)  # the approvals' own alert says it
