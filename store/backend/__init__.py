"""The seam between the verbs and a database engine: ``Backend``, ``Tx``, ``Dialect``.

The verbs (store/*.py) hold the SQL and the rules; a backend holds what
differs between engines: connecting, the write gate and its retries, the
transaction's clock, how a change is signalled, how the audit log is scanned,
and the few SQL fragments that are spelled differently (``Dialect``). SQLite
(store/backend/sqlite.py) and PostgreSQL (store/backend/postgres.py) each
implement these three protocols and nothing else (docs/postgres.md).

Rules that keep one SQL text for both engines (docs/DECISIONS.md, "The store's
seam"): ``?`` placeholders only; ``RETURNING id`` instead of ``lastrowid``;
``coalesce``, never ``ifnull``; ``ON CONFLICT … DO UPDATE`` columns qualified
with their table; a subquery in FROM has an alias; a list goes in as one
parameter through ``Dialect.values``; flags are 0/1 compared with ``= 1``;
times are epoch seconds taken from ``tx.now``; no engine module (sqlite3,
aiosqlite, psycopg) is named outside its backend, whose errors arrive as
``core.errors`` (``TimedOut("locked")``, ``StoreUnusable``, ``BadInput``) or
as ``ConstraintViolation``. The protocols themselves are in
store/backend/protocols.py, which only the type checker reads.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Backend


class ConstraintViolation(Exception):
    """A unique, check or foreign-key constraint refused a write. The verbs check their
    rules before writing, so reaching one is a bug unless a verb catches it on purpose."""


class RetryableConflict(Exception):
    """The engine gave the transaction up to resolve a conflict with another writer (a
    serialization failure, a deadlock) or lost its connection before COMMIT: nothing was
    changed, and the verb may run again from the start (the store does, with back-off)."""

    def __init__(self, message: str, *, reconnect: bool = False) -> None:
        super().__init__(message)
        self.reconnect = reconnect


def postgres_backend(url: str, *, lock_timeout: float, clock: Callable[[], float], pool: bool = False,
                     application: str = "tower") -> Backend:
    """The PostgreSQL backend (psycopg is imported only here, for a postgresql:// store)."""
    from store.backend.postgres import PostgresBackend

    return PostgresBackend(url, lock_timeout=lock_timeout, clock=clock, pool=pool, application=application)


def sqlite_backend(path: Any, *, lock_timeout: float, clock: Callable[[], float], inline: bool = False) -> Backend:
    """The SQLite backend (imported here, so that an engine is loaded only when used);
    ``inline``: driven without an event loop (store/backend/sqlite.py)."""
    from store.backend.sqlite import SQLiteBackend

    return SQLiteBackend(path, lock_timeout=lock_timeout, clock=clock, inline=inline)
