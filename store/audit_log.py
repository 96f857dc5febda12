"""Reading the audit log: tail, incremental reads by seq, head, verification.

Every read survives a damaged row. sqlite3 raises for a whole query when one
text value is not UTF-8, so rows are read through ``Dialect.cells`` (in
SQLite, ``typeof(col), CAST(col AS BLOB)`` pairs) and decoded here: a row
that cannot be decoded comes back as an
``AuditEvent`` holding what could be read, with ``damaged`` saying what is
wrong (``tower audit verify`` says whether the rest is authentic).
"""

from __future__ import annotations

from collections.abc import Mapping

from core import audit as chain
from core.models import AuditEvent, Counts

from store.db import StoreBase

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Row


def _shown(value: object) -> str | None:
    """A damaged value as text a person can read (printed through core.display later)."""
    if value is None:
        return None
    if isinstance(value, chain.Undecodable):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (bytes, bytearray)):
        return f"x'{bytes(value[:32]).hex()}{'...' if len(value) > 32 else ''}'"
    return str(value)


def event_from_values(values: Mapping[str, Any]) -> AuditEvent:
    """An ``AuditEvent`` from stored values, whatever they hold (see the module doc)."""
    problems: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name in chain.ROW_FIELDS:
        value = values.get(name)
        problem = chain.field_problem(name, value)
        if problem is not None:
            problems[name] = problem
            if name == "seq":
                value = 0
            elif name in ("task_id", "lease_id", "approval_id"):
                value = None
            elif name in ("worktree", "path"):
                value = _shown(value)
            else:
                value = _shown(value) or ""
        out[name] = value
    details: dict[str, Any] | None = None
    if "details" not in problems:
        details, problem = chain.load_details(out["details"])
        if problem is not None:
            problems["details"] = problem
    out["details"] = details or {}
    return AuditEvent(**out, damaged="; ".join(problems.values()) or None)


def _hash_text(raw: object) -> str | None:
    """A stored hash as text, even when damaged (a damaged head must not break every read)."""
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "backslashreplace")
    return str(raw)


class AuditVerbs(StoreBase):
    async def start_log(self, *, actor: str, details: dict[str, Any]) -> bool:
        """Append ``store.initialised`` if the log is empty; True if it was. Decided under
        the write lock: of several ``tower init`` racing, exactly one starts the log."""
        async with self.transaction() as tx:
            if (await tx.audit_head())[0] != 0:
                return False
            await self._audit(tx, "store.initialised", actor=actor, details=details)
            return True

    def _events(self, rows: list[Row], offset: int = 0) -> list[AuditEvent]:
        cell_values = self.dialect.cell_values
        return [event_from_values(cell_values(r, chain.ROW_FIELDS, offset)) for r in rows]

    async def _audit_rows(self, where: str, params: tuple[Any, ...]) -> list[AuditEvent]:
        rows = await self._fetchall(f"SELECT {self.dialect.cells(chain.ROW_FIELDS)} FROM audit {where}", params)
        return self._events(rows)

    async def audit_tail(self, n: int = 20, upto: int | None = None) -> list[AuditEvent]:
        """The last ``n`` events (with seq <= ``upto`` if given), oldest first."""
        bound = "" if upto is None else "WHERE seq <= ?"
        params = (max(n, 0),) if upto is None else (upto, max(n, 0))
        rows = await self._fetchall(
            f"SELECT * FROM (SELECT seq AS o, {self.dialect.cells(chain.ROW_FIELDS)} FROM audit {bound}"
            " ORDER BY seq DESC LIMIT ?) AS tail ORDER BY o",
            params,
        )
        return self._events(rows, offset=1)

    async def audit_after(self, seq: int, limit: int = 1000) -> list[AuditEvent]:
        """Events with seq > ``seq`` in order: how live views append without reloading."""
        return await self._audit_rows("WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    async def audit_range(self, first: int, last: int) -> list[AuditEvent]:
        return await self._audit_rows("WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))

    async def audit_events(self, seqs: list[int] | set[int] | tuple[int, ...]) -> list[AuditEvent]:
        """These audit events (any order in, seq order out): the audit pane reads
        only the lines on screen."""
        wanted = sorted(set(seqs))
        if not wanted:
            return []
        return await self._audit_rows(f"WHERE seq IN {self.dialect.values('int')} ORDER BY seq",
                                      (self.dialect.list_param(wanted),))

    async def audit_head(self) -> tuple[int, str | None]:
        """``(seq, entry_hash)`` of the newest event; ``(0, None)`` for an empty log."""
        row = await self._fetchone(
            f"SELECT seq, {self.dialect.cells(['entry_hash'])} FROM audit WHERE {self.dialect.is_integer('seq')}"
            " ORDER BY seq DESC LIMIT 1"
        )
        if row is None:
            return 0, None
        return row[0], _hash_text(self.dialect.cell_values(row, ["entry_hash"], 1)["entry_hash"])

    async def counts(self) -> Counts:
        """Everything the control room's header line shows, in one query."""
        d = self.dialect
        row = await self._fetchone(
            f"""
            SELECT
              (SELECT count(*) FROM tasks WHERE status = 'pending')   AS pending,
              (SELECT count(*) FROM tasks WHERE status = 'leased')    AS leased,
              (SELECT count(*) FROM tasks WHERE status = 'done')      AS done,
              (SELECT count(*) FROM tasks WHERE status = 'failed')    AS failed,
              (SELECT count(*) FROM tasks WHERE status = 'cancelled') AS cancelled,
              (SELECT count(*) FROM leases WHERE status = 'active')   AS active_leases,
              (SELECT count(*) FROM approvals WHERE status = 'pending') AS pending_approvals,
              (SELECT count(*) FROM conflicts WHERE status = 'open')  AS open_conflicts,
              h.seq, {d.cells(["h.entry_hash"])}
            FROM (SELECT 1 AS one) AS base LEFT JOIN
                 (SELECT seq, entry_hash FROM audit WHERE {d.is_integer("seq")} ORDER BY seq DESC LIMIT 1) AS h
                 ON 1 = 1
            """
        )
        assert row is not None
        return Counts(pending=row[0], leased=row[1], done=row[2], failed=row[3], cancelled=row[4],
                      active_leases=row[5], pending_approvals=row[6], open_conflicts=row[7],
                      audit_seq=row[8] or 0, audit_hash=_hash_text(d.cell_values(row, ["entry_hash"], 9)["entry_hash"]))

    async def verify_audit(self, head: tuple[int, str] | None = None) -> chain.VerifyResult:
        """Re-derive the whole chain; names the first bad seq and why. Off the event loop,
        over one snapshot, streamed (``Backend.scan_audit``)."""
        key = self._key
        return await self.backend.scan_audit(lambda rows, locate: chain.verify_chain(rows, key, locate=locate,
                                                                                     head=head))
