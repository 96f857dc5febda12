"""Bounds at the edge, and reads that survive what is already stored (issue 9, points 12, 14, 15)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from core.errors import BadInput, TimedOut
from core.limits import MAX_DETAIL_BYTES, MAX_DETAIL_DEPTH
from store import Store


def nested(levels: int) -> dict:
    """An object nesting ``levels`` levels of objects and arrays, the object itself counting as 1."""
    inner: object = []
    for _ in range(levels - 2):
        inner = [inner]
    return {"a": inner}


async def test_a_detail_nested_or_sized_beyond_the_bound_is_refused_and_nothing_is_stored(store):
    ok = await store.request_approval(kind="custom", summary="at the bound", detail=nested(MAX_DETAIL_DEPTH))
    assert ok.to_json()["detail"] == nested(MAX_DETAIL_DEPTH)
    head = await store.audit_head()
    for detail, code in ((nested(MAX_DETAIL_DEPTH + 1), "too_deep"), (nested(5000), "too_deep"),
                         ({"blob": "x" * MAX_DETAIL_BYTES}, "too_large")):
        with pytest.raises(BadInput) as exc:
            await store.request_approval(kind="custom", summary="too much", detail=detail)
        assert exc.value.code == code and exc.value.exit_code == 2
    assert [a.id for a in await store.list_approvals()] == [ok.id]
    assert await store.audit_head() == head


def _insert_raw(db_path, summary_sql: str, detail_sql: str, kind: str = "custom") -> None:
    """What older versions stored without bounds, or what damage left behind, written with plain sqlite3."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA ignore_check_constraints = ON")  # damage does not ask the schema first
    with conn:
        conn.execute(
            f"INSERT INTO approvals (kind, summary, detail, requested_by, created_at)"
            f" VALUES ('{kind}', {summary_sql}, {detail_sql}, 'agent', 1800000000)"
        )
    conn.close()


@pytest.mark.sqlite_only
async def test_listing_shows_every_stored_request_even_undecodable_ones(db_path, clock):
    async with Store(db_path, create=True, clock=clock) as s:
        good = await s.request_approval(kind="command", summary="deploy", detail={"cmd": "make deploy"})
    deep = "[" * 300 + "]" * 300
    _insert_raw(db_path, "'deep'", f"'{{\"a\": {deep}}}'")
    _insert_raw(db_path, "'not json'", "'{\"a\": [1, 2'")
    _insert_raw(db_path, "'not an object'", "'[1, 2, 3]'")
    _insert_raw(db_path, "CAST(x'6465706c6f79ff20746f2070726f64' AS TEXT)", "'{}'")  # "deploy\xff to prod"
    _insert_raw(db_path, "'bad kind'", "'{}'", kind="comm\ufffdnd")
    async with Store(db_path, clock=clock) as s:
        listed = await s.list_approvals()
        # the JSON every reader gets: this is what failed for everyone before
        dumped = {a["summary"]: a for a in (x.to_json() for x in listed)}
        for a in listed:
            assert (await s.get_approval(a.id)).to_json() == a.to_json()
    assert len(listed) == 6
    assert dumped["bad kind"]["kind"] == "comm\ufffdnd"  # shown as stored, not refused
    assert dumped["deploy"]["detail"] == {"cmd": "make deploy"} and dumped["deploy"]["id"] == f"A{good.id}"
    clipped = json.dumps(dumped["deep"]["detail"])
    assert "nested deeper than" in clipped
    assert dumped["not json"]["detail"] == {"undecodable": '{"a": [1, 2'}
    assert dumped["not an object"]["detail"] == {"undecodable": "[1, 2, 3]"}
    assert "deploy\ufffd to prod" in dumped  # the damaged byte is marked, the rest shown


@pytest.mark.sqlite_only
async def test_damaged_text_does_not_stop_verbs_on_its_row(db_path, clock):
    async with Store(db_path, create=True, clock=clock) as s:
        await s.add_task("build MARK")
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE tasks SET title = CAST(x'6275696c64ff' AS TEXT)")  # "build\xff"
    conn.close()
    async with Store(db_path, clock=clock) as s:
        claimed = await s.claim_task(agent="a", worktree=None)
        assert claimed.title == "build\ufffd"
        await s.complete_task(claimed.lease_id)
        assert [t.status for t in await s.list_tasks()] == ["done"]


