"""Agent sessions in a real store: states, derived states, waits, cli agents, audit, pruning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.errors import BadInput, NotFound
from store import Store
from store.sessions import DEFAULT_RETENTION, HISTORY_PER_SESSION
from tests.sessions.conftest import KIND, event_of, payload
from tui.services.agent_events import approval_done_event, approval_wait_event, record, session_event

CLAUDE = "5d4024f8-b8e5-4692-aca4-7d55f5a05eb4"
CODEX = "01a20cb4-2b31-7693-98b7-a39ffbbc9e21"
GEMINI = "65d584c8-ee59-4417-8a20-b1a508434d53"
COPILOT = "3f1d2c4b-7a8e-4f60-9b1a-2c3d4e5f6a7b"
CURSOR = "c0a1b2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b"


async def send(store, clock, folder: str, name: str, *, step: float = 1.0, **context):
    clock.advance(step)
    ev = session_event(KIND[folder], payload(folder, name), event=event_of(name))
    return await record(store, ev, **context)


async def state_of(store, kind: str, session: str, *, all: bool = True):
    rows = [r for r in await store.list_sessions(all=all) if (r.kind, r.session) == (kind, session)]
    return rows[0] if rows else None


async def transitions(store) -> list[tuple[str, str | None, str]]:
    return [(e.details["agent_session"], e.details["from"], e.details["to"])
            for e in await store.audit_after(0, limit=100_000) if e.event == "agent.state"]


# -- every agent's captured session, replayed in the order the agent sent it ----------

SEQUENCES = {
    "claude": (CLAUDE, [
        ("SessionStart.json", "idle"), ("UserPromptSubmit.json", "working"),
        ("PreToolUse.Bash.json", "working"), ("PostToolUse.Bash.json", "working"),
        ("PostToolUseFailure.Bash.json", "working"),
        ("PreToolUse.Write.json", "working"), ("PostToolUse.Write.json", "working"),
        ("PreToolUse.Read.json", "working"), ("PostToolUse.Read.json", "working"),
        ("PreToolUse.Edit.json", "working"), ("PostToolUse.Edit.json", "working"),
        ("Stop.json", "idle"), ("SessionEnd.json", "ended"),
    ], [("Edit", "README.md", "ok"), ("Read", "README.md", "ok"), ("Write", "notes.txt", "ok"),
        ("Bash", "ls does-not-exist", "failed"), ("Bash", "echo tower-probe", "ok")]),
    "codex": (CODEX, [
        ("SessionStart.json", "idle"), ("UserPromptSubmit.json", "working"),
        ("PreToolUse.Bash.json", "working"), ("PostToolUse.Bash.json", "working"),
        ("PreToolUse.apply_patch.json", "working"), ("PostToolUse.apply_patch.json", "working"),
        ("Stop.json", "idle"),
    ], [("apply_patch", "notes.txt", "ok"), ("Bash", "echo tower-probe", "done")]),
    "gemini": (GEMINI, [
        ("SessionStart.json", "idle"), ("BeforeAgent.json", "working"), ("PreCompress.json", "working"),
        ("BeforeModel.json", "working"), ("BeforeToolSelection.json", "working"), ("AfterModel.json", "working"),
        ("BeforeTool.run_shell_command.json", "working"), ("AfterTool.run_shell_command.json", "working"),
        ("BeforeTool.write_file.json", "working"), ("AfterTool.write_file.json", "working"),
        ("BeforeTool.replace.json", "working"), ("AfterTool.replace.json", "working"),
        ("AfterAgent.json", "idle"), ("SessionEnd.json", "ended"),
    ], [("replace", "README.md", "ok"), ("write_file", "notes.txt", "ok"),
        ("run_shell_command", "echo tower-probe", "ok")]),
    "copilot": (COPILOT, [
        ("sessionStart.json", "idle"), ("preToolUse.bash.json", "working"),
        ("permissionRequest.bash.json", "waiting"), ("notification.permission_prompt.json", "waiting"),
        ("postToolUse.bash.json", "working"), ("preToolUse.create.json", "working"),
        ("preToolUse.edit.json", "working"), ("agentStop.json", "idle"), ("sessionEnd.json", "ended"),
    ], [("edit", "src/app.py", None), ("create", "src/new.py", None), ("bash", "git status", "ok"),
        ("bash", "git push --force origin main", None)]),
    "cursor": (CURSOR, [
        ("beforeShellExecution.json", "working"), ("afterShellExecution.json", "working"),
        ("beforeMCPExecution.json", "working"), ("beforeReadFile.json", "working"),
        ("preToolUse.Write.json", "working"), ("afterFileEdit.json", "working"), ("stop.json", "idle"),
    ], [("edit", "src/app.py", "ok"), ("Write", "src/new.py", None), ("read", ".env", None),
        ("mcp:database_query", "DELETE FROM users", None), ("shell", "git status", "done"),
        ("shell", "git push --force origin main", None)]),  # the fixtures' two shell events are two calls
}


@pytest.mark.parametrize("folder", sorted(SEQUENCES))
async def test_captured_session_moves_through_its_states(wt_store, clock, folder):
    store = wt_store
    session, steps, calls = SEQUENCES[folder]
    seen = []
    for name, _ in steps:
        await send(store, clock, folder, name)
        row = await state_of(store, KIND[folder], session)
        seen.append((name, row.state))
        assert row.worktree == "wt-agent"  # from the payload's cwd
        assert row.last_event == payload(folder, name).get("hook_event_name", event_of(name))
        assert row.last_event_at == clock.now
    assert seen == [(name, state) for name, state in steps]
    history = await store.session_tool_calls(row.id)
    assert [(c["tool"], c["target"], c["outcome"]) for c in history] == calls
    # only the changes of state are audited, never a tool call
    states = [s for _, s in steps]
    changes = sum(1 for a, b in zip([None, *states], states) if a != b)
    audited = [t for t in await transitions(store) if t[0] == session]
    assert len(audited) == changes
    assert (await store.verify_audit()).ok


async def test_waiting_at_the_agents_own_prompt_then_back_to_work(wt_store, clock):
    store = wt_store
    perm = "2fddda3b-0c47-4e9b-8293-10b6488a60eb"  # the Claude session that hit PermissionRequest
    await send(store, clock, "claude", "PermissionRequest.Bash.json")
    row = await state_of(store, "claude-code", perm)
    assert (row.state, row.waiting_for) == ("waiting", None)
    assert row.waiting_reason == "permission: Bash python3 -c \"open('perm_probe','w')\""
    since = row.state_since
    clock.advance(600)  # a person away for ten minutes: still waiting for them, not stalled
    row = await state_of(store, "claude-code", perm)
    assert (row.state, row.state_since) == ("waiting", since)
    clock.advance(1200)  # 30 minutes and nothing known of its process or lease: no longer believed
    assert (await state_of(store, "claude-code", perm)).state == "ended"
    data = payload("claude", "PostToolUse.Bash.json") | {"session_id": perm}
    await record(store, session_event("claude-code", data))
    row = await state_of(store, "claude-code", perm)
    assert (row.state, row.waiting_reason) == ("working", None)


# -- stalled and ended without any event ----------------------------------------------


async def _working_with_lease(store, clock):
    await store.add_task("t1")
    await send(store, clock, "claude", "UserPromptSubmit.json")
    lease = await store.claim_task(agent="agent@wt-agent", worktree="wt-agent", ttl=7200)
    await send(store, clock, "claude", "PreToolUse.Bash.json")
    return lease


async def test_stalled_is_seen_without_any_event_and_written_once_by_the_sweep(wt_store, clock):
    store = wt_store
    lease = await _working_with_lease(store, clock)
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.lease_id, row.task_id) == ("working", lease.lease_id, lease.task_id)
    last = row.last_event_at

    clock.advance(299)
    assert (await state_of(store, "claude-code", CLAUDE)).state == "working"
    clock.advance(1)
    before = await store.audit_head()
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.state_since, row.stored_state) == ("stalled", last + 300, "working")
    assert await store.audit_head() == before  # reading wrote nothing

    changes = await store.sweep_sessions()
    assert [(c.state, c.previous) for c in changes] == [("stalled", "working")]
    assert await store.sweep_sessions() == []  # once per transition
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.stored_state, row.state_since) == ("stalled", "stalled", last + 300)
    assert (await transitions(store))[-1] == (CLAUDE, "working", "stalled")

    await send(store, clock, "claude", "PostToolUse.Bash.json")  # it was only slow
    assert (await state_of(store, "claude-code", CLAUDE)).state == "working"
    assert (await transitions(store))[-1] == (CLAUDE, "stalled", "working")


async def test_stall_time_is_configurable(wt_store, clock, monkeypatch):
    store = wt_store
    await _working_with_lease(store, clock)
    clock.advance(30)
    assert (await store.list_sessions(stall_after=20))[0].state == "stalled"
    assert (await store.list_sessions())[0].state == "working"
    monkeypatch.setenv("TOWER_STALL_AFTER", "10")
    assert (await store.list_sessions())[0].state == "stalled"
    monkeypatch.setenv("TOWER_STALL_AFTER", "soon")
    with pytest.raises(BadInput):
        await store.list_sessions()


async def test_an_idle_session_holding_a_lease_stalls_and_one_without_a_lease_ends(wt_store, clock):
    store = wt_store
    await _working_with_lease(store, clock)
    await send(store, clock, "claude", "Stop.json")
    clock.advance(301)
    assert (await state_of(store, "claude-code", CLAUDE)).state == "stalled"
    lease = (await store.list_leases())[0]
    await store.complete_task(lease.id)
    # the lease ended: a stalled session with nothing to hold is just idle, then ended after quiet time
    await store.sweep_sessions()
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.lease_id, row.last_lease_id) == ("idle", None, lease.id)
    clock.advance(1800)
    assert (await state_of(store, "claude-code", CLAUDE)).state == "ended"
    assert await state_of(store, "claude-code", CLAUDE, all=False) is None  # ended: only with all
    await store.sweep_sessions()
    assert (await transitions(store))[-1][1:] == ("idle", "ended")


async def test_codex_has_no_session_end_its_quiet_time_ends_it(wt_store, clock):
    store = wt_store
    for name, _ in SEQUENCES["codex"][1]:
        await send(store, clock, "codex", name)
    clock.advance(1799)
    assert (await state_of(store, "codex", CODEX)).state == "idle"
    clock.advance(1)
    row = await state_of(store, "codex", CODEX)
    assert (row.state, row.state_since) == ("ended", row.last_event_at + 1800)


async def test_a_session_whose_process_is_gone_is_ended(wt_store, clock):
    store = wt_store
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        from store.sessions import proc_info

        await send(store, clock, "codex", "UserPromptSubmit.json", pid=proc.pid,
                   pid_start=proc_info(proc.pid).start)
        await send(store, clock, "codex", "PreToolUse.Bash.json")  # a later event without a pid keeps it
        assert (await state_of(store, "codex", CODEX)).pid == proc.pid
        assert (await state_of(store, "codex", CODEX)).state == "working"
    finally:
        proc.kill()
        proc.wait()
    row = await state_of(store, "codex", CODEX)
    assert (row.state, row.waiting_reason) == ("ended", f"process {proc.pid} is gone")
    changes = await store.sweep_sessions()
    assert [(c.previous, c.state) for c in changes] == [("working", "ended")]
    events = [e for e in await store.audit_after(0) if e.event == "agent.state"]
    assert events[-1].details["reason"] == f"process {proc.pid} is gone"


async def test_a_reused_pid_is_not_the_agent(wt_store, clock):
    store = wt_store
    await send(store, clock, "codex", "UserPromptSubmit.json", pid=os.getpid(), pid_start=1)
    assert (await state_of(store, "codex", CODEX)).state == "ended"  # our pid, but not started then
    await send(store, clock, "gemini", "BeforeAgent.json", pid=os.getpid())  # start unknown: alive
    assert (await state_of(store, "gemini", GEMINI)).state == "working"


async def test_a_live_agent_waits_at_its_prompt_as_long_as_it_takes(wt_store, clock):
    store = wt_store
    await send(store, clock, "claude", "PermissionRequest.Bash.json", pid=os.getpid())
    clock.advance(4 * 3600)
    row = await state_of(store, "claude-code", "2fddda3b-0c47-4e9b-8293-10b6488a60eb")
    assert row.state == "waiting"


async def test_a_pid_of_another_host_is_not_checked(wt_store, clock):
    store = wt_store
    await store.record_session_event("codex", CODEX, "UserPromptSubmit", pid=2**22 + 12345, host="elsewhere")
    assert (await state_of(store, "codex", CODEX)).state == "working"


# -- waiting on a Tower approval ---------------------------------------------------------


async def test_waiting_for_a_tower_approval(wt_store, clock):
    store = wt_store
    lease = await _working_with_lease(store, clock)
    a = await store.request_approval(kind="command", summary="rm -rf build", lease_id=lease.lease_id)
    await record(store, approval_wait_event("claude-code", CLAUDE, a.id, a.summary))
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.waiting_for, row.waiting_reason) == ("waiting", a.id, "Tower approval A1: rm -rf build")
    assert row.to_json()["waiting_for"] == "A1"
    # a parallel tool call of the same session does not end the wait
    await send(store, clock, "claude", "PostToolUse.Read.json")
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.waiting_for, row.stored_state) == ("waiting", a.id, "waiting")
    clock.advance(3600)  # waiting for a person is never stalled
    assert (await state_of(store, "claude-code", CLAUDE)).state == "waiting"
    assert await store.sweep_sessions() == []
    await store.decide_approval(a.id, approve=True, actor="person:me")
    await record(store, approval_done_event("claude-code", CLAUDE, a.id, "approved"))
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.waiting_for) == ("working", None)
    assert [t[1:] for t in await transitions(store) if t[0] == CLAUDE][-2:] == [
        ("working", "waiting"), ("waiting", "working")]
    wait_event = [e for e in await store.audit_after(0) if e.event == "agent.state"][-2]
    assert (wait_event.approval_id, wait_event.details["waiting_for"]) == (a.id, "A1")


async def test_a_wait_ends_only_for_its_own_approval(wt_store, clock):
    store = wt_store
    lease = await _working_with_lease(store, clock)
    a1 = await store.request_approval(kind="command", summary="one", lease_id=lease.lease_id)
    a2 = await store.request_approval(kind="command", summary="two", lease_id=lease.lease_id)
    await record(store, approval_wait_event("claude-code", CLAUDE, a1.id))
    await record(store, approval_wait_event("claude-code", CLAUDE, a2.id))
    await store.decide_approval(a1.id, approve=False, reason="no", actor="person:me")
    await record(store, approval_done_event("claude-code", CLAUDE, a1.id, "rejected"))
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.waiting_for) == ("waiting", a2.id)


async def test_a_decided_approval_ends_the_wait_even_if_the_hook_never_said_so(wt_store, clock):
    """A hook killed while waiting sends no end: the decided approval is what counts."""
    store = wt_store
    await send(store, clock, "claude", "UserPromptSubmit.json")
    a = await store.request_approval(kind="command", summary="x", requested_by="claude-code:5d4024f8")
    await record(store, approval_wait_event("claude-code", CLAUDE, a.id))
    assert (await state_of(store, "claude-code", CLAUDE)).state == "waiting"
    await store.decide_approval(a.id, approve=True, actor="person:me")
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.state, row.waiting_for, row.stored_state) == ("working", None, "waiting")
    await send(store, clock, "claude", "PreToolUse.Bash.json")  # the next event writes it down
    assert (await state_of(store, "claude-code", CLAUDE)).stored_state == "working"


async def test_a_pending_approval_under_the_lease_is_a_wait(wt_store, clock):
    """An agent on the command line in `tower approval request --wait` shows as waiting too."""
    store = wt_store
    await store.add_task("t")
    lease = await store.claim_task(agent="bob", worktree="wt-agent")
    assert (await state_of(store, "cli", "bob")).state == "working"
    a = await store.request_approval(kind="merge", summary="merge to main", lease_id=lease.lease_id)
    clock.advance(5)
    row = await state_of(store, "cli", "bob")
    assert (row.state, row.waiting_for, row.state_since) == ("waiting", a.id, a.created_at)
    assert row.waiting_reason == "Tower approval A1: merge to main"
    await store.decide_approval(a.id, approve=True, actor="person:me")
    assert (await state_of(store, "cli", "bob")).state == "working"


async def test_unknown_lease_or_approval_is_refused(wt_store):
    with pytest.raises(NotFound):
        await wt_store.record_session_event("codex", "s", "PreToolUse", lease_id=99)
    with pytest.raises(NotFound):
        await wt_store.record_session_event("codex", "s", "x", state="waiting", waiting_for=99)
    assert await wt_store.list_sessions(all=True) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "claude"}, "unknown agent kind"),
    ({"state": "stalled"}, "cannot set the state"),
    ({"session": "  "}, "non-empty session id"),
    ({"session": "x" * 300}, "longer than"),
])
async def test_bad_events_are_refused(store, kwargs, message):
    args = {"kind": "codex", "session": "s", "event": "Stop"} | kwargs
    state = args.pop("state", None)
    with pytest.raises(BadInput, match=message):
        await store.record_session_event(args["kind"], args["session"], args["event"], state=state)


# -- agents on the command line --------------------------------------------------------


async def test_command_line_agents_are_sessions_from_their_lease_verbs(store, clock):
    for i in range(3):
        await store.add_task(f"t{i}", scope=["src/**"])
    head = await store.audit_head()
    lease = await store.claim_task(agent="bob", worktree="wt-b", ttl=60)
    row = await state_of(store, "cli", "bob")
    assert (row.kind, row.agent, row.worktree, row.lease_id, row.state) == ("cli", "bob", "wt-b", lease.lease_id,
                                                                            "working")
    assert (row.last_tool, row.last_target, row.last_event) == ("tower", "task claim L1", "tower task claim")
    clock.advance(10)
    await store.heartbeat(lease.lease_id)
    assert (await state_of(store, "cli", "bob")).last_event_at == clock.now
    clock.advance(10)
    await store.claim_files(lease.lease_id, ["src/a.py"])
    assert (await state_of(store, "cli", "bob")).last_target == "claim L1"
    await store.complete_task(lease.lease_id)
    row = await state_of(store, "cli", "bob")
    assert (row.state, row.lease_id, row.last_target) == ("idle", None, "task done L1")
    second = await store.claim_task(agent="bob", worktree="wt-b")
    await store.fail_task(second.lease_id, "broken")
    assert (await state_of(store, "cli", "bob")).last_target == "task fail L2"
    third = await store.claim_task(agent="bob", worktree="wt-b")
    await store.release_lease(third.lease_id)
    row = await state_of(store, "cli", "bob")
    assert (row.state, row.last_target) == ("idle", "lease release L3")
    assert len(await store.list_sessions(all=True)) == 1  # one agent, one session
    calls = await store.session_tool_calls(row.id)
    assert [c["target"] for c in calls] == ["lease release L3", "task claim L3", "task fail L2", "task claim L2",
                                            "task done L1", "claim L1", "task claim L1"]  # heartbeats are not calls
    # the lease verbs' own events say it all: no agent.state from them
    assert [e.event for e in await store.audit_after(head[0])].count("agent.state") == 0


async def test_a_stalled_command_line_agent_and_its_expired_lease(store, clock):
    await store.add_task("t")
    await store.claim_task(agent="bob", worktree="wt-b", ttl=600)
    clock.advance(300)
    assert (await state_of(store, "cli", "bob")).state == "stalled"
    clock.advance(300)
    row = await state_of(store, "cli", "bob")
    assert (row.state, row.lease_id) == ("idle", None)  # its lease ran out (not reaped yet): nothing to be stuck on
    await store.reap()
    assert (await state_of(store, "cli", "bob")).state == "idle"


async def test_an_agent_with_hooks_is_one_session_whatever_it_runs(wt_store, clock):
    """Claude Code running `tower task claim` in its Bash tool: the claim is its session's."""
    store = wt_store
    await store.add_task("t")
    await send(store, clock, "claude", "PreToolUse.Bash.json")
    lease = await store.claim_task(agent="agent@wt-agent", worktree="wt-agent")
    rows = await store.list_sessions(all=True)
    assert [(r.kind, r.agent, r.lease_id) for r in rows] == [("claude-code", "agent@wt-agent", lease.lease_id)]
    await store.complete_task(lease.lease_id)
    assert [(r.kind, r.lease_id, r.last_lease_id) for r in await store.list_sessions(all=True)] == [
        ("claude-code", None, lease.lease_id)]


