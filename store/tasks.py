"""Verbs on tasks: add, read, retry, cancel.

Each verb is one transaction that also appends its audit event. Leasing a
task and everything a lease does is in store/leases.py; what ending a lease
involves is in store/lifecycle.py.
"""

from __future__ import annotations

import json

from core import rules
from core.errors import BadInput, NotFound, Refused
from core.ids import format_id
from core.models import Task
from store import lifecycle

from store.db import StoreBase
from store.rows import task_from_row, task_select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Row, Tx


class TaskVerbs(StoreBase):
    # -- reads ---------------------------------------------------------------

    async def get_task(self, task_id: int) -> Task:
        row = await self._fetchone(task_select(self.dialect) + " WHERE t.id = ?", (task_id,))
        if row is None:
            raise NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
        return task_from_row(row)

    async def list_tasks(self, status: str | None = None) -> list[Task]:
        if status is None:
            rows = await self._fetchall(task_select(self.dialect) + " ORDER BY t.id")
        else:
            rows = await self._fetchall(task_select(self.dialect) + " WHERE t.status = ? ORDER BY t.id", (status,))
        return [task_from_row(r) for r in rows]

    async def task_progress(self, task_id: int) -> tuple[str, int, int]:
        """``(status, attempts, max_attempts)`` of a task."""
        row = await self._fetchone("SELECT status, attempts, max_attempts FROM tasks WHERE id = ?", (task_id,))
        if row is None:
            raise NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
        return row[0], row[1], row[2]

    # -- writes --------------------------------------------------------------

    async def add_task(
        self,
        title: str,
        *,
        description: str = "",
        priority: int = 0,
        scope: list[str] | None = None,
        depends_on: list[int] | None = None,
        max_attempts: int = rules.DEFAULT_MAX_ATTEMPTS,
        actor: str | None = None,
    ) -> Task:
        """Queue a new pending task."""
        from core.scope import ScopeError, validate_glob

        title = title.strip()
        if not title:
            raise BadInput("a task needs a non-empty title")
        if max_attempts < 1:
            raise BadInput(f"--max-attempts must be at least 1, got {max_attempts}")
        try:
            globs = [validate_glob(g) for g in scope or []]
        except ScopeError as exc:
            raise BadInput(str(exc)) from None
        deps = sorted(set(depends_on or []))
        async with self.transaction() as tx:
            if deps:
                found = {r[0] for r in await tx.fetchall(
                    f"SELECT id FROM tasks WHERE id IN {tx.dialect.values('int')}", (tx.dialect.list_param(deps),))}
                missing = [d for d in deps if d not in found]
                if missing:
                    raise NotFound(f"no task {format_id('task', missing[0])} to depend on", code="task_not_found")
            task_id = await tx.insert(
                "INSERT INTO tasks (title, description, priority, scope, max_attempts, created_by,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                (title, description, priority, json.dumps(globs), max_attempts, actor or self.actor, tx.now, tx.now),
            )
            if deps:
                await tx.executemany("INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                                     [(task_id, dep) for dep in deps])
            await self._audit(
                tx, "task.added", actor=actor, task_id=task_id,
                details={"title": title, "priority": priority, "scope": globs,
                         "depends_on": [format_id("task", d) for d in deps], "max_attempts": max_attempts},
            )
        return await self.get_task(task_id)

    async def retry_task(self, task_id: int, *, actor: str | None = None) -> Task:
        """Put a failed or cancelled task back in the queue with a fresh attempt budget."""
        async with self.transaction() as tx:
            task = await _task_row(tx, task_id)
            if task["status"] not in ("failed", "cancelled"):
                raise Refused(
                    f"task {format_id('task', task_id)} is {task['status']}: only failed or cancelled tasks can be retried",
                    code="task_not_retryable",
                )
            await lifecycle.move_task(tx, task_id, "pending", attempts=0)
            await self._audit(tx, "task.retried", actor=actor, task_id=task_id, details={"from": task["status"]})
        return await self.get_task(task_id)

    async def cancel_task(self, task_id: int, *, actor: str | None = None) -> Task:
        """Cancel a pending or leased task (its lease is released). Cancelling twice is a no-op."""
        async with self.transaction() as tx:
            task = await _task_row(tx, task_id)
            if task["status"] in ("done", "failed"):
                raise Refused(f"task {format_id('task', task_id)} is already {task['status']}", code="task_finished")
            if task["status"] != "cancelled":
                lease = await tx.fetchone("SELECT id FROM leases WHERE task_id = ? AND status = 'active'", (task_id,))
                details: dict[str, Any] = {"from": task["status"]}
                if lease is not None:
                    details["released"] = await lifecycle.end_lease(
                        self, tx, lease[0], "released", f"task {format_id('task', task_id)} cancelled")
                    details["lease"] = format_id("lease", lease[0])
                await lifecycle.move_task(tx, task_id, "cancelled")
                await self._audit(tx, "task.cancelled", actor=actor, task_id=task_id,
                                  lease_id=lease[0] if lease is not None else None, details=details)
        return await self.get_task(task_id)


async def _task_row(tx: Tx, task_id: int) -> Row:
    row = await tx.fetchone("SELECT * FROM tasks WHERE id = ?", (task_id,))
    if row is None:
        raise NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
    return row

