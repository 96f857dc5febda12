"""Verbs on tasks, leases, file claims and worktrees.

Each verb is one ``BEGIN IMMEDIATE`` transaction that also appends its audit
event. Verbs that touch a lease reap expired leases first, in the same
transaction, so a holder whose lease ran out is refused even if nobody ran
``tower reap``. Refusals found after a reap are raised after COMMIT so the
reap itself is kept.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from core import rules
from core.errors import BadInput, NotFound, Refused
from core.ids import format_id
from core.vocab import iso, utc
from store.db import StoreBase

if TYPE_CHECKING:
    from core.models import Lease, Task, Worktree

_TASK_SELECT = """
SELECT t.*, (SELECT json_group_array(depends_on) FROM
             (SELECT depends_on FROM task_deps WHERE task_id = t.id ORDER BY depends_on)) AS deps
FROM tasks t
"""

_LEASE_SELECT = """
SELECT l.*, t.title AS task_title,
       (SELECT json_group_array(path) FROM
        (SELECT path FROM claims c WHERE c.lease_id = l.id AND c.active = 1 ORDER BY path)) AS claim_paths
FROM leases l JOIN tasks t ON t.id = l.task_id
"""

_ELIGIBLE = """
t.status = 'pending' AND NOT EXISTS (
    SELECT 1 FROM task_deps d JOIN tasks x ON x.id = d.depends_on
    WHERE d.task_id = t.id AND x.status != 'done')
"""


class ClaimRow(NamedTuple):
    """What a claim answers, as plain data: ``tower task claim`` prints it without loading
    pydantic. ``to_json()`` is exactly ``core.models.ClaimResult``'s JSON (a test holds them equal)."""

    lease_id: int
    token: int
    task_id: int
    title: str
    scope: list[str]
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"lease_id": format_id("lease", self.lease_id), "token": self.token,
                "task_id": format_id("task", self.task_id), "title": self.title, "scope": list(self.scope),
                "expires_at": iso(self.expires_at.timestamp())}


