"""The PostgreSQL backend: psycopg 3 (async), one connection per command or a pool.

Imported only for a ``postgresql://`` store (store/backend/__init__.py), so
SQLite users never load psycopg. docs/postgres.md says why psycopg and how
every SQLite piece maps; in short:

- Every write transaction is ``BEGIN`` (READ COMMITTED), ``SET LOCAL
  lock_timeout`` and ``SELECT tower_write_gate()`` in one round trip: a
  transaction-scoped advisory lock that queues writers fairly in the lock
  manager and returns the server's clock, so every host writes one time.
  Waiting longer than the lock timeout (``TOWER_LOCK_TIMEOUT``, or the hook's
  own deadline) is exit 5 ``locked``, as with SQLite.
- The audit head is a row that a trigger locks and moves on every append
  (store/schema.py): two appenders can never extend the same event.
- A serialization failure or a deadlock (only a writer that skips the gate can
  cause one) rolls back and arrives as ``RetryableConflict``: the store runs
  the whole verb again (store/db.py). A lost connection before COMMIT is the
  same: nothing was changed. A failure *during* COMMIT is exit 6 saying that
  the outcome is unknown.
- The change signal is ``LISTEN tower`` on a connection of its own; statement
  triggers ``pg_notify`` once per committing transaction, none on rollback.
- Short-lived commands use one connection; long-lived processes (the control
  room, the watcher, ``tower serve``) ask for a pool (``pool=True``) so that
  reads never queue behind a write that waits for the gate.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import TypeVar

import psycopg
import psycopg.rows
from psycopg import conninfo as pgconninfo
from psycopg import errors as pgerr
from psycopg import pq
from psycopg.adapt import Loader

from core import audit as chain
from core.errors import BadInput, NotFound, Refused, StoreUnusable, TimedOut
from store.backend import ConstraintViolation, RetryableConflict
from core.locate import redact
from store.schema import MIGRATIONS, SCHEMA_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from store.backend.protocols import AuditScan, Params, Row

T = TypeVar("T")

CHANNEL = "tower"
GATE_KEY = (5495117, 1)  # the advisory lock tower_write_gate() takes (store/schema.py)
IDLE_IN_TRANSACTION = "10s"  # frees the gate when a host vanishes mid-transaction (docs/postgres.md)
CONNECT_TIMEOUT = 10
# SET LOCAL in the transaction's first round trip, not a startup option: PgBouncer in
# transaction mode refuses startup options, and passes SET LOCAL through
_IDLE = f"SET LOCAL idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}';"


# -- SQL text ------------------------------------------------------------------------

_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The store writes ``?``; psycopg wants ``%s`` (and a literal ``%`` doubled).
    Quoted text is left as it is."""
    parts = _QUOTED.split(sql)
    return "".join(p if i % 2 else p.replace("%", "%%").replace("?", "%s") for i, p in enumerate(parts))


# -- rows ----------------------------------------------------------------------------


class PgRow:
    """A row as the verbs read it (like ``sqlite3.Row``): ``row["name"]``, ``row[0]``,
    ``keys()``, iteration, ``len``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PgRow):
            return tuple(self._values) == tuple(other._values)
        return tuple(self._values) == other

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"PgRow({tuple(self._values)!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    index: dict[str, int] = {}
    for i, column in enumerate(cursor.description or ()):
        index.setdefault(column.name, i)
    return lambda values: PgRow(values, index)


class _Number(Loader):
    """``numeric`` (what ``sum()`` of integers gives) as an int when it is whole, else a
    float: the verbs and their JSON never see a ``Decimal``."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        if text.lstrip(b"-").isdigit():
            return int(text)
        return float(text)


def _configure(conn: Any) -> None:
    conn.adapters.register_loader("numeric", _Number)


# -- the dialect ---------------------------------------------------------------------


