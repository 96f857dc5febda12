"""The Postgres schema of docs/postgres.md, applied to a real PostgreSQL 15: it mirrors
store/schema.py, and its guards (unique partial indexes, the audit head, the write gate,
the change signal, person-only decisions, roles) do what the page says."""

from __future__ import annotations

import sqlite3
import threading

import psycopg
import pytest
from psycopg import errors

from store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.pg.pg_schema import doc_blocks, migrate
from tests.pgserver import fresh_database

pytestmark = pytest.mark.postgres

GENESIS = "0" * 64
PG_ONLY_TABLES = {"tower_meta", "audit_head"}
TYPE_CLASS = {"INTEGER": {"bigint", "integer", "smallint"}, "REAL": {"double precision"}, "TEXT": {"text"}}


@pytest.fixture(scope="module")
def migrated_template(pg_server):
    """store/schema.py's Postgres texts applied once by hand; each test gets a copy."""
    db = fresh_database(pg_server)
    with psycopg.connect(db.dsn, autocommit=True) as c:
        assert migrate(c) == SCHEMA_VERSION
    yield db.name
    db.drop()


@pytest.fixture
def pg_database(pg_server, migrated_template):
    db = fresh_database(pg_server, migrated_template)
    yield db
    db.drop()


@pytest.fixture
def conn(pg_database):
    with psycopg.connect(pg_database.dsn, autocommit=True) as c:
        yield c


def _sqlite_schema() -> tuple[dict, set]:
    db = sqlite3.connect(":memory:")
    for step in MIGRATIONS:
        db.executescript(step.sqlite)
    tables = {}
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        tables[name] = {r[1]: (r[2], bool(r[3]) or bool(r[5])) for r in db.execute(f"PRAGMA table_info({name})")}
    indexes = {r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")}
    db.close()
    return tables, indexes


def test_every_migration_has_its_postgres_text_and_the_page_its_roles():
    migrations, roles = doc_blocks()
    assert sorted(migrations) == list(range(1, len(MIGRATIONS) + 1))
    assert roles is not None


def test_schema_mirrors_sqlite_table_for_table_column_for_column(conn):
    tables, indexes = _sqlite_schema()
    pg: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, dtype, nullable in conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    ):
        pg.setdefault(table, {})[column] = (dtype, nullable == "NO")
    assert set(pg) - PG_ONLY_TABLES == set(tables)
    for table, columns in tables.items():
        assert set(pg[table]) == set(columns), table
        for column, (affinity, not_null) in columns.items():
            dtype, pg_not_null = pg[table][column]
            assert dtype in TYPE_CLASS[affinity], (table, column, dtype)
            assert pg_not_null == not_null, (table, column)
    pg_indexes = {name: sql for name, sql in conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)")}  # primary keys, UNIQUE columns
    assert set(pg_indexes) == indexes
    for partial in ("leases_one_active_per_task", "claims_one_active_per_path", "conflicts_one_open"):
        assert pg_indexes[partial].startswith("CREATE UNIQUE INDEX") and " WHERE " in pg_indexes[partial]
    assert conn.execute("SELECT schema_version FROM tower_meta").fetchone()[0] == SCHEMA_VERSION


def _task(conn, title="t") -> int:
    return conn.execute(
        "INSERT INTO tasks (title, created_at, updated_at) VALUES (%s, 1, 1) RETURNING id", (title,)
    ).fetchone()[0]


def _lease(conn, task_id: int) -> int:
    return conn.execute(
        "INSERT INTO leases (task_id, agent, token, ttl, acquired_at, heartbeat_at, expires_at)"
        " VALUES (%s, 'a', (SELECT coalesce(max(token), 0) + 1 FROM leases), 60, 1, 1, 61) RETURNING id",
        (task_id,),
    ).fetchone()[0]


def test_at_most_one_active_claim_per_path_and_one_active_lease_per_task(conn):
    t1, t2 = _task(conn), _task(conn)
    l1, l2 = _lease(conn, t1), _lease(conn, t2)
    claim = "INSERT INTO claims (lease_id, path, claimed_at) VALUES (%s, 'src/app.py', 1)"
    conn.execute(claim, (l1,))
    with pytest.raises(errors.UniqueViolation, match="claims_one_active_per_path"):
        conn.execute(claim, (l2,))
    conn.execute("UPDATE claims SET active = 0, released_at = 2 WHERE lease_id = %s", (l1,))
    conn.execute(claim, (l2,))  # released: the path is free again
    with pytest.raises(errors.UniqueViolation, match="leases_one_active_per_task"):
        _lease(conn, t1)
    with pytest.raises(errors.CheckViolation):
        conn.execute("UPDATE claims SET active = 2 WHERE lease_id = %s", (l2,))


def test_ids_are_never_reused_nor_chosen_by_a_writer(conn):
    first = _task(conn)
    conn.execute("DELETE FROM tasks WHERE id = %s", (first,))
    assert _task(conn) > first
    with pytest.raises(errors.GeneratedAlways):
        conn.execute("INSERT INTO tasks (id, title, created_at, updated_at) VALUES (1, 'x', 1, 1)")


def _append(conn, seq: int, prev: str, entry: str) -> None:
    conn.execute(
        "INSERT INTO audit (seq, ts, actor, event, prev_hash, entry_hash, signature)"
        " VALUES (%s, 'ts', 'test', 'e', %s, %s, 'sig')",
        (seq, prev, entry),
    )


