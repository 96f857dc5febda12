"""Verbs on worktrees: register, remove (kept for history), list."""

from __future__ import annotations

from core.errors import BadInput, NotFound, Refused
from core.models import Worktree
from store.db import StoreBase
from store.rows import WORKTREE_SELECT, worktree_from_row


class WorktreeVerbs(StoreBase):
    async def list_worktrees(self) -> list[Worktree]:
        return [worktree_from_row(r) for r in await self._fetchall(WORKTREE_SELECT + " ORDER BY name")]

    async def worktree_rows(self) -> list[tuple[str, str, bool]]:
        """``(name, path, active)`` of every registered worktree."""
        rows = await self._fetchall("SELECT name, path, active FROM worktrees ORDER BY name")
        return [(r[0], r[1], bool(r[2])) for r in rows]

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
        async with self.transaction() as tx:
            rows = await tx.fetchall(WORKTREE_SELECT + " WHERE name = ? OR path = ?", (name, path))
            by_name = next((worktree_from_row(r) for r in rows if r[0] == name), None)
            by_path = next((worktree_from_row(r) for r in rows if r[1] == path), None)
            if by_path is not None and by_path.name != name:
                raise Refused(f"{path} is already registered as worktree {by_path.name}", code="worktree_exists")
            if by_name is not None and by_name.path != path and by_name.active:
                raise Refused(f"worktree {name} is already registered at {by_name.path}", code="worktree_exists")
            unchanged = (by_name is not None and by_name.path == path and by_name.active
                         and (branch is None or by_name.branch == branch))
            if not unchanged:
                await tx.execute(
                    "INSERT INTO worktrees (name, path, branch, agent, last_seen, active) VALUES (?,?,?,?,?,1)"
                    " ON CONFLICT (name) DO UPDATE SET path = excluded.path,"
                    " branch = coalesce(excluded.branch, worktrees.branch),"
                    " agent = coalesce(excluded.agent, worktrees.agent), active = 1",
                    (name, path, branch, agent, tx.now),
                )
                await self._audit(tx, "worktree.added", actor=actor, worktree=name,
                                  details={"path": path, "branch": branch})
            row = await tx.fetchone(WORKTREE_SELECT + " WHERE name = ?", (name,))
        assert row is not None
        return worktree_from_row(row)

    async def remove_worktree(self, name: str, *, actor: str | None = None) -> None:
        """Mark a worktree gone (kept for history: leases and audit events name it)."""
        async with self.transaction() as tx:
            row = await tx.fetchone("SELECT active FROM worktrees WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"no worktree {name}", code="worktree_not_found")
            if row[0]:
                await tx.execute("UPDATE worktrees SET active = 0 WHERE name = ?", (name,))
                await self._audit(tx, "worktree.removed", actor=actor, worktree=name)
