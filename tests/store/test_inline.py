"""The inline SQLite backend: the store the agents' hook opens without an event loop.

`store.run_inline` drives the same verb coroutines to their end in the
caller's thread; the backend's waits block instead of suspending. These tests
run without any event loop (plain functions), as the hook does.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core.errors import Refused, TimedOut
from core.locate import write_pointer
from store import Store, run_inline

pytestmark = pytest.mark.sqlite_only


async def _opened(store: Store, body):
    async with store:
        return await body(store)


def inline(db: Path, body, **kw):
    """``body(store)`` on an inline store, driven by run_inline in this thread."""
    store = Store(db, inline=True, **kw)
    assert store.inline
    return run_inline(_opened(store, body))


def test_the_verbs_run_inline_and_write_what_the_event_loop_store_reads(tmp_path):
    db = tmp_path / "tower.db"
    run_inline(_opened(Store(db, create=True, actor="init", inline=True), lambda s: s.audit_head()))

    async def work(s: Store):
        task = await s.add_task("inline work", scope=["src/**"])
        claim = await s.claim_task(agent="agent-a", worktree=None)
        await s.claim_files(claim.lease_id, ["src/a.py"], agent="agent-a")
        return task, claim

    task, claim = inline(db, work, actor="agent-a")

    async def read():
        async with Store(db) as s:  # the asyncio store, as the control room opens it
            leases = await s.list_leases()
            return leases, await s.verify_audit()

    leases, report = asyncio.run(read())
    assert [(lease.id, lease.task_id, lease.claims) for lease in leases] == [(claim.lease_id, task.id, ("src/a.py",))]
    assert report.ok


def test_a_refusal_inside_a_transaction_rolls_back_inline(tmp_path):
    db = tmp_path / "tower.db"
    run_inline(_opened(Store(db, create=True, actor="init", inline=True), lambda s: s.audit_head()))

    async def two_agents(s: Store):
        await s.add_task("one", scope=["src/**"])
        await s.add_task("two", scope=["src/**"])
        a = await s.claim_task(agent="a", worktree=None)
        b = await s.claim_task(agent="b", worktree=None)
        await s.claim_files(a.lease_id, ["src/x.py"], agent="a")
        head = await s.audit_head()
        with pytest.raises(Refused) as refused:
            await s.claim_files(b.lease_id, ["src/y.py", "src/x.py"], agent="b")
        return refused.value.code, head, await s.audit_head(), await s.list_leases()

    code, before, after, leases = inline(db, two_agents)
    assert code == "claim_conflict"
    assert after == before  # nothing of the refused claim was written, not even its audit event
    assert {lease.agent: lease.claims for lease in leases} == {"a": ("src/x.py",), "b": ()}


def _wait_room_taken(db: Path) -> bool:
    """Whether a writer waits for the gate (it holds a shared lock on ``<db>-writer.wait``)."""
    fd = os.open(f"{db}-writer.wait", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_an_inline_writer_waits_for_the_gate_and_then_writes(tmp_path):
    db = tmp_path / "tower.db"
    run_inline(_opened(Store(db, create=True, actor="init", inline=True), lambda s: s.audit_head()))
    gate = os.open(f"{db}-writer.lock", os.O_RDWR)
    fcntl.flock(gate, fcntl.LOCK_EX)  # another Tower process is writing
    result: dict = {}

    def writer() -> None:
        try:
            result["task"] = inline(db, lambda s: s.add_task("after the wait"), lock_timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not _wait_room_taken(db):  # the inline writer has queued for the gate
            assert thread.is_alive(), result
            assert time.monotonic() < deadline, "the inline writer never queued for the gate"
            time.sleep(0.005)
        assert "task" not in result  # it is still waiting: the gate is ours
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)
        os.close(gate)
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in result, result
    assert result["task"].title == "after the wait"


def test_an_inline_writer_gives_up_at_its_lock_timeout_and_changes_nothing(tmp_path):
    db = tmp_path / "tower.db"
    run_inline(_opened(Store(db, create=True, actor="init", inline=True), lambda s: s.audit_head()))
    foreign = sqlite3.connect(db, isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")  # a writer that is not Tower: SQLite's own lock, not the gate
    try:
        with pytest.raises(TimedOut) as timed_out:
            inline(db, lambda s: s.add_task("never"), lock_timeout=0.3)
        assert timed_out.value.code == "locked"
    finally:
        foreign.execute("ROLLBACK")
        foreign.close()
    assert inline(db, lambda s: s.list_tasks()) == []


def test_a_coroutine_that_suspends_is_refused_not_left_hanging():
    async def needs_a_loop():
        await asyncio.sleep(0)  # yields to an event loop that is not there
        return "never"

    with pytest.raises(RuntimeError, match="event loop"):
        run_inline(needs_a_loop())


def test_a_postgres_store_is_never_inline(tmp_path):
    pointer = write_pointer(tmp_path / "store", "postgresql://tower@127.0.0.1:1/tower")
    assert Store(pointer, inline=True).inline is False
    assert Store("postgresql://tower@127.0.0.1:1/tower", key_path=tmp_path / "k", inline=True).inline is False
