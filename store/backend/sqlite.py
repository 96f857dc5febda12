"""The SQLite backend: one file, one aiosqlite connection, a writer gate, our own back-off.

aiosqlite runs a non-daemon thread per connection, so a store is always
closed (``async with Store(...)``) or the process hangs at exit.

Every write is ``BEGIN IMMEDIATE``: a deferred transaction that later upgrades
to a write gets SQLITE_BUSY at once whatever the busy timeout. SQLite's own
busy handler sleeps on a fixed, growing schedule (1, 2, 5 … 100 ms), which
favours whoever arrived last; under contention one agent can starve. So the
busy timeout is 0 and we retry ourselves with a short, capped, jittered
back-off: a waiter never sleeps longer than ``_BACKOFF_CAP`` at a time, so it
is never pushed to the back of the line for long (tests/benchmarks measure
the shares).

Polling ``BEGIN IMMEDIATE`` costs a thread hop and a SQLite lock attempt per
try: with many waiters on few cores the pollers starve the lock holder of CPU.
So Tower writers first queue on an advisory ``flock`` of ``<db>-writer.lock``,
polled with ``LOCK_NB`` from the event loop (one syscall, no thread), and only
then BEGIN. A writer that just released the gate pauses briefly before taking
it again if anyone is waiting (waiters hold a shared lock on
``<db>-writer.wait`` while they wait), so that a waiter gets its turn; a lone
writer never pauses. Non-Tower writers to the same file are still handled by
the BEGIN retry loop.

Every statement of a transaction is one thread hop (``execute_fetchall``):
updates and inserts say ``RETURNING`` instead of reading ``lastrowid`` off a
cursor that would then need closing (a second hop).

A one-shot process that never waits on anything but the store (an agent's
hook claiming a file) opens the backend ``inline``: a plain sqlite3
connection used in the caller's thread, sleeps that block, and no asyncio or aiosqlite
imported at all (they are half of such a call's cost). The verbs are the same
coroutines; they never suspend, and ``store.run_inline`` drives them to their
end without an event loop.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from core import audit as chain
from core.errors import BadInput, StoreUnusable, TimedOut
from store.backend import ConstraintViolation
from store.schema import MIGRATIONS, SCHEMA_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    from store.backend.protocols import AuditScan, Params, Row

    T = TypeVar("T")

_BACKOFF_START = 0.0002
_BACKOFF_CAP = 0.001
_POLITE = 0.001  # after releasing the writer gate, wait up to this before retaking it

try:
    import fcntl
except ImportError:  # no advisory locks (Windows): rely on the BEGIN retry loop alone
    fcntl = None  # type: ignore[assignment]

_PRAGMAS = """
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 0;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -16000;
"""

# SQLite's primary result codes, named (Python 3.11's ``sqlite_errorname``), and what to do about them
_HINTS = {
    "SQLITE_FULL": "free some space and retry",
    "SQLITE_READONLY": "check the permissions of the store and its folder",
    "SQLITE_PERM": "check the permissions of the store and its folder",
    "SQLITE_CANTOPEN": "check that the store and its folder exist and are readable",
    "SQLITE_IOERR": "check the disk (and that nobody removed the store's -wal file while it was in use)",
    "SQLITE_CORRUPT": "restore it from a backup",
    "SQLITE_NOTADB": "restore it from a backup",
}


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _unusable(path: Path, exc: BaseException, *, writing: bool = False) -> StoreUnusable:
    """One clear line for a store SQLite cannot work with (exit 6), naming SQLite's error."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    base = name if name in _HINTS else next((h for h in _HINTS if name.startswith(h + "_")), "")
    message = f"store {path} is unusable: {exc}" + (f" ({name})" if name else "")
    if writing:
        message += "; nothing was changed"
    if base:
        message += f": {_HINTS[base]}"
    return StoreUnusable(message, data={"sqlite_error": name} if name else None)


def _not_utf8(exc: UnicodeEncodeError) -> BadInput:
    bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
    shown = "".join(f"\\u{ord(c):04x}" for c in bad)
    return BadInput(f"text is not valid UTF-8 (it holds {shown or 'an unencodable character'}): nothing was changed",
                    code="bad_text")


