"""Only a person decides: an agent cannot approve, expire, replay or silence its way through.

Real `tower` processes on one real store (and a real git repository where
worktrees matter); the store is the oracle.
"""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import pytest

from store import Store
from tests.approvals.helpers import Procs, audit_events, finish, one_json, read_line, wait_for_store
from tests.conftest import run_tower

pytestmark = pytest.mark.slow

ME = f"person:{getpass.getuser()}"


@pytest.fixture
def procs():
    p = Procs()
    try:
        yield p
    finally:
        p.kill_all()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store" / "tower.db"
    r = run_tower("--db", str(path), "init", cwd=tmp_path)
    assert r.code == 0, r.stderr
    return path


@pytest.fixture
def tower(db: Path, tmp_path: Path):
    def call(*args: str, agent: str | None = None, **kw):
        env = {"TOWER_AGENT": agent} if agent else None
        return run_tower("--db", str(db), *args, cwd=tmp_path, env=env, **kw)

    return call


def approval_events(db: Path, aid: str) -> list[dict]:
    return [e for e in audit_events(db) if e["approval_id"] == aid]


# -- point 4: the requester (or any agent) cannot decide ---------------------------------------


@pytest.mark.parametrize("verb", [["approve"], ["reject", "--reason", "no"]])
def test_the_requester_cannot_decide_its_own_request(db, tower, verb):
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "rm -rf build", agent="agent-a").data["id"]
    own = tower("--json", "approval", *verb, aid, agent="agent-a")
    assert own.code == 4, own.stdout
    assert own.json["error"]["code"] == "person_only"
    assert "agent-a" in own.json["error"]["message"]
    assert tower("--json", "approval", "show", aid).data["status"] == "pending"
    refused = approval_events(db, aid)[-1]
    assert (refused["event"], refused["actor"]) == ("approval.decision_refused", "agent-a")
    assert refused["details"]["why"] == "person_only"
    # a person decides it
    ok = tower("--json", "approval", *verb, aid)
    assert ok.code == 0 and ok.data["decided_by"] == ME


def test_an_unnamed_requester_cannot_decide_its_own_request_either(db, tower):
    """Without TOWER_AGENT the requester is person:<login>: the same shell cannot approve what it asked."""
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "deploy").data["id"]
    assert tower("--json", "approval", "show", aid).data["requested_by"] == ME
    assert tower("--json", "approval", "approve", aid).json["error"]["code"] == "person_only"
    assert tower("--json", "approval", "approve", aid, agent="alice").code == 0


def test_another_agent_cannot_decide_either(db, tower):
    tower("task", "add", "t")
    assert tower("task", "claim", agent="agent-b").code == 0  # agent-b holds a lease: an agent's name
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "deploy", agent="agent-a").data["id"]
    by_lease_holder = tower("--json", "approval", "approve", aid, agent="agent-b")
    assert by_lease_holder.code == 4 and by_lease_holder.json["error"]["code"] == "person_only"
    assert "holds leases" in by_lease_holder.json["error"]["message"]
    by_name = tower("--json", "approval", "approve", aid, agent="agent@wt-c")  # the policy's [agents] names
    assert by_name.code == 4 and "[agents] names" in by_name.json["error"]["message"]
    assert tower("--json", "approval", "show", aid).data["status"] == "pending"
    assert [e["event"] for e in approval_events(db, aid)] == [
        "approval.requested", "approval.decision_refused", "approval.decision_refused"]


def test_the_policy_names_the_agents(db, tower):
    (db.parent / "policy.toml").write_text('[agents]\nnames = ["bot-*"]\n')
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "deploy", agent="bot-1x").data["id"]
    assert tower("--json", "approval", "approve", aid, agent="bot-2").json["error"]["code"] == "person_only"
    assert tower("--json", "approval", "approve", aid, agent="agent@x").code == 0  # not an agent by this policy


# -- point 4: approval wait on someone else's request only watches --------------------------------


def test_waiting_on_someone_elses_request_never_expires_it(db, tower):
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "deploy", agent="agent-a").data["id"]
    watcher = tower("--json", "approval", "wait", aid, "--timeout", "0.1", agent="agent-b")
    assert watcher.code == 5
    assert watcher.json["error"]["code"] == "timeout" and "still pending" in watcher.json["error"]["message"]
    assert tower("--json", "approval", "show", aid).data["status"] == "pending"
    assert [e["event"] for e in approval_events(db, aid)] == ["approval.requested"]
    # the requester's own wait still expires it
    own = tower("--json", "approval", "wait", aid, "--timeout", "0.1", agent="agent-a")
    assert own.code == 5 and tower("--json", "approval", "show", aid).data["status"] == "expired"


