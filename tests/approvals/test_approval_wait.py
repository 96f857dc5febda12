"""Approvals end to end with real processes on one SQLite file: a requester waits, another process decides."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.approvals.helpers import Procs, audit_events, finish, one_json, pending_approval, read_line
from tests.conftest import run_tower

pytestmark = pytest.mark.slow


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
    def call(*args: str, env: dict | None = None):
        return run_tower("--db", str(db), *args, cwd=tmp_path, env=env)

    return call


def request(procs: Procs, db: Path, cwd: Path, *extra: str, summary: str = "deploy to prod"):
    """Start a waiting requester; return it once it says it is waiting, with the approval id."""
    proc = procs.spawn("--db", str(db), "--json", "approval", "request", "--kind", "command",
                       "--summary", summary, "--wait", *extra, cwd=cwd, env={"TOWER_AGENT": "agent-a"})
    line = read_line(proc.stderr)
    assert "pending: waiting" in line, line
    return proc, line.split()[0]


def events(db: Path, approval_id: str) -> list[str]:
    return [e["event"] for e in audit_events(db) if e["approval_id"] == approval_id]


def test_approved_by_another_process(procs, db, tmp_path, tower):
    proc, aid = request(procs, db, tmp_path, "--timeout", "60")
    decided = tower("approval", "approve", aid, "--reason", "looks fine", env={"TOWER_AGENT": "alice"})
    assert decided.code == 0, decided.stderr
    t0 = time.monotonic()
    code, out, err = finish(proc)
    assert code == 0, err
    data = one_json(out)["data"]
    assert (data["id"], data["status"], data["decided_by"], data["reason"]) == (aid, "approved", "alice",
                                                                                 "looks fine")
    assert time.monotonic() - t0 < 5
    assert events(db, aid) == ["approval.requested", "approval.approved"]


def test_rejected_exits_4_with_the_reason(procs, db, tmp_path, tower):
    proc, aid = request(procs, db, tmp_path)
    assert tower("approval", "reject", aid, "--reason", "not on a friday").code == 0
    code, out, err = finish(proc)
    assert code == 4
    error = one_json(out)["error"]
    assert error["code"] == "rejected"
    assert "not on a friday" in error["message"]
    assert error["data"]["approval"]["status"] == "rejected"


def test_rejected_human_output_names_the_reason(procs, db, tmp_path, tower):
    proc = procs.spawn("--db", str(db), "approval", "request", "-k", "merge", "-s", "merge it", "--wait",
                       cwd=tmp_path, env={"TOWER_AGENT": "agent-a"})
    aid = read_line(proc.stderr).split()[0]
    assert tower("approval", "reject", aid, "--reason", "tests are red").code == 0
    code, out, err = finish(proc)
    assert code == 4
    assert out == ""
    lines = err.strip().splitlines()  # the "pending: waiting" line was read above
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tower: {aid} rejected by ") and lines[0].endswith(": tests are red")


def test_timeout_expires_and_a_late_decision_is_refused(procs, db, tmp_path, tower):
    proc, aid = request(procs, db, tmp_path, "--timeout", "0.5")
    code, out, err = finish(proc)
    assert code == 5
    error = one_json(out)["error"]
    assert error["code"] == "timeout"
    assert error["data"]["approval"]["status"] == "expired"
    late = tower("--json", "approval", "approve", aid)
    assert late.code == 4
    assert late.json["error"]["code"] == "approval_closed"
    assert tower("--json", "approval", "show", aid).data["status"] == "expired"
    assert events(db, aid) == ["approval.requested", "approval.expired", "approval.decision_refused"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_while_waiting_cancels_the_request(procs, db, tmp_path, tower, sig, code):
    proc = procs.spawn("--db", str(db), "approval", "request", "-k", "command", "-s", "long job", "--wait",
                       cwd=tmp_path, env={"TOWER_AGENT": "agent-a"})
    aid = read_line(proc.stderr).split()[0]
    proc.send_signal(sig)
    rc, out, err = finish(proc)
    assert rc == code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert lines[0].startswith(f"tower: {aid} cancelled: interrupted ({signal.Signals(sig).name})")
    shown = tower("--json", "approval", "show", aid).data
    assert shown["status"] == "cancelled"
    assert events(db, aid) == ["approval.requested", "approval.cancelled"]
    assert tower("--json", "approval", "approve", aid).json["error"]["code"] == "approval_closed"


def test_sigint_json_mode(procs, db, tmp_path):
    proc, aid = request(procs, db, tmp_path)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 130
    error = one_json(out)["error"]
    assert error["code"] == "interrupted"
    assert error["data"]["approval"]["status"] == "cancelled"


def test_wait_reattaches_to_an_existing_request(procs, db, tmp_path, tower):
    filed = tower("--json", "approval", "request", "-k", "write", "-s", "touch config", env={"TOWER_AGENT": "agent-a"})
    aid = filed.data["id"]
    waiter = procs.spawn("--db", str(db), "--json", "approval", "wait", aid, "--timeout", "60", cwd=tmp_path,
                         env={"TOWER_AGENT": "agent-a"})
    assert read_line(waiter.stderr).startswith(f"{aid} pending")
    assert tower("approval", "approve", aid).code == 0
    code, out, err = finish(waiter)
    assert code == 0, err
    assert one_json(out)["data"]["status"] == "approved"
    # a decided request answers at once
    again = tower("--json", "approval", "wait", aid)
    assert again.code == 0 and again.data["status"] == "approved"


def test_wait_on_unknown_and_bad_timeout(tower):
    assert tower("approval", "wait", "A99").code == 3
    assert tower("approval", "wait", "A1", "--timeout", "0").code == 2
    assert tower("approval", "request", "-k", "command", "-s", "x", "--timeout", "-1").code == 2


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-1", "0"])
def test_a_timeout_that_never_runs_out_is_refused(db, tower, value):
    """click's float takes nan and inf; either would wait forever. Refused (exit 2) before filing anything."""
    for args in (["approval", "request", "-k", "command", "-s", "x", "--timeout", value],
                 ["approval", "request", "-k", "command", "-s", "x", "--wait", f"--timeout={value}"]):
        r = run_tower("--db", str(db), "--json", *args, timeout=20)
        assert r.code == 2, r.stdout + r.stderr
        assert r.json["error"]["code"] == "bad_input" and "--timeout" in r.json["error"]["message"]
        assert len(r.stdout.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert tower("--json", "approval", "list").data == []
    assert tower("approval", "request", "-k", "command", "-s", "x").code == 0  # A1, pending
    r = run_tower("--db", str(db), "approval", "wait", "A1", "--timeout", value, timeout=20)
    assert r.code == 2 and r.stderr.startswith("tower: --timeout") and len(r.stderr.splitlines()) == 1
    assert tower("--json", "approval", "show", "A1").data["status"] == "pending"


def test_same_decision_twice_is_a_noop(db, tower):
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "x").data["id"]
    first = tower("--json", "approval", "approve", aid, env={"TOWER_AGENT": "alice"})
    second = tower("--json", "approval", "approve", aid, env={"TOWER_AGENT": "bob"})
    assert first.code == 0 and second.code == 0
    assert first.data == second.data
    assert second.data["decided_by"] == "alice"
    assert events(db, aid) == ["approval.requested", "approval.approved"]


