"""``StoreBase``: what every verb shares: the backend, the audit key, the audit append.

A store holds one ``Backend`` (store/backend/): SQLite today. The verbs
write their SQL against its ``Tx`` and ``Dialect`` and never name an engine.
Every verb is one transaction that appends its audit event:

    async with self.transaction() as tx:
        row = await tx.fetchone("SELECT … WHERE id = ?", (task_id,))
        await tx.execute("UPDATE …", (…, tx.now, …))
        await self._audit(tx, "task.something", task_id=task_id, details={…})
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from core import audit as chain
from core.errors import BadInput, NotFound, StoreUnusable, TimedOut
from core.gitrepo import KEY_NAME
from store.backend import Backend, Params, Row, Tx, sqlite_backend

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
        # one bound on every wait for the write lock
        self.lock_timeout = default_lock_timeout() if lock_timeout is None else lock_timeout
        self.backend: Backend = sqlite_backend(self.path, lock_timeout=self.lock_timeout, clock=clock)
        self.dialect = self.backend.dialect
        self._key: bytes = b""

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self: T) -> T:
        await self.open()  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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
            raise NotFound(f"no Tower store at {self.path}: run `tower init`", code="not_initialised")
        try:
            self._key = chain.load_key(self.key_path)
        except chain.AuditKeyError as exc:
            raise StoreUnusable(str(exc), code="bad_key") from None
        await self.backend.open(create=self.create)

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
