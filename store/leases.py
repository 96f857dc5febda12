"""Verbs on leases and file claims: claim a task, heartbeat, finish, fail, release, reap,
claim and release files.

Each verb is one transaction that also appends its audit event. Verbs that
touch a lease reap expired leases first, in the same transaction, so a holder
whose lease ran out is refused even if nobody ran ``tower reap``. Refusals
found after a reap are raised after COMMIT so the reap itself is kept (see
store/lifecycle.py).
"""

from __future__ import annotations

import json

from core import rules
from core.errors import BadInput, NotFound, Refused
from core.ids import format_id
from core.models import ClaimResult, Lease
from store import lifecycle

from store.db import StoreBase
from store.rows import READY, json_items, lease_from_row, lease_select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Row


def _holder(row: Row) -> str:
    where = f" in {row['worktree']}" if row["worktree"] else ""
    return f"{format_id('lease', row['lease_id'])} ({row['agent']}{where}, task {format_id('task', row['task_id'])})"


class LeaseVerbs(StoreBase):
    # -- reads ---------------------------------------------------------------

    async def get_lease(self, lease_id: int) -> Lease:
        row = await self._fetchone(lease_select(self.dialect) + " WHERE l.id = ?", (lease_id,))
        if row is None:
            raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
        return lease_from_row(row)

    async def list_leases(self, *, all: bool = False, task_id: int | None = None) -> list[Lease]:
        where, params = [], []
        if not all:
            where.append("l.status = 'active'")
        if task_id is not None:
            where.append("l.task_id = ?")
            params.append(task_id)
        sql = lease_select(self.dialect) + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY l.id"
        return [lease_from_row(r) for r in await self._fetchall(sql, tuple(params))]

    async def is_lease_holder(self, name: str) -> bool:
        """True when ``name`` has held a lease in this store: it is an agent's name."""
        return await lifecycle.has_held_lease(self.backend, name)

    async def lease_worktree_path(self, lease_id: int) -> str | None:
        """Where the lease's worktree lives (None if it names none); NotFound for an unknown lease."""
        row = await self._fetchone(
            "SELECT w.path FROM leases l LEFT JOIN worktrees w ON w.name = l.worktree WHERE l.id = ?", (lease_id,)
        )
        if row is None:
            raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
        path: str | None = row[0]
        return path

    # -- leasing a task ------------------------------------------------------

    async def claim_task(
        self,
        *,
        agent: str,
        worktree: str | None = None,
        task_id: int | None = None,
        ttl: float = rules.DEFAULT_TTL,
    ) -> ClaimResult:
        """Lease the next eligible task (or ``task_id``) to ``agent``.

        Eligible: pending, every dependency done; highest priority first, then
        the oldest. Raises NotFound(code="no_task") when nothing is eligible.
        """
        ttl = rules.check_ttl(ttl)
        problem: Exception | None = None
        async with self.transaction() as tx:
            await lifecycle.reap(self, tx)
            if task_id is not None:
                row = await tx.fetchone(
                    f"SELECT t.id, t.title, t.scope, t.attempts, t.status, {READY} AS ready FROM tasks t WHERE t.id = ?",
                    (task_id,))
                if row is None:
                    problem = NotFound(f"no task {format_id('task', task_id)}", code="task_not_found")
                elif row["status"] != "pending":
                    problem = Refused(f"task {format_id('task', task_id)} is {row['status']}, not pending",
                                      code="task_not_pending")
                elif not row["ready"]:
                    problem = Refused(f"task {format_id('task', task_id)} waits for its dependencies",
                                      code="task_blocked")
            else:
                row = await tx.fetchone(
                    "SELECT t.id, t.title, t.scope, t.attempts FROM tasks t"
                    f" WHERE t.status = 'pending' AND {READY} ORDER BY t.priority DESC, t.id LIMIT 1")
                if row is None:
                    problem = NotFound("no eligible task in the queue", code="no_task")
            if problem is None:
                assert row is not None
                lease = await tx.fetchone(
                    "INSERT INTO leases (task_id, agent, worktree, token, ttl, acquired_at, heartbeat_at, expires_at)"
                    " VALUES (?, ?, ?, (SELECT coalesce(max(token), 0) + 1 FROM leases), ?, ?, ?, ?)"
                    " RETURNING id, token",
                    (row[0], agent, worktree, ttl, tx.now, tx.now, tx.now + ttl),
                )
                assert lease is not None
                lease_id, token = lease[0], lease[1]
                await lifecycle.move_task(tx, row[0], "leased", attempts=row[3] + 1)
                await lifecycle.seen(self, tx, worktree, agent)
                await self._audit(tx, "task.claimed", actor=agent, task_id=row[0], lease_id=lease_id,
                                  worktree=worktree, details={"token": token, "ttl": ttl, "attempt": row[3] + 1})
                result = ClaimResult(lease_id=lease_id, token=token, task_id=row[0], title=row[1],
                                     scope=json_items(row[2]), expires_at=tx.now + ttl)
        if problem is not None:
            raise problem
        return result

    # -- a lease's life ------------------------------------------------------

    async def complete_task(self, lease_id: int, *, token: int | None = None, agent: str | None = None) -> Lease:
        """Finish the lease's task: task done, lease completed, its claims released."""
        return await self._end_lease(lease_id, "completed", "done", "task.done", token=token, agent=agent)

    async def fail_task(
        self, lease_id: int, reason: str, *, token: int | None = None, agent: str | None = None
    ) -> Lease:
        """Give up on the lease's task: back to the queue, or failed once attempts run out."""
        if not reason.strip():
            raise BadInput("failing a task needs a --reason")
        return await self._end_lease(lease_id, "failed", None, "task.failed", token=token, agent=agent, reason=reason)

    async def release_lease(self, lease_id: int, *, token: int | None = None, agent: str | None = None) -> Lease:
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
    ) -> Lease:
        async with lifecycle.lease_transaction(self, lease_id, token=token, agent=agent) as step:
            if step.ok:
                tx, lease = step.tx, step.row
                task = await tx.fetchone("SELECT attempts, max_attempts FROM tasks WHERE id = ?", (lease["task_id"],))
                assert task is not None
                attempts, max_attempts = task[0], task[1]
                if task_status is None:
                    task_status = rules.after_lost_attempt(attempts, max_attempts)
                if lease_status == "released":
                    attempts -= 1
                released = await lifecycle.end_lease(
                    self, tx, lease_id, lease_status, f"lease {format_id('lease', lease_id)} {lease_status}")
                await lifecycle.move_task(tx, lease["task_id"], task_status, attempts=max(attempts, 0),
                                          last_error=reason)
                await lifecycle.seen(self, tx, lease["worktree"], lease["agent"])
                details: dict[str, Any] = {"task_status": task_status, "token": lease["token"]}
                if reason:
                    details["reason"] = reason
                if released:
                    details["released"] = released
                await lifecycle.audit_lease(self, step, event, agent, details=details)
        return await self.get_lease(lease_id)

    async def heartbeat(
        self, lease_id: int, *, ttl: float | None = None, token: int | None = None, agent: str | None = None
    ) -> Lease:
        """Push the lease's expiry to now + ttl (default: the lease's own ttl)."""
        if ttl is not None:
            ttl = rules.check_ttl(ttl)
        async with lifecycle.lease_transaction(self, lease_id, token=token, agent=agent) as step:
            if step.ok:
                tx, lease = step.tx, step.row
                new_ttl = ttl or lease["ttl"]
                await tx.execute(
                    "UPDATE leases SET heartbeat_at = ?, expires_at = ?, ttl = ? WHERE id = ?",
                    (tx.now, tx.now + new_ttl, new_ttl, lease_id),
                )
                await lifecycle.seen(self, tx, lease["worktree"], lease["agent"])
                await lifecycle.audit_lease(self, step, "lease.heartbeat", agent, details={"ttl": new_ttl})
        return await self.get_lease(lease_id)

    async def reap(self, *, actor: str | None = None, wait: bool = True) -> list[int]:
        """Expire every active lease past its expiry; returns the lease ids reaped."""
        async with self.transaction(wait=wait) as tx:
            return await lifecycle.reap(self, tx, actor=actor)

    async def reap_if_due(self) -> list[int]:
        """Cheap read first: only take the write lock when something has expired,
        and only if it is free: a read must answer while another process writes."""
        due = await self._fetchone(
            "SELECT 1 FROM leases WHERE status = 'active' AND expires_at <= ? LIMIT 1", (self.clock(),)
        )
        if due is None:
            return []
        return await self._unless_locked(lambda: self.reap(wait=False)) or []

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
        async with lifecycle.lease_transaction(self, lease_id, token=token, agent=agent) as step:
            tx = step.tx
            if step.ok:
                task = await tx.fetchone("SELECT id, scope FROM tasks WHERE id = ?", (step.row["task_id"],))
                assert task is not None
                scope = json.loads(task[1])
                outside = [p for p in wanted if scope and not matches(p, scope)]
                if outside:
                    step.problem = Refused(
                        f"{outside[0]} is outside the scope of task {format_id('task', task[0])} ({', '.join(scope)})",
                        code="out_of_scope",
                        data={"paths": outside, "scope": scope},
                    )
            if step.ok:
                # a claim covers its path and everything below it: "src" and
                # "src/app.py" held by two leases would let both write src/app.py
                held = await tx.fetchall(
                    "SELECT c.path, c.lease_id, l.agent, l.worktree, l.task_id, w.value AS wanted FROM claims c"
                    f" JOIN leases l ON l.id = c.lease_id JOIN {tx.dialect.values('text')} AS w"
                    " ON c.active = 1 AND (c.path = w.value"
                    " OR substr(c.path, 1, length(w.value) + 1) = w.value || '/'"
                    " OR substr(w.value, 1, length(c.path) + 1) = c.path || '/')",
                    (tx.dialect.list_param(wanted),),
                )
                others = [h for h in held if h["lease_id"] != lease_id]
                if others:
                    first = others[0]
                    what = first["path"] if first["path"] == first["wanted"] else (
                        f"{first['wanted']} overlaps {first['path']}, which")
                    step.problem = Refused(
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
                    if new:
                        worktree = step.row["worktree"]
                        await tx.executemany(
                            "INSERT INTO claims (lease_id, path, worktree, claimed_at) VALUES (?,?,?,?)",
                            [(lease_id, path, worktree, tx.now) for path in new],
                        )
                        await lifecycle.seen(self, tx, worktree, step.row["agent"])
                        await lifecycle.audit_lease(self, step, "files.claimed", agent,
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
        async with lifecycle.lease_transaction(self, lease_id, token=token, agent=agent) as step:
            if step.ok:
                released = await lifecycle.release_claims(step.tx, lease_id, paths)
                if released:
                    await lifecycle.audit_lease(self, step, "files.released", agent,
                                                path=released[0] if len(released) == 1 else None,
                                                details={"paths": released})
        return released
