"""``StoreBase``: what every verb shares: the backend, the audit key, the audit append.

A store holds one ``Backend`` (store/backend/): SQLite, or PostgreSQL for a
``postgresql://`` URL or a ``store.toml`` that records one (store/locate.py;
psycopg is imported only then). The verbs
write their SQL against its ``Tx`` and ``Dialect`` and never name an engine.
Every verb is one transaction that appends its audit event:

    async with self.transaction() as tx:
        row = await tx.fetchone("SELECT … WHERE id = ?", (task_id,))
        await tx.execute("UPDATE …", (…, tx.now, …))
        await self._audit(tx, "task.something", task_id=task_id, details={…})
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from pathlib import Path

from core import audit as chain
from core.errors import BadInput, NotFound, StoreUnusable, TimedOut
from core.gitrepo import KEY_NAME
from store.backend import RetryableConflict, postgres_backend, sqlite_backend
from core.locate import POINTER_NAME, is_pointer, is_url, read_pointer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from store.backend.protocols import Backend, Params, Row, Tx

    T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT = 30.0
LOCK_TIMEOUT_ENV = "TOWER_LOCK_TIMEOUT"


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


def dumps(value: Any) -> str:
    """JSON as the audit chain stores it: sorted keys, no spaces, text as it is."""
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_fingerprint(key: bytes) -> str:
    """What a Postgres store records of its audit key (``tower_meta.key_id``): enough to
    refuse a host holding another key, nothing that helps to forge a signature."""
    import hashlib

    return hashlib.sha256(b"tower audit key id\n" + key).hexdigest()[:32]


RETRY_ATTEMPTS = 8


def _retried(verb: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run the verb again when its transaction was given up for another writer's sake
    (``RetryableConflict``: a serialization failure, a deadlock, a connection lost before
    COMMIT; Postgres only), with a short jittered back-off, within the lock timeout."""

    @functools.wraps(verb)
    async def run(self: StoreBase, *args: Any, **kwargs: Any) -> T:
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                return await verb(self, *args, **kwargs)
            except RetryableConflict as exc:
                attempt += 1
                if attempt >= RETRY_ATTEMPTS or time.monotonic() - started >= self.lock_timeout:
                    if exc.reconnect:
                        raise StoreUnusable(f"store {self.backend.where} is unusable: {exc}; nothing was"
                                            " changed") from None
                    raise TimedOut(f"store {self.backend.where} kept refusing the write ({exc}):"
                                   " nothing was changed", code="locked") from None
                import asyncio
                import random

                await asyncio.sleep(random.uniform(0.5, 1.0) * min(0.002 * 2 ** attempt, 0.25))

    return run


