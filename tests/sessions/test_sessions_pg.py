"""The Postgres text of the sessions migration (store/schema.py, migration 4) keeps the same bounds."""

from __future__ import annotations

import psycopg
import pytest

from store.sessions import HISTORY_PER_SESSION

pytestmark = pytest.mark.postgres


def test_tool_calls_are_bounded_and_go_with_their_session(pg_database):
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:  # Tower's schema, from the template
        sessions = [conn.execute(
            "INSERT INTO agent_sessions (kind, session, started_at, last_event, last_event_at, state, state_since, rev)"
            " VALUES ('codex', %s, 1, 'e', 1, 'working', 1, %s) RETURNING id", (name, rev)).fetchone()[0]
            for rev, name in enumerate(("a", "b"), 1)]
        with conn.transaction():
            for i in range(HISTORY_PER_SESSION + 30):
                conn.execute("INSERT INTO agent_tool_calls (session_id, at, event, target) VALUES (%s, %s, 'e', %s)",
                             (sessions[0], i, f"t{i}"))
        conn.execute("INSERT INTO agent_tool_calls (session_id, at, event) VALUES (%s, 1, 'e')", (sessions[1],))
        kept = [r[0] for r in conn.execute(
            "SELECT target FROM agent_tool_calls WHERE session_id = %s ORDER BY id", (sessions[0],))]
        assert kept == [f"t{i}" for i in range(30, HISTORY_PER_SESSION + 30)]
        conn.execute("DELETE FROM agent_sessions WHERE id = %s", (sessions[0],))
        assert conn.execute("SELECT count(*) FROM agent_tool_calls").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO agent_sessions (kind, session, started_at, last_event, last_event_at, state,"
                         " state_since, rev) VALUES ('codex', 'b', 1, 'e', 1, 'idle', 1, 9)")
