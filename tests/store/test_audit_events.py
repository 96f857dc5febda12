"""Every state change appends exactly one signed, chained audit event in its transaction."""

from __future__ import annotations


import pytest

from core.errors import Refused
from tests.pgfixtures import RawDB


async def test_every_verb_is_audited_and_the_chain_verifies(store, clock):
    await store.add_task("one", scope=["src/**"])
    await store.add_task("two")
    lease = await store.claim_task(agent="a", worktree="wt-a", ttl=10)
    await store.claim_files(lease.lease_id, ["src/a.py"])
    await store.heartbeat(lease.lease_id)
    await store.release_files(lease.lease_id)
    await store.complete_task(lease.lease_id)
    other = await store.claim_task(agent="b", ttl=10)
    clock.advance(11)
    await store.reap()
    approval = await store.request_approval(kind="command", summary="rm -rf build", requested_by="b")
    await store.decide_approval(approval.id, approve=True, actor="person:me")
    conflict, _ = await store.record_conflict(kind="unleased_write", path="x", worktree="wt-a")
    await store.ack_conflict(conflict.id, actor="person:me")

    events = [e.event for e in await store.audit_tail(100)]
    assert events == [
        "task.added", "task.added", "task.claimed", "files.claimed", "lease.heartbeat",
        "files.released", "task.done", "task.claimed", "lease.expired",
        "approval.requested", "approval.approved", "conflict.opened", "conflict.acked",
    ]
    seqs = [e.seq for e in await store.audit_tail(100)]
    assert seqs == list(range(1, len(seqs) + 1))
    expired = (await store.audit_tail(100))[8]
    assert expired.lease_id == other.lease_id and expired.details["task_status"] == "pending"
    result = await store.verify_audit()
    assert result.ok and result.checked == len(events)
    seq, head = await store.audit_head()
    assert result.head == f"{seq}:{head}"


async def test_refused_verb_appends_nothing(store):
    await store.add_task("t")
    lease = await store.claim_task(agent="a")
    await store.complete_task(lease.lease_id)
    before = await store.audit_head()
    with pytest.raises(Refused):
        await store.complete_task(lease.lease_id)
    assert await store.audit_head() == before


async def test_rolled_back_transaction_leaves_no_audit(store, db_path):
    before = await store.audit_head()
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await store._audit(tx, "test.event")
            raise RuntimeError("boom")
    assert await store.audit_head() == before
    with RawDB(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM audit").fetchone()[0] == before[0]


async def test_counts(store):
    await store.add_task("a")
    await store.add_task("b")
    await store.claim_task(agent="x")
    await store.request_approval(kind="custom", summary="s")
    counts = await store.counts()
    assert (counts.pending, counts.leased, counts.active_leases, counts.pending_approvals) == (1, 1, 1, 1)
    assert counts.audit_seq == 4
