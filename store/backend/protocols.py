"""The seam's protocols (``Backend``, ``Tx``, ``Dialect``, ``Row``): for the type checker.

Nothing imports this module at run time: the verbs import it under
``TYPE_CHECKING`` (store/backend/__init__.py says what the seam is), so that
an agent's hook, which opens the store on every write, does not load
``typing`` to build classes only the checker reads (docs/DECISIONS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeVar

Params = Sequence[Any]
T = TypeVar("T")


class Row(Protocol):
    """A result row: ``row["name"]``, ``row[0]``, ``row.keys()`` (so ``dict(row)`` works),
    unpacking (``a, b = row``) and ``len(row)``."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    def keys(self) -> Any: ...


class Dialect(Protocol):
    """SQL fragments that are spelled differently, each named for what it does. One instance
    per backend (hashable: the SELECTs built from it are cached per dialect)."""

    @property
    def name(self) -> Literal["sqlite", "postgres"]: ...

    @property
    def like(self) -> str:
        """A case-insensitive LIKE: ``LIKE`` in SQLite (ASCII letters), ``ILIKE`` in Postgres."""
        ...

    def __hash__(self) -> int: ...

    def json_array(self, column: str, source: str, *, order_by: str) -> str:
        """A scalar subquery: the JSON array text of ``column`` over ``source``
        (``"table alias WHERE …"``) in ``order_by`` order; ``'[]'`` for no rows."""
        ...

    def json_field(self, column: str, key: str) -> str:
        """The text of the top-level ``key`` of a JSON text column."""
        ...

    def values(self, type: Literal["int", "text"]) -> str:
        """A one-column table (``value``) from ONE parameter holding a list: use as
        ``x IN (SELECT value FROM {values})`` or ``JOIN {values} AS w``. No limit on
        the list's length and one statement text whatever it is (VALUES lists hit
        the engines' parameter limits and fill statement caches). The parameter is
        ``list_param(items)``."""
        ...

    def list_param(self, items: Iterable[Any]) -> Any:
        """The parameter that ``values()`` reads."""
        ...

    def is_integer(self, column: str) -> str:
        """True when ``column`` holds an integer (SQLite columns may hold anything)."""
        ...

    def cells(self, columns: Sequence[str]) -> str:
        """A select list of ``columns`` that no stored value can make fail (damaged rows
        list); decode each row with ``cell_values``."""
        ...

    def cell_values(self, row: Row, columns: Sequence[str], offset: int = 0) -> dict[str, object]:
        """``{column: value}`` of a row selected with ``cells(columns)`` (starting at
        ``offset``). Text that is not UTF-8 comes back as ``core.audit.Undecodable``."""
        ...


class Tx(Protocol):
    """What a verb holds inside ``async with store.transaction() as tx``: the write gate is
    held, and everything commits together (or nothing does)."""

    @property
    def now(self) -> float:
        """The transaction's time: every timestamp it writes (SQLite: the clock at BEGIN;
        Postgres: the server's, read once the gate is held)."""
        ...

    @property
    def dialect(self) -> Dialect: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run ``INSERT … RETURNING id``; returns the id."""
        ...

    async def script(self, sql: str) -> None:
        """Run several statements without parameters (a migration step)."""
        ...

    async def audit_head(self) -> tuple[int, str | None]:
        """``(seq, entry_hash)`` of the event the next append must extend; ``(0, None)``
        for an empty log. A backend may lock the head here."""
        ...


AuditScan = Callable[[Iterator[Mapping[str, Any] | Any], Callable[[str], int | None]], T]


class Backend(Protocol):
    # a caller's own deadline (time.monotonic()) for every wait for the write lock, when
    # it comes before the lock timeout (the hook must answer its agent in time)
    give_up_at: float | None

    @property
    def dialect(self) -> Dialect: ...

    @property
    def where(self) -> str:
        """How messages name the store: a path, or a URL without its password."""
        ...

    async def open(self, *, create: bool) -> None:
        """Connect, set the session up, bring the schema to ``SCHEMA_VERSION``."""
        ...

    async def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    def transaction(self, *, wait: bool = True) -> AbstractAsyncContextManager[Tx]:
        """Take the write gate and BEGIN; COMMIT on exit, ROLLBACK on an exception.

        Waits for the gate up to the store's lock timeout (``TimedOut("locked")``,
        exit 5); ``wait=False``: only if it is free now. An engine error inside
        rolls back and arrives as ``StoreUnusable`` (exit 6)."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """A read outside any transaction (inside one, when the caller's task holds it)."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def change_signal(self) -> Hashable:
        """An opaque value that differs from its last one once anyone has committed
        since (this process included). Compare it; pass it back to ``wait_for_change``."""
        ...

    async def wait_for_change(
        self, signal: Hashable | None, *, timeout: float | None = None, interval: float = 0.05
    ) -> Hashable:
        """Return the new signal once it differs from ``signal`` (None: at once). Raises
        TimeoutError. ``interval`` bounds how late a change is seen where it is polled."""
        ...

    async def scan_audit(self, consume: AuditScan[T]) -> T:
        """Run ``consume(rows, locate)`` off the event loop over one consistent snapshot:
        ``rows`` yields every audit row in seq order as a mapping (a read error as a
        ``core.audit.Unreadable``), ``locate(entry_hash)`` finds the seq of a hash."""
        ...