def task_from_row(row: sqlite3.Row) -> Task:
    from core.models import Task  # lazily: pydantic costs ~50 ms at start-up

    return Task(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        priority=row["priority"],
        status=row["status"],
        depends_on=json.loads(row["deps"] or "[]"),
        scope=json.loads(row["scope"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        last_error=row["last_error"],
        created_by=row["created_by"],
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
    )


def lease_from_row(row: sqlite3.Row) -> Lease:
    from core.models import Lease

    return Lease(
        id=row["id"],
        task_id=row["task_id"],
        task_title=row["task_title"],
        agent=row["agent"],
        worktree=row["worktree"],
        token=row["token"],
        status=row["status"],
        ttl=row["ttl"],
        acquired_at=utc(row["acquired_at"]),
        heartbeat_at=utc(row["heartbeat_at"]),
        expires_at=utc(row["expires_at"]),
        ended_at=utc(row["ended_at"]),
        claims=json.loads(row["claim_paths"] or "[]"),
    )


class LeaseInfo(NamedTuple):
    """A lease as plain data: what the lease verbs answer, so that ``tower lease heartbeat`` and
    ``tower task done`` print it without loading pydantic. Same fields as ``core.models.Lease``,
    and ``to_json()`` is exactly its JSON (a test holds them equal)."""

    id: int
    task_id: int
    task_title: str | None
    agent: str
    worktree: str | None
    token: int
    status: str
    ttl: float
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    claims: list[str]

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LeaseInfo:
        return cls(row["id"], row["task_id"], row["task_title"], row["agent"], row["worktree"], row["token"],
                   row["status"], row["ttl"], utc(row["acquired_at"]), utc(row["heartbeat_at"]),
                   utc(row["expires_at"]), utc(row["ended_at"]), json.loads(row["claim_paths"] or "[]"))

    def to_json(self) -> dict[str, Any]:
        def when(dt: datetime | None) -> str | None:
            return None if dt is None else iso(dt.timestamp())

        return {"id": format_id("lease", self.id), "task_id": format_id("task", self.task_id),
                "task_title": self.task_title, "agent": self.agent, "worktree": self.worktree,
                "token": self.token, "status": self.status, "ttl": self.ttl,
                "acquired_at": when(self.acquired_at), "heartbeat_at": when(self.heartbeat_at),
                "expires_at": when(self.expires_at), "ended_at": when(self.ended_at), "claims": list(self.claims)}


def _holder(row: sqlite3.Row) -> str:
    where = f" in {row['worktree']}" if row["worktree"] else ""
    return f"{format_id('lease', row['lease_id'])} ({row['agent']}{where}, task {format_id('task', row['task_id'])})"


class LeaseTx:
    """What a lease verb's transaction sees: the time, the lease row, and why it must refuse (if it must)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lease: sqlite3.Row | None = None
        self.problem: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class TaskVerbs(StoreBase):
    # -- reads ---------------------------------------------------------------

    async def get_task(self, task_id: int) -> Task:
        row = await self._fetchone(_TASK_SELECT + " WHERE t.id = ?", (task_id,))
        if row is None:
            raise NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
        return task_from_row(row)

    async def list_tasks(self, status: str | None = None) -> list[Task]:
        if status is None:
            rows = await self._fetchall(_TASK_SELECT + " ORDER BY t.id")
        else:
            rows = await self._fetchall(_TASK_SELECT + " WHERE t.status = ? ORDER BY t.id", (status,))
        return [task_from_row(r) for r in rows]

    async def get_lease(self, lease_id: int) -> Lease:
        row = await self._fetchone(_LEASE_SELECT + " WHERE l.id = ?", (lease_id,))
        if row is None:
            raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
        return lease_from_row(row)

    async def lease_info(self, lease_id: int) -> LeaseInfo:
        """``get_lease`` as plain data (no pydantic): for the agents' hot path."""
        row = await self._fetchone(_LEASE_SELECT + " WHERE l.id = ?", (lease_id,))
        if row is None:
            raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
        return LeaseInfo.from_row(row)

    async def task_progress(self, task_id: int) -> tuple[str, int, int]:
        """``(status, attempts, max_attempts)`` of a task, without models."""
        row = await self._task_row(task_id)
        return row["status"], row["attempts"], row["max_attempts"]

    async def list_leases(self, *, all: bool = False, task_id: int | None = None) -> list[Lease]:
        where, params = [], []
        if not all:
            where.append("l.status = 'active'")
        if task_id is not None:
            where.append("l.task_id = ?")
            params.append(task_id)
        sql = _LEASE_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY l.id"
        return [lease_from_row(r) for r in await self._fetchall(sql, tuple(params))]

    async def is_lease_holder(self, name: str) -> bool:
        """True when ``name`` has held a lease in this store: it is an agent's name."""
        return await self._fetchone("SELECT 1 FROM leases WHERE agent = ? LIMIT 1", (name,)) is not None

    async def lease_worktree_path(self, lease_id: int) -> str | None:
        """Where the lease's worktree lives (None if it names none); NotFound for an unknown lease."""
        row = await self._fetchone(
            "SELECT w.path FROM leases l LEFT JOIN worktrees w ON w.name = l.worktree WHERE l.id = ?", (lease_id,)
        )
        if row is None:
            raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
        return row[0]

    async def worktree_rows(self) -> list[tuple[str, str, bool]]:
        """``(name, path, active)`` of every registered worktree, without models."""
        rows = await self._fetchall("SELECT name, path, active FROM worktrees ORDER BY name")
        return [(r[0], r[1], bool(r[2])) for r in rows]

    async def list_claims(self) -> list[dict[str, Any]]:
        rows = await self._fetchall(
            "SELECT c.path, c.lease_id, c.worktree, c.claimed_at, l.agent, l.task_id"
            " FROM claims c JOIN leases l ON l.id = c.lease_id WHERE c.active = 1 ORDER BY c.path"
        )
        return [dict(r) for r in rows]

    async def list_worktrees(self) -> list[Worktree]:
        from core.models import Worktree

        rows = await self._fetchall("SELECT * FROM worktrees ORDER BY name")
        return [
            Worktree(
                name=r["name"],
                path=r["path"],
                branch=r["branch"],
                agent=r["agent"],
                last_seen=utc(r["last_seen"]),
                active=bool(r["active"]),
            )
            for r in rows
        ]

    # -- tasks ---------------------------------------------------------------

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
        async with self.transaction():
            for dep in deps:
                if await self._fetchone("SELECT 1 FROM tasks WHERE id = ?", (dep,)) is None:
                    raise NotFound(f"no task {format_id('task', dep)} to depend on", code="task_not_found")
            now = self.clock()
            task_id = await self._exec(
                "INSERT INTO tasks (title, description, priority, scope, max_attempts, created_by,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (title, description, priority, json.dumps(globs), max_attempts, actor or self.actor, now, now),
            )
            for dep in deps:
                await self._exec("INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)", (task_id, dep))
            await self._audit(
                "task.added",
                actor=actor,
                task_id=task_id,
                details={"title": title, "priority": priority, "scope": globs,
                         "depends_on": [format_id("task", d) for d in deps], "max_attempts": max_attempts},
                now=now,
            )
        return await self.get_task(task_id)

    async def claim_task(
        self,
        *,
        agent: str,
        worktree: str | None = None,
        task_id: int | None = None,
        ttl: float = rules.DEFAULT_TTL,
    ) -> ClaimRow:
        """Lease the next eligible task (or ``task_id``) to ``agent``.

        Eligible: pending, every dependency done; highest priority first, then
        the oldest. Raises NotFound(code="no_task") when nothing is eligible.
        """
        ttl = rules.check_ttl(ttl)
        problem: Exception | None = None
        async with self.transaction():
            now = self.clock()
            await self._reap_locked(now)
            if task_id is not None:
                row = await self._fetchone(f"SELECT t.*, ({_ELIGIBLE}) AS ready FROM tasks t WHERE t.id = ?", (task_id,))
                if row is None:
                    problem = NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
                elif row["status"] != "pending":
                    problem = Refused(
                        f"task {format_id('task', task_id)} is {row['status']}, not pending",
                        code="task_not_pending",
                    )
                elif not row["ready"]:
                    problem = Refused(
                        f"task {format_id('task', task_id)} waits for its dependencies",
                        code="task_blocked",
                    )
            else:
                row = await self._fetchone(
                    f"SELECT t.* FROM tasks t WHERE {_ELIGIBLE} ORDER BY t.priority DESC, t.id LIMIT 1"
                )
                if row is None:
                    problem = NotFound("no eligible task in the queue", code="no_task")
            if problem is None:
                lease_id = await self._exec(
                    "INSERT INTO leases (task_id, agent, worktree, token, ttl, acquired_at, heartbeat_at,"
                    " expires_at) VALUES (?, ?, ?, (SELECT ifnull(max(token), 0) + 1 FROM leases), ?, ?, ?, ?)",
                    (row["id"], agent, worktree, ttl, now, now, now + ttl),
                )
                token = (await self._fetchone("SELECT token FROM leases WHERE id = ?", (lease_id,)))[0]
                await self._exec(
                    "UPDATE tasks SET status = 'leased', attempts = attempts + 1, updated_at = ?"
                    " WHERE id = ? AND status = 'pending'",
                    (now, row["id"]),
                )
                await self._seen(worktree, agent, now)
                await self._audit(
                    "task.claimed",
                    actor=agent,
                    task_id=row["id"],
                    lease_id=lease_id,
                    worktree=worktree,
                    details={"token": token, "ttl": ttl, "attempt": row["attempts"] + 1},
                    now=now,
                )
        if problem is not None:
            raise problem
        return ClaimRow(
            lease_id=lease_id,
            token=token,
            task_id=row["id"],
            title=row["title"],
            scope=json.loads(row["scope"]),
            expires_at=utc(now + ttl),
        )

    async def complete_task(
        self, lease_id: int, *, token: int | None = None, agent: str | None = None
    ) -> LeaseInfo:
        """Finish the lease's task: task done, lease completed, its claims released."""
        return await self._end_lease(lease_id, "completed", "done", "task.done", token=token, agent=agent)

    async def fail_task(
        self, lease_id: int, reason: str, *, token: int | None = None, agent: str | None = None
    ) -> LeaseInfo:
        """Give up on the lease's task: back to the queue, or failed once attempts run out."""
        if not reason.strip():
            raise BadInput("failing a task needs a --reason")
        return await self._end_lease(lease_id, "failed", None, "task.failed", token=token, agent=agent, reason=reason)

    async def release_lease(
        self, lease_id: int, *, token: int | None = None, agent: str | None = None
    ) -> LeaseInfo:
        """Hand the task back untouched; the attempt does not count against it."""
        return await self._end_lease(lease_id, "released", "pending", "lease.released", token=token, agent=agent)

    async def _end_lease(
        self,
        lease_id: int,
        lease_status: str,
        task_status: str | None,
        event: str,
        *,
        token: int | None,
        agent: str | None,
        reason: str | None = None,
    ) -> LeaseInfo:
        async with self._lease_transaction(lease_id, token=token, agent=agent) as tx:
            if tx.ok:
                lease, now = tx.lease, tx.now
                task = await self._fetchone("SELECT * FROM tasks WHERE id = ?", (lease["task_id"],))
                if task_status is None:
                    task_status = rules.after_lost_attempt(task["attempts"], task["max_attempts"])
                attempts = task["attempts"] - 1 if lease_status == "released" else task["attempts"]
                await self._exec(
                    "UPDATE leases SET status = ?, ended_at = ? WHERE id = ?", (lease_status, now, lease_id)
                )
                released = await self._release_claims_locked(lease_id, None, now)
                await self._cancel_lease_approvals(lease_id, f"lease {format_id('lease', lease_id)} {lease_status}", now)
                await self._exec(
                    "UPDATE tasks SET status = ?, attempts = ?, last_error = coalesce(?, last_error),"
                    " updated_at = ? WHERE id = ?",
                    (task_status, max(attempts, 0), reason, now, lease["task_id"]),
                )
                await self._seen(lease["worktree"], lease["agent"], now)
                details: dict[str, Any] = {"task_status": task_status, "token": lease["token"]}
                if reason:
                    details["reason"] = reason
                if released:
                    details["released"] = released
                await self._audit_lease(event, tx, agent, details=details)
        return await self.lease_info(lease_id)

    async def retry_task(self, task_id: int, *, actor: str | None = None) -> Task:
        """Put a failed or cancelled task back in the queue with a fresh attempt budget."""
        async with self.transaction():
            task = await self._task_row(task_id)
            if task["status"] not in ("failed", "cancelled"):
                raise Refused(
                    f"task {format_id('task', task_id)} is {task['status']}: only failed or cancelled tasks can be retried",
                    code="task_not_retryable",
                )
            now = self.clock()
            await self._exec(
                "UPDATE tasks SET status = 'pending', attempts = 0, updated_at = ? WHERE id = ?", (now, task_id)
            )
            await self._audit("task.retried", actor=actor, task_id=task_id,
                              details={"from": task["status"]}, now=now)
        return await self.get_task(task_id)

    async def cancel_task(self, task_id: int, *, actor: str | None = None) -> Task:
        """Cancel a pending or leased task (its lease is released). Cancelling twice is a no-op."""
        async with self.transaction():
            task = await self._task_row(task_id)
            if task["status"] == "cancelled":
                pass
            elif task["status"] in ("done", "failed"):
                raise Refused(
                    f"task {format_id('task', task_id)} is already {task['status']}", code="task_finished"
                )
            else:
                now = self.clock()
                lease = await self._fetchone(
                    "SELECT * FROM leases WHERE task_id = ? AND status = 'active'", (task_id,)
                )
                details: dict[str, Any] = {"from": task["status"]}
                if lease is not None:
                    await self._exec(
                        "UPDATE leases SET status = 'released', ended_at = ? WHERE id = ?", (now, lease["id"])
                    )
                    details["released"] = await self._release_claims_locked(lease["id"], None, now)
                    await self._cancel_lease_approvals(
                        lease["id"], f"task {format_id('task', task_id)} cancelled", now)
                    details["lease"] = format_id("lease", lease["id"])
                await self._exec(
                    "UPDATE tasks SET status = 'cancelled', updated_at = ? WHERE id = ?", (now, task_id)
                )
                await self._audit("task.cancelled", actor=actor, task_id=task_id,
                                  lease_id=lease["id"] if lease else None, details=details, now=now)
        return await self.get_task(task_id)

    # -- leases --------------------------------------------------------------

    async def heartbeat(
        self, lease_id: int, *, ttl: float | None = None, token: int | None = None, agent: str | None = None
    ) -> LeaseInfo:
        """Push the lease's expiry to now + ttl (default: the lease's own ttl)."""
        if ttl is not None:
            ttl = rules.check_ttl(ttl)
        async with self._lease_transaction(lease_id, token=token, agent=agent) as tx:
            if tx.ok:
                new_ttl = ttl or tx.lease["ttl"]
                await self._exec(
                    "UPDATE leases SET heartbeat_at = ?, expires_at = ?, ttl = ? WHERE id = ?",
                    (tx.now, tx.now + new_ttl, new_ttl, lease_id),
                )
                await self._seen(tx.lease["worktree"], tx.lease["agent"], tx.now)
                await self._audit_lease("lease.heartbeat", tx, agent, details={"ttl": new_ttl})
        return await self.lease_info(lease_id)

    async def reap(self, *, actor: str | None = None) -> list[int]:
        """Expire every active lease past its expiry; returns the lease ids reaped."""
        async with self.transaction():
            return await self._reap_locked(self.clock(), actor=actor)

    async def reap_if_due(self) -> list[int]:
        """Cheap read first: only take the write lock when something has expired,
        and only if it is free: a read must answer while another process writes."""
        due = await self._fetchone(
            "SELECT 1 FROM leases WHERE status = 'active' AND expires_at <= ? LIMIT 1", (self.clock(),)
        )
        return (await self._unless_locked(self.reap) or []) if due else []

    async def _reap_locked(self, now: float, *, actor: str | None = None) -> list[int]:
        rows = await self._fetchall(
            "SELECT l.id, l.task_id, l.agent, l.worktree, l.token, t.attempts, t.max_attempts, t.status AS task_status"
            " FROM leases l JOIN tasks t ON t.id = l.task_id"
            " WHERE l.status = 'active' AND l.expires_at <= ? ORDER BY l.id",
            (now,),
        )
        for row in rows:
            await self._exec("UPDATE leases SET status = 'expired', ended_at = ? WHERE id = ?", (now, row["id"]))
            released = await self._release_claims_locked(row["id"], None, now)
            await self._cancel_lease_approvals(row["id"], f"lease {format_id('lease', row['id'])} expired", now)
            task_status = row["task_status"]
            if task_status == "leased":
                task_status = rules.after_lost_attempt(row["attempts"], row["max_attempts"])
                await self._exec(
                    "UPDATE tasks SET status = ?, last_error = ?, updated_at = ? WHERE id = ?",
                    (task_status, f"lease {format_id('lease', row['id'])} expired", now, row["task_id"]),
                )
            await self._audit(
                "lease.expired",
                actor=actor or "tower",
                task_id=row["task_id"],
                lease_id=row["id"],
                worktree=row["worktree"],
                details={"agent": row["agent"], "token": row["token"], "task_status": task_status,
                         "released": released},
                now=now,
            )
        return [row["id"] for row in rows]

    # -- file claims ---------------------------------------------------------

    async def claim_files(
        self,
        lease_id: int,
        paths: list[str],
        *,
        token: int | None = None,
        agent: str | None = None,
    ) -> list[str]:
        """Claim repo-relative ``paths`` for the lease, all or nothing.

        A path already claimed by this lease is kept (idempotent); a path held
        by another lease, or outside the task's scope, refuses the whole call.
        Returns the paths newly claimed.
        """
        from core.scope import matches

        wanted = sorted(set(paths))
        if not wanted:
            raise BadInput("name at least one path to claim")
        new: list[str] = []
        async with self._lease_transaction(lease_id, token=token, agent=agent) as tx:
            if tx.ok:
                task = await self._task_row(tx.lease["task_id"])
                scope = json.loads(task["scope"])
                outside = [p for p in wanted if scope and not matches(p, scope)]
                if outside:
                    tx.problem = Refused(
                        f"{outside[0]} is outside the scope of task {format_id('task', task['id'])} ({', '.join(scope)})",
                        code="out_of_scope",
                        data={"paths": outside, "scope": scope},
                    )
            if tx.ok:
                # a claim covers its path and everything below it: "src" and
                # "src/app.py" held by two leases would let both write src/app.py
                held = await self._fetchall(
                    "SELECT c.path, c.lease_id, l.agent, l.worktree, l.task_id, w.value AS wanted FROM claims c"
                    " JOIN leases l ON l.id = c.lease_id JOIN json_each(?) w"
                    " WHERE c.active = 1 AND (c.path = w.value"
                    " OR substr(c.path, 1, length(w.value) + 1) = w.value || '/'"
                    " OR substr(w.value, 1, length(c.path) + 1) = c.path || '/')",
                    (json.dumps(wanted),),
                )
                others = [h for h in held if h["lease_id"] != lease_id]
                if others:
                    first = others[0]
                    what = first["path"] if first["path"] == first["wanted"] else (
                        f"{first['wanted']} overlaps {first['path']}, which")
                    tx.problem = Refused(
                        f"{what} is claimed by {_holder(first)}",
                        code="claim_conflict",
                        data={"holders": [
                            {"path": h["path"], "lease_id": format_id("lease", h["lease_id"]),
                             "agent": h["agent"], "worktree": h["worktree"],
                             "task_id": format_id("task", h["task_id"])} for h in others]},
                    )
                else:
                    mine = {h["path"] for h in held if h["path"] == h["wanted"]}
                    new = [p for p in wanted if p not in mine]
                    for path in new:
                        await self._exec(
                            "INSERT INTO claims (lease_id, path, worktree, claimed_at) VALUES (?,?,?,?)",
                            (lease_id, path, tx.lease["worktree"], tx.now),
                        )
                    if new:
                        await self._seen(tx.lease["worktree"], tx.lease["agent"], tx.now)
                        await self._audit_lease("files.claimed", tx, agent,
                                                path=new[0] if len(new) == 1 else None, details={"paths": new})
        return new

    async def release_files(
        self,
        lease_id: int,
        paths: list[str] | None = None,
        *,
        token: int | None = None,
        agent: str | None = None,
    ) -> list[str]:
        """Release the given claims of a lease (all of them when ``paths`` is None)."""
        released: list[str] = []
        async with self._lease_transaction(lease_id, token=token, agent=agent) as tx:
            if tx.ok:
                released = await self._release_claims_locked(lease_id, paths, tx.now)
                if released:
                    await self._audit_lease("files.released", tx, agent,
                                            path=released[0] if len(released) == 1 else None,
                                            details={"paths": released})
        return released

    async def _cancel_lease_approvals(self, lease_id: int, reason: str, now: float) -> None:
        """A lease that ends takes its pending requests with it: nobody may approve a step
        for a holder that is gone (the task may already belong to another agent)."""
        rows = await self._fetchall(
            "UPDATE approvals SET status = 'cancelled', decided_at = ?, decided_by = 'tower', reason = ?"
            " WHERE lease_id = ? AND status = 'pending' RETURNING id, task_id, worktree, summary",
            (now, reason, lease_id),
        )
        for r in rows:
            await self._audit("approval.cancelled", actor="tower", approval_id=r["id"], task_id=r["task_id"],
                              lease_id=lease_id, worktree=r["worktree"],
                              details={"summary": r["summary"], "reason": reason}, now=now)

    async def _release_claims_locked(self, lease_id: int, paths: list[str] | None, now: float) -> list[str]:
        if paths is None:
            rows = await self._fetchall(
                "UPDATE claims SET active = 0, released_at = ? WHERE lease_id = ? AND active = 1 RETURNING path",
                (now, lease_id),
            )
        else:
            marks = ",".join("?" * len(paths)) or "NULL"
            rows = await self._fetchall(
                "UPDATE claims SET active = 0, released_at = ?"
                f" WHERE lease_id = ? AND active = 1 AND path IN ({marks}) RETURNING path",
                (now, lease_id, *paths),
            )
        return sorted(r[0] for r in rows)

    # -- worktrees -----------------------------------------------------------

    async def add_worktree(
        self,
        name: str,
        path: str,
        *,
        branch: str | None = None,
        agent: str | None = None,
        actor: str | None = None,
    ) -> Worktree:
        """Register (or update) a worktree; re-registering the same thing is a no-op."""
        if not name.strip():
            raise BadInput("a worktree needs a name")
        async with self.transaction():
            now = self.clock()
            by_name = await self._fetchone("SELECT * FROM worktrees WHERE name = ?", (name,))
            by_path = await self._fetchone("SELECT * FROM worktrees WHERE path = ?", (path,))
            if by_path is not None and by_path["name"] != name:
                raise Refused(f"{path} is already registered as worktree {by_path['name']}", code="worktree_exists")
            if by_name is not None and by_name["path"] != path and by_name["active"]:
                raise Refused(f"worktree {name} is already registered at {by_name['path']}", code="worktree_exists")
            unchanged = (
                by_name is not None
                and by_name["path"] == path
                and by_name["active"]
                and (branch is None or by_name["branch"] == branch)
            )
            if not unchanged:
                await self._exec(
                    "INSERT INTO worktrees (name, path, branch, agent, last_seen, active) VALUES (?,?,?,?,?,1)"
                    " ON CONFLICT(name) DO UPDATE SET path = excluded.path,"
                    " branch = coalesce(excluded.branch, branch), agent = coalesce(excluded.agent, agent), active = 1",
                    (name, path, branch, agent, now),
                )
                await self._audit("worktree.added", actor=actor, worktree=name,
                                  details={"path": path, "branch": branch}, now=now)
        return next(w for w in await self.list_worktrees() if w.name == name)

    async def remove_worktree(self, name: str, *, actor: str | None = None) -> None:
        """Mark a worktree gone (kept for history: leases and audit events name it)."""
        async with self.transaction():
            row = await self._fetchone("SELECT active FROM worktrees WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"no worktree {name}", code="worktree_not_found")
            if row["active"]:
                await self._exec("UPDATE worktrees SET active = 0 WHERE name = ?", (name,))
                await self._audit("worktree.removed", actor=actor, worktree=name, now=self.clock())

    async def _seen(self, worktree: str | None, agent: str | None, now: float) -> None:
        if worktree:
            await self._exec(
                "UPDATE worktrees SET last_seen = ?, agent = coalesce(?, agent) WHERE name = ?",
                (now, agent, worktree),
            )
        await self._agent_seen(worktree, agent, now)  # store/sessions.py: the agent's session

    # -- helpers -------------------------------------------------------------

    @asynccontextmanager
    async def _lease_transaction(
        self, lease_id: int, *, token: int | None, agent: str | None
    ) -> AsyncIterator[LeaseTx]:
        """One transaction on a lease: reap first, then check the lease is usable.

        The body does its work only ``if tx.ok`` and may set ``tx.problem``
        itself. A problem is raised after COMMIT, so the reap is kept even when
        the caller is refused (its own lease may be what just expired).
        """
        tx = LeaseTx()
        async with self.transaction():
            tx.now = self.clock()
            await self._reap_locked(tx.now)
            tx.lease = await self._lease_row(lease_id)
            tx.problem = self._lease_problem(tx.lease, lease_id, token, agent)
            yield tx
        if tx.problem is not None:
            raise tx.problem

    async def _audit_lease(
        self, event: str, tx: LeaseTx, agent: str | None, *, path: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        lease = tx.lease
        # who acted: the caller (its --agent, else the store's actor), never the lease's
        # holder by default: someone else finishing alice's lease is not alice
        await self._audit(event, actor=agent or self.actor, task_id=lease["task_id"], lease_id=lease["id"],
                          worktree=lease["worktree"], path=path, details=details, now=tx.now)

    async def _task_row(self, task_id: int) -> sqlite3.Row:
        row = await self._fetchone("SELECT * FROM tasks WHERE id = ?", (task_id,))
        if row is None:
            raise NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
        return row

    async def _lease_row(self, lease_id: int) -> sqlite3.Row | None:
        return await self._fetchone("SELECT * FROM leases WHERE id = ?", (lease_id,))

    @staticmethod
    def _lease_problem(
        lease: sqlite3.Row | None, lease_id: int, token: int | None, agent: str | None
    ) -> Exception | None:
        """Why a call presenting this lease must be refused, or None."""
        lid = format_id("lease", lease_id)
        if lease is None:
            return NotFound(f"no lease {lid}", code="lease_not_found")
        if lease["status"] != "active":
            return Refused(
                f"lease {lid} is {lease['status']}, not active: its task may belong to another agent now",
                code="lease_not_active",
                data={"status": lease["status"]},
            )
        if token is not None and token != lease["token"]:
            return Refused(
                f"stale token {token} for lease {lid} (current token is {lease['token']})", code="stale_token"
            )
        if agent is not None and agent != lease["agent"]:
            return Refused(f"lease {lid} belongs to {lease['agent']}, not {agent}", code="foreign_lease")
        return None
