"""Every test here that uses a store runs on both backends: SQLite and a real PostgreSQL."""

from tests.pgfixtures import both_backends


def pytest_generate_tests(metafunc):
    both_backends(metafunc)