class PostgresDialect:
    name: Literal["postgres"] = "postgres"
    like = "ILIKE"

    def json_array(self, column: str, source: str, *, order_by: str) -> str:
        return f"(SELECT coalesce(json_agg({column} ORDER BY {order_by}), '[]')::text FROM {source})"

    def json_field(self, column: str, key: str) -> str:
        assert key.isidentifier(), key
        return f"({column}::json ->> '{key}')"

    def values(self, type: Literal["int", "text"]) -> str:
        return f"(SELECT unnest(?::{'bigint' if type == 'int' else 'text'}[]) AS value)"

    def list_param(self, items: Iterable[Any]) -> list[Any]:
        return list(items)

    def is_integer(self, column: str) -> str:
        return "true"  # a bigint column holds nothing else

    def cells(self, columns: Sequence[str]) -> str:
        # text in Postgres is always valid UTF-8: nothing to guard against
        return ", ".join(columns)

    def cell_values(self, row: Row, columns: Sequence[str], offset: int = 0) -> dict[str, object]:
        return {name: row[offset + i] for i, name in enumerate(columns)}


DIALECT = PostgresDialect()


# -- errors --------------------------------------------------------------------------

_BAD_TEXT = (pgerr.CharacterNotInRepertoire, pgerr.UntranslatableCharacter)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bad_text(exc: BaseException) -> BadInput:
    if isinstance(exc, UnicodeEncodeError):
        bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
        shown = "".join(f"\\u{ord(c):04x}" for c in bad)
        return BadInput(f"text is not valid UTF-8 (it holds {shown or 'an unencodable character'}):"
                        " nothing was changed", code="bad_text")
    return BadInput(f"text the database cannot store ({_first_line(exc)}): nothing was changed", code="bad_text")


def _is_bad_text(exc: BaseException) -> bool:
    return isinstance(exc, UnicodeEncodeError) or isinstance(exc, _BAD_TEXT) or (
        isinstance(exc, psycopg.DataError) and "NUL" in str(exc))


# -- the transaction -----------------------------------------------------------------


class PostgresTx:
    """A write transaction (``Tx``): the gate is held; the connection is in BEGIN."""

    __slots__ = ("conn", "now")
    dialect = DIALECT

    def __init__(self, conn: psycopg.AsyncConnection[Any], now: float) -> None:
        self.conn = conn
        self.now = now

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cur = await self.conn.execute(translate(sql), params or None)
        return await cur.fetchall() if cur.description is not None else []

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        cur = await self.conn.execute(translate(sql), params or None)
        return await cur.fetchone() if cur.description is not None else None

    async def execute(self, sql: str, params: Params = ()) -> None:
        await self.conn.execute(translate(sql), params or None)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(translate(sql), list(rows))

    async def insert(self, sql: str, params: Params = ()) -> int:
        row = await self.fetchone(sql, params)
        assert row is not None
        return int(row[0])

    async def script(self, sql: str) -> None:
        # no parameters: psycopg sends the whole script in one simple-query round trip
        await self.conn.execute(sql.encode())

    async def audit_head(self) -> tuple[int, str | None]:
        row = await self.fetchone("SELECT seq, entry_hash FROM audit_head")
        if row is None or row[0] == 0:
            return 0, None
        return int(row[0]), row[1]


