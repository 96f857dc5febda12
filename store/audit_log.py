"""Reading the audit log: tail, incremental reads by seq, head, verification."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import TYPE_CHECKING

from core import audit as chain
from store.db import StoreBase

if TYPE_CHECKING:
    from core.models import AuditEvent, Counts


def event_from_row(row: sqlite3.Row) -> AuditEvent:
    from core.models import AuditEvent

    return AuditEvent(
        seq=row["seq"],
        ts=row["ts"],
        actor=row["actor"],
        event=row["event"],
        task_id=row["task_id"],
        lease_id=row["lease_id"],
        approval_id=row["approval_id"],
        worktree=row["worktree"],
        path=row["path"],
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        entry_hash=row["entry_hash"],
        signature=row["signature"],
    )


class AuditVerbs(StoreBase):
    async def audit_tail(self, n: int = 20) -> list[AuditEvent]:
        """The last ``n`` events, oldest first."""
        rows = await self._fetchall(
            "SELECT * FROM (SELECT * FROM audit ORDER BY seq DESC LIMIT ?) ORDER BY seq", (max(n, 0),)
        )
        return [event_from_row(r) for r in rows]

    async def audit_after(self, seq: int, limit: int = 1000) -> list[AuditEvent]:
        """Events with seq > ``seq`` in order: how live views append without reloading."""
        rows = await self._fetchall("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [event_from_row(r) for r in rows]

    async def audit_range(self, first: int, last: int) -> list[AuditEvent]:
        rows = await self._fetchall("SELECT * FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))
        return [event_from_row(r) for r in rows]

    async def audit_head(self) -> tuple[int, str | None]:
        """``(seq, entry_hash)`` of the newest event; ``(0, None)`` for an empty log."""
        row = await self._fetchone("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (row[0], row[1]) if row else (0, None)

    async def counts(self) -> Counts:
        """Everything the control room's header line shows, in one query."""
        row = await self._fetchone(
            """
            SELECT
              (SELECT count(*) FROM tasks WHERE status = 'pending')   AS pending,
              (SELECT count(*) FROM tasks WHERE status = 'leased')    AS leased,
              (SELECT count(*) FROM tasks WHERE status = 'done')      AS done,
              (SELECT count(*) FROM tasks WHERE status = 'failed')    AS failed,
              (SELECT count(*) FROM tasks WHERE status = 'cancelled') AS cancelled,
              (SELECT count(*) FROM leases WHERE status = 'active')   AS active_leases,
              (SELECT count(*) FROM approvals WHERE status = 'pending') AS pending_approvals,
              (SELECT count(*) FROM conflicts WHERE status = 'open')  AS open_conflicts,
              (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1)       AS audit_seq,
              (SELECT entry_hash FROM audit ORDER BY seq DESC LIMIT 1) AS audit_hash
            """
        )
        from core.models import Counts

        data = dict(row)
        data["audit_seq"] = data["audit_seq"] or 0
        return Counts(**data)

    async def verify_audit(self, head: tuple[int, str] | None = None) -> chain.VerifyResult:
        """Re-derive the whole chain; names the first bad seq and why.

        Runs on its own read-only sqlite3 connection in a thread: hashing a
        long log is CPU work that must not sit on an event loop, and a
        streaming read keeps memory flat however long the log is.
        """
        return await asyncio.to_thread(_verify_sync, self.path, self._key, head)


def _verify_sync(path, key: bytes, head: tuple[int, str] | None) -> chain.VerifyResult:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        lookup = conn.cursor()

        def locate(entry_hash: str) -> int | None:
            found = lookup.execute("SELECT seq FROM audit WHERE entry_hash = ? LIMIT 1", (entry_hash,)).fetchone()
            return found[0] if found else None

        conn.execute("BEGIN")  # one consistent snapshot for the whole pass
        rows = (dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY seq"))
        return chain.verify_chain(rows, key, locate=locate, head=head)
    finally:
        conn.close()
