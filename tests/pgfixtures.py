"""pytest fixtures for tests against a real PostgreSQL server (see tests/pgserver.py).

A plugin module, so that any test directory can use them: tests/pg/conftest.py
imports them; once the store tests run on both backends, the root conftest
names this module in ``pytest_plugins`` instead.

``pg_server`` starts one server for the whole session, on first use; ``pg_database``
gives each test its own database, copied from a template and dropped afterwards.
Without server binaries these tests skip on a developer's machine and fail in CI
(``CI`` or ``TOWER_REQUIRE_PG`` set), where `.ci/run` installs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pgserver import TEMPLATE, PgDatabase, PgServer, PgServerError, find_bindir, fresh_database


def _required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("TOWER_REQUIRE_PG"))


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
        # the template every test's database is copied from; once the store has a
        # Postgres backend its migrations are applied here, once per session
        server.create_database(TEMPLATE)
        server.psql(f"ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true")
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    db = fresh_database(pg_server, TEMPLATE)
    try:
        yield db
    finally:
        db.drop()