def test_opposite_decision_is_refused_and_audited(db, tower):
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "x", env={"TOWER_AGENT": "agent-a"}).data["id"]
    assert tower("approval", "reject", aid, "--reason", "no").code == 0
    flip = tower("--json", "approval", "approve", aid, env={"TOWER_AGENT": "mallory"})
    assert flip.code == 4
    assert flip.json["error"]["code"] == "already_decided"
    assert tower("--json", "approval", "show", aid).data["status"] == "rejected"
    log = [e for e in audit_events(db) if e["approval_id"] == aid]
    assert [e["event"] for e in log] == ["approval.requested", "approval.rejected", "approval.decision_refused"]
    assert log[-1]["actor"] == "mallory"
    assert log[-1]["details"] == {"attempted": "approved", "status": "rejected", "why": "already_decided"}
    assert tower("audit", "verify").code == 0


def test_reject_needs_a_reason(tower):
    aid = tower("--json", "approval", "request", "-k", "command", "-s", "x").data["id"]
    assert tower("approval", "reject", aid, "--reason", "  ").code == 2


def test_same_key_twice_returns_one_approval(procs, db, tmp_path, tower):
    a = tower("--json", "approval", "request", "-k", "command", "-s", "x", "--key", "k-1").data
    b = tower("--json", "approval", "request", "-k", "command", "-s", "x", "--key", "k-1").data
    assert a["id"] == b["id"] and a["key"] == "k-1"
    # two waiters with the same key both attach to it; one decision releases both
    w1, id1 = request(procs, db, tmp_path, "--key", "k-2")
    w2, id2 = request(procs, db, tmp_path, "--key", "k-2")
    assert id1 == id2
    assert tower("approval", "approve", id1).code == 0
    for proc in (w1, w2):
        code, out, err = finish(proc)
        assert code == 0, err
        assert one_json(out)["data"]["id"] == id1
    listed = tower("--json", "approval", "list").data
    assert sorted(x["key"] for x in listed if x["key"]) == ["k-1", "k-2"]


def test_the_waiter_sees_a_decision_quickly(procs, db, tmp_path, tower):
    """The decision reaches the waiter through the change signal, not a slow sleep loop."""
    proc, aid = request(procs, db, tmp_path, "--timeout", "60")
    pending_approval(db)
    t0 = time.monotonic()
    assert tower("approval", "approve", aid).code == 0
    decided_at = time.monotonic()
    code, out, _ = finish(proc)
    assert code == 0
    # the decider's own start-up is in t0..decided_at; the waiter has ~50 ms polling plus its exit
    assert time.monotonic() - decided_at < 2.0, time.monotonic() - t0
    assert json.loads(out)["data"]["status"] == "approved"
