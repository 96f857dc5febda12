"""How the service cuts a big watcher batch into transactions (tui.services.watch._units)."""

from __future__ import annotations

from core.watcher import Change, Fingerprint, SnapshotUpdate, WatchBatch
from tui.services.watch import _units


def fp(n: int) -> Fingerprint:
    return Fingerprint(n, n, f"h{n}")


def change(wt: str, path: str, n: int) -> Change:
    return Change(wt, path, "added", None, fp(n))


def test_a_small_batch_is_one_unit() -> None:
    batch = WatchBatch(4, [change("a", "x", 1)], [SnapshotUpdate("a", False, {"x": fp(1)}, [])])
    (unit,) = _units(batch)
    assert (unit.seq, unit.changes, unit.updates) == (4, batch.changes, batch.updates)


def test_a_big_batch_splits_by_path_and_each_part_carries_its_own_snapshot_updates() -> None:
    changes = [change("a", f"p{i}", i) for i in range(5)] + [change("b", "p1", 11), change("b", "p3", 13)]
    updates = [
        SnapshotUpdate("a", False, {**{f"p{i}": fp(i) for i in range(5)}, "touched": fp(99)}, ["gone"]),
        SnapshotUpdate("b", False, {"p1": fp(11), "p3": fp(13)}, []),
    ]
    units = _units(WatchBatch(7, changes, updates), limit=3)
    assert all(u.seq == 7 for u in units)
    # a path's changes in every worktree stay together (concurrent_edit is judged on both sides)
    parts = [{(c.worktree, c.path) for c in u.changes} for u in units]
    assert parts == [{("a", "p0"), ("a", "p1"), ("b", "p1")}, {("a", "p2"), ("a", "p3"), ("b", "p3")},
                     {("a", "p4")}]
    for u, part in zip(units, parts):
        stored = {(s.worktree, p) for s in u.updates for p in [*s.upserts, *s.deletes]}
        extra = {("a", "touched"), ("a", "gone")} if u is units[0] else set()
        assert stored == part | extra  # no snapshot update travels without its change
    assert sorted(c for u in units for c in u.changes) == sorted(changes)


def test_a_batch_with_a_whole_new_snapshot_is_never_split() -> None:
    changes = [change("a", f"p{i}", i) for i in range(5)]
    batch = WatchBatch(1, changes, [SnapshotUpdate("a", True, {f"p{i}": fp(i) for i in range(5)}, [])])
    (unit,) = _units(batch, limit=2)
    assert unit.changes == changes