def test_the_audit_head_only_moves_forward_one_linked_event_at_a_time(conn):
    _append(conn, 1, GENESIS, "a" * 64)
    assert conn.execute("SELECT seq, entry_hash FROM audit_head").fetchone() == (1, "a" * 64)
    with pytest.raises(errors.SerializationFailure, match="does not extend the head"):
        _append(conn, 3, "a" * 64, "c" * 64)  # a gap
    with pytest.raises(errors.SerializationFailure):
        _append(conn, 2, GENESIS, "b" * 64)  # a fork: linked to an older event
    _append(conn, 2, "a" * 64, "b" * 64)
    # a tail deleted behind the store's back leaves the head pointing past the end
    conn.execute("DELETE FROM audit WHERE seq = 2")
    assert conn.execute("SELECT (SELECT max(seq) FROM audit), seq FROM audit_head").fetchone() == (1, 2)


def test_concurrent_appenders_queue_on_the_head_and_the_loser_must_retry(pg_database, conn):
    _append(conn, 1, GENESIS, "a" * 64)
    with psycopg.connect(pg_database.dsn) as a, psycopg.connect(pg_database.dsn) as b:
        _append(a, 2, "a" * 64, "b" * 64)  # a's transaction holds the head row
        b.execute("SET lock_timeout = '200ms'")
        with pytest.raises(errors.LockNotAvailable):
            _append(b, 2, "a" * 64, "x" * 64)  # b read the same head: it waits on the row
        b.rollback()
        a.commit()
        with pytest.raises(errors.SerializationFailure):
            _append(b, 2, "a" * 64, "x" * 64)  # the head moved: b's event would fork the chain
        b.rollback()
        _append(b, 3, "b" * 64, "c" * 64)  # re-read, extended
        b.commit()
    assert [r[0] for r in conn.execute("SELECT seq FROM audit ORDER BY seq")] == [1, 2, 3]


def test_the_write_gate_queues_writers_and_tells_the_server_time(pg_database, conn):
    with psycopg.connect(pg_database.dsn) as a, psycopg.connect(pg_database.dsn) as b:
        t_a = a.execute("SELECT tower_write_gate()").fetchone()[0]
        b.execute("SET lock_timeout = '200ms'")
        with pytest.raises(errors.LockNotAvailable):
            b.execute("SELECT tower_write_gate()")
        b.rollback()
        granted = threading.Event()
        times: list[float] = []

        def waiter():
            times.append(b.execute("SELECT tower_write_gate()").fetchone()[0])
            granted.set()

        b.execute("SET lock_timeout = '30s'")
        thread = threading.Thread(target=waiter)
        thread.start()
        a.commit()  # b, queued behind a, gets the gate
        assert granted.wait(30)
        thread.join()
        b.commit()
    assert times[0] >= t_a  # the gate's clock follows commit order


def test_one_notification_per_commit_none_on_rollback(pg_database, conn):
    with psycopg.connect(pg_database.dsn, autocommit=True) as listener:
        listener.execute("LISTEN tower")
        with conn.transaction():  # several statements on several tables: one notification
            t = _task(conn)
            _lease(conn, t)
            conn.execute("UPDATE tasks SET status = 'leased' WHERE id = %s", (t,))
        try:
            with conn.transaction():
                _task(conn)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        conn.execute("INSERT INTO snapshots VALUES ('w', 'p', 1, 1, 'h')")  # a cache: wakes nobody
        _task(conn)  # the next commit
        got = [n.channel for n in listener.notifies(timeout=5, stop_after=2)]
        assert got == ["tower", "tower"]
        assert list(listener.notifies(timeout=0.2)) == []  # nothing else was sent


def test_roles_agents_append_but_never_rewrite_and_only_a_person_decides(pg_database, conn):
    _, roles = doc_blocks()
    conn.execute(roles)
    agent, person = f"{pg_database.name}_agent", f"{pg_database.name}_person"
    conn.execute(f"CREATE ROLE {agent} IN ROLE tower_agent")
    conn.execute(f"CREATE ROLE {person} IN ROLE tower_person")
    try:
        conn.execute(f"SET ROLE {agent}")
        t = _task(conn)
        conn.execute("SELECT tower_write_gate()")
        _append(conn, 1, GENESIS, "a" * 64)  # the head moves through the trigger's rights
        approval = conn.execute(
            "INSERT INTO approvals (kind, summary, requested_by, created_at) VALUES ('command', 's', 'a', 1)"
            " RETURNING id").fetchone()[0]
        for sql in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit", "TRUNCATE audit",
                    "UPDATE audit_head SET seq = 0"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql)
        with pytest.raises(errors.InsufficientPrivilege, match="only a person decides"):
            conn.execute("UPDATE approvals SET status = 'approved' WHERE id = %s", (approval,))
        conn.execute("UPDATE approvals SET status = 'cancelled' WHERE id = %s", (approval,))  # agents may cancel
        conn.execute("UPDATE tasks SET status = 'cancelled' WHERE id = %s", (t,))
        conn.execute("RESET ROLE")
        conn.execute(f"SET ROLE {person}")
        second = conn.execute(
            "INSERT INTO approvals (kind, summary, requested_by, created_at) VALUES ('command', 's', 'a', 1)"
            " RETURNING id").fetchone()[0]
        conn.execute("UPDATE approvals SET status = 'approved' WHERE id = %s", (second,))
    finally:
        conn.execute("RESET ROLE")
        for role in (agent, person):
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_postgres_text_cannot_hold_nul_so_the_store_must_refuse_it(conn):
    """Why docs/postgres.md makes NUL in agent text bad input on both backends."""
    with pytest.raises(psycopg.DataError, match="NUL"):
        conn.execute("INSERT INTO tasks (title, created_at, updated_at) VALUES (%s, 1, 1)", ("a\x00b",))
