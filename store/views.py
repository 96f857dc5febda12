"""Reads shaped for the control room: the rows of its panes, fetched by id, one query each.

The app reloads only what changed: the audit events since its last seq name
the tasks, leases, approvals and conflicts they touched, and these queries
fetch exactly those rows (plus, for tasks, the ones whose dependencies just
changed). The rows are the entities of core/models.py, read through the same
SELECTs as every other read (store/rows.py). Read-only; no audit events.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.limits import stored_detail
from core.models import Approval, Conflict, Lease, Task
from store.db import StoreBase
from store.rows import (
    APPROVAL_SELECT,
    CONFLICT_SELECT,
    approval_from_row,
    conflict_from_row,
    lease_from_row,
    lease_select,
    task_from_row,
    task_select,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

QUEUE_PENDING_LIMIT = 200
QUEUE_FINISHED_LIMIT = 50
APPROVALS_DECIDED_LIMIT = 100


class ViewVerbs(StoreBase):
    """Read models of the control room's panes."""

    def _ids(self, ids: Iterable[int]) -> tuple[str, tuple[Any, ...]] | None:
        """``IN …`` and its parameter for these ids; None for none."""
        values = sorted(set(ids))
        if not values:
            return None
        return f"IN {self.dialect.values('int')}", (self.dialect.list_param(values),)

    async def view_queue(
        self, *, pending_limit: int = QUEUE_PENDING_LIMIT, finished_limit: int = QUEUE_FINISHED_LIMIT
    ) -> list[Task]:
        """The queue pane: every leased and failed task, the next ``pending_limit``
        pending ones (priority, then age), and the ``finished_limit`` most recently
        finished (done or cancelled)."""
        select = task_select(self.dialect)
        rows = await self._fetchall(
            f"""
            SELECT * FROM ({select} WHERE t.status IN ('leased', 'failed')) AS running
            UNION ALL
            SELECT * FROM ({select} WHERE t.status = 'pending' ORDER BY t.priority DESC, t.id LIMIT ?) AS next
            UNION ALL
            SELECT * FROM ({select} WHERE t.status IN ('done', 'cancelled')
                           ORDER BY t.updated_at DESC, t.id DESC LIMIT ?) AS finished
            """,
            (pending_limit, finished_limit),
        )
        return [task_from_row(r) for r in rows]

    async def view_tasks(self, ids: Iterable[int], *, with_dependents: bool = True) -> list[Task]:
        """These tasks, and (``with_dependents``) the tasks that depend on them:
        a dependency finishing unblocks its dependents."""
        match = self._ids(ids)
        if match is None:
            return []
        where, params = f"t.id {match[0]}", match[1]
        if with_dependents:
            where += f" OR t.id IN (SELECT task_id FROM task_deps WHERE depends_on {match[0]})"
            params += match[1]
        rows = await self._fetchall(f"{task_select(self.dialect)} WHERE {where} ORDER BY t.id", params)
        return [task_from_row(r) for r in rows]

    async def view_leases(self, ids: Iterable[int] | None = None) -> list[Lease]:
        """Active leases (``ids=None``), or these leases whatever their status."""
        if ids is None:
            rows = await self._fetchall(f"{lease_select(self.dialect)} WHERE l.status = 'active' ORDER BY l.id")
        else:
            match = self._ids(ids)
            if match is None:
                return []
            rows = await self._fetchall(f"{lease_select(self.dialect)} WHERE l.id {match[0]} ORDER BY l.id", match[1])
        return [lease_from_row(r) for r in rows]

    async def view_approvals(
        self, ids: Iterable[int] | None = None, *, decided_limit: int = APPROVALS_DECIDED_LIMIT
    ) -> list[Approval]:
        """Every pending approval and the ``decided_limit`` latest closed ones
        (``ids=None``), or these approvals."""
        if ids is None:
            rows = await self._fetchall(
                f"{APPROVAL_SELECT} WHERE status = 'pending'"
                f" UNION ALL SELECT * FROM ({APPROVAL_SELECT} WHERE status != 'pending' ORDER BY id DESC LIMIT ?)"
                " AS decided",
                (decided_limit,),
            )
        else:
            match = self._ids(ids)
            if match is None:
                return []
            rows = await self._fetchall(f"{APPROVAL_SELECT} WHERE id {match[0]} ORDER BY id", match[1])
        return [approval_from_row(r) for r in rows]

    async def approval_sources(self, ids: Iterable[int]) -> dict[int, str]:
        """Which hook filed each of these approvals (its detail's ``source``, e.g.
        ``claude-code``), for those a hook filed: the control room shows when the
        hook stops waiting. A detail that is not a JSON object names no source."""
        match = self._ids(ids)
        if match is None:
            return {}
        rows = await self._fetchall(f"SELECT id, detail FROM approvals WHERE id {match[0]}", match[1])
        sources = {r[0]: stored_detail(r[1]).get("source") for r in rows}
        return {i: s for i, s in sources.items() if isinstance(s, str) and s}

    async def view_conflicts(self, ids: Iterable[int] | None = None) -> list[Conflict]:
        """Open conflicts (``ids=None``), or these conflicts whatever their status."""
        if ids is None:
            rows = await self._fetchall(f"{CONFLICT_SELECT} WHERE status = 'open' ORDER BY id")
        else:
            match = self._ids(ids)
            if match is None:
                return []
            rows = await self._fetchall(f"{CONFLICT_SELECT} WHERE id {match[0]} ORDER BY id", match[1])
        return [conflict_from_row(r) for r in rows]

    async def audit_search(self, text: str, *, limit: int = 10_000) -> list[int]:
        """Seqs of the latest ``limit`` audit events mentioning ``text`` (case-insensitive),
        oldest first: the audit pane's filter maps its lines onto them."""
        needle = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        like = f"{self.dialect.like} ? ESCAPE '\\'"
        token = text.strip()
        rows = await self._fetchall(
            f"SELECT seq FROM audit WHERE event {like} OR actor {like} OR coalesce(worktree, '') {like}"
            f" OR coalesce(path, '') {like} OR details {like}"
            " OR ('T' || task_id) = upper(?) OR ('L' || lease_id) = upper(?) OR ('A' || approval_id) = upper(?)"
            " ORDER BY seq DESC LIMIT ?",
            (needle, needle, needle, needle, needle, token, token, token, limit),
        )
        return [r[0] for r in reversed(rows)]
