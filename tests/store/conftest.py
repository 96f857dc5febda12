"""Every test here that uses a store runs on both backends: SQLite and a real PostgreSQL;
one that uses the ``store`` fixture also on the inline SQLite backend (the agents' hook's)."""

from tests.pgfixtures import both_backends


def pytest_generate_tests(metafunc):
    both_backends(metafunc, inline="store" in metafunc.fixturenames)