def run_inline(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` (a coroutine using only an inline store: ``Store(..., inline=True)``
    with ``store.inline`` true) to its end in this thread, without an event loop.

    Such a store's awaits complete at once (its waits block), so the coroutine
    never suspends; if it does (it awaited something of asyncio), that is a bug
    and raises RuntimeError, after closing the coroutine so that its cleanup runs.
    """
    try:
        suspended_on = work.send(None)
    except StopIteration as done:
        return done.value
    work.close()
    raise RuntimeError(f"an inline store's caller awaited something that needs an event loop ({suspended_on!r})")


def _is_coroutine_function(value: object) -> bool:
    # the code flag, not inspect: importing inspect costs the agents' path milliseconds
    return bool(getattr(getattr(value, "__code__", None), "co_flags", 0) & 0x80)  # CO_COROUTINE


def _repo_store_dir() -> Path | None:
    from core.gitrepo import discover

    info = discover()
    return info.store_dir if info is not None else None


class StoreBase:
    """Opening, closing, transactions and the audit append shared by every verb.

    ``path``: the SQLite file, a ``store.toml`` naming a Postgres database, or the
    ``postgresql://`` URL itself (the audit key is then ``key_path``, else the
    current repository's ``.git/tower/audit.key``). ``pool``: a long-lived process
    (the control room, the watcher) keeps a few connections to a Postgres store so
    that its reads never queue behind a write; SQLite ignores it. ``inline``: a
    one-shot caller that only reads and writes (never waits for a change) drives
    a SQLite store with ``run_inline`` instead of an event loop, and loads
    neither asyncio nor aiosqlite; ``self.inline`` says whether it got that (a
    Postgres store always needs the loop).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # every public verb runs again from the start if its transaction had to give way
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and _is_coroutine_function(value):
                setattr(cls, name, _retried(value))

    def __init__(
        self,
        path: Path | str,
        *,
        actor: str = "tower",
        clock: Callable[[], float] = time.time,
        create: bool = False,
        lock_timeout: float | None = None,
        key_path: Path | None = None,
        pool: bool = False,
        inline: bool = False,
    ) -> None:
        self.actor = actor
        self.clock = clock
        self.create = create
        # one bound on every wait for the write lock
        self.lock_timeout = default_lock_timeout() if lock_timeout is None else lock_timeout
        self.url: str | None = None
        if is_url(path):
            self.url = str(path)
            anchor = key_path.parent if key_path is not None else _repo_store_dir()
            self.path = (anchor or Path.cwd()) / POINTER_NAME
            self._keyless = key_path is None and anchor is None
        else:
            self.path = Path(path)
            self._keyless = False
            if is_pointer(self.path) and self.path.exists():
                self.url = read_pointer(self.path)
        self.key_path = key_path or key_path_for(self.path)
        if self.url is not None:
            self.backend: Backend = postgres_backend(self.url, lock_timeout=self.lock_timeout, clock=clock,
                                                     pool=pool, application=f"tower {actor}"[:63])
        else:
            self.backend = sqlite_backend(self.path, lock_timeout=self.lock_timeout, clock=clock, inline=inline)
        #: driven by ``run_inline``, without an event loop (asked for, and a SQLite store)
        self.inline = inline and self.url is None
        self.dialect = self.backend.dialect
        self._key: bytes = b""

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self: T) -> T:
        await self.open()  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self.url is not None:
            await self._open_postgres()
            return
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
            raise NotFound(f"no Tower store at {self.path}: run `tower init`", code="not_initialised")
        try:
            self._key = chain.load_key(self.key_path)
        except chain.AuditKeyError as exc:
            raise StoreUnusable(str(exc), code="bad_key") from None
        await self.backend.open(create=self.create)

    async def _open_postgres(self) -> None:
        """A Postgres store: the database first (it knows whether the store exists and whose
        key signs it), then the key, which never leaves this host (docs/postgres.md)."""
        if self._keyless:
            raise NotFound(f"no audit key for {self.backend.where}: run inside the repository whose"
                           " .git/tower/ holds it", code="not_initialised")
        await self.backend.open(create=self.create)
        try:
            recorded: str | None = getattr(self.backend, "key_id", None)
            if self.create and not self.key_path.exists():
                if recorded is not None:
                    raise StoreUnusable(
                        f"the store {self.backend.where} is signed with an audit key this host does not have"
                        f" (fingerprint {recorded}): on a host that has it run `tower key export`, and here"
                        f" `tower key import` (into {self.key_path}; a new key could not verify the log)", code="bad_key")
                try:
                    self.key_path.parent.mkdir(parents=True, exist_ok=True)
                    chain.create_key(self.key_path)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise StoreUnusable(f"cannot create the audit key {self.key_path}: {exc.strerror or exc}") from None
            if not self.create and recorded is None and not self.key_path.exists():
                # the schema may be there (a database made from a template), but no
                # `tower init` ever signed anything in it
                raise NotFound(f"no Tower store at {self.backend.where}: run `tower init`", code="not_initialised")
            try:
                self._key = chain.load_key(self.key_path)
            except chain.AuditKeyError as exc:
                raise StoreUnusable(str(exc), code="bad_key") from None
            mine = key_fingerprint(self._key)
            if recorded is None:
                if self.create:
                    async with self.transaction() as tx:
                        row = await tx.fetchone("SELECT key_id FROM tower_meta")
                        recorded = row[0] if row is not None else None
                        if recorded is None:
                            await tx.execute("UPDATE tower_meta SET key_id = ?", (mine,))
                            recorded = mine
                else:
                    recorded = mine  # a store made before fingerprints: nothing to compare with
            if recorded != mine:
                raise StoreUnusable(
                    f"the audit key {self.key_path} is not the key of the store {self.backend.where}"
                    f" (its fingerprint is {mine}, the store's is {recorded}): events signed with it would"
                    " look forged; bring the store's key from a host that has it (`tower key export` there,"
                    " `tower key import` here)", code="bad_key")
        except BaseException:
            await self.backend.close()
            raise

    async def close(self) -> None:
        await self.backend.close()

    @property
    def is_open(self) -> bool:
        return self.backend.is_open

    @property
    def give_up_at(self) -> float | None:
        """A caller's own deadline (``time.monotonic()``) for lock waits, before the lock timeout."""
        return self.backend.give_up_at

    @give_up_at.setter
    def give_up_at(self, deadline: float | None) -> None:
        self.backend.give_up_at = deadline

    # -- statements ----------------------------------------------------------

    def transaction(self, *, wait: bool = True) -> AbstractAsyncContextManager[Tx]:
        """One write transaction (``async with store.transaction() as tx``): see ``Backend.transaction``."""
        return self.backend.transaction(wait=wait)

    async def _fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.backend.fetchall(sql, params)

    async def _fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self.backend.fetchone(sql, params)

    async def _unless_locked(self, op: Callable[[], Awaitable[T]]) -> T | None:
        """``op()`` (which writes with ``wait=False``), or None when the write lock is taken.

        For housekeeping that a read does on the way (reaping expired leases):
        a read must answer while another process holds the lock, and the next
        writer does the housekeeping anyway.
        """
        try:
            return await op()
        except TimedOut as exc:
            if exc.code != "locked":
                raise
            return None

    # -- the change signal ---------------------------------------------------

    async def change_signal(self) -> Hashable:
        """An opaque value that differs from its last one once anyone has written since."""
        return await self.backend.change_signal()

    async def wait_for_change(
        self, signal: Hashable | None, *, interval: float = 0.05, timeout: float | None = None
    ) -> Hashable:
        """Wait until the change signal differs from ``signal`` (None: return at once);
        returns the new signal. Sees a commit by any process within one interval where
        the backend polls. Raises TimeoutError."""
        return await self.backend.wait_for_change(signal, timeout=timeout, interval=interval)

    # -- the audit chain -----------------------------------------------------

    async def _audit(
        self,
        tx: Tx,
        event: str,
        *,
        actor: str | None = None,
        task_id: int | None = None,
        lease_id: int | None = None,
        approval_id: int | None = None,
        worktree: str | None = None,
        path: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one signed event to the transaction ``tx``, at its time; returns its seq."""
        last_seq, last_hash = await tx.audit_head()
        seq, prev = last_seq + 1, last_hash or chain.GENESIS_HASH
        entry = {
            "seq": seq,
            "ts": iso_ts(tx.now),
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
        await tx.execute(
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
                dumps(entry["details"]),
                prev,
                entry_hash,
                chain.sign(self._key, entry_hash),
            ),
        )
        return seq
