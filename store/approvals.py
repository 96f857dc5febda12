"""Verbs on approvals: request, wait, decide (final and idempotent), expire, cancel.

A decision is final. Repeating it returns the same approval and changes
nothing; the opposite decision, or any decision on an expired or cancelled
request, is refused (exit 4) and the refused attempt is itself audited
(``approval.decision_refused``), so the log shows who tried to overturn what.
"""

from __future__ import annotations

import json
import time

from core.errors import BadInput, NotFound, Refused, TimedOut
from core.ids import format_id
from core.limits import check_detail
from core.models import Approval
from core.vocab import APPROVAL_KINDS
from store import lifecycle

from store.db import StoreBase
from store.rows import APPROVAL_SELECT, approval_from_row

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Row, Tx


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class ApprovalVerbs(StoreBase):
    async def get_approval(self, approval_id: int) -> Approval:
        row = await self._fetchone(APPROVAL_SELECT + " WHERE id = ?", (approval_id,))
        if row is None:
            raise NotFound(f"no approval {format_id('approval', approval_id)}", code="approval_not_found")
        return approval_from_row(row)

    async def list_approvals(self, status: str | None = None) -> list[Approval]:
        """Pending first (oldest first), then the rest newest first."""
        if status is None:
            rows = await self._fetchall(
                APPROVAL_SELECT + " ORDER BY CASE WHEN status = 'pending' THEN 0 ELSE 1 END,"
                " CASE WHEN status = 'pending' THEN id ELSE -id END"
            )
        else:
            rows = await self._fetchall(APPROVAL_SELECT + " WHERE status = ? ORDER BY id", (status,))
        return [approval_from_row(r) for r in rows]

    async def request_approval(
        self,
        *,
        kind: str,
        summary: str,
        detail: dict[str, Any] | None = None,
        lease_id: int | None = None,
        key: str | None = None,
        requested_by: str | None = None,
        worktree: str | None = None,
    ) -> Approval:
        """File a pending request. With ``key``, asking again returns the same approval.

        A key is the requester's own (``requested_by``, else the lease's agent,
        else the store's actor): another requester's key names another request.
        The same key for a different request (kind, summary or detail) is
        refused (``key_reused``, exit 4): an old decision never answers a new question.
        """
        if kind not in APPROVAL_KINDS:
            raise BadInput(f"unknown approval kind {kind!r}: use one of {', '.join(APPROVAL_KINDS)}")
        if not summary.strip():
            raise BadInput("an approval needs a non-empty --summary")
        detail = detail or {}
        check_detail(detail)
        async with self.transaction() as tx:
            task_id = None
            lease = None
            if lease_id is not None:
                lease = await tx.fetchone("SELECT * FROM leases WHERE id = ?", (lease_id,))
                if lease is None:
                    raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
                if requested_by is not None and requested_by != lease["agent"]:
                    raise Refused(
                        f"lease {format_id('lease', lease_id)} belongs to {lease['agent']}, not {requested_by}",
                        code="foreign_lease",
                    )
            requester = requested_by or (lease["agent"] if lease is not None else None) or self.actor
            if key is not None:
                row = await tx.fetchone(APPROVAL_SELECT + " WHERE idem_key = ? AND requested_by = ?",
                                        (key, requester))
                if row is not None:
                    if (row["kind"], row["summary"], _loads(row["detail"])) != (kind, summary, detail):
                        aid = format_id("approval", row["id"])
                        raise Refused(
                            f"key {key!r} already names {aid} ({row['kind']}: {row['summary']}), a different"
                            " request: use a new key for a new request",
                            code="key_reused", data={"approval_id": aid, "status": row["status"]},
                        )
                    return approval_from_row(row)
            if lease is not None:
                if lease["status"] != "active" or lease["expires_at"] <= tx.now:
                    raise Refused(
                        f"lease {format_id('lease', lease_id)} is not active: it cannot ask for approvals",
                        code="lease_not_active",
                    )
                task_id = lease["task_id"]
                worktree = worktree or lease["worktree"]
            approval_id = await tx.insert(
                "INSERT INTO approvals (kind, summary, detail, requested_by, worktree, lease_id, task_id,"
                " idem_key, created_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                (kind, summary, json.dumps(detail), requester, worktree, lease_id, task_id, key, tx.now),
            )
            await self._audit(
                tx,
                "approval.requested",
                actor=requester,
                approval_id=approval_id,
                task_id=task_id,
                lease_id=lease_id,
                worktree=worktree,
                details={"kind": kind, "summary": summary, **({"key": key} if key else {})},
            )
        return await self.get_approval(approval_id)

    async def decide_approval(
        self, approval_id: int, *, approve: bool, reason: str | None = None, actor: str | None = None,
        agents: tuple[str, ...] | list[str] = (),
    ) -> Approval:
        """Approve or reject. Final: the same decision again returns the same result,
        the opposite one is refused, and an expired or cancelled request cannot be decided.

        Only a person decides: refused (``person_only``, exit 4, audited as
        ``approval.decision_refused``) when the actor is the request's own
        requester, has held a lease in this store, or matches one of the
        ``agents`` globs (the policy's ``[agents] names``).
        """
        import fnmatch

        target = "approved" if approve else "rejected"
        reason = (reason or "").strip() or None
        if not approve and reason is None:
            raise BadInput("rejecting needs a reason")
        actor = actor or self.actor
        aid = format_id("approval", approval_id)
        problem: Refused | None = None
        async with self.transaction() as tx:
            # a request tied to a lease dies with it: reap first, so that a lease
            # past its expiry cannot have a step approved on its behalf
            await lifecycle.reap(self, tx)
            row = await tx.fetchone(APPROVAL_SELECT + " WHERE id = ?", (approval_id,))
            if row is None:
                raise NotFound(f"no approval {aid}", code="approval_not_found")
            agent = None
            if actor == row["requested_by"]:
                agent = f"{actor} filed {aid} itself, and a request is decided by someone other than its requester"
            elif await lifecycle.has_held_lease(tx, actor):
                agent = f"{actor} is an agent (it holds leases in this store)"
            elif any(fnmatch.fnmatchcase(actor, g) for g in agents):
                agent = f"{actor} is an agent (the policy's [agents] names say so)"
            if agent is not None:
                problem = Refused(
                    f"{agent}: only a person decides an approval (in the control room, or"
                    f" `tower approval {'approve' if approve else 'reject'} {aid}` in a shell without TOWER_AGENT)",
                    code="person_only", data={"status": row["status"], "actor": actor},
                )
            elif row["status"] == target:
                return approval_from_row(row)
            elif row["status"] != "pending":
                if row["status"] in ("approved", "rejected"):
                    problem = Refused(
                        f"approval {aid} was already {row['status']} by {row['decided_by']}",
                        code="already_decided", data={"status": row["status"]},
                    )
                else:
                    problem = Refused(f"approval {aid} is {row['status']}: too late to decide",
                                      code="approval_closed", data={"status": row["status"]})
            if problem is not None:
                # kept (COMMIT) and raised below: a refused attempt leaves a trace
                await self._audit(
                    tx,
                    "approval.decision_refused",
                    actor=actor,
                    approval_id=approval_id,
                    task_id=row["task_id"],
                    lease_id=row["lease_id"],
                    worktree=row["worktree"],
                    details={"attempted": target, "status": row["status"], "why": problem.code,
                             **({"reason": reason} if reason else {})},
                )
            else:
                await self._close(tx, row, target, actor=actor, reason=reason)
        if problem is not None:
            raise problem
        return await self.get_approval(approval_id)

    async def wait_for_decision(
        self,
        approval_id: int,
        *,
        timeout: float | None = None,
        expire: bool = True,
        actor: str | None = None,
        interval: float = 0.05,
    ) -> Approval:
        """Block until the request leaves ``pending``; return it as it then is.

        Sleeps on the store's change signal (``wait_for_change``, polled every
        ``interval``), re-reading the row only when someone committed, so a decision made by any process is seen within
        about one interval. When ``timeout`` runs out the request is closed as
        ``expired`` in one transaction (a decision that committed first wins and
        is returned instead) and the expired approval is returned; with
        ``expire=False`` it stays pending and TimedOut is raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # the signal first: a commit after this read wakes the wait below
            signal = await self.change_signal()
            approval = await self.get_approval(approval_id)
            if approval.status != "pending":
                return approval
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                aid = format_id("approval", approval_id)
                if not expire:
                    raise TimedOut(f"approval {aid} is still pending after {timeout:g}s", code="timeout")
                return await self.close_approval(
                    approval_id, "expired", actor=actor, reason=f"nobody decided within {timeout:g}s"
                )
            try:
                await self.wait_for_change(signal, interval=interval, timeout=left)
            except TimeoutError:
                pass  # the loop re-reads once more, then expires

    async def close_approval(self, approval_id: int, status: str, *, actor: str | None = None,
                             reason: str | None = None) -> Approval:
        """Mark a pending request ``expired`` or ``cancelled`` (audited); a request that is
        no longer pending is returned as is, so a decision that won the race stands."""
        if status not in ("expired", "cancelled"):
            raise BadInput(f"an approval can be closed as expired or cancelled, not {status!r}")
        async with self.transaction() as tx:
            row = await tx.fetchone(APPROVAL_SELECT + " WHERE id = ?", (approval_id,))
            if row is None:
                raise NotFound(f"no approval {format_id('approval', approval_id)}", code="approval_not_found")
            if row["status"] == "pending":
                await self._close(tx, row, status, actor=actor, reason=reason)
        return await self.get_approval(approval_id)

    async def _close(self, tx: Tx, row: Row, status: str, *, actor: str | None, reason: str | None) -> None:
        """Move a pending request to ``status`` (approved, rejected, expired, cancelled), audited."""
        await tx.execute(
            "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, reason = ? WHERE id = ?",
            (status, tx.now, actor or self.actor, reason, row["id"]),
        )
        await self._audit(
            tx, f"approval.{status}", actor=actor, approval_id=row["id"], task_id=row["task_id"],
            lease_id=row["lease_id"], worktree=row["worktree"],
            details={"summary": row["summary"], **({"reason": reason} if reason else {})},
        )