async def test_the_hook_session_takes_the_worktrees_lease_claimed_before_it(wt_store, clock):
    """Claimed from a shell, then the agent started: one live session, the agent's."""
    store = wt_store
    await store.add_task("t")
    lease = await store.claim_task(agent="agent@wt-agent", worktree="wt-agent")
    assert [(r.kind, r.state) for r in await store.list_sessions()] == [("cli", "working")]
    await send(store, clock, "claude", "PreToolUse.Edit.json")
    row = await state_of(store, "claude-code", CLAUDE)
    assert (row.lease_id, row.agent, row.task_id) == (lease.lease_id, "agent@wt-agent", lease.task_id)
    assert [(r.kind, r.state) for r in await store.list_sessions()] == [("claude-code", "working")]
    stand_in = await state_of(store, "cli", "agent@wt-agent")
    assert (stand_in.state, stand_in.waiting_reason) == ("ended", "continued as S2 (claude-code)")
    clock.advance(10)
    await store.heartbeat(lease.lease_id)  # later lease verbs are the agent's session's
    assert (await state_of(store, "cli", "agent@wt-agent")).state == "ended"
    assert (await state_of(store, "claude-code", CLAUDE)).lease_id == lease.lease_id
    # a session named for another agent does not take it
    await send(store, clock, "gemini", "BeforeAgent.json", agent="someone-else")
    assert (await state_of(store, "gemini", GEMINI)).lease_id is None


