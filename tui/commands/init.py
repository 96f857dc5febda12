"""``tower init``: create the store inside the repository's git common dir.

``tower init --db postgresql://…`` makes the store in that database and records
its URL in ``.git/tower/store.toml`` (never a password), so that every worktree
and every command of the repository finds it; ``TOWER_DB`` may name the database
for one process without recording anything.
"""

from __future__ import annotations

import click

from core.policy import write_default_policy
from tui.clikit import common_options, db_path, emit, opt, person, repo, run


@click.command()
@common_options
def init() -> None:
    """Create the store (.git/tower/, or the database --db postgresql://… names) and
    register this repository's worktrees."""
    from core.locate import StoreURL

    path = db_path()
    record = isinstance(path, StoreURL) and opt("db") is not None
    if record:
        _check_recordable(path)

    async def body(s):
        created = await s.start_log(actor=person(), details={"path": str(path.name if isinstance(path, StoreURL)
                                                                          else path)})
        info = repo()
        registered = []
        if info is not None:
            from tui.services.worktrees import sync_worktrees

            registered = await sync_worktrees(s, info, actor=person())
        head = await s.audit_head()
        return created, registered, head

    created, registered, (seq, head_hash) = run(body, create=True, actor=person())
    if record:
        from core.locate import write_pointer

        write_pointer(path.parent, str(path))  # only once the database holds the store
    write_default_policy(path.parent)  # idempotent: never overwrites a person's policy
    shown = path.name if isinstance(path, StoreURL) else str(path)
    emit(
        {"db": shown, "created": created, "worktrees": registered,
         "head": f"{seq}:{head_hash}" if head_hash else None},
        f"{'initialised' if created else 'already initialised:'} Tower store at {shown}"
        + (f" ({len(registered)} worktree{'s' if len(registered) != 1 else ''})" if registered else ""),
    )


def _check_recordable(url) -> None:
    """Refuse, before touching anything, what recording ``url`` in .git/tower/ would break."""
    from core.errors import Refused
    from core.locate import POINTER_NAME, has_password, read_pointer, redact

    if has_password(url):
        from core.errors import BadInput

        raise BadInput(
            "the URL holds a password, and .git/tower/store.toml must not: put it in ~/.pgpass (or the"
            " file PGPASSFILE names), or set TOWER_DB for the processes that need it", code="password_in_url")
    local = url.parent
    sqlite_file = local / "tower.db"
    if sqlite_file.exists() and sqlite_file.stat().st_size > 0:
        raise Refused(f"this repository already has a SQLite store ({sqlite_file}): Tower does not move a"
                      " store between backends; use another repository, or remove that store first",
                      code="store_exists")
    pointer = local / POINTER_NAME
    if pointer.exists() and read_pointer(pointer) != str(url):
        raise Refused(f"this repository's store is already {redact(read_pointer(pointer))}"
                      f" ({pointer}): remove that file first to point it elsewhere", code="store_exists")
