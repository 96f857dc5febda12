"""Reads shaped for the control room: light rows, fetched by id, one query each.

The app reloads only what changed: the audit events since its last seq name
the tasks, leases, approvals and conflicts they touched, and these queries
fetch exactly those rows (plus, for tasks, the ones whose dependencies just
changed). Rows are plain slotted dataclasses, not pydantic models: the queue
can hold thousands of tasks and the app re-reads rows many times a second.
Read-only; no audit events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.audit_log import event_from_row
from store.db import StoreBase

if TYPE_CHECKING:
    from core.models import AuditEvent

QUEUE_PENDING_LIMIT = 200
QUEUE_FINISHED_LIMIT = 50
APPROVALS_DECIDED_LIMIT = 100


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    title: str
    priority: int
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: float
    updated_at: float
    depends_on: tuple[int, ...]
    blocked: bool
    lease_id: int | None
    agent: str | None
    worktree: str | None


@dataclass(frozen=True, slots=True)
class LeaseRow:
    id: int
    task_id: int
    task_title: str
    agent: str
    worktree: str | None
    token: int
    status: str
    ttl: float
    acquired_at: float
    expires_at: float
    claims: tuple[str, ...]
    scope: tuple[str, ...] = ()  # the task's: what the holder may write


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: int
    kind: str
    summary: str
    status: str
    requested_by: str
    worktree: str | None
    lease_id: int | None
    task_id: int | None
    created_at: float
    decided_at: float | None
    decided_by: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class ConflictRow:
    id: int
    kind: str
    path: str
    worktree: str
    other_worktree: str | None
    lease_id: int | None
    other_lease_id: int | None
    task_id: int | None
    status: str
    message: str
    created_at: float


_TASK_VIEW = """
SELECT t.id, t.title, t.priority, t.status, t.attempts, t.max_attempts, t.last_error,
       t.created_at, t.updated_at,
       (SELECT group_concat(d.depends_on) FROM task_deps d WHERE d.task_id = t.id) AS deps,
       EXISTS (SELECT 1 FROM task_deps d JOIN tasks x ON x.id = d.depends_on
               WHERE d.task_id = t.id AND x.status != 'done') AS blocked,
       l.id AS lease_id, l.agent, l.worktree
FROM tasks t LEFT JOIN leases l ON l.task_id = t.id AND l.status = 'active'
"""

_LEASE_VIEW = """
SELECT l.id, l.task_id, t.title, l.agent, l.worktree, l.token, l.status, l.ttl, l.acquired_at,
       l.expires_at, t.scope,
       (SELECT group_concat(path, char(10)) FROM
          (SELECT path FROM claims c WHERE c.lease_id = l.id AND c.active = 1 ORDER BY path)) AS claim_paths
