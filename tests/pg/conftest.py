"""The PostgreSQL fixtures are a plugin of the root conftest (tests/pgfixtures.py)."""