class PostgresBackend:
    """See the module doc. ``url``: a libpq URL (``postgresql://…``) or conninfo string."""

    dialect = DIALECT

    def __init__(self, url: str, *, lock_timeout: float, clock: Callable[[], float] = time.time,
                 pool: bool = False, application: str = "tower") -> None:
        self.url = url
        self.where = redact(url)
        self.lock_timeout = lock_timeout
        self.give_up_at: float | None = None
        # the server's clock unless a test injected its own
        self.clock = clock
        self._server_clock = clock is time.time
        self._want_pool = pool
        self._application = application
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None
        self._tx_conn: psycopg.AsyncConnection[Any] | None = None
        self.key_id: str | None = None  # the audit key's fingerprint tower_meta records
        # the change signal
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._listen_lock = asyncio.Lock()
        self._version = 0
        self._changed = asyncio.Event()

    # -- connections ---------------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _row_factory, "prepare_threshold": None,
                                  "application_name": self._application}
        params = pgconninfo.conninfo_to_dict(self.url)
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        return kwargs

    def _unusable(self, exc: BaseException, *, writing: bool = False, committing: bool = False) -> StoreUnusable:
        message = f"store {self.where} is unusable: {_first_line(exc)}"
        if committing:
            message += "; the connection failed during COMMIT, so whether it was recorded is unknown"
        elif writing:
            message += "; nothing was changed"
        sqlstate = getattr(exc, "sqlstate", None)
        return StoreUnusable(message, data={"sqlstate": sqlstate} if sqlstate else None)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, **self._kwargs())
        except psycopg.Error as exc:
            raise self._unusable(exc) from None
        except (ValueError, UnicodeError) as exc:  # a malformed URL
            raise BadInput(f"cannot use the store URL {self.where}: {exc}", code="bad_url") from None
        _configure(conn)
        return conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None or self._pool is not None

    async def open(self, *, create: bool) -> None:
        try:
            pgconninfo.conninfo_to_dict(self.url)
        except psycopg.Error as exc:
            raise BadInput(f"cannot use the store URL {self.where}: {_first_line(exc)}", code="bad_url") from None
        conn = await self._connect()
        try:
            await self._migrate(conn, create)
        except BaseException:
            await conn.close()
            raise
        if self._want_pool:
            await conn.close()
            from psycopg_pool import AsyncConnectionPool

            self._pool = AsyncConnectionPool(self.url, min_size=1, max_size=4, kwargs=self._kwargs(),
                                             configure=self._configure_async, open=False,
                                             name="tower", timeout=CONNECT_TIMEOUT)
            try:
                await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            except Exception as exc:
                await self._pool.close()
                self._pool = None
                raise self._unusable(exc) from None
        else:
            self._conn = conn

    @staticmethod
    async def _configure_async(conn: Any) -> None:
        _configure(conn)

    async def close(self) -> None:
        task, self._listen_task = self._listen_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for conn in (self._listener, self._conn):
            if conn is not None:
                try:
                    await conn.close()
                except Exception:
                    pass
        self._listener = self._conn = None
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self, conn: psycopg.AsyncConnection[Any], create: bool) -> None:
        version = await self._version_of(conn)
        if version > SCHEMA_VERSION:
            raise StoreUnusable(
                f"store {self.where} has schema version {version}, newer than this Tower ({SCHEMA_VERSION}):"
                " upgrade Tower", code="schema_newer")
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not create:
            raise NotFound(f"no Tower store in {self.where} (an empty database): run `tower init --db`",
                           code="not_initialised")
        try:
            await conn.execute("BEGIN")
            # racing inits on several hosts queue here; the second finds the work done
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", GATE_KEY)
            version = await self._version_of(conn, savepoint=True)
            for number in range(version, SCHEMA_VERSION):
                step = MIGRATIONS[number].postgres
                assert step is not None, f"migration {number + 1} has no Postgres text"
                await conn.execute(step.encode())
                await conn.execute("UPDATE tower_meta SET schema_version = %s", (number + 1,))
            await conn.execute("COMMIT")
        except BaseException as exc:
            await _rollback(conn)
            if isinstance(exc, psycopg.Error):
                raise self._unusable(exc, writing=True) from None
            raise
        await self._version_of(conn)

    async def _version_of(self, conn: psycopg.AsyncConnection[Any], *, savepoint: bool = False) -> int:
        """The schema version (0: no Tower schema), and the key fingerprint on the way."""
        try:
            if savepoint:
                await conn.execute("SAVEPOINT version")
            cur = await conn.execute("SELECT schema_version, key_id FROM tower_meta")
            row = await cur.fetchone()
            if savepoint:
                await conn.execute("RELEASE SAVEPOINT version")
        except pgerr.UndefinedTable:
            if savepoint:
                await conn.execute("ROLLBACK TO SAVEPOINT version")
            return 0
        except psycopg.Error as exc:
            raise self._unusable(exc) from None
        if row is None:
            return 0
        self.key_id = row[1]
        return int(row[0])

    # -- reads outside a transaction ------------------------------------------------------

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        task = asyncio.current_task()
        if self._tx_owner is not None and self._tx_owner is task and self._tx_conn is not None:
            return await PostgresTx(self._tx_conn, 0.0).fetchall(sql, params)
        try:
            if self._pool is not None:
                async with self._pool.connection() as conn:
                    return await PostgresTx(conn, 0.0).fetchall(sql, params)
            async with self._lock:
                return await PostgresTx(self._connection, 0.0).fetchall(sql, params)
        except psycopg.Error as exc:
            raise self._mapped(exc) from None
        except UnicodeEncodeError as exc:
            raise _bad_text(exc) from None

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    @property
    def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    def _mapped(self, exc: psycopg.Error, *, writing: bool = False) -> Exception:
        if isinstance(exc, pgerr.LockNotAvailable):
            return TimedOut(f"store {self.where} is locked by another writer: {_first_line(exc)}", code="locked")
        if isinstance(exc, (pgerr.SerializationFailure, pgerr.DeadlockDetected)):
            return RetryableConflict(_first_line(exc))
        if isinstance(exc, psycopg.IntegrityError):
            return ConstraintViolation(_first_line(exc))
        if isinstance(exc, pgerr.InsufficientPrivilege):
            return Refused(f"the database refused it: {_first_line(exc)}", code="person_only"
                           if "only a person" in str(exc) else "refused")
        if _is_bad_text(exc):
            return _bad_text(exc)
        return self._unusable(exc, writing=writing)

    # -- write transactions ----------------------------------------------------------------

    def _patience(self, wait: bool) -> float:
        """Seconds the gate may be waited for (0: only if free now)."""
        if not wait:
            return 0.0
        limit = self.lock_timeout
        if self.give_up_at is not None:
            limit = min(limit, self.give_up_at - time.monotonic())
        return max(limit, 0.0)

    @asynccontextmanager
    async def transaction(self, *, wait: bool = True) -> AsyncIterator[PostgresTx]:
        if self._pool is not None:
            async with self._pool.connection() as conn:
                async with self._transaction(conn, wait) as tx:
                    yield tx
            return
        async with self._lock:
            if self._conn is None or self._conn.closed:
                if self._conn is None:
                    raise RuntimeError("store is not open")
                try:
                    self._conn = await self._connect()  # lost since the last verb: a new one
                except StoreUnusable as exc:
                    # right after a link heals the first connect may fail at once: the verb retries
                    raise RetryableConflict(exc.message, reconnect=True) from None
            async with self._transaction(self._conn, wait) as tx:
                yield tx

    @asynccontextmanager
    async def _transaction(self, conn: psycopg.AsyncConnection[Any], wait: bool) -> AsyncIterator[PostgresTx]:
        patience = self._patience(wait)
        if patience > 0:
            begin = (f"BEGIN; SET LOCAL lock_timeout = '{max(int(patience * 1000), 1)}ms'; {_IDLE}"
                     " SELECT tower_write_gate(), true")
        else:
            begin = (f"BEGIN; {_IDLE} SELECT extract(epoch FROM clock_timestamp())::float8,"
                     f" pg_try_advisory_xact_lock({GATE_KEY[0]}, {GATE_KEY[1]})")
        committing = False
        try:
            cur = await conn.execute(begin.encode())
            while cur.description is None and cur.nextset():
                pass
            gate = await cur.fetchone()
            assert gate is not None
            if not gate[1]:
                raise TimedOut(f"store {self.where} is locked by another writer", code="locked")
            now = float(gate[0]) if self._server_clock else self.clock()
            self._tx_owner, self._tx_conn = asyncio.current_task(), conn
            try:
                yield PostgresTx(conn, now)
            finally:
                self._tx_owner = self._tx_conn = None
            committing = True
            await conn.execute("COMMIT")
        except BaseException as exc:
            if not committing or conn.info.transaction_status != pq.TransactionStatus.IDLE:
                await _rollback(conn)
            if isinstance(exc, psycopg.Error):
                if conn.broken or conn.closed:
                    if committing:
                        raise self._unusable(exc, committing=True) from None
                    # the connection is gone before COMMIT: nothing was changed, run the verb again
                    raise RetryableConflict(_first_line(exc), reconnect=True) from None
                raise self._mapped(exc, writing=True) from None
            if isinstance(exc, UnicodeEncodeError):
                raise _bad_text(exc) from None
            raise

    # -- the change signal -----------------------------------------------------------------

    async def _ensure_listener(self) -> None:
        if self._listen_task is not None and not self._listen_task.done():
            return
        async with self._listen_lock:
            if self._listen_task is not None and not self._listen_task.done():
                return
            conn = await self._connect()
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as exc:
                await conn.close()
                raise self._unusable(exc) from None
            self._listener = conn
            self._listen_task = asyncio.get_running_loop().create_task(self._drain(conn))

    async def _drain(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            async for _ in conn.notifies():
                self._bump()
        except psycopg.Error:
            pass
        finally:
            # notifications sent while nobody listened are lost: wake every waiter to re-read
            if self._listener is conn:
                self._listener = None
            self._bump()
            try:
                await conn.close()
            except Exception:
                pass

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def change_signal(self) -> int:
        await self._ensure_listener()
        return self._version

    async def wait_for_change(self, signal: Any, *, timeout: float | None = None, interval: float = 0.05) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = await self.change_signal()
            if signal is None or current != signal:
                return current
            event = self._changed
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:
                raise TimeoutError from None

    # -- the audit scan --------------------------------------------------------------------

    async def scan_audit(self, consume: AuditScan[T]) -> T:
        """On a connection of its own in a thread, over one REPEATABLE READ snapshot, streamed
        by a server-side cursor: hashing a long log is CPU work that must not sit on an
        event loop, and memory stays flat."""
        return await asyncio.to_thread(_scan_sync, self.url, self._kwargs(), consume)


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await asyncio.shield(conn.execute("ROLLBACK"))
    except (psycopg.Error, asyncio.CancelledError):
        pass


def _scan_sync(url: str, kwargs: dict[str, Any], consume: AuditScan[T]) -> T:
    kwargs = {k: v for k, v in kwargs.items() if k != "row_factory"}
    try:
        conn = psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        return consume(iter([chain.Unreadable(_first_line(exc))]), lambda _hash: None)
    with conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        lookup = conn.cursor()

        def locate(entry_hash: str) -> int | None:
            try:
                found = lookup.execute("SELECT seq FROM audit WHERE entry_hash = %s LIMIT 1", (entry_hash,)).fetchone()
            except psycopg.Error:
                return None
            return int(found[0]) if found else None

        def rows() -> Iterator[Any]:
            try:
                with conn.cursor(name="tower_audit_scan", row_factory=psycopg.rows.dict_row) as cur:
                    cur.itersize = 2000
                    cur.execute("SELECT * FROM audit ORDER BY seq")
                    last = 0
                    for r in cur:
                        last = r["seq"]
                        yield r
                head = conn.execute("SELECT seq FROM audit_head").fetchone()
                if head is not None and int(head[0]) > last:
                    # the head row moves with every append: a log that ends before it was cut
                    yield chain.Unreadable(f"the log ends at seq {last} but its head is seq {head[0]}:"
                                           " events after it were deleted")
            except psycopg.Error as exc:
                yield chain.Unreadable(_first_line(exc))

        return consume(rows(), locate)
