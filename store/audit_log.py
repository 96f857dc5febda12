"""Reading the audit log: tail, incremental reads by seq, head, verification.

Every read survives a damaged row. sqlite3 raises for a whole query when one
text value is not UTF-8, so rows are read as ``typeof(col), CAST(col AS
BLOB)`` pairs and decoded here: a row that cannot be decoded comes back as an
``AuditEvent`` holding what could be read, with ``damaged`` saying what is
wrong (``tower audit verify`` says whether the rest is authentic).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import TYPE_CHECKING

from core import audit as chain
from store.db import StoreBase

if TYPE_CHECKING:
    from core.models import AuditEvent, Counts

# every column as (typeof, bytes): no value can make the fetch itself fail
AUDIT_CELLS = ", ".join(f"typeof({c}), CAST({c} AS BLOB)" for c in chain.ROW_FIELDS)


def _cell(kind: str, raw: bytes | None) -> object:
    if kind == "null" or raw is None:
        return None
    if kind == "integer":
        return int(raw)
    if kind == "real":
        return float(raw)
    if kind == "text":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return chain.Undecodable(raw)
    return bytes(raw)


def _values(row) -> dict[str, object]:
    return {name: _cell(row[2 * i], row[2 * i + 1]) for i, name in enumerate(chain.ROW_FIELDS)}


def event_from_cells(row) -> AuditEvent:
    """An ``AuditEvent`` from a row of ``SELECT {AUDIT_CELLS} FROM audit ...``: the way to read
    audit rows that a damaged one cannot break (``SELECT *`` fails on a text that is not UTF-8)."""
    return event_from_values(_values(row))


def _shown(value: object) -> str | None:
    """A damaged value as text a person can read (printed through core.display later)."""
    if value is None:
        return None
    if isinstance(value, chain.Undecodable):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (bytes, bytearray)):
        return f"x'{bytes(value[:32]).hex()}{'...' if len(value) > 32 else ''}'"
    return str(value)


def event_from_values(values: dict) -> AuditEvent:
    """An ``AuditEvent`` from stored values, whatever they hold (see the module doc)."""
    from core.models import AuditEvent

    problems: dict[str, str] = {}
    out: dict[str, object] = {}
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
    details: dict | None = None
    if "details" not in problems:
        details, problem = chain.load_details(out["details"])
        if problem is not None:
            problems["details"] = problem
    out["details"] = details or {}
    return AuditEvent(**out, damaged="; ".join(problems.values()) or None)


def _hash_text(raw: bytes | None) -> str | None:
    """A stored hash as text, even when damaged (a damaged head must not break every read)."""
    return None if raw is None else bytes(raw).decode("utf-8", "backslashreplace")


def event_from_row(row: sqlite3.Row) -> AuditEvent:
    return event_from_values({name: row[name] for name in row.keys()})


class AuditVerbs(StoreBase):
    async def _audit_rows(self, where: str, params: tuple) -> list[AuditEvent]:
        rows = await self._fetchall(f"SELECT {AUDIT_CELLS} FROM audit {where}", params)
        return [event_from_cells(r) for r in rows]

    async def audit_tail(self, n: int = 20, upto: int | None = None) -> list[AuditEvent]:
        """The last ``n`` events (with seq <= ``upto`` if given), oldest first."""
        bound = "" if upto is None else "WHERE seq <= ?"
        params = (max(n, 0),) if upto is None else (upto, max(n, 0))
        rows = await self._fetchall(
            f"SELECT * FROM (SELECT seq AS o, {AUDIT_CELLS} FROM audit {bound} ORDER BY seq DESC LIMIT ?) ORDER BY o",
            params,
        )
        return [event_from_cells(tuple(r)[1:]) for r in rows]

    async def audit_after(self, seq: int, limit: int = 1000) -> list[AuditEvent]:
        """Events with seq > ``seq`` in order: how live views append without reloading."""
        return await self._audit_rows("WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    async def audit_range(self, first: int, last: int) -> list[AuditEvent]:
        return await self._audit_rows("WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))

    async def audit_head(self) -> tuple[int, str | None]:
        """``(seq, entry_hash)`` of the newest event; ``(0, None)`` for an empty log."""
        row = await self._fetchone(
            "SELECT seq, CAST(entry_hash AS BLOB) FROM audit WHERE typeof(seq) = 'integer'"
            " ORDER BY seq DESC LIMIT 1"
        )
        return (row[0], _hash_text(row[1])) if row else (0, None)

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
              (SELECT seq FROM audit WHERE typeof(seq) = 'integer' ORDER BY seq DESC LIMIT 1) AS audit_seq,
              (SELECT CAST(entry_hash AS BLOB) FROM audit WHERE typeof(seq) = 'integer'
                ORDER BY seq DESC LIMIT 1) AS audit_hash
            """
        )
        from core.models import Counts

        data = dict(row)
        data["audit_seq"] = data["audit_seq"] or 0
        data["audit_hash"] = _hash_text(data["audit_hash"])
        return Counts(**data)

    async def verify_audit(self, head: tuple[int, str] | None = None) -> chain.VerifyResult:
        """Re-derive the whole chain; names the first bad seq and why.

        Runs on its own read-only sqlite3 connection in a thread: hashing a
        long log is CPU work that must not sit on an event loop, and a
        streaming read keeps memory flat however long the log is.
        """
        return await asyncio.to_thread(_verify_sync, self.path, self._key, head)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return chain.Undecodable(raw)  # named by verify_chain, instead of failing the whole read


def _verify_sync(path, key: bytes, head: tuple[int, str] | None) -> chain.VerifyResult:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return chain.verify_chain([chain.Unreadable(str(exc))], key, head=head)
    try:
        conn.row_factory = sqlite3.Row
        conn.text_factory = _text
        lookup = conn.cursor()

        def locate(entry_hash: str) -> int | None:
            try:
                found = lookup.execute("SELECT seq FROM audit WHERE entry_hash = ? LIMIT 1",
                                       (entry_hash,)).fetchone()
            except sqlite3.Error:  # only explains a failure already found
                return None
            return found[0] if found else None

        def rows():
            try:
                conn.execute("BEGIN")  # one consistent snapshot for the whole pass
                for r in conn.execute("SELECT * FROM audit ORDER BY seq"):
                    yield dict(r)
            except sqlite3.Error as exc:  # a damaged page, a dropped table: named, not a crash
                yield chain.Unreadable(str(exc))

        return chain.verify_chain(rows(), key, locate=locate, head=head)
    finally:
        conn.close()
