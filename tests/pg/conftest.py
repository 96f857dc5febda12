"""The PostgreSQL fixtures (tests/pgfixtures.py) for the tests in this directory."""

from tests.pgfixtures import pg_database, pg_server  # noqa: F401  (fixtures, found by name)
