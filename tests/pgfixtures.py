"""pytest fixtures for tests against a real PostgreSQL server (see tests/pgserver.py).

A plugin module (the root conftest names it in ``pytest_plugins``), so any test
directory can use them.

``pg_server`` starts one server for the whole session, on first use, and migrates
a template database to Tower's schema once; ``pg_database`` gives each test its
own database copied from it (milliseconds) and dropped afterwards. Without
server binaries these tests skip on a developer's machine and fail in CI
(``CI`` or ``TOWER_REQUIRE_PG`` set), where `.ci/run` installs them.

Both backends: a directory whose conftest calls :func:`both_backends` from
``pytest_generate_tests`` runs every test that uses ``db_path`` (and so the
``store`` and ``tower`` fixtures) once per backend, ``[sqlite]`` and
``[postgres]``; a test marked ``sqlite_only`` (it damages the file, reads
PRAGMAs …) runs on SQLite alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.pgserver import TEMPLATE, PgDatabase, PgServer, PgServerError, find_bindir, fresh_database

BACKENDS = ("sqlite", "postgres")


def _required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("TOWER_REQUIRE_PG"))


def _migrate_template(server: PgServer) -> None:
    """Tower's schema in the template, through the backend's own migration runner (no
    audit key recorded: each test's store records its own)."""
    from store.backend.postgres import PostgresBackend

    async def run() -> None:
        backend = PostgresBackend(server.socket_url(TEMPLATE), lock_timeout=30)
        await backend.open(create=True)
        await backend.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if find_bindir() is None:
        message = "PostgreSQL server binaries not found (install postgresql-15, or set TOWER_PG_BIN)"
        if _required():
            pytest.fail(message)
        pytest.skip(message)
    server = PgServer(listen="127.0.0.1")
    try:
        server.start()
    except PgServerError as exc:
        server.stop()
        pytest.fail(f"could not start PostgreSQL: {exc}")
    try:
        server.create_database(TEMPLATE)
        _migrate_template(server)
        server.psql(f"ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true")
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh database with Tower's schema (and no audit key recorded yet)."""
    db = fresh_database(pg_server, TEMPLATE)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def pg_empty_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh database without Tower's schema."""
    db = fresh_database(pg_server)
    try:
        yield db
    finally:
        db.drop()


def both_backends(metafunc: pytest.Metafunc, *, inline: bool = False) -> None:
    """For ``pytest_generate_tests``: every test using ``db_path`` runs on both backends
    (``inline``: also on SQLite driven inline, ``sqlite-inline``)."""
    if "backend" not in metafunc.fixturenames:  # db_path (and store, tower) depend on it
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return
    # the Postgres half carries the ``postgres`` mark: `make test-postgres` selects it
    params: list = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
    if inline:
        params.insert(1, "sqlite-inline")
    metafunc.parametrize("backend", params, indirect=True)


class RawDB:
    """A plain DB-API connection to the store behind ``db_path`` (SQLite file or the database a
    ``store.toml`` names), for tests that go around Tower: ``?`` placeholders on both."""

    def __init__(self, db_path) -> None:
        from core.locate import is_pointer, read_pointer

        if is_pointer(db_path):
            import psycopg

            self.conn = psycopg.connect(read_pointer(db_path), autocommit=True)
            self.postgres = True
            self.IntegrityError = psycopg.IntegrityError
        else:
            import sqlite3

            self.conn = sqlite3.connect(db_path, isolation_level=None)
            self.postgres = False
            self.IntegrityError = sqlite3.IntegrityError

    def execute(self, sql: str, params: tuple = ()):
        if self.postgres:
            from store.backend.postgres import translate

            sql = translate(sql)
        return self.conn.execute(sql, params)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RawDB:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