def _text(raw: bytes) -> str:
    """Column text; bytes that are not UTF-8 (a damaged row) become U+FFFD instead of
    failing the whole query, so that one bad row cannot hide every other one."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


def _exact_text(raw: bytes) -> str | chain.Undecodable:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return chain.Undecodable(raw)  # named by verify_chain, instead of failing the whole read


def split_sql(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT our transaction)."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        buffer.append(line)
        if sqlite3.complete_statement("\n".join(buffer)):
            statements.append("\n".join(buffer))
            buffer = []
    if buffer:
        statements.append("\n".join(buffer))
    return statements


class SQLiteDialect:
    name: Literal["sqlite"] = "sqlite"
    like = "LIKE"

    def json_array(self, column: str, source: str, *, order_by: str) -> str:
        # group_concat/json_group_array take no ORDER BY before SQLite 3.44: order a subquery
        return f"(SELECT json_group_array(v) FROM (SELECT {column} AS v FROM {source} ORDER BY {order_by}) AS q)"

    def json_field(self, column: str, key: str) -> str:
        assert key.isidentifier(), key
        return f"json_extract({column}, '$.{key}')"

    def values(self, type: Literal["int", "text"]) -> str:
        return "(SELECT value FROM json_each(?))"

    def list_param(self, items: Iterable[Any]) -> str:
        return json.dumps(list(items))

    def is_integer(self, column: str) -> str:
        return f"typeof({column}) = 'integer'"

    def cells(self, columns: Sequence[str]) -> str:
        # every column as (typeof, bytes): sqlite3 fails a whole query on one text that
        # is not UTF-8, and a damaged row must still list
        return ", ".join(f"typeof({c}), CAST({c} AS BLOB)" for c in columns)

    def cell_values(self, row: Row, columns: Sequence[str], offset: int = 0) -> dict[str, object]:
        return {name: _cell(row[offset + 2 * i], row[offset + 2 * i + 1]) for i, name in enumerate(columns)}


def _cell(kind: str, raw: bytes | None) -> object:
    if kind == "null" or raw is None:
        return None
    if kind == "integer":
        return int(raw)
    if kind == "real":
        return float(raw)
    if kind == "text":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return chain.Undecodable(raw)
    return bytes(raw)


DIALECT = SQLiteDialect()


class _Patience:
    """The one back-off of every wait for the write lock: short, capped, jittered.

    ``pause()`` sleeps a little longer each time up to ``_BACKOFF_CAP`` (never
    long, so a waiter is not pushed to the back of the line), and raises
    TimedOut (exit 5) once the backend's ``lock_timeout`` is spent.
    """

    def __init__(self, backend: SQLiteBackend, timeout: float | None = None) -> None:
        self.backend = backend
        self.timeout = backend.lock_timeout if timeout is None else timeout
        self.deadline = time.monotonic() + self.timeout
        give_up_at = backend.give_up_at
        self.cut_short = give_up_at is not None and give_up_at < self.deadline
        if give_up_at is not None and self.cut_short:
            self.deadline = give_up_at
        self.delay = _BACKOFF_START

    async def pause(self) -> None:
        if time.monotonic() >= self.deadline:
            if self.cut_short:
                raise TimedOut(f"store {self.backend.path} is locked by another process, still at this"
                               " command's deadline", code="locked")
            raise TimedOut(
                f"store {self.backend.path} stayed locked for more than {self.timeout:g}s",
                code="locked",
            )
        await self.backend.run.sleep(_jitter() * self.delay)
        self.delay = min(self.delay * 2, _BACKOFF_CAP)


def _jitter() -> float:
    import random  # only when a writer has to wait: not on an uncontended call's path

    return random.uniform(0.5, 1.0)


class _InlineConnection:
    """The part of aiosqlite's Connection the backend uses, over a plain sqlite3
    connection called in this thread (an ``inline`` backend)."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @property
    def total_changes(self) -> int:
        return self._db.total_changes

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> None:
        self._db.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._db.executemany(sql, rows)

    async def executescript(self, sql: str) -> None:
        self._db.executescript(sql)

    async def close(self) -> None:
        self._db.close()


