"""Verbs on approvals: request, decide (final and idempotent), expire, cancel."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core.errors import BadInput, NotFound, Refused
from core.ids import format_id
from core.models import APPROVAL_KINDS, Approval, utc
from store.db import StoreBase


def approval_from_row(row: sqlite3.Row) -> Approval:
    return Approval(
        id=row["id"],
        kind=row["kind"],
        summary=row["summary"],
        detail=json.loads(row["detail"]),
        status=row["status"],
        requested_by=row["requested_by"],
        worktree=row["worktree"],
        lease_id=row["lease_id"],
        task_id=row["task_id"],
        key=row["idem_key"],
        created_at=utc(row["created_at"]),
        decided_at=utc(row["decided_at"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
    )


class ApprovalVerbs(StoreBase):
    async def get_approval(self, approval_id: int) -> Approval:
        row = await self._fetchone("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if row is None:
            raise NotFound(f"no approval {format_id('approval', approval_id)}", code="approval_not_found")
        return approval_from_row(row)

    async def list_approvals(self, status: str | None = None) -> list[Approval]:
        """Pending first (oldest first), then the rest newest first."""
        if status is None:
            rows = await self._fetchall(
                "SELECT * FROM approvals ORDER BY status != 'pending',"
                " CASE WHEN status = 'pending' THEN id ELSE -id END"
            )
        else:
            rows = await self._fetchall("SELECT * FROM approvals WHERE status = ? ORDER BY id", (status,))
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
        """File a pending request. With ``key``, the same key returns the same approval."""
        if kind not in APPROVAL_KINDS:
            raise BadInput(f"unknown approval kind {kind!r}: use one of {', '.join(APPROVAL_KINDS)}")
        if not summary.strip():
            raise BadInput("an approval needs a non-empty --summary")
        async with self.transaction():
            if key is not None:
                row = await self._fetchone("SELECT * FROM approvals WHERE idem_key = ?", (key,))
                if row is not None:
                    return approval_from_row(row)
            task_id = None
            if lease_id is not None:
                lease = await self._fetchone("SELECT * FROM leases WHERE id = ?", (lease_id,))
                if lease is None:
                    raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
                if lease["status"] != "active" or lease["expires_at"] <= self.clock():
                    raise Refused(
                        f"lease {format_id('lease', lease_id)} is not active: it cannot ask for approvals",
                        code="lease_not_active",
                    )
                task_id = lease["task_id"]
                worktree = worktree or lease["worktree"]
                requested_by = requested_by or lease["agent"]
            now = self.clock()
            approval_id = await self._exec(
                "INSERT INTO approvals (kind, summary, detail, requested_by, worktree, lease_id, task_id,"
                " idem_key, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (kind, summary, json.dumps(detail or {}), requested_by or self.actor, worktree, lease_id,
                 task_id, key, now),
            )
            await self._audit(
                "approval.requested",
                actor=requested_by,
                approval_id=approval_id,
                task_id=task_id,
                lease_id=lease_id,
                worktree=worktree,
                details={"kind": kind, "summary": summary, **({"key": key} if key else {})},
                now=now,
            )
        return await self.get_approval(approval_id)

    async def decide_approval(
        self, approval_id: int, *, approve: bool, reason: str | None = None, actor: str | None = None
    ) -> Approval:
        """Approve or reject. Final: the same decision again returns the same result,
        the opposite one is refused, and an expired or cancelled request cannot be decided."""
        target = "approved" if approve else "rejected"
        reason = (reason or "").strip() or None
        if not approve and reason is None:
            raise BadInput("rejecting needs a reason")
        async with self.transaction():
            row = await self._fetchone("SELECT * FROM approvals WHERE id = ?", (approval_id,))
            aid = format_id("approval", approval_id)
            if row is None:
                raise NotFound(f"no approval {aid}", code="approval_not_found")
            if row["status"] == target:
                return approval_from_row(row)
            if row["status"] in ("approved", "rejected"):
                raise Refused(
                    f"approval {aid} was already {row['status']} by {row['decided_by']}", code="already_decided",
                    data={"status": row["status"]},
                )
            if row["status"] != "pending":
                raise Refused(f"approval {aid} is {row['status']}: too late to decide", code="approval_closed",
                              data={"status": row["status"]})
            now = self.clock()
            actor = actor or self.actor
            await self._exec(
                "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, reason = ? WHERE id = ?",
                (target, now, actor, reason, approval_id),
            )
            await self._audit(
                f"approval.{target}",
                actor=actor,
                approval_id=approval_id,
                task_id=row["task_id"],
                lease_id=row["lease_id"],
                worktree=row["worktree"],
                details={"summary": row["summary"], **({"reason": reason} if reason else {})},
                now=now,
            )
        return await self.get_approval(approval_id)

    async def close_approval(self, approval_id: int, status: str, *, actor: str | None = None,
                             reason: str | None = None) -> Approval:
        """Mark a pending request ``expired`` or ``cancelled``; a decided one is returned as is."""
        assert status in ("expired", "cancelled")
        async with self.transaction():
            row = await self._fetchone("SELECT * FROM approvals WHERE id = ?", (approval_id,))
            if row is None:
                raise NotFound(f"no approval {format_id('approval', approval_id)}", code="approval_not_found")
            if row["status"] == "pending":
                now = self.clock()
                await self._exec(
                    "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, reason = ? WHERE id = ?",
                    (status, now, actor or self.actor, reason, approval_id),
                )
                await self._audit(
                    f"approval.{status}",
                    actor=actor,
                    approval_id=approval_id,
                    task_id=row["task_id"],
                    lease_id=row["lease_id"],
                    worktree=row["worktree"],
                    details={"summary": row["summary"], **({"reason": reason} if reason else {})},
                    now=now,
                )
        return await self.get_approval(approval_id)