def test_ctrl_c_while_watching_someone_elses_request_changes_nothing(db, tower, procs, tmp_path):
    import signal

    aid = tower("--json", "approval", "request", "-k", "command", "-s", "deploy", agent="agent-a").data["id"]
    watcher = procs.spawn("--db", str(db), "approval", "wait", aid, cwd=tmp_path, env={"TOWER_AGENT": "agent-b"})
    line = read_line(watcher.stderr)
    assert "watching" in line and "agent-a" in line, line
    watcher.send_signal(signal.SIGINT)
    code, _, err = finish(watcher)
    assert code == 130 and "still pending" in err
    assert tower("--json", "approval", "show", aid).data["status"] == "pending"


# -- point 3: an idempotency key never replays a decision for a different request ---------------------


def test_a_key_is_scoped_to_its_requester(db, tower, procs, tmp_path):
    first = tower("--json", "approval", "request", "-k", "command", "-s", "deploy v1 to staging", "--key", "deploy",
                  agent="agent-a").data
    assert tower("approval", "approve", first["id"]).code == 0
    # another agent, same key, another question: a new request, not the old decision
    proc = procs.spawn("--db", str(db), "--json", "approval", "request", "-k", "command", "-s", "DROP DATABASE prod",
                       "--key", "deploy", "--wait", "--timeout", "60", cwd=tmp_path, env={"TOWER_AGENT": "agent-b"})
    line = read_line(proc.stderr)
    assert "pending: waiting" in line, line
    second = line.split()[0]
    assert second != first["id"]
    assert tower("approval", "reject", second, "--reason", "no").code == 0
    code, out, _ = finish(proc)
    assert code == 4 and one_json(out)["error"]["code"] == "rejected"
    # the same requester with the same key still re-attaches to its own request
    again = tower("--json", "approval", "request", "-k", "command", "-s", "deploy v1 to staging", "--key", "deploy",
                  "--wait", agent="agent-a")
    assert again.code == 0 and again.data["id"] == first["id"]


def test_the_same_key_for_a_different_request_is_refused(db, tower):
    first = tower("--json", "approval", "request", "-k", "command", "-s", "deploy v1 to staging", "--key", "deploy",
                  agent="agent-a").data
    assert tower("approval", "approve", first["id"]).code == 0
    for change in (["-s", "DROP DATABASE prod"], ["-s", "deploy v1 to staging", "--detail", '{"env": "prod"}'],
                   ["-s", "deploy v1 to staging", "-k", "merge"]):
        args = ["-k", "command", *change] if "-k" not in change else change
        r = tower("--json", "approval", "request", *args, "--key", "deploy", "--wait", agent="agent-a")
        assert r.code == 4, (change, r.stdout)
        assert r.json["error"]["code"] == "key_reused"
        assert first["id"] in r.json["error"]["message"]
    assert len(tower("--json", "approval", "list").data) == 1


# -- point 4: conflicts and baselines are a person's to silence --------------------------------------------


def _open_conflict(db: Path) -> str:
    async def go():
        async with Store(db, actor="watcher") as s:
            c, _ = await s.record_conflict(kind="unleased_write", path="src/app.py", worktree="main",
                                           message="written without a lease")
            return f"C{c.id}"

    return asyncio.run(go())


def test_an_agent_cannot_acknowledge_a_conflict(db, tower):
    cid = _open_conflict(db)
    tower("task", "add", "t")
    assert tower("task", "claim", agent="agent-a").code == 0
    for agent in ("agent-a", "agent@main"):
        r = tower("--json", "conflict", "ack", cid, agent=agent)
        assert r.code == 4 and r.json["error"]["code"] == "person_only", r.stdout
    assert tower("--json", "conflict", "list").data[0]["status"] == "open"
    ok = tower("--json", "conflict", "ack", cid)
    assert ok.code == 0 and ok.data["status"] == "acked" and ok.data["closed_by"] == ME


