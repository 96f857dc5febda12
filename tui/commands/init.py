"""``tower init``: create the store inside the repository's git common dir."""

from __future__ import annotations

import click

from core.policy import write_default_policy
from tui.clikit import common_options, db_path, emit, person, repo, run


@click.command()
@common_options
def init() -> None:
    """Create the store (.git/tower/) and register this repository's worktrees."""
    path = db_path()

    async def body(s):
        created = await s.start_log(actor=person(), details={"path": str(path)})
        info = repo()
        registered = []
        if info is not None:
            from tui.services.worktrees import sync_worktrees

            registered = await sync_worktrees(s, info, actor=person())
        head = await s.audit_head()
        return created, registered, head

    created, registered, (seq, head_hash) = run(body, create=True, actor=person())
    write_default_policy(path.parent)  # idempotent: never overwrites a person's policy
    emit(
        {"db": str(path), "created": created, "worktrees": registered,
         "head": f"{seq}:{head_hash}" if head_hash else None},
        f"{'initialised' if created else 'already initialised:'} Tower store at {path}"
        + (f" ({len(registered)} worktree{'s' if len(registered) != 1 else ''})" if registered else ""),
    )

