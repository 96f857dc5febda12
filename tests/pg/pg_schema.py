"""The draft Postgres schema, read from docs/postgres.md so that the page and what is tested
cannot drift apart: ```sql blocks whose first line is ``-- migration N`` or ``-- roles``.

When the backend lands the SQL moves into store/schema.py (docs/postgres.md, "The
interface for the refactor", rule 8) and this module reads it from there.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

DOC = Path(__file__).resolve().parents[2] / "docs" / "postgres.md"
_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.S | re.M)


def doc_blocks() -> tuple[dict[int, str], str | None]:
    """``({N: migration N}, roles)`` from the page."""
    migrations: dict[int, str] = {}
    roles = None
    for body in _BLOCK.findall(DOC.read_text()):
        first = body.splitlines()[0]
        if m := re.match(r"-- migration (\d+)\b", first):
            migrations[int(m.group(1))] = body
        elif first.startswith("-- roles"):
            roles = body
    return migrations, roles


def migrate(conn: psycopg.Connection) -> int:
    """Apply every migration the way the runner will: one transaction each, under the gate
    once it exists, version bumped with it. Returns the version reached."""
    migrations, _ = doc_blocks()
    version = 0
    for number in sorted(migrations):
        with conn.transaction():
            conn.execute(migrations[number])
            conn.execute("UPDATE tower_meta SET schema_version = %s", (number,))
            version = number
    return version