def test_an_agent_cannot_rebaseline_the_watcher(repo):
    assert run_tower("init", cwd=repo).code == 0
    assert run_tower("task", "add", "t", cwd=repo).code == 0
    assert run_tower("task", "claim", cwd=repo, env={"TOWER_AGENT": "agent-a"}).code == 0  # registers `main`
    r = run_tower("--json", "watch", "--rebaseline", "main", cwd=repo, env={"TOWER_AGENT": "agent-a"})
    assert r.code == 4 and r.json["error"]["code"] == "person_only"
    assert run_tower("--json", "watch", "--rebaseline", "main", cwd=repo).code == 0


# -- point 6: the audit names who acted ---------------------------------------------------------------------


def test_lease_verbs_are_audited_under_the_caller_not_the_holder(db, tower):
    tower("task", "add", "t")
    lease = tower("--json", "task", "claim", agent="alice").data["lease_id"]
    assert tower("lease", "heartbeat", lease).code == 0
    assert tower("claim", lease, "src/a.py").code == 0
    assert tower("task", "done", lease).code == 0  # no TOWER_AGENT: not alice
    actors = {e["event"]: e["actor"] for e in audit_events(db) if e["lease_id"] == lease}
    assert actors["task.claimed"] == "alice"
    assert actors["lease.heartbeat"] == ME
    assert actors["files.claimed"] == ME
    assert actors["task.done"] == ME
    # named, it is the named agent (who must then hold the lease)
    tower("task", "add", "u")
    other = tower("--json", "task", "claim", agent="alice").data["lease_id"]
    assert tower("task", "done", other, agent="alice").code == 0
    assert [e["actor"] for e in audit_events(db) if e["event"] == "task.done"] == [ME, "alice"]


# -- issue 10 point 4: a slow person does not cost the waiting agent its lease -------------------------------


def test_waiting_for_a_decision_keeps_the_lease_alive(db, tower, procs, tmp_path):
    tower("task", "add", "t")
    lease = tower("--json", "task", "claim", "--ttl", "2", agent="agent-a").data["lease_id"]
    proc = procs.spawn("--db", str(db), "--json", "approval", "request", "-k", "command", "-s", "deploy",
                       "--lease", lease, "--wait", cwd=tmp_path, env={"TOWER_AGENT": "agent-a"})
    aid = read_line(proc.stderr).split()[0]
    wait_for_store(db, _beats(int(lease[1:]), 6), timeout=60)  # six beats: two full ttls of waiting
    assert tower("--json", "reap").data["reaped"] == []
    assert tower("approval", "approve", aid).code == 0
    code, out, err = finish(proc)
    assert code == 0, err
    assert one_json(out)["data"]["status"] == "approved"
    events = [e["event"] for e in audit_events(db) if e["lease_id"] == lease]
    assert "lease.expired" not in events[: events.index("approval.approved")]  # alive all along
    assert events.count("lease.heartbeat") >= 6


def _beats(lid: int, n: int):
    async def probe(s):
        tail = await s.audit_tail(1000)
        return sum(1 for e in tail if e.event == "lease.heartbeat" and e.lease_id == lid) >= n

    return probe


def test_the_hook_keeps_the_lease_alive_while_it_waits(repo, procs):
    import json

    from tests.hook.test_hook_claude_code import bash, set_policy

    assert run_tower("init", cwd=repo).code == 0
    assert run_tower("task", "add", "t", cwd=repo).code == 0
    set_policy(repo, 'default = "ask"\n[ask]\ntimeout = 60\n')
    lease = run_tower("--json", "task", "claim", "--ttl", "2", cwd=repo, env={"TOWER_AGENT": "agent-a"}).data
    hook = procs.spawn("hook", "claude-code", cwd=repo, stdin=True, env={"TOWER_AGENT": "agent-a"})
    hook.stdin.write(json.dumps(bash("make deploy", repo)))
    hook.stdin.close()
    db = repo / ".git" / "tower" / "tower.db"
    wait_for_store(db, _beats(int(lease["lease_id"][1:]), 6), timeout=60)
    assert run_tower("--json", "reap", cwd=repo).data["reaped"] == []
    pending = run_tower("--json", "approval", "list", "--status", "pending", cwd=repo).data
    assert len(pending) == 1 and pending[0]["lease_id"] == lease["lease_id"]
    assert run_tower("approval", "approve", pending[0]["id"], cwd=repo).code == 0
    code, out, err = finish(hook)
    assert code == 0 and json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow", out + err
