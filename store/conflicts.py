"""Verbs on conflicts (flagged by the watcher) and on the watcher's file snapshots.

Snapshots are the watcher's cache of what each worktree looked like; they are
not coordination state, so they carry no audit events. Conflicts do.

``changed_files`` keeps the watcher's baselines: one row per file that differs
from the content the watcher first knew for it (see core/conflict_rules.py and
docs/watcher.md). ``apply_watch_batch`` writes a batch of snapshot updates and
the matching baseline bookkeeping in one transaction, so a restart never sees
one without the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from core.errors import NotFound
from core.ids import format_id
from core.models import Conflict
from core.vocab import CONFLICT_KINDS
from store.db import StoreBase
from store.rows import CONFLICT_SELECT, conflict_from_row, json_items

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Backend, Row, Tx
    # the watcher's rules are imported where they run: an agent's commands open the store
    # without ever judging a conflict
    from core.conflict_rules import ConflictSpec, FileChange, LeaseView, World

# a write is judged shortly after it happened: leases of the worktree that
# ended within this many seconds still count as its author's
RECENT_LEASE_GRACE = 5.0


class ConflictVerbs(StoreBase):
    async def get_conflict(self, conflict_id: int) -> Conflict:
        row = await self._fetchone(CONFLICT_SELECT + " WHERE id = ?", (conflict_id,))
        if row is None:
            raise NotFound(f"no conflict {format_id('conflict', conflict_id)}", code="conflict_not_found")
        return conflict_from_row(row)

    async def list_conflicts(self, status: str | None = "open") -> list[Conflict]:
        if status is None:
            rows = await self._fetchall(CONFLICT_SELECT + " ORDER BY id")
        else:
            rows = await self._fetchall(CONFLICT_SELECT + " WHERE status = ? ORDER BY id", (status,))
        return [conflict_from_row(r) for r in rows]

    async def record_conflict(
        self,
        *,
        kind: str,
        path: str,
        worktree: str,
        other_worktree: str | None = None,
        lease_id: int | None = None,
        other_lease_id: int | None = None,
        task_id: int | None = None,
        message: str = "",
        detail: dict[str, Any] | None = None,
        actor: str = "watcher",
        episode: str | None = None,
    ) -> tuple[Conflict, bool]:
        """Open a conflict unless the same (kind, path, worktrees) is already open.

        Returns the conflict and whether it is new. ``concurrent_edit`` is
        symmetric: an open one between the same two worktrees, in either
        order, counts. With ``episode`` (see core/conflict_rules.py) an
        *acknowledged* conflict of the same key and episode also counts: a
        person who acked it is not asked again while its cause lasts.
        """
        from core.conflict_rules import ConflictSpec

        spec = ConflictSpec(kind=kind, path=path, worktree=worktree, other_worktree=other_worktree,
                            lease_id=lease_id, other_lease_id=other_lease_id, task_id=task_id,
                            message=message, detail=detail or {}, episode=episode)
        return (await self.record_conflicts([spec], actor=actor))[0]

    async def record_conflicts(
        self, specs: Sequence[ConflictSpec], *, actor: str = "watcher"
    ) -> list[tuple[Conflict, bool]]:
        """``record_conflict`` for many, in one transaction (one audit event per new conflict)."""
        if not specs:
            return []
        ids: list[tuple[int, bool]] = []
        async with self.transaction() as tx:
            for spec in specs:
                ids.append(await self._record(tx, spec, actor))
        return await self._recorded(ids)

    async def _recorded(self, ids: list[tuple[int, bool]]) -> list[tuple[Conflict, bool]]:
        if not ids:
            return []
        rows = await self._fetchall(
            f"{CONFLICT_SELECT} WHERE id IN {self.dialect.values('int')}",
            (self.dialect.list_param(sorted({i for i, _ in ids})),),
        )
        by_id = {r[0]: conflict_from_row(r) for r in rows}
        return [(by_id[i], new) for i, new in ids]

    async def _record(self, tx: Tx, spec: ConflictSpec, actor: str) -> tuple[int, bool]:
        assert spec.kind in CONFLICT_KINDS, spec.kind
        same = ("kind = ? AND path = ? AND ((worktree = ? AND coalesce(other_worktree, '') = coalesce(?, ''))"
                + (" OR (worktree = ? AND other_worktree = ?))" if spec.kind == "concurrent_edit" else ")"))
        params: tuple[Any, ...] = (spec.kind, spec.path, spec.worktree, spec.other_worktree)
        if spec.kind == "concurrent_edit":
            params += (spec.other_worktree, spec.worktree)
        row = await tx.fetchone(f"SELECT id FROM conflicts WHERE status = 'open' AND {same} LIMIT 1", params)
        if row is not None:
            return row[0], False
        if spec.episode is not None:
            row = await tx.fetchone(
                f"SELECT id FROM conflicts WHERE status = 'acked' AND {same}"
                f" AND {tx.dialect.json_field('detail', 'episode')} = ? ORDER BY id DESC LIMIT 1",
                (*params, spec.episode),
            )
            if row is not None:
                return row[0], False
        detail = dict(spec.detail)
        if spec.episode is not None:
            detail["episode"] = spec.episode
        conflict_id = await tx.insert(
            "INSERT INTO conflicts (kind, path, worktree, other_worktree, lease_id, other_lease_id, task_id,"
            " message, detail, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (spec.kind, spec.path, spec.worktree, spec.other_worktree, spec.lease_id, spec.other_lease_id,
             spec.task_id, spec.message, json.dumps(detail), tx.now, tx.now),
        )
        await self._audit(
            tx, "conflict.opened", actor=actor, task_id=spec.task_id, lease_id=spec.lease_id,
            worktree=spec.worktree, path=spec.path,
            details={"conflict": format_id("conflict", conflict_id), "kind": spec.kind,
                     "other_worktree": spec.other_worktree,
                     "other_lease": format_id("lease", spec.other_lease_id), "message": spec.message},
        )
        return conflict_id, True

    async def ack_conflict(self, conflict_id: int, *, actor: str | None = None) -> Conflict:
        """A person has seen it. Acknowledging twice, or a resolved conflict, is a no-op."""
        return await self._close_conflict(conflict_id, "acked", actor=actor)

    async def resolve_conflict(self, conflict_id: int, *, reason: str, actor: str = "watcher") -> Conflict:
        """The cause went away (claim released, change reverted)."""
        return await self._close_conflict(conflict_id, "resolved", actor=actor, reason=reason)

    async def _close_conflict(self, conflict_id: int, status: str, *, actor: str | None,
                              reason: str | None = None) -> Conflict:
        async with self.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE conflicts SET status = ?, closed_at = ?, closed_by = ?, updated_at = ?"
                " WHERE id = ? AND status = 'open' RETURNING task_id, lease_id, worktree, path, kind",
                (status, tx.now, actor or self.actor, tx.now, conflict_id),
            )
            if row is not None:
                await self._audit(
                    tx, f"conflict.{status}", actor=actor, task_id=row[0], lease_id=row[1], worktree=row[2],
                    path=row[3], details={"conflict": format_id("conflict", conflict_id), "kind": row[4],
                                          **({"reason": reason} if reason else {})},
                )
        return await self.get_conflict(conflict_id)

    # -- snapshots -----------------------------------------------------------

    async def load_snapshot(self, worktree: str) -> dict[str, tuple[int, int, str]]:
        rows = await self._fetchall(
            "SELECT path, size, mtime_ns, hash FROM snapshots WHERE worktree = ?", (worktree,)
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    # -- baselines (changed_files) and the watcher's view of the world ---------

    async def apply_watch_batch(
        self,
        updates: Sequence[Any],
        changes: Sequence[Any],
        *,
        judge: Callable[[World], Sequence[ConflictSpec]] | None = None,
        actor: str = "watcher",
    ) -> list[tuple[Conflict, bool]]:
        """Persist the watcher's snapshot updates, move the baselines and record the conflicts
        the changes open, in one transaction.

        ``updates``: ``core.watcher.SnapshotUpdate`` (worktree, replace, upserts
        ``{path: (size, mtime_ns, hash)}``, deletes), applied in order.
        ``changes``: ``core.watcher.Change`` (worktree, path, old, new), in order.
        A change of a file at its baseline records the baseline (the old
        content); a change back to the baseline deletes the row. A ``replace``
        (a fresh snapshot of a worktree) re-checks that worktree's rows
        against the new content. ``judge`` (pure, e.g. built on
        ``core.conflict_rules.conflicts_for``) gets the world of the changed
        paths as it stands after the baselines moved; the conflicts it asks for
        are recorded as ``record_conflicts`` would. Returns those.

        One transaction, because a restart reconciles the disk against the
        stored snapshot: a snapshot stored without the conflicts of its
        changes would hide those writes for good.
        """
        if not updates and not changes:
            return []
        ids: list[tuple[int, bool]] = []
        async with self.transaction() as tx:
            for u in updates:
                await _apply_snapshot(tx, u.worktree, u.upserts, u.deletes, u.replace)
                if u.replace:
                    await _rebase_replaced(tx, u.worktree, u.upserts)
            if changes:
                await _track_changes(tx, changes)
                if judge is not None:
                    world = await _world(tx, {c.path for c in changes}, tx.now)
                    for spec in judge(world):
                        ids.append(await self._record(tx, spec, actor))
        return await self._recorded(ids)

    async def list_changed_files(self, worktree: str | None = None) -> list[FileChange]:
        """Files that differ from their baseline (all worktrees, or one)."""
        from core.conflict_rules import FileChange

        if worktree is None:
            rows = await self._fetchall(f"SELECT {_CHANGED} FROM changed_files ORDER BY worktree, path")
        else:
            rows = await self._fetchall(
                f"SELECT {_CHANGED} FROM changed_files WHERE worktree = ? ORDER BY path", (worktree,)
            )
        return [FileChange(*r) for r in rows]

    async def reset_baseline(self, worktree: str, paths: Iterable[str] | None = None,
                             *, actor: str | None = None) -> list[str]:
        """Make the current content the baseline (of every file of ``worktree``, or of ``paths``).

        Open conflicts whose only cause was the difference are then closed by
        the watcher. Audited (``watch.rebaselined``): it changes what is flagged.
        """
        async with self.transaction() as tx:
            if paths is None:
                rows = await tx.fetchall("DELETE FROM changed_files WHERE worktree = ? RETURNING path", (worktree,))
            else:
                rows = await tx.fetchall(
                    f"DELETE FROM changed_files WHERE worktree = ? AND path IN {tx.dialect.values('text')}"
                    " RETURNING path",
                    (worktree, tx.dialect.list_param(sorted(set(paths)))),
                )
            done = sorted(r[0] for r in rows)
            if done:
                await self._audit(tx, "watch.rebaselined", actor=actor, worktree=worktree,
                                  path=done[0] if len(done) == 1 else None, details={"paths": done})
        return done

    async def watch_world(self, paths: Iterable[str]) -> World:
        """What ``core.conflict_rules`` needs to judge ``paths``: active (unexpired) leases with
        their task scopes, the active claims on ``paths``, the changed files among ``paths`` in
        every worktree, and the registered worktrees."""
        return await _world(self.backend, paths, self.clock())


# the columns of a FileChange, in its order
_CHANGED = "worktree, path, id, base_hash, hash"


async def _apply_snapshot(tx: Tx, worktree: str, upserts: dict[str, tuple[int, int, str]],
                          deletes: Iterable[str], replace: bool) -> None:
    if replace:
        await tx.execute("DELETE FROM snapshots WHERE worktree = ?", (worktree,))
    if upserts:
        await tx.executemany(
            "INSERT INTO snapshots (worktree, path, size, mtime_ns, hash) VALUES (?,?,?,?,?)"
            " ON CONFLICT (worktree, path) DO UPDATE SET size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, hash = excluded.hash",
            [(worktree, p, fp[0], fp[1], fp[2]) for p, fp in upserts.items()],
        )
    gone = list(deletes)
    if gone:
        await tx.executemany("DELETE FROM snapshots WHERE worktree = ? AND path = ?", [(worktree, d) for d in gone])


async def _rebase_replaced(tx: Tx, worktree: str, upserts: dict[str, tuple[int, int, str]]) -> None:
    rows = await tx.fetchall("SELECT id, path, base_hash, hash FROM changed_files WHERE worktree = ?", (worktree,))
    gone, moved = [], []
    for row_id, path, base_hash, current_hash in rows:
        fp = upserts.get(path)
        current = fp[2] if fp is not None else None
        if current == base_hash:
            gone.append((row_id,))
        elif current != current_hash:
            moved.append((current, tx.now, row_id))
    if gone:
        await tx.executemany("DELETE FROM changed_files WHERE id = ?", gone)
    if moved:
        await tx.executemany("UPDATE changed_files SET hash = ?, updated_at = ? WHERE id = ?", moved)


async def _track_changes(tx: Tx, changes: Sequence[Any]) -> None:
    keys = {(c.worktree, c.path) for c in changes}
    rows = await tx.fetchall(
        f"SELECT id, worktree, path, base_hash FROM changed_files WHERE path IN {tx.dialect.values('text')}",
        (tx.dialect.list_param(sorted({path for _, path in keys})),),
    )
    # (worktree, path) -> [row id or None (new), baseline, current]; None: at its baseline
    state: dict[tuple[str, str], list[Any] | None] = {
        (r[1], r[2]): [r[0], r[3], None] for r in rows if (r[1], r[2]) in keys
    }
    existing = {k: v[0] for k, v in state.items() if v is not None}
    for c in changes:
        key = (c.worktree, c.path)
        new = c.new[2] if c.new is not None else None
        entry = state.get(key)
        if entry is None:
            base = c.old[2] if c.old is not None else None
            if new != base:
                state[key] = [None, base, new]
        elif new == entry[1]:
            state[key] = None  # reverted
        else:
            entry[2] = new
    deletes, inserts, updates = [], [], []
    for key, entry in state.items():
        old_id = existing.get(key)
        if entry is None:
            if old_id is not None:
                deletes.append((old_id,))
            continue
        if entry[0] is None:
            if old_id is not None:  # reverted and changed again within the batch: a new episode
                deletes.append((old_id,))
            inserts.append((key[0], key[1], entry[1], entry[2], tx.now, tx.now))
        else:
            updates.append((entry[2], tx.now, entry[0]))
    if deletes:
        await tx.executemany("DELETE FROM changed_files WHERE id = ?", deletes)
    if updates:
        await tx.executemany("UPDATE changed_files SET hash = ?, updated_at = ? WHERE id = ?", updates)
    if inserts:
        await tx.executemany(
            "INSERT INTO changed_files (worktree, path, base_hash, hash, changed_at, updated_at)"
            " VALUES (?,?,?,?,?,?)",
            inserts,
        )


async def _world(db: Tx | Backend, paths: Iterable[str], now: float) -> World:
    """The world of ``paths`` at ``now``, read through a transaction or outside one."""
    from core.conflict_rules import ClaimView, FileChange, World

    values, wanted = db.dialect.values("text"), db.dialect.list_param(sorted(set(paths)))
    lease_rows = await db.fetchall(
        "SELECT l.id, l.agent, l.worktree, l.task_id, t.title, t.scope FROM leases l"
        " JOIN tasks t ON t.id = l.task_id WHERE l.status = 'active' AND l.expires_at > ?",
        (now,),
    )
    claim_rows = await db.fetchall(
        "SELECT c.path, c.lease_id, c.id FROM claims c JOIN leases l ON l.id = c.lease_id"
        f" WHERE c.active = 1 AND l.status = 'active' AND l.expires_at > ? AND c.path IN {values}",
        (now, wanted),
    )
    changed_rows = await db.fetchall(f"SELECT {_CHANGED} FROM changed_files WHERE path IN {values}", (wanted,))
    recent_rows = await db.fetchall(
        "SELECT l.id, l.agent, l.worktree, l.task_id, t.title, t.scope FROM leases l"
        " JOIN tasks t ON t.id = l.task_id WHERE (l.status != 'active' AND l.ended_at > ?)"
        " OR (l.status = 'active' AND l.expires_at <= ? AND l.expires_at > ?)",
        (now - RECENT_LEASE_GRACE, now, now - RECENT_LEASE_GRACE),
    )
    wt_rows = await db.fetchall("SELECT name FROM worktrees WHERE active = 1")
    return World(
        leases={r[0]: _lease_view(r) for r in lease_rows},
        claims={r[0]: ClaimView(r[0], r[1], r[2]) for r in claim_rows},
        changed=[FileChange(*r) for r in changed_rows],
        worktrees=frozenset(r[0] for r in wt_rows),
        recent=[_lease_view(r) for r in recent_rows],
    )


def _lease_view(r: Row) -> LeaseView:
    from core.conflict_rules import LeaseView

    return LeaseView(r[0], r[1], r[2], r[3], r[4], json_items(r[5]))
