"""The store's waiting verb against a second connection: latency, expiry races, cancel."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.errors import BadInput, Refused, TimedOut
from store import Store


@pytest.fixture
async def two(tmp_path: Path):
    """Two connections to one file, as two processes would have."""
    db = tmp_path / "tower.db"
    async with Store(db, create=True, actor="requester") as a, Store(db, actor="decider") as b:
        yield a, b


async def test_decision_reaches_the_waiter_within_half_a_second(two):
    waiter, decider = two
    req = await waiter.request_approval(kind="command", summary="x")
    task = asyncio.create_task(waiter.wait_for_decision(req.id, timeout=30))
    await asyncio.sleep(0.2)  # the waiter is parked on the change signal
    assert not task.done()
    t0 = time.monotonic()
    await decider.decide_approval(req.id, approve=True, actor="alice")
    got = await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 < 0.5
    assert (got.status, got.decided_by) == ("approved", "alice")


async def test_timeout_expires_and_late_decision_refused(two):
    waiter, decider = two
    req = await waiter.request_approval(kind="command", summary="x")
    got = await waiter.wait_for_decision(req.id, timeout=0.2)
    assert got.status == "expired"
    assert "0.2s" in got.reason
    with pytest.raises(Refused) as err:
        await decider.decide_approval(req.id, approve=True)
    assert err.value.code == "approval_closed"


async def test_timeout_without_expiry_keeps_it_pending(two):
    waiter, _ = two
    req = await waiter.request_approval(kind="command", summary="x")
    with pytest.raises(TimedOut):
        await waiter.wait_for_decision(req.id, timeout=0.1, expire=False)
    assert (await waiter.get_approval(req.id)).status == "pending"


async def test_a_decision_committed_first_beats_the_expiry(two):
    waiter, decider = two
    req = await waiter.request_approval(kind="command", summary="x")
    await decider.decide_approval(req.id, approve=False, reason="no")
    closed = await waiter.close_approval(req.id, "expired")
    assert closed.status == "rejected"


async def test_close_approval_checks_its_status(two):
    waiter, _ = two
    req = await waiter.request_approval(kind="command", summary="x")
    with pytest.raises(BadInput):
        await waiter.close_approval(req.id, "approved")
    assert (await waiter.close_approval(req.id, "cancelled")).status == "cancelled"
    events = [e.event for e in await waiter.audit_tail(10)]
    assert events[-2:] == ["approval.requested", "approval.cancelled"]


async def test_refused_decisions_are_audited_in_the_chain(two):
    waiter, decider = two
    req = await waiter.request_approval(kind="command", summary="x")
    await decider.decide_approval(req.id, approve=True, actor="alice")
    await decider.decide_approval(req.id, approve=True, actor="alice")  # no-op, not audited
    with pytest.raises(Refused):
        await decider.decide_approval(req.id, approve=False, reason="changed my mind", actor="bob")
    tail = await waiter.audit_tail(10)
    assert [e.event for e in tail] == ["approval.requested", "approval.approved", "approval.decision_refused"]
    assert tail[-1].details == {"attempted": "rejected", "status": "approved", "why": "already_decided",
                                "reason": "changed my mind"}
    assert (await waiter.verify_audit()).ok
