"""Connection handling: opening, pragmas, migrations, transactions, retries.

One ``aiosqlite`` connection per ``Store``. aiosqlite runs a non-daemon thread
per connection, so a Store is always closed (``async with Store(...)``) or
the process hangs at exit.

Every write is ``BEGIN IMMEDIATE``: a deferred transaction that later upgrades
to a write gets SQLITE_BUSY at once whatever the busy timeout. SQLite's own
busy handler sleeps on a fixed, growing schedule (1, 2, 5 … 100 ms), which
favours whoever arrived last; under contention one agent can starve. So the
busy timeout is 0 and we retry ourselves with a short, capped, jittered
back-off: a waiter never sleeps longer than ``_BACKOFF_CAP`` at a time, so it
is never pushed to the back of the line for long. Measured with 8 and 16
processes claiming back to back (tests/benchmarks): a cap of 8 ms let one
process take 26 of 96 tasks while three got 1; at 1 ms every process got at
least three quarters of its fair share.

Polling ``BEGIN IMMEDIATE`` costs a thread hop and a SQLite lock attempt per
try: with 16 waiters on 2 cores the pollers starve the lock holder of CPU
(243 claims/s against 1,500/s for one process alone). So Tower writers first
queue on an advisory ``flock`` of ``<db>-writer.lock``, polled with
``LOCK_NB`` from the event loop (one syscall, no thread), and only then
BEGIN. A writer that just released the gate pauses briefly before taking it
again if anyone is waiting (waiters hold a shared lock on ``<db>-writer.wait``
while they wait), so that a waiter gets its turn; a lone writer never pauses. Non-Tower writers to the same file are
still handled by the BEGIN retry loop.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiosqlite

from core import audit as chain
from core.errors import NotFound, StoreUnusable, TimedOut
from core.gitrepo import KEY_NAME
from store.schema import MIGRATIONS, SCHEMA_VERSION

_BACKOFF_START = 0.0002
_BACKOFF_CAP = 0.001
_POLITE = 0.001  # after releasing the writer gate, wait up to this before retaking it

try:
    import fcntl
except ImportError:  # no advisory locks (Windows): rely on the BEGIN retry loop alone
    fcntl = None  # type: ignore[assignment]
DEFAULT_LOCK_TIMEOUT = 30.0

_PRAGMAS = """
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 0;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -16000;
"""


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _unusable(path: Path, exc: BaseException) -> StoreUnusable:
    return StoreUnusable(f"store {path} is unusable: {exc}")


def key_path_for(db_path: Path) -> Path:
    """The audit key lives beside the database (``.git/tower/audit.key``)."""
    return db_path.parent / KEY_NAME


def iso_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace(
        "+00:00", "Z"
    )


class StoreBase:
    """Opening, closing, transactions and the audit append shared by every verb."""

    def __init__(
        self,
        path: Path | str,
        *,
        actor: str = "tower",
        clock: Callable[[], float] = time.time,
        create: bool = False,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        key_path: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.key_path = key_path or key_path_for(self.path)
        self.actor = actor
        self.clock = clock
        self.create = create
        self.lock_timeout = lock_timeout
        self.give_up_at: float | None = None  # monotonic: a caller's own deadline for lock waits
        self._conn: aiosqlite.Connection | None = None
        self._key: bytes = b""
        self._tx_lock = asyncio.Lock()
        self._gate_fd: int | None = None
        self._gate_depth = 0  # the gate is re-entrant: creating a store holds it around a migration
        self._wait_fd: int | None = None
        self._gate_released = 0.0

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self):
        await self.open()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def open(self) -> None:
        if self.create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.key_path.exists():
                    if self.path.exists() and self.path.stat().st_size > 0:
                        # a new key would make every event already signed look forged, for good
                        raise StoreUnusable(
                            f"audit key {self.key_path} is missing but the store {self.path} exists:"
                            " restore the key (a new one cannot verify the existing log)",
                            code="bad_key",
                        )
                    try:
                        chain.create_key(self.key_path)
                    except FileExistsError:
                        pass  # another process created it first
            except OSError as exc:
                raise StoreUnusable(f"cannot create a store at {self.path}: {exc.strerror or exc}") from None
        elif not self.path.exists():
            raise NotFound(
                f"no Tower store at {self.path}: run `tower init`", code="not_initialised"
            )
        try:
            self._key = chain.load_key(self.key_path)
        except chain.AuditKeyError as exc:
            raise StoreUnusable(str(exc), code="bad_key") from None
        if fcntl is not None:
            try:
                self._gate_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
                self._wait_fd = os.open(f"{self.path}-writer.wait", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._gate_fd = self._wait_fd = None  # read-only directory: reads still work, writes use BEGIN retries
        mode = "rwc" if self.create else "rw"
        try:
            self._conn = await aiosqlite.connect(
                f"file:{self.path}?mode={mode}", uri=True, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None
        self._conn.row_factory = sqlite3.Row
        try:
            # Creating a store (tower init) holds the writer gate from the first read
            # to the end of the migration: before the WAL switch the file is in
            # rollback mode, where readers block the exclusive lock the switch
            # needs, and inits racing on a new repository would starve each other.
            if self.create:
                await self._enter_gate()
            try:
                await self._retrying(lambda: self.conn.executescript(_PRAGMAS))
                await self._migrate()
            finally:
                if self.create:
                    self._leave_gate()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _unusable(self.path, exc) from None
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        fds, self._gate_fd, self._wait_fd = (self._gate_fd, self._wait_fd), None, None
        try:
            if conn is not None:
                await conn.close()
        finally:
            for fd in fds:
                if fd is not None:
                    os.close(fd)

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def _migrate(self) -> None:
        version = (await self._fetchone("PRAGMA user_version"))[0]
        if version > SCHEMA_VERSION:
            raise StoreUnusable(
                f"store {self.path} has schema version {version}, newer than this Tower "
                f"({SCHEMA_VERSION}): upgrade Tower",
                code="schema_newer",
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not self.create:
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
        async with self.transaction():
            # re-read under the write lock: another process may have migrated meanwhile
            version = (await self._fetchone("PRAGMA user_version"))[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in _split_sql(MIGRATIONS[number]):
                    await self.conn.execute(statement)
                await self.conn.execute(f"PRAGMA user_version = {number + 1}")

    # -- statements ----------------------------------------------------------

    async def _retrying(self, op):
        """Run ``op`` (a coroutine factory), retrying while the database is busy."""
        patience = _Patience(self)
        while True:
            try:
                return await op()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise _unusable(self.path, exc) from None
                await patience.pause()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.IntegrityError):
                    raise
                raise _unusable(self.path, exc) from None

    async def _fetchall(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        async def op():
            return list(await self.conn.execute_fetchall(sql, params))

        if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
            return list(await self.conn.execute_fetchall(sql, params))
        # another task of this process may be mid-transaction on this connection:
        # wait for it rather than read its uncommitted rows
        async with self._tx_lock:
            return await self._retrying(op)

    async def _fetchone(self, sql: str, params: tuple | dict = ()) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _exec(self, sql: str, params: tuple | dict = ()) -> int:
        """Execute inside the current transaction; returns lastrowid."""
        cursor = await self.conn.execute(sql, params)
        rowid = cursor.lastrowid
        await cursor.close()
        return rowid or 0

    _tx_owner: asyncio.Task | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, retried while another process holds the lock."""
        async with self._tx_lock:
            await self._enter_gate()
            try:
                try:
                    # BEGIN sits inside the try: if we are cancelled while it is in
                    # flight, aiosqlite still runs it, and only the ROLLBACK queued
                    # behind it frees SQLite's write lock for everyone else
                    await self._retrying(lambda: self.conn.execute("BEGIN IMMEDIATE"))
                    self._tx_owner = asyncio.current_task()
                    yield self.conn
                    await self.conn.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise
                finally:
                    self._tx_owner = None
            finally:
                self._leave_gate()

    async def _rollback(self) -> None:
        try:
            await asyncio.shield(self.conn.execute("ROLLBACK"))
        except (sqlite3.Error, ValueError):
            pass  # nothing was open (BEGIN never ran, or failed)
        except asyncio.CancelledError:
            pass  # cancelled again: the shielded ROLLBACK still runs, queued behind BEGIN

    async def _enter_gate(self) -> None:
        fd = self._gate_fd
        if fd is None:
            return
        if self._gate_depth:
            self._gate_depth += 1
            return
        await self._take_gate(fd)
        self._gate_depth = 1

    async def _take_gate(self, fd: int) -> None:
        if time.monotonic() - self._gate_released < _POLITE and self._others_waiting():
            await asyncio.sleep(random.uniform(0.5, 1.0) * _POLITE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        # join the waiting room so that the holder knows to step aside next time
        try:
            fcntl.flock(self._wait_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # a releaser is probing right now; we are simply not counted this once
        try:
            patience = _Patience(self)
            while True:
                await patience.pause()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    pass
        finally:
            fcntl.flock(self._wait_fd, fcntl.LOCK_UN)

    def _others_waiting(self) -> bool:
        try:
            fcntl.flock(self._wait_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._wait_fd, fcntl.LOCK_UN)
        return False

    def _leave_gate(self) -> None:
        if self._gate_fd is None or self._gate_depth == 0:
            return
        self._gate_depth -= 1
        if self._gate_depth == 0:
            fcntl.flock(self._gate_fd, fcntl.LOCK_UN)
            self._gate_released = time.monotonic()

    async def data_version(self) -> int:
        """Changes whenever another connection commits."""
        return (await self._fetchone("PRAGMA data_version"))[0]

    async def change_signal(self) -> tuple[int, int]:
        """The change signal: differs from its last value once anyone has written since.

        ``PRAGMA data_version`` moves when *another* connection commits (a read
        of this connection's WAL index: no disk I/O, cheap to poll every 50 ms);
        ``total_changes`` moves when *this* connection writes, which
        data_version never reports (the control room and its watcher share one
        connection). A rolled-back write may wake a waiter for nothing: harmless.
        """
        return await self.data_version(), self.conn.total_changes

    async def wait_for_change(
        self, signal: tuple[int, int] | None, *, interval: float = 0.05, timeout: float | None = None
    ) -> tuple[int, int]:
        """Wait until the change signal differs from ``signal`` (None: return at once);
        returns the new signal. Sees a commit by any process within one interval.
        Raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = await self.change_signal()
            if current != signal:
                return current
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                await asyncio.sleep(min(interval, left))
            else:
                await asyncio.sleep(interval)

    # -- the audit chain -----------------------------------------------------

    async def _audit(
        self,
        event: str,
        *,
        actor: str | None = None,
        task_id: int | None = None,
        lease_id: int | None = None,
        approval_id: int | None = None,
        worktree: str | None = None,
        path: str | None = None,
        details: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> int:
        """Append one signed event; call only inside ``transaction()``."""
        last = await self._fetchone("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
        seq, prev = (last[0] + 1, last[1]) if last else (1, chain.GENESIS_HASH)
        entry = {
            "seq": seq,
            "ts": iso_ts(self.clock() if now is None else now),
            "actor": actor or self.actor,
            "event": event,
            "task_id": task_id,
            "lease_id": lease_id,
            "approval_id": approval_id,
            "worktree": worktree,
            "path": path,
            "details": details or {},
            "prev_hash": prev,
        }
        entry_hash = chain.compute_hash(entry)
        await self._exec(
            "INSERT INTO audit (seq, ts, actor, event, task_id, lease_id, approval_id, worktree,"
            " path, details, prev_hash, entry_hash, signature)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                entry["ts"],
                entry["actor"],
                event,
                task_id,
                lease_id,
                approval_id,
                worktree,
                path,
                _dumps(entry["details"]),
                prev,
                entry_hash,
                chain.sign(self._key, entry_hash),
            ),
        )
        return seq


class _Patience:
    """The one back-off of every wait for the write lock: short, capped, jittered.

    ``pause()`` sleeps a little longer each time up to ``_BACKOFF_CAP`` (never
    long, so a waiter is not pushed to the back of the line), and raises
    TimedOut (exit 5) once the store's ``lock_timeout`` is spent.
    """

    def __init__(self, store: StoreBase) -> None:
        self.store = store
        self.deadline = time.monotonic() + store.lock_timeout
        self.cut_short = store.give_up_at is not None and store.give_up_at < self.deadline
        if self.cut_short:
            self.deadline = store.give_up_at
        self.delay = _BACKOFF_START

    async def pause(self) -> None:
        if time.monotonic() >= self.deadline:
            if self.cut_short:
                raise TimedOut(f"store {self.store.path} is locked by another process, still at this"
                               " command's deadline", code="locked")
            raise TimedOut(
                f"store {self.store.path} stayed locked for more than {self.store.lock_timeout:g}s",
                code="locked",
            )
        await asyncio.sleep(random.uniform(0.5, 1.0) * self.delay)
        self.delay = min(self.delay * 2, _BACKOFF_CAP)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would COMMIT our transaction)."""
    statements, buffer = [], []
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
