"""Reads and records for the cooperative channels: the git commit guard and the MCP server.

The guard judges a commit of possibly thousands of files, so it reads every
active claim in one query (and the committing worktree's leases in another)
and matches in memory; a refusal is recorded with its audit event in one
transaction. The MCP server's status tool reads what one agent holds and what
waits for it.
"""

from __future__ import annotations

from core.records import record
from store.db import StoreBase
from store.rows import READY, json_items, lease_from_row, lease_select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# A refused commit of 5,000 files must not write a 5,000-entry audit event.
REFUSAL_DETAIL_LIMIT = 50


@record(frozen=True)
class HeldClaim:
    """An active claim with its holder, as the guard needs it."""

    path: str
    lease_id: int
    agent: str
    worktree: str | None
    task_id: int
    task_title: str


@record(frozen=True)
class WorktreeLease:
    """An active lease of the committing worktree and the scope of its task."""

    lease_id: int
    agent: str
    task_id: int
    scope: tuple[str, ...]


class ChannelVerbs(StoreBase):
    async def active_claims(self) -> list[HeldClaim]:
        """Every active claim with its holder, in one query."""
        rows = await self._fetchall(
            "SELECT c.path, c.lease_id, l.agent, l.worktree, l.task_id, t.title FROM claims c"
            " JOIN leases l ON l.id = c.lease_id JOIN tasks t ON t.id = l.task_id"
            " WHERE c.active = 1 AND l.status = 'active'"
        )
        return [HeldClaim(*r) for r in rows]

    async def worktree_leases(self, worktree: str) -> list[WorktreeLease]:
        """The active leases held in ``worktree``, each with its task's scope."""
        rows = await self._fetchall(
            "SELECT l.id, l.agent, l.task_id, t.scope FROM leases l JOIN tasks t ON t.id = l.task_id"
            " WHERE l.status = 'active' AND l.worktree = ? ORDER BY l.id",
            (worktree,),
        )
        return [WorktreeLease(r[0], r[1], r[2], json_items(r[3])) for r in rows]

    async def record_guard_refusal(
        self,
        *,
        hook: str,
        actor: str,
        worktree: str | None,
        refusals: list[dict[str, Any]],
        lease_id: int | None = None,
        task_id: int | None = None,
    ) -> int:
        """Append one ``guard.refused`` event for a refused commit or push; returns its seq.

        ``refusals`` lists what was refused and why (``path``, ``reason`` and the
        holder's ids); only the first :data:`REFUSAL_DETAIL_LIMIT` are kept, with
        the full count.
        """
        shown = refusals[:REFUSAL_DETAIL_LIMIT]
        details: dict[str, Any] = {"hook": hook, "count": len(refusals), "refusals": shown}
        first_path = refusals[0].get("path") if refusals else None
        async with self.transaction() as tx:
            return await self._audit(
                tx,
                "guard.refused",
                actor=actor,
                worktree=worktree,
                lease_id=lease_id,
                task_id=task_id,
                path=first_path if isinstance(first_path, str) else None,
                details=details,
            )

    async def record_hook_denial(self, *, agent: str, actor: str, tool: str, reason: str,
                                 session: str | None = None, path: str | None = None,
                                 command: str | None = None, worktree: str | None = None) -> int:
        """Append one ``hook.denied`` event: an agent's hook refused a tool call; returns its seq."""
        details: dict[str, Any] = {"agent": agent, "session": session, "tool": tool,
                                   "reason": reason[:500]}
        if command is not None:
            details["command"] = command[:300]
        async with self.transaction() as tx:
            return await self._audit(tx, "hook.denied", actor=actor, worktree=worktree, path=path,
                                     details=details)

    async def queue_counts(self) -> dict[str, int]:
        """How many tasks wait: pending, and of those the ones whose dependencies are done."""
        row = await self._fetchone(
            f"SELECT count(*), sum(CASE WHEN {READY} THEN 1 ELSE 0 END) FROM tasks t WHERE t.status = 'pending'"
        )
        assert row is not None
        return {"pending": row[0] or 0, "eligible": row[1] or 0}

    async def agent_leases(self, agent: str) -> list[dict[str, Any]]:
        """``agent``'s active leases with their claims and their task's scope, as JSON-ready dicts."""
        from core.ids import format_id
        from core.vocab import iso

        rows = await self._fetchall(lease_select(self.dialect) + " WHERE l.status = 'active' AND l.agent = ? ORDER BY l.id",
                                    (agent,))
        return [
            {"lease_id": format_id("lease", lease.id), "task_id": format_id("task", lease.task_id),
             "title": lease.task_title, "worktree": lease.worktree, "token": lease.token, "ttl": lease.ttl,
             "expires_at": iso(lease.expires_at), "scope": list(lease.scope), "claims": list(lease.claims)}
            for lease in map(lease_from_row, rows)
        ]