# -- what is kept ---------------------------------------------------------------------------


async def test_tool_calls_keep_the_last_fifty_per_session(store, clock):
    for i in range(HISTORY_PER_SESSION + 70):
        clock.advance(1)
        await store.record_session_event("gemini", "g", "BeforeTool", state="working", tool="run_shell_command",
                                         target=f"echo {i}", tool_call=True)
        if i < 3:
            await store.record_session_event("codex", "c", "PreToolUse", tool="Bash", target=f"c{i}", tool_call=True)
    row = await state_of(store, "gemini", "g")
    calls = await store.session_tool_calls(row.id, limit=1000)
    assert [c["target"] for c in calls] == [f"echo {i}" for i in reversed(range(70, 120))]
    other = await state_of(store, "codex", "c")
    assert len(await store.session_tool_calls(other.id)) == 3
    count = (await store._fetchone("SELECT count(*) FROM agent_tool_calls"))[0]
    assert count == HISTORY_PER_SESSION + 3
    # tool calls are not state changes
    assert len([t for t in await transitions(store) if t[0] == "g"]) == 1


async def test_old_sessions_are_pruned_with_their_tool_calls(store, clock):
    await store.add_task("t")
    await store.record_session_event("claude-code", "old", "SessionEnd", state="ended", tool="Bash", target="x",
                                     tool_call=True)
    await store.record_session_event("codex", "quiet", "Stop", state="idle")
    lease = await store.claim_task(agent="holder", worktree="wt", ttl=2 * DEFAULT_RETENTION)
    await store.record_session_event("gemini", "holding", "BeforeTool", state="working", worktree="wt",
                                     agent="holder")
    clock.advance(DEFAULT_RETENTION + 1)
    changes = await store.sweep_sessions()
    left = {r.session: r.state for r in await store.list_sessions(all=True)}
    # the one with an active lease is kept (stalled), and so is the stand-in session the holder's
    # claim made before its hooks spoke (ended, but its lease is active); the rest are gone
    assert left == {"holding": "stalled", "holder": "ended"}
    assert sorted((c.previous, c.state) for c in changes) == [("idle", "ended"), ("working", "stalled")]
    assert (await store._fetchone("SELECT count(*) FROM agent_tool_calls WHERE target = 'x'"))[0] == 0
    await store.complete_task(lease.lease_id)
    clock.advance(DEFAULT_RETENTION + 1)
    # a new session prunes too, without a sweep
    await store.record_session_event("codex", "new", "SessionStart", state="idle")
    assert [r.session for r in await store.list_sessions(all=True)] == ["new"]


