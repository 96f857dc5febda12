"""Verbs on worktrees: register, remove (kept for history), list.

In a store shared by several machines a worktree is (host, path) and its name is
unique across hosts (core/hosts.py): each host resolves paths, syncs and watches
only its own worktrees, while claims, leases and conflicts name worktrees of any.
"""

from __future__ import annotations

from core.errors import BadInput, NotFound, Refused
from core.hosts import local_host
from core.models import Worktree
from store.db import StoreBase
from store.rows import WORKTREE_SELECT, worktree_from_row


class WorktreeVerbs(StoreBase):
    #: set to act as another host (tests; a process serving several): else core.hosts decides
    host_override: str | None = None

    @property
    def host(self) -> str | None:
        """This host's name in a shared store; None: every worktree is this machine's."""
        return self.host_override or local_host(self.dialect.name)

    def _local(self) -> tuple[str, tuple]:
        """A condition on ``worktrees`` (and its parameters): the worktree is this host's."""
        host = self.host
        if host is None:
            return "1 = 1", ()
        return "(host IS NULL OR host = ?)", (host,)

    async def list_worktrees(self, *, local_only: bool = False) -> list[Worktree]:
        """Every registered worktree (``local_only``: this host's)."""
        where, params = self._local() if local_only else ("1 = 1", ())
        return [worktree_from_row(r)
                for r in await self._fetchall(WORKTREE_SELECT + f" WHERE {where} ORDER BY name", params)]

    async def worktree_rows(self) -> list[tuple[str, str, bool]]:
        """``(name, path, active)`` of this host's registered worktrees (a path means a
        directory here: another host's worktree at the same path is not this one)."""
        where, params = self._local()
        rows = await self._fetchall(f"SELECT name, path, active FROM worktrees WHERE {where} ORDER BY name",
                                    params)
        return [(r[0], r[1], bool(r[2])) for r in rows]

    async def add_worktree(
        self,
        name: str,
        path: str,
        *,
        branch: str | None = None,
        agent: str | None = None,
        actor: str | None = None,
        rename_if_taken: bool = False,
    ) -> Worktree:
        """Register (or update) a worktree of this host; re-registering the same thing is a no-op.

        ``rename_if_taken``: a name held by another worktree (another path, or another
        host's) becomes ``name-2``, ``name-3`` … instead of being refused; decided inside
        the transaction, so two hosts registering ``main`` at once get two names."""
        if not name.strip():
            raise BadInput("a worktree needs a name")
        host = self.host
        local, local_params = self._local()
        async with self.transaction() as tx:
            by_path_row = await tx.fetchone(WORKTREE_SELECT + f" WHERE path = ? AND {local}",
                                            (path, *local_params))
            by_path = worktree_from_row(by_path_row) if by_path_row is not None else None
            if rename_if_taken and by_path is not None:
                name = by_path.name
            row = await tx.fetchone(WORKTREE_SELECT + " WHERE name = ?", (name,))
            by_name = worktree_from_row(row) if row is not None else None
            if rename_if_taken and by_path is None and by_name is not None:
                base, n = name, 2
                while by_name is not None:
                    name, n = f"{base}-{n}", n + 1
                    row = await tx.fetchone(WORKTREE_SELECT + " WHERE name = ?", (name,))
                    by_name = worktree_from_row(row) if row is not None else None
            if by_path is not None and by_path.name != name:
                raise Refused(f"{path} is already registered as worktree {by_path.name}", code="worktree_exists")
            if by_name is not None and by_name.host is not None and host is not None and by_name.host != host:
                raise Refused(f"worktree {name} is already registered on host {by_name.host}",
                              code="worktree_exists")
            if by_name is not None and by_name.path != path and by_name.active:
                raise Refused(f"worktree {name} is already registered at {by_name.path}", code="worktree_exists")
            unchanged = (by_name is not None and by_name.path == path and by_name.active
                         and (branch is None or by_name.branch == branch))
            if not unchanged:
                await tx.execute(
                    "INSERT INTO worktrees (name, path, branch, agent, last_seen, active, host)"
                    " VALUES (?,?,?,?,?,1,?)"
                    " ON CONFLICT (name) DO UPDATE SET path = excluded.path,"
                    " branch = coalesce(excluded.branch, worktrees.branch),"
                    " agent = coalesce(excluded.agent, worktrees.agent), active = 1,"
                    " host = coalesce(excluded.host, worktrees.host)",
                    (name, path, branch, agent, tx.now, host),
                )
                await self._audit(tx, "worktree.added", actor=actor, worktree=name,
                                  details={"path": path, "branch": branch, **({"host": host} if host else {})})
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