# -- the write lock: one deadline, and reads that do not wait for it ----------------------------------


class ForeignWriter:
    """Another program holding SQLite's write lock (BEGIN IMMEDIATE) on the store."""

    def __init__(self, db_path) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None)

    def __enter__(self) -> ForeignWriter:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc_info) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


@pytest.mark.sqlite_only
async def test_waiting_for_the_gate_and_for_sqlite_share_one_deadline(db_path):
    """Before, a writer queued behind another Tower writer waited for the gate, then
    lock_timeout again for SQLite's lock: up to twice the documented bound."""
    bound = 2.0
    async with Store(db_path, create=True):
        pass
    # the first writer gives up (and leaves the gate) halfway through the second one's bound
    async with Store(db_path, lock_timeout=bound / 2) as first, Store(db_path, lock_timeout=bound) as second:
        with ForeignWriter(db_path):
            first_add = asyncio.create_task(first.add_task("first"))
            while first.backend._gate_depth == 0:  # the first writer holds the gate, waiting for SQLite
                await asyncio.sleep(0)
            started = time.monotonic()
            with pytest.raises(TimedOut) as exc:
                await second.add_task("second")
            waited = time.monotonic() - started
            with pytest.raises(TimedOut):
                await first_add
    assert exc.value.code == "locked" and exc.value.exit_code == 5
    assert waited < 1.25 * bound, f"waited {waited:.2f}s against a bound of {bound}s"


@pytest.mark.sqlite_only
async def test_reaping_on_the_way_to_a_read_does_not_wait_for_the_lock(db_path, clock):
    async with Store(db_path, create=True, clock=clock) as s:
        await s.add_task("t")
        await s.claim_task(agent="a", worktree=None, ttl=1)
    clock.advance(60)
    async with Store(db_path, clock=clock, lock_timeout=30) as s:
        with ForeignWriter(db_path):
            started = time.monotonic()
            assert await s.reap_if_due() == []  # skipped: the lock is busy
            assert time.monotonic() - started < 5
            assert [t.status for t in await s.list_tasks()] == ["leased"]
        assert await s.reap_if_due() == [1]  # the lock is free again: reaped


def test_lock_timeout_comes_from_the_environment(db_path, monkeypatch):
    monkeypatch.setenv("TOWER_LOCK_TIMEOUT", "2.5")
    assert Store(db_path).lock_timeout == 2.5
    assert Store(db_path, lock_timeout=7).lock_timeout == 7
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv("TOWER_LOCK_TIMEOUT", bad)
        with pytest.raises(BadInput):
            Store(db_path)


async def test_text_with_a_lone_surrogate_is_bad_input_and_nothing_is_written(store):
    """JSON allows "\\udcff"; UTF-8 (and so SQLite) does not. Refused, never half-written."""
    head = await store.audit_head()
    with pytest.raises(BadInput) as exc:
        await store.add_task("bad \udcff title")
    assert exc.value.code == "bad_text" and "\\udcff" in exc.value.message
    with pytest.raises(BadInput):
        await store.list_tasks("pend\udcffing")
    assert await store.list_tasks() == [] and await store.audit_head() == head


async def test_the_audit_pane_read_marks_a_damaged_row(tmp_path):
    """The control room reads audit lines by seq: a row with bytes that are not UTF-8 comes
    back marked as damaged (the pane shows it so), not silently repaired."""
    import sqlite3

    db = tmp_path / "tower.db"
    async with Store(db, create=True, actor="t") as s:
        await s.add_task("x")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit SET actor = CAST(x'fffe' AS TEXT) WHERE seq = 1")
    conn.commit()
    conn.close()
    async with Store(db, actor="t") as s:
        [event] = await s.audit_events([1])
    assert event.event == "task.added" and event.damaged and "actor" in event.damaged
