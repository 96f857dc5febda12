"""What the control room re-reads after a batch of audit events, and the view queries behind it."""

from __future__ import annotations

import time

from store import Store
from tui.room.changes import touched_by


async def test_events_name_the_rows_they_touched(db):
    async with Store(db, create=True, clock=time.time) as s:
        t1 = await s.add_task("one")
        t2 = await s.add_task("two", depends_on=[t1.id])
        claim = await s.claim_task(agent="a", worktree="wt", task_id=t1.id)
        a = await s.request_approval(kind="command", summary="ls", lease_id=claim.lease_id)
        c, _ = await s.record_conflict(kind="unleased_write", path="x.py", worktree="wt-b")
        events = await s.audit_after(0)
        touched = touched_by(events)
        assert touched.tasks == {t1.id, t2.id}
        assert touched.leases == {claim.lease_id}
        assert touched.approvals == {a.id}
        assert touched.conflicts == {c.id}

        # re-reading T1 also re-reads T2, which waits for it: finishing T1 unblocks T2
        rows = {r.id: r for r in await s.view_tasks([t1.id])}
        assert set(rows) == {t1.id, t2.id} and rows[t2.id].blocked
        await s.complete_task(claim.lease_id)
        rows = {r.id: r for r in await s.view_tasks([t1.id])}
        assert rows[t1.id].status == "done" and not rows[t2.id].blocked


async def test_views_keep_the_queue_small(db):
    async with Store(db, create=True, clock=time.time) as s:
        async with s.transaction() as tx:
            await tx.executemany(
                "INSERT INTO tasks (title, priority, status, created_at, updated_at) VALUES (?,?,?,?,?)",
                [(f"t{i}", i % 7, "done" if i % 2 else "pending", i, i) for i in range(1000)],
            )
        rows = await s.view_queue(pending_limit=30, finished_limit=10)
        pending = [r for r in rows if r.status == "pending"]
        done = [r for r in rows if r.status == "done"]
        assert len(pending) == 30 and len(done) == 10
        assert [r.priority for r in pending] == sorted((r.priority for r in pending), reverse=True)
        assert min(r.updated_at for r in done) == 981  # the ten latest finished: 999, 997 … 981


async def test_audit_search_finds_ids_and_words(db):
    async with Store(db, create=True, clock=time.time) as s:
        await s.add_task("alpha")
        await s.add_task("beta 50%")
        assert await s.audit_search("alpha") == [1]
        assert await s.audit_search("T2") == [2]
        assert await s.audit_search("50%") == [2]  # LIKE wildcards are literal
        assert await s.audit_search("5_%") == []
        assert [e.seq for e in await s.audit_events([2, 1, 99])] == [1, 2]
