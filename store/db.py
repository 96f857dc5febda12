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
import contextvars
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiosqlite

from core import audit as chain
from core.errors import BadInput, NotFound, StoreUnusable, TimedOut
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
LOCK_TIMEOUT_ENV = "TOWER_LOCK_TIMEOUT"

# Set (per asyncio task) while a write is only worth doing if the lock is free now.
_NO_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar("tower_no_lock_wait", default=False)

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


def _text(raw: bytes) -> str:
    """Column text; bytes that are not UTF-8 (a damaged row) become U+FFFD instead of
    failing the whole query, so that one bad row cannot hide every other one."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


def default_lock_timeout() -> float:
    """How long a command waits for the write lock: TOWER_LOCK_TIMEOUT seconds, else 30."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 <= value < 1e9):  # also refuses nan and inf
        raise BadInput(f"{LOCK_TIMEOUT_ENV} must be a number of seconds (0 or more), got {raw!r}")
    return value


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
        lock_timeout: float | None = None,
        key_path: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.key_path = key_path or key_path_for(self.path)
        self.actor = actor
        self.clock = clock
        self.create = create
        # one bound on every wait for the write lock: the writer gate and SQLite's lock together
        self.lock_timeout = default_lock_timeout() if lock_timeout is None else lock_timeout
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
        self._conn.text_factory = _text
        try:
            # Creating a store (tower init) holds the writer gate from the first read
            # to the end of the migration: before the WAL switch the file is in
            # rollback mode, where readers block the exclusive lock the switch
            # needs, and inits racing on a new repository would starve each other.
            if self.create:
                await self._enter_gate(_Patience(self))
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

    async def _retrying(self, op, patience: _Patience | None = None):
        """Run ``op`` (a coroutine factory), retrying while the database is busy."""
        patience = patience or _Patience(self)
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
            except UnicodeEncodeError as exc:
                raise _not_utf8(exc) from None

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
        """``BEGIN IMMEDIATE`` … ``COMMIT``, retried while another process holds the lock.

        Waiting for the writer gate and for SQLite's lock share one deadline
        (``lock_timeout``; exit 5 ``locked`` past it). An SQLite error inside
        the transaction (disk full at COMMIT, a read-only file, an I/O error, a
        damaged page) rolls it back and is exit 6: the store is as it was.
        """
        async with self._tx_lock:
            patience = _Patience(self, 0.0 if _NO_WAIT.get() else None)
            await self._enter_gate(patience)
            try:
                try:
                    # BEGIN sits inside the try: if we are cancelled while it is in
                    # flight, aiosqlite still runs it, and only the ROLLBACK queued
                    # behind it frees SQLite's write lock for everyone else
                    await self._retrying(lambda: self.conn.execute("BEGIN IMMEDIATE"), patience)
                    self._tx_owner = asyncio.current_task()
                    yield self.conn
                    await self.conn.execute("COMMIT")
                except BaseException as exc:
                    await self._rollback()
                    if isinstance(exc, sqlite3.IntegrityError):
                        raise  # a broken invariant: a bug, not the store's fault
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

    async def _unless_locked(self, op: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``op`` (which writes) only if the write lock is free now; None if it is not.

        For housekeeping that a read does on the way (reaping expired leases):
        a read must answer while another process holds the lock, and the next
        writer does the housekeeping anyway.
        """
        token = _NO_WAIT.set(True)
        try:
            return await op()
        except TimedOut as exc:
            if exc.code != "locked":
                raise
            return None
        finally:
            _NO_WAIT.reset(token)

    async def _rollback(self) -> None:
        try:
            await asyncio.shield(self.conn.execute("ROLLBACK"))
        except (sqlite3.Error, ValueError):
            pass  # nothing was open (BEGIN never ran, or failed)
        except asyncio.CancelledError:
            pass  # cancelled again: the shielded ROLLBACK still runs, queued behind BEGIN

    async def _enter_gate(self, patience: _Patience) -> None:
        fd = self._gate_fd
        if fd is None:
            return
        if self._gate_depth:
            self._gate_depth += 1
            return
        await self._take_gate(fd, patience)
        self._gate_depth = 1

    async def _take_gate(self, fd: int, patience: _Patience) -> None:
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

    def __init__(self, store: StoreBase, timeout: float | None = None) -> None:
        self.store = store
        self.timeout = store.lock_timeout if timeout is None else timeout
        self.deadline = time.monotonic() + self.timeout
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
                f"store {self.store.path} stayed locked for more than {self.timeout:g}s",
                code="locked",
            )
        await asyncio.sleep(random.uniform(0.5, 1.0) * self.delay)
        self.delay = min(self.delay * 2, _BACKOFF_CAP)


def _not_utf8(exc: UnicodeEncodeError) -> BadInput:
    bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
    shown = "".join(f"\\u{ord(c):04x}" for c in bad)
    return BadInput(f"text is not valid UTF-8 (it holds {shown or 'an unencodable character'}): nothing was changed",
                    code="bad_text")


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
