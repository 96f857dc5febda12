"""Several real processes send session events to one real SQLite file at once: nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store import Store
from store.sessions import HISTORY_PER_SESSION
from tests.conftest import tower_env

WORKER = Path(__file__).with_name("session_worker.py")
EVENTS = 80  # tool calls per agent: more than the history keeps
AGENTS = [("claude-code", "claude-1"), ("claude-code", "claude-2"), ("codex", "codex-1"), ("codex", "codex-2"),
          ("gemini", "gemini-1"), ("cli", "shell-1"), ("cli", "shell-2")]
CLI_TASKS = 12


@pytest.mark.slow
async def test_concurrent_agents_lose_no_event(db_path):
    async with Store(db_path, create=True) as s:
        for i in range(CLI_TASKS):
            await s.add_task(f"t{i}")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(db_path), kind, session, str(EVENTS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=tower_env())
             for kind, session in AGENTS]
    results = {}
    try:
        for proc in procs:  # all started: release them together
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            summary = json.loads(out.splitlines()[-1])
            results[summary["session"]] = summary
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    async with Store(db_path) as s:
        rows = {r.session: r for r in await s.list_sessions(all=True)}
        assert set(rows) == {session for _, session in AGENTS}
        for kind, session in AGENTS:
            row = rows[session]
            calls = await s.session_tool_calls(row.id, limit=1000)
            if kind == "cli":
                assert row.state == "idle" and row.lease_id is None
                # claim and done of every task it finished, newest first; heartbeats are not calls
                assert len(calls) == min(2 * results[session]["done"], HISTORY_PER_SESSION)
                continue
            # the last event was the final Post; every tool call got its outcome
            assert (row.state, row.last_target) == ("working", f"call-{EVENTS - 1}")
            assert [c["target"] for c in calls] == [f"call-{i}" for i in
                                                    reversed(range(EVENTS - HISTORY_PER_SESSION, EVENTS))]
            assert all(c["outcome"] in ("ok", "done") for c in calls)
        assert sum(r["done"] for r in results.values() if "done" in r) == CLI_TASKS
        events = await s.audit_after(0, limit=1_000_000)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert (await s.verify_audit()).ok
        for kind, session in AGENTS:
            audited = [e for e in events if e.event == "agent.state" and e.details["agent_session"] == session]
            if kind == "cli":
                assert audited == []  # its lease verbs are audited instead
            else:  # every change of state, exactly once, none for a tool call
                assert len(audited) == results[session]["changes"] == 1 + 2 * (EVENTS // 10)
