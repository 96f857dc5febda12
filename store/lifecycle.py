"""The lease lifecycle shared by the verbs: reaping, ending a lease, releasing its claims,
cancelling its pending approvals, and the lease transaction every lease verb runs in.

A lease ends in one of four ways (completed, failed, released, expired) and
every way does the same three things in the ending verb's transaction: the
lease row gets its status and end time, its active claims are released, and
its pending approvals are cancelled (nobody may approve a step for a holder
that is gone: the task may already belong to another agent). The task verbs,
the lease verbs and the approval verbs (``decide`` reaps first) all call
these functions; none of them calls another verb class.

Everything here runs inside a transaction the caller holds (``tx``) and
appends its audit events through ``store._audit``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from core import rules
from core.errors import NotFound, Refused
from core.ids import format_id
from store import sessions
from store.backend import ConstraintViolation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Backend, Row, Tx
    from store.db import StoreBase


_MOVES: dict[str, str] = {}


async def move_task(tx: Tx, task_id: int, target: str, *, attempts: int | None = None,
                    last_error: str | None = None) -> None:
    """Move a task to ``target`` now (setting its attempts, or noting its last error).

    Every task status is written here, by one statement that only moves a task
    from a status ``core.rules.TASK_TRANSITIONS`` allows: a verb that tries any
    other move is a bug, and its transaction rolls back whole.
    """
    sql = _MOVES.get(target)
    if sql is None:
        allowed = ", ".join(f"'{s}'" for s in rules.sources(target)) or "NULL"
        sql = _MOVES[target] = (
            "UPDATE tasks SET status = ?, attempts = coalesce(?, attempts), last_error = coalesce(?, last_error),"
            f" updated_at = ? WHERE id = ? AND status IN ({allowed}) RETURNING id"
        )
    if not await tx.fetchall(sql, (target, attempts, last_error, tx.now, task_id)):
        raise ConstraintViolation(f"task {format_id('task', task_id)} cannot move to {target} from its status")


async def has_held_lease(db: Tx | Backend, name: str) -> bool:
    """True when ``name`` has held a lease in this store: it is an agent's name."""
    return await db.fetchone("SELECT 1 FROM leases WHERE agent = ? LIMIT 1", (name,)) is not None


async def seen(store: StoreBase, tx: Tx, worktree: str | None, agent: str | None) -> None:
    """An agent acted in ``worktree`` now: the worktree's last sign of life, and the agent's
    session (store/sessions.py: an agent on the command line is a session too)."""
    if worktree:
        await tx.execute(
            "UPDATE worktrees SET last_seen = ?, agent = coalesce(?, agent) WHERE name = ?",
            (tx.now, agent, worktree),
        )
    await sessions.agent_seen(store, tx, worktree, agent)


async def release_claims(tx: Tx, lease_id: int, paths: Sequence[str] | None = None) -> list[str]:
    """Release the lease's active claims (all of them, or those on ``paths``); returns
    the paths released, sorted."""
    if paths is None:
        rows = await tx.fetchall(
            "UPDATE claims SET active = 0, released_at = ? WHERE lease_id = ? AND active = 1 RETURNING path",
            (tx.now, lease_id),
        )
    else:
        rows = await tx.fetchall(
            "UPDATE claims SET active = 0, released_at = ? WHERE lease_id = ? AND active = 1"
            f" AND path IN {tx.dialect.values('text')} RETURNING path",
            (tx.now, lease_id, tx.dialect.list_param(paths)),
        )
    return sorted(r[0] for r in rows)


async def cancel_approvals(store: StoreBase, tx: Tx, lease_id: int, reason: str) -> None:
    """Cancel the lease's pending approvals (each audited as ``approval.cancelled``)."""
    rows = await tx.fetchall(
        "UPDATE approvals SET status = 'cancelled', decided_at = ?, decided_by = 'tower', reason = ?"
        " WHERE lease_id = ? AND status = 'pending' RETURNING id, task_id, worktree, summary",
        (tx.now, reason, lease_id),
    )
    for r in rows:
        await store._audit(tx, "approval.cancelled", actor="tower", approval_id=r[0], task_id=r[1],
                           lease_id=lease_id, worktree=r[2], details={"summary": r[3], "reason": reason})