class _NoLock:
    """The transaction lock of an inline backend: one flow of control, nothing to exclude."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _Cancelled(BaseException):
    """Stands for asyncio.CancelledError where there is no event loop to cancel anything."""


class _Inline:
    """What an inline backend uses where the asyncio one uses ``asyncio``: the same names,
    run in this thread (a wait blocks; nothing is ever cancelled)."""

    CancelledError = _Cancelled
    Lock = _NoLock
    _TASK = object()

    @staticmethod
    async def sleep(seconds: float) -> None:
        time.sleep(seconds)

    @classmethod
    def current_task(cls) -> object:
        return cls._TASK

    @staticmethod
    async def shield(awaitable: Awaitable[T]) -> T:
        return await awaitable

    @staticmethod
    async def to_thread(func: Callable[..., T], /, *args: Any) -> T:
        return func(*args)


class SQLiteTx:
    """A ``BEGIN IMMEDIATE`` transaction on the backend's connection."""

    __slots__ = ("conn", "now")
    dialect = DIALECT

    def __init__(self, conn: Any, now: float) -> None:
        self.conn = conn
        self.now = now

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            return list(await self.conn.execute_fetchall(sql, params))
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from None

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> None:
        await self.fetchall(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            await self.conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from None

    async def insert(self, sql: str, params: Params = ()) -> int:
        rows = await self.fetchall(sql, params)
        return int(rows[0][0])

    async def script(self, sql: str) -> None:
        for statement in split_sql(sql):
            await self.execute(statement)

    async def audit_head(self) -> tuple[int, str | None]:
        row = await self.fetchone("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (int(row[0]), row[1]) if row is not None else (0, None)


class SQLiteBackend:
    """See the module doc. ``path`` is the database file; the gate files sit beside it."""

    dialect = DIALECT

    def __init__(self, path: Path | str, *, lock_timeout: float, clock: Callable[[], float] = time.time,
                 inline: bool = False) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        # one bound on every wait for the write lock: the writer gate and SQLite's lock together
        self.lock_timeout = lock_timeout
        self.give_up_at: float | None = None
        self.clock = clock
        self.inline = inline
        if inline:
            self.run: Any = _Inline
        else:
            import asyncio

            self.run = asyncio  # sleep, Lock, current_task, shield, to_thread, CancelledError
        self._conn: Any = None  # an aiosqlite.Connection, or an _InlineConnection
        self._tx_lock = self.run.Lock()
        self._tx_owner: object | None = None
        self._gate_fd: int | None = None
        self._gate_depth = 0  # the gate is re-entrant: creating a store holds it around a migration
        self._wait_fd: int | None = None
        self._gate_released = 0.0

    # -- lifecycle -----------------------------------------------------------

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self, *, create: bool) -> None:
        if fcntl is not None:
            try:
                self._gate_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
                self._wait_fd = os.open(f"{self.path}-writer.wait", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._gate_fd = self._wait_fd = None  # read-only directory: reads still work, writes use BEGIN retries
        mode = "rwc" if create else "rw"
        try:
            self._conn = await self._connect(f"file:{self.path}?mode={mode}")
        except sqlite3.Error as exc:
            self._close_fds()
            raise _unusable(self.path, exc) from None
        try:
            # Creating a store (tower init) holds the writer gate from the first read
            # to the end of the migration: before the WAL switch the file is in
            # rollback mode, where readers block the exclusive lock the switch
            # needs, and inits racing on a new repository would starve each other.
            if create:
                await self._enter_gate(_Patience(self))
            try:
                await self._retrying(lambda: self.conn.executescript(_PRAGMAS))
                await self._migrate(create)
            finally:
                if create:
                    self._leave_gate()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _unusable(self.path, exc) from None
            raise

    async def _connect(self, uri: str) -> Any:
        if self.inline:
            conn: Any = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            import aiosqlite

            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.text_factory = _text
        return _InlineConnection(conn) if self.inline else conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await conn.close()
        finally:
            self._close_fds()

    def _close_fds(self) -> None:
        fds, self._gate_fd, self._wait_fd = (self._gate_fd, self._wait_fd), None, None
        for fd in fds:
            if fd is not None:
                os.close(fd)

    async def _migrate(self, create: bool) -> None:
        version = await self._user_version()
        if version > SCHEMA_VERSION:
            raise StoreUnusable(
                f"store {self.path} has schema version {version}, newer than this Tower "
                f"({SCHEMA_VERSION}): upgrade Tower",
                code="schema_newer",
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not create:
            # an empty or foreign file where the store should be: rebuilding it
            # silently would hide the loss of everything it held
            raise StoreUnusable(
                f"{self.path} holds no Tower store (empty or not a Tower database):"
                " restore it from a backup, or run `tower init` to start a new one",
                code="store_empty",
            )
        if version == 0:
            # WAL is persistent in the file: set once, before the first write
            # (under the writer gate, which open() holds while creating).
            await self._retrying(lambda: self.conn.execute("PRAGMA journal_mode = WAL"))
        async with self.transaction() as tx:
            # re-read under the write lock: another process may have migrated meanwhile
            row = await tx.fetchone("PRAGMA user_version")
            for number in range(int(row[0]) if row is not None else 0, SCHEMA_VERSION):
                await tx.script(MIGRATIONS[number].sqlite)
                await tx.execute(f"PRAGMA user_version = {number + 1}")

    async def _user_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row is not None else 0

    # -- statements ----------------------------------------------------------

    async def _retrying(self, op: Callable[[], Awaitable[T]], patience: _Patience | None = None) -> T:
        """Run ``op`` (a coroutine factory), retrying while the database is busy."""
        patience = patience or _Patience(self)
        while True:
            try:
                return await op()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise _unusable(self.path, exc) from None
                await patience.pause()
            except sqlite3.IntegrityError as exc:
                raise ConstraintViolation(str(exc)) from None
            except sqlite3.DatabaseError as exc:
                raise _unusable(self.path, exc) from None
            except UnicodeEncodeError as exc:
                raise _not_utf8(exc) from None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if self._tx_owner is not None and self._tx_owner is self.run.current_task():
            return list(await self.conn.execute_fetchall(sql, params))

        async def op() -> list[Row]:
            return list(await self.conn.execute_fetchall(sql, params))

        # another task of this process may be mid-transaction on this connection:
        # wait for it rather than read its uncommitted rows
        async with self._tx_lock:
            return await self._retrying(op)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def transaction(self, *, wait: bool = True) -> AsyncIterator[SQLiteTx]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, retried while another process holds the lock.

        Waiting for the writer gate and for SQLite's lock share one deadline
        (``lock_timeout``; exit 5 ``locked`` past it). An SQLite error inside
        the transaction (disk full at COMMIT, a read-only file, an I/O error, a
        damaged page) rolls it back and is exit 6: the store is as it was.
        """
        async with self._tx_lock:
            patience = _Patience(self, None if wait else 0.0)
            await self._enter_gate(patience)
            try:
                try:
                    # BEGIN sits inside the try: if we are cancelled while it is in
                    # flight, aiosqlite still runs it, and only the ROLLBACK queued
                    # behind it frees SQLite's write lock for everyone else
                    await self._retrying(lambda: self.conn.execute("BEGIN IMMEDIATE"), patience)
                    self._tx_owner = self.run.current_task()
                    yield SQLiteTx(self.conn, self.clock())
                    await self.conn.execute("COMMIT")
                except BaseException as exc:
                    await self._rollback()
                    if isinstance(exc, sqlite3.IntegrityError):
                        raise ConstraintViolation(str(exc)) from None
                    if isinstance(exc, sqlite3.Error):
                        if _is_busy(exc):
                            raise TimedOut(f"store {self.path} is locked by another process: {exc}",
                                           code="locked") from None
                        raise _unusable(self.path, exc, writing=True) from None
                    if isinstance(exc, UnicodeEncodeError):
                        raise _not_utf8(exc) from None
                    raise
                finally:
                    self._tx_owner = None
            finally:
                self._leave_gate()

    async def _rollback(self) -> None:
        try:
            await self.run.shield(self.conn.execute("ROLLBACK"))
        except (sqlite3.Error, ValueError):
            pass  # nothing was open (BEGIN never ran, or failed)
        except self.run.CancelledError:
            pass  # cancelled again: the shielded ROLLBACK still runs, queued behind BEGIN

    # -- the writer gate -----------------------------------------------------

    async def _enter_gate(self, patience: _Patience) -> None:
        fd, wait_fd = self._gate_fd, self._wait_fd
        if fd is None or wait_fd is None:
            return
        if self._gate_depth:
            self._gate_depth += 1
            return
        await self._take_gate(fd, wait_fd, patience)
        self._gate_depth = 1

    async def _take_gate(self, fd: int, wait_fd: int, patience: _Patience) -> None:
        if time.monotonic() - self._gate_released < _POLITE and _others_waiting(wait_fd):
            await self.run.sleep(_jitter() * _POLITE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        # join the waiting room so that the holder knows to step aside next time
        try:
            fcntl.flock(wait_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # a releaser is probing right now; we are simply not counted this once
        try:
            while True:
                await patience.pause()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    pass
        finally:
            fcntl.flock(wait_fd, fcntl.LOCK_UN)

    def _leave_gate(self) -> None:
        if self._gate_fd is None or self._gate_depth == 0:
            return
        self._gate_depth -= 1
        if self._gate_depth == 0:
            fcntl.flock(self._gate_fd, fcntl.LOCK_UN)
            self._gate_released = time.monotonic()

    # -- the change signal ---------------------------------------------------

    async def data_version(self) -> int:
        """Changes whenever another connection commits."""
        row = await self.fetchone("PRAGMA data_version")
        return int(row[0]) if row is not None else 0

    async def change_signal(self) -> tuple[int, int]:
        """``PRAGMA data_version`` moves when *another* connection commits (a read of this
        connection's WAL index: no disk I/O, cheap to poll every 50 ms); ``total_changes``
        moves when *this* connection writes, which data_version never reports (the
        control room and its watcher share one connection). A rolled-back write may
        wake a waiter for nothing: harmless."""
        return await self.data_version(), self.conn.total_changes

    async def wait_for_change(
        self, signal: Any, *, timeout: float | None = None, interval: float = 0.05
    ) -> tuple[int, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = await self.change_signal()
            if current != signal:
                return current
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                await self.run.sleep(min(interval, left))
            else:
                await self.run.sleep(interval)

    # -- the audit scan ------------------------------------------------------

    async def scan_audit(self, consume: AuditScan[T]) -> T:
        """On its own read-only sqlite3 connection in a thread: hashing a long log is CPU
        work that must not sit on an event loop, and a streaming read keeps memory flat."""
        return await self.run.to_thread(_scan_sync, self.path, consume)


def _others_waiting(wait_fd: int) -> bool:
    """Whether a writer waits for the gate (it holds a shared lock on the wait file)."""
    try:
        fcntl.flock(wait_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(wait_fd, fcntl.LOCK_UN)
    return False


def _scan_sync(path: Path, consume: AuditScan[T]) -> T:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return consume(iter([chain.Unreadable(str(exc))]), lambda _hash: None)
    try:
        conn.row_factory = sqlite3.Row
        conn.text_factory = _exact_text
        lookup = conn.cursor()

        def locate(entry_hash: str) -> int | None:
            try:
                found = lookup.execute("SELECT seq FROM audit WHERE entry_hash = ? LIMIT 1", (entry_hash,)).fetchone()
            except sqlite3.Error:  # only explains a failure already found
                return None
            return found[0] if found else None

        def rows() -> Iterator[Any]:
            try:
                conn.execute("BEGIN")  # one consistent snapshot for the whole pass
                for r in conn.execute("SELECT * FROM audit ORDER BY seq"):
                    yield dict(r)
            except sqlite3.Error as exc:  # a damaged page, a dropped table: named, not a crash
                yield chain.Unreadable(str(exc))

        return consume(rows(), locate)
    finally:
        conn.close()