FROM leases l JOIN tasks t ON t.id = l.task_id
"""

_APPROVAL_COLUMNS = (
    "id, kind, summary, status, requested_by, worktree, lease_id, task_id, created_at,"
    " decided_at, decided_by, reason"
)
_CONFLICT_COLUMNS = (
    "id, kind, path, worktree, other_worktree, lease_id, other_lease_id, task_id, status, message, created_at"
)


def _task(r) -> TaskRow:
    deps = tuple(sorted(int(d) for d in r[9].split(","))) if r[9] else ()
    return TaskRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], deps, bool(r[10]), r[11], r[12], r[13])


def _lease(r) -> LeaseRow:
    claims = tuple(r[11].split("\n")) if r[11] else ()
    return LeaseRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], claims, tuple(json.loads(r[10])))


def _marks(ids: Iterable[int]) -> tuple[str, tuple[int, ...]]:
    values = tuple(sorted(set(ids)))
    return ",".join("?" * len(values)) or "NULL", values


class ViewVerbs(StoreBase):
    """Read models of the control room's panes."""

    async def view_queue(
        self, *, pending_limit: int = QUEUE_PENDING_LIMIT, finished_limit: int = QUEUE_FINISHED_LIMIT
    ) -> list[TaskRow]:
        """The queue pane: every leased and failed task, the next ``pending_limit``
        pending ones (priority, then age), and the ``finished_limit`` most recently
        finished (done or cancelled)."""
        rows = await self._fetchall(
            f"""
            SELECT * FROM ({_TASK_VIEW} WHERE t.status IN ('leased', 'failed'))
            UNION ALL
            SELECT * FROM ({_TASK_VIEW} WHERE t.status = 'pending' ORDER BY t.priority DESC, t.id LIMIT ?)
            UNION ALL
            SELECT * FROM ({_TASK_VIEW} WHERE t.status IN ('done', 'cancelled')
                           ORDER BY t.updated_at DESC, t.id DESC LIMIT ?)
            """,
            (pending_limit, finished_limit),
        )
        return [_task(r) for r in rows]

    async def view_tasks(self, ids: Iterable[int], *, with_dependents: bool = True) -> list[TaskRow]:
        """These tasks, and (``with_dependents``) the tasks that depend on them:
        a dependency finishing unblocks its dependents."""
        marks, values = _marks(ids)
        if not values:
            return []
        where = f"t.id IN ({marks})"
        params: tuple = values
        if with_dependents:
            where += f" OR t.id IN (SELECT task_id FROM task_deps WHERE depends_on IN ({marks}))"
            params = values + values
        rows = await self._fetchall(f"{_TASK_VIEW} WHERE {where} ORDER BY t.id", params)
        return [_task(r) for r in rows]

    async def view_leases(self, ids: Iterable[int] | None = None) -> list[LeaseRow]:
        """Active leases (``ids=None``), or these leases whatever their status."""
        if ids is None:
            rows = await self._fetchall(f"{_LEASE_VIEW} WHERE l.status = 'active' ORDER BY l.id")
        else:
            marks, values = _marks(ids)
            if not values:
                return []
            rows = await self._fetchall(f"{_LEASE_VIEW} WHERE l.id IN ({marks}) ORDER BY l.id", values)
        return [_lease(r) for r in rows]

    async def view_approvals(
        self, ids: Iterable[int] | None = None, *, decided_limit: int = APPROVALS_DECIDED_LIMIT
    ) -> list[ApprovalRow]:
        """Every pending approval and the ``decided_limit`` latest closed ones
        (``ids=None``), or these approvals."""
        if ids is None:
            rows = await self._fetchall(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending'"
                f" UNION ALL SELECT * FROM (SELECT {_APPROVAL_COLUMNS} FROM approvals"
                " WHERE status != 'pending' ORDER BY id DESC LIMIT ?)",
                (decided_limit,),
            )
        else:
            marks, values = _marks(ids)
            if not values:
                return []
            rows = await self._fetchall(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id IN ({marks}) ORDER BY id", values
            )
        return [ApprovalRow(*r) for r in rows]

    async def approval_sources(self, ids: Iterable[int]) -> dict[int, str]:
        """Which hook filed each of these approvals (its detail's ``source``, e.g.
        ``claude-code``), for those a hook filed: the control room shows when the
        hook stops waiting. A detail that is not valid JSON names no source."""
        marks, values = _marks(ids)
        if not values:
            return {}
        rows = await self._fetchall(
            "SELECT id, CASE WHEN json_valid(detail) THEN json_extract(detail, '$.source') END FROM approvals"
            f" WHERE id IN ({marks})",
            values,
        )
        return {r[0]: r[1] for r in rows if isinstance(r[1], str) and r[1]}

    async def view_conflicts(self, ids: Iterable[int] | None = None) -> list[ConflictRow]:
        """Open conflicts (``ids=None``), or these conflicts whatever their status."""
        if ids is None:
            rows = await self._fetchall(
                f"SELECT {_CONFLICT_COLUMNS} FROM conflicts WHERE status = 'open' ORDER BY id"
            )
        else:
            marks, values = _marks(ids)
            if not values:
                return []
            rows = await self._fetchall(
                f"SELECT {_CONFLICT_COLUMNS} FROM conflicts WHERE id IN ({marks}) ORDER BY id", values
            )
        return [ConflictRow(*r) for r in rows]

    async def audit_events(self, seqs: Iterable[int]) -> list[AuditEvent]:
        """These audit events (any order in, seq order out): the audit pane reads
        only the lines on screen."""
        marks, values = _marks(seqs)
        if not values:
            return []
        from store.audit_log import AUDIT_CELLS, event_from_cells

        # every cell read in a form that cannot fail: one damaged row must not blank the pane
        rows = await self._fetchall(f"SELECT {AUDIT_CELLS} FROM audit WHERE seq IN ({marks}) ORDER BY seq", values)
        return [event_from_cells(r) for r in rows]

    async def audit_search(self, text: str, *, limit: int = 10_000) -> list[int]:
        """Seqs of the latest ``limit`` audit events mentioning ``text`` (case-insensitive),
        oldest first: the audit pane's filter maps its lines onto them."""
        needle = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._fetchall(
            "SELECT seq FROM audit WHERE event LIKE :n ESCAPE '\\' OR actor LIKE :n ESCAPE '\\'"
            " OR ifnull(worktree, '') LIKE :n ESCAPE '\\' OR ifnull(path, '') LIKE :n ESCAPE '\\'"
            " OR details LIKE :n ESCAPE '\\'"
            " OR ('T' || task_id) = upper(:t) OR ('L' || lease_id) = upper(:t)"
            " OR ('A' || approval_id) = upper(:t)"
            " ORDER BY seq DESC LIMIT :limit",
            {"n": needle, "t": text.strip(), "limit": limit},
        )
        return [r[0] for r in reversed(rows)]
