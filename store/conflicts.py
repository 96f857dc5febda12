"""Verbs on conflicts (flagged by the watcher) and on the watcher's file snapshots.

Snapshots are the watcher's cache of what each worktree looked like; they are
not coordination state, so they carry no audit events. Conflicts do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from core.errors import NotFound
from core.ids import format_id
from core.models import CONFLICT_KINDS, Conflict, utc
from store.db import StoreBase


def conflict_from_row(row: sqlite3.Row) -> Conflict:
    return Conflict(
        id=row["id"],
        kind=row["kind"],
        path=row["path"],
        worktree=row["worktree"],
        other_worktree=row["other_worktree"],
        lease_id=row["lease_id"],
        other_lease_id=row["other_lease_id"],
        task_id=row["task_id"],
        status=row["status"],
        message=row["message"],
        detail=json.loads(row["detail"]),
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        closed_at=utc(row["closed_at"]),
        closed_by=row["closed_by"],
    )


class ConflictVerbs(StoreBase):
    async def get_conflict(self, conflict_id: int) -> Conflict:
        row = await self._fetchone("SELECT * FROM conflicts WHERE id = ?", (conflict_id,))
        if row is None:
            raise NotFound(f"no conflict {format_id('conflict', conflict_id)}", code="conflict_not_found")
        return conflict_from_row(row)

    async def list_conflicts(self, status: str | None = "open") -> list[Conflict]:
        if status is None:
            rows = await self._fetchall("SELECT * FROM conflicts ORDER BY id")
        else:
            rows = await self._fetchall("SELECT * FROM conflicts WHERE status = ? ORDER BY id", (status,))
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
    ) -> tuple[Conflict, bool]:
        """Open a conflict unless the same (kind, path, worktrees) is already open.

        Returns the conflict and whether it is new.
        """
        assert kind in CONFLICT_KINDS, kind
        async with self.transaction():
            row = await self._fetchone(
                "SELECT * FROM conflicts WHERE status = 'open' AND kind = ? AND path = ? AND worktree = ?"
                " AND ifnull(other_worktree, '') = ifnull(?, '')",
                (kind, path, worktree, other_worktree),
            )
            if row is not None:
                return conflict_from_row(row), False
            now = self.clock()
            conflict_id = await self._exec(
                "INSERT INTO conflicts (kind, path, worktree, other_worktree, lease_id, other_lease_id, task_id,"
                " message, detail, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (kind, path, worktree, other_worktree, lease_id, other_lease_id, task_id, message,
                 json.dumps(detail or {}), now, now),
            )
            await self._audit(
                "conflict.opened",
                actor=actor,
                task_id=task_id,
                lease_id=lease_id,
                worktree=worktree,
                path=path,
                details={"conflict": format_id("conflict", conflict_id), "kind": kind,
                         "other_worktree": other_worktree,
                         "other_lease": format_id("lease", other_lease_id), "message": message},
                now=now,
            )
        return await self.get_conflict(conflict_id), True

    async def ack_conflict(self, conflict_id: int, *, actor: str | None = None) -> Conflict:
        """A person has seen it. Acknowledging twice, or a resolved conflict, is a no-op."""
        return await self._close_conflict(conflict_id, "acked", actor=actor)

    async def resolve_conflict(self, conflict_id: int, *, reason: str, actor: str = "watcher") -> Conflict:
        """The cause went away (claim released, change reverted)."""
        return await self._close_conflict(conflict_id, "resolved", actor=actor, reason=reason)

    async def _close_conflict(self, conflict_id: int, status: str, *, actor: str | None,
                              reason: str | None = None) -> Conflict:
        async with self.transaction():
            row = await self._fetchone("SELECT * FROM conflicts WHERE id = ?", (conflict_id,))
            if row is None:
                raise NotFound(f"no conflict {format_id('conflict', conflict_id)}", code="conflict_not_found")
            if row["status"] == "open":
                now = self.clock()
                await self._exec(
                    "UPDATE conflicts SET status = ?, closed_at = ?, closed_by = ?, updated_at = ? WHERE id = ?",
                    (status, now, actor or self.actor, now, conflict_id),
                )
                await self._audit(
                    f"conflict.{status}",
                    actor=actor,
                    task_id=row["task_id"],
                    lease_id=row["lease_id"],
                    worktree=row["worktree"],
                    path=row["path"],
                    details={"conflict": format_id("conflict", conflict_id), "kind": row["kind"],
                             **({"reason": reason} if reason else {})},
                    now=now,
                )
        return await self.get_conflict(conflict_id)

    # -- snapshots -----------------------------------------------------------

    async def load_snapshot(self, worktree: str) -> dict[str, tuple[int, int, str]]:
        rows = await self._fetchall(
            "SELECT path, size, mtime_ns, hash FROM snapshots WHERE worktree = ?", (worktree,)
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def update_snapshot(
        self,
        worktree: str,
        upserts: Iterable[tuple[str, int, int, str]],
        deletes: Iterable[str] = (),
        *,
        replace: bool = False,
    ) -> None:
        """Write fingerprints ``(path, size, mtime_ns, hash)``; ``replace`` drops the rest first."""
        async with self.transaction():
            if replace:
                await self._exec("DELETE FROM snapshots WHERE worktree = ?", (worktree,))
            await self.conn.executemany(
                "INSERT INTO snapshots (worktree, path, size, mtime_ns, hash) VALUES (?,?,?,?,?)"
                " ON CONFLICT(worktree, path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, hash = excluded.hash",
                [(worktree, *u) for u in upserts],
            )
            await self.conn.executemany(
                "DELETE FROM snapshots WHERE worktree = ? AND path = ?", [(worktree, d) for d in deletes]
            )