async def test_rev_moves_with_every_write(store, clock):
    assert await store.session_rev() == 0
    await store.record_session_event("codex", "a", "SessionStart", state="idle")
    await store.record_session_event("codex", "a", "PreToolUse", tool="Bash", target="ls", tool_call=True)
    await store.record_session_event("codex", "b", "SessionStart", state="idle")
    assert await store.session_rev() == 3


async def test_list_order_puts_who_needs_the_person_first(store, clock):
    await store.add_task("t")
    await store.record_session_event("codex", "idle-1", "Stop", state="idle")
    clock.advance(1)
    await store.record_session_event("codex", "working-1", "PreToolUse", state="working")
    clock.advance(1)
    await store.record_session_event("codex", "waiting-late", "PermissionRequest", state="waiting")
    await store.claim_task(agent="stuck", worktree="wt-s", ttl=3600)
    clock.advance(1)
    await store.record_session_event("codex", "waiting-early", "PermissionRequest", state="waiting")
    await store.record_session_event("codex", "gone", "SessionEnd", state="ended")
    clock.advance(299)  # "stuck" (cli, lease active) is now quiet for 300 s
    order = [(r.session, r.state) for r in await store.list_sessions(all=True)]
    assert order == [("waiting-late", "waiting"), ("waiting-early", "waiting"), ("stuck", "stalled"),
                     ("working-1", "working"), ("idle-1", "idle"), ("gone", "ended")]
    assert "gone" not in [r.session for r in await store.list_sessions()]


