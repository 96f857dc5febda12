"""The Postgres schema of store/schema.py (each migration's ``postgres`` text), applied to a
bare database the way the backend's runner does, and the optional roles block, read from
docs/postgres.md (it is documentation to run by hand, not a migration)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from store.schema import MIGRATIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "postgres.md"
_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.S | re.M)


def doc_blocks() -> tuple[dict[int, str], str | None]:
    """``({N: migration N}, roles)``: the migrations from store/schema.py, the roles from the page."""
    migrations = {n: m.postgres for n, m in enumerate(MIGRATIONS, 1) if m.postgres is not None}
    roles = None
    for body in _BLOCK.findall(DOC.read_text()):
        if body.splitlines()[0].startswith("-- roles"):
            roles = body
    return migrations, roles


def migrate(conn: psycopg.Connection) -> int:
    """Apply every migration as the runner does: one transaction each, version bumped with it.
    Returns the version reached."""
    migrations, _ = doc_blocks()
    version = 0
    for number in sorted(migrations):
        with conn.transaction():
            conn.execute(migrations[number])
            conn.execute("UPDATE tower_meta SET schema_version = %s", (number,))
            version = number
    return version
