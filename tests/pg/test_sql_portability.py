"""The rules of docs/postgres.md ("The interface for the refactor") that keep one SQL text
for both backends, checked on both engines: each statement below runs unchanged (bar the
placeholder style) on SQLite and on PostgreSQL, each with its schema from store/schema.py,
and answers the same."""

from __future__ import annotations

import re
import sqlite3

import psycopg
import pytest

from store.schema import MIGRATIONS
from tests.pg.pg_schema import migrate

pytestmark = pytest.mark.postgres


def _pg_sql(sql: str) -> str:
    """The backend's translation, at its simplest: '?' outside quotes -> '%s', '%' doubled."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    return "".join(p if i % 2 else p.replace("%", "%%").replace("?", "%s") for i, p in enumerate(parts))


class Both:
    def __init__(self, pg: psycopg.Connection) -> None:
        self.lite = sqlite3.connect(":memory:", isolation_level=None)
        for step in MIGRATIONS:
            self.lite.executescript(step.sqlite)
        self.pg = pg

    def run(self, sql: str, params: tuple = ()) -> tuple[list, list]:
        lite = [tuple(r) for r in self.lite.execute(sql, params).fetchall()]
        cur = self.pg.execute(_pg_sql(sql), params)
        pg = [tuple(r) for r in cur.fetchall()] if cur.description else []
        return lite, pg

    def same(self, sql: str, params: tuple = ()) -> list:
        lite, pg = self.run(sql, params)
        assert lite == pg, sql
        return lite


@pytest.fixture
def both(pg_empty_database):
    with psycopg.connect(pg_empty_database.dsn, autocommit=True) as pg:
        migrate(pg)
        b = Both(pg)
        yield b
        b.lite.close()


def test_the_translation_leaves_quoted_text_alone():
    assert _pg_sql("SELECT '?', ? WHERE x LIKE '%a' OR y = ?") == "SELECT '?', %s WHERE x LIKE '%a' OR y = %s"


def test_insert_returning_id_instead_of_lastrowid(both):
    for title in ("one", "two"):
        both.same("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, ?, ?) RETURNING id", (title, 1.0, 1.0))
    assert both.same("SELECT id, title FROM tasks ORDER BY id") == [(1, "one"), (2, "two")]


def test_upsert_with_qualified_columns(both):
    upsert = ("INSERT INTO worktrees (name, path, branch, agent, last_seen, active) VALUES (?, ?, ?, ?, ?, 1)"
              " ON CONFLICT(name) DO UPDATE SET path = excluded.path,"
              " branch = coalesce(excluded.branch, worktrees.branch),"
              " agent = coalesce(excluded.agent, worktrees.agent), active = 1")
    both.same(upsert, ("wt", "/a", "main", "agent-a", 1.0))
    both.same(upsert, ("wt", "/b", None, None, 2.0))
    assert both.same("SELECT name, path, branch, agent, active FROM worktrees") == [("wt", "/b", "main", "agent-a", 1)]


def test_lists_as_a_values_cte_and_the_claim_overlap_rule(both):
    both.same("INSERT INTO tasks (title, created_at, updated_at) VALUES ('t', 1, 1)")
    both.same("INSERT INTO leases (task_id, agent, token, ttl, acquired_at, heartbeat_at, expires_at)"
              " VALUES (1, 'a', (SELECT coalesce(max(token), 0) + 1 FROM leases), 60, 1, 1, 61)")
    for path in ("src/app.py", "docs"):
        both.same("INSERT INTO claims (lease_id, path, claimed_at) VALUES (1, ?, 1)", (path,))
    wanted = ("src", "docs/guide.md", "README.md")
    held = both.same(
        "WITH w(value) AS (VALUES " + ", ".join(["(?)"] * len(wanted)) + ")"
        " SELECT c.path, w.value FROM claims c JOIN w ON c.path = w.value"
        " OR substr(c.path, 1, length(w.value) + 1) = w.value || '/'"
        " OR substr(w.value, 1, length(c.path) + 1) = c.path || '/'"
        " WHERE c.active = 1 ORDER BY c.path",
        wanted,
    )
    assert held == [("docs", "docs/guide.md"), ("src/app.py", "src")]
    released = both.same("UPDATE claims SET active = 0, released_at = ? WHERE lease_id = ? AND active = 1"
                         " RETURNING path", (2.0, 1))
    assert sorted(released) == [("docs",), ("src/app.py",)]


def test_orderings_ids_and_coalesce_read_the_same(both):
    for status in ("pending", "approved", "pending", "rejected"):
        both.same("INSERT INTO approvals (kind, summary, status, requested_by, created_at)"
                  " VALUES ('command', 's', ?, 'a', 1)", (status,))
    order = both.same("SELECT id FROM approvals ORDER BY status != 'pending',"
                      " CASE WHEN status = 'pending' THEN id ELSE -id END")
    assert order == [(1,), (3,), (4,), (2,)]
    assert both.same("SELECT count(*) FROM approvals WHERE ('A' || id) = upper(?)", ("a3",)) == [(1,)]
    assert both.same("SELECT coalesce(max(decided_at), 0) FROM approvals") == [(0,)]