async def test_session_detail_reads_everything_of_a_session(wt_store, clock):
    store = wt_store
    lease = await _working_with_lease(store, clock)
    await store.claim_files(lease.lease_id, ["src/app.py"])
    a = await store.request_approval(kind="command", summary="deploy", lease_id=lease.lease_id)
    row = await state_of(store, "claude-code", CLAUDE)
    detail = await store.session_detail(row.id)
    assert detail["session"].id == row.id
    assert [c["target"] for c in detail["tool_calls"]] == ["echo tower-probe"]
    assert detail["lease"]["id"] == "L1" and detail["lease"]["status"] == "active"
    assert detail["claims"] == ["src/app.py"]
    assert [x["id"] for x in detail["approvals"]] == [f"A{a.id}"]
    assert [e["event"] for e in detail["audit"]] == ["task.added", "task.claimed", "files.claimed",
                                                    "approval.requested"]
    with pytest.raises(NotFound):
        await store.session_detail(99)


async def test_a_store_of_schema_2_is_migrated(tmp_path):
    """An existing store (before agent sessions) gets the tables on open, its data intact."""
    import sqlite3

    from store.backend.sqlite import split_sql
    from store.schema import MIGRATIONS

    db = tmp_path / "tower.db"
    async with Store(db, create=True) as s:
        await s.add_task("kept")
    conn = sqlite3.connect(db)
    conn.executescript("DROP TRIGGER agent_tool_calls_bounded; DROP TABLE agent_tool_calls;"
                       " DROP TABLE agent_sessions; PRAGMA user_version = 3;")
    conn.close()
    async with Store(db) as s:
        assert [t.title for t in await s.list_tasks()] == ["kept"]
        await s.record_session_event("codex", "s", "Stop", state="idle")
        assert (await s._fetchone("PRAGMA user_version"))[0] == len(MIGRATIONS)
    assert split_sql(MIGRATIONS[3].sqlite)  # the migration splits into statements