async def end_lease(store: StoreBase, tx: Tx, lease_id: int, status: str, why: str) -> list[str]:
    """End an active lease as ``status``: its claims released, its pending approvals
    cancelled (for ``why``). Returns the paths released. The task is the caller's."""
    await tx.execute("UPDATE leases SET status = ?, ended_at = ? WHERE id = ?", (status, tx.now, lease_id))
    released = await release_claims(tx, lease_id)
    await cancel_approvals(store, tx, lease_id, why)
    return released


async def reap(store: StoreBase, tx: Tx, *, actor: str | None = None) -> list[int]:
    """Expire every active lease past its expiry; its task goes back to the queue (or
    fails once its attempts are spent). Returns the lease ids reaped."""
    rows = await tx.fetchall(
        "SELECT l.id, l.task_id, l.agent, l.worktree, l.token, t.attempts, t.max_attempts, t.status"
        " FROM leases l JOIN tasks t ON t.id = l.task_id"
        " WHERE l.status = 'active' AND l.expires_at <= ? ORDER BY l.id",
        (tx.now,),
    )
    for lease_id, task_id, agent, worktree, token, attempts, max_attempts, task_status in rows:
        why = f"lease {format_id('lease', lease_id)} expired"
        released = await end_lease(store, tx, lease_id, "expired", why)
        if task_status == "leased":
            task_status = rules.after_lost_attempt(attempts, max_attempts)
            await move_task(tx, task_id, task_status, last_error=why)
        await store._audit(tx, "lease.expired", actor=actor or "tower", task_id=task_id, lease_id=lease_id,
                           worktree=worktree, details={"agent": agent, "token": token, "task_status": task_status,
                                                       "released": released})
    return [row[0] for row in rows]


class LeaseStep:
    """What a lease verb's transaction holds: the transaction, the lease row, and why the
    verb must refuse (if it must). The verb does its work only ``if step.ok``."""

    __slots__ = ("tx", "lease", "problem")

    def __init__(self, tx: Tx, lease: Row | None, problem: Exception | None) -> None:
        self.tx = tx
        self.lease = lease
        self.problem = problem

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def now(self) -> float:
        return self.tx.now

    @property
    def row(self) -> Row:
        """The lease row (only once ``ok``: a usable lease exists)."""
        assert self.lease is not None
        return self.lease


@asynccontextmanager
async def lease_transaction(
    store: StoreBase, lease_id: int, *, token: int | None, agent: str | None
) -> AsyncIterator[LeaseStep]:
    """One transaction on a lease: reap first, then check the lease is usable.

    The body does its work only ``if step.ok`` and may set ``step.problem``
    itself. A problem is raised after COMMIT, so the reap is kept even when
    the caller is refused (its own lease may be what just expired).
    """
    async with store.transaction() as tx:
        await reap(store, tx)
        lease = await tx.fetchone("SELECT * FROM leases WHERE id = ?", (lease_id,))
        step = LeaseStep(tx, lease, lease_problem(lease, lease_id, token, agent))
        yield step
    if step.problem is not None:
        raise step.problem


async def audit_lease(store: StoreBase, step: LeaseStep, event: str, agent: str | None, *,
                      path: str | None = None, details: dict[str, Any] | None = None) -> None:
    """The audit event of a lease verb, naming the lease, its task and worktree. The actor is
    the caller (its ``agent``, else the store's actor), never the lease's holder by default:
    someone else finishing alice's lease is not alice."""
    lease = step.row
    await store._audit(step.tx, event, actor=agent or store.actor, task_id=lease["task_id"],
                       lease_id=lease["id"], worktree=lease["worktree"], path=path, details=details)


def lease_problem(lease: Row | None, lease_id: int, token: int | None, agent: str | None) -> Exception | None:
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
        return Refused(f"stale token {token} for lease {lid} (current token is {lease['token']})", code="stale_token")
    if agent is not None and agent != lease["agent"]:
        return Refused(f"lease {lid} belongs to {lease['agent']}, not {agent}", code="foreign_lease")
    return None

