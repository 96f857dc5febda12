"""The store-backed worktree watcher: file changes in, conflicts out.

``core.watcher.Watcher`` turns file-system events into content changes;
``core.conflict_rules`` says which conflicts a change opens and when one's
cause is gone. :class:`WatchService` connects them to the store:

- loads the registered, active worktrees whose paths exist, and their stored
  snapshots, and runs one ``Watcher`` over them;
- for each batch of the watcher (``Watcher.batches()``): in one transaction
  (``store.apply_watch_batch``) stores its snapshot updates and the baseline
  bookkeeping, reads the world of the changed paths and records the conflicts
  the rules ask for (audited, one open conflict per key); then re-checks every
  open conflict and resolves those whose cause is gone. The snapshot never
  moves past a write that is not judged: a watcher killed at any moment finds
  every unjudged write again when it restarts (it reconciles the disk with
  the stored snapshot). A batch of more than ``_CHUNK`` changes is stored in
  several such transactions, split by path (agents keep their turn at the
  write lock);
- watches the store (``PRAGMA data_version`` and the connection's own
  ``total_changes``, so writes of other processes *and* of this process's
  other tasks are seen): on any commit it re-checks open conflicts (a released
  claim closes ``claimed_by_other`` within ``poll_interval``) and re-reads the
  worktrees table (``Watcher.set_worktrees`` when it changed); it also does
  both every ``recheck_interval`` seconds (leases expire without a commit);
- holds an advisory lock (``<db>-watcher.lock``) so that only one watcher runs
  per store: a second one (``tower watch`` next to the control room) stands
  by, with a warning, and takes over when the first one stops.

Nothing blocks the event loop: the watcher hashes and scans in threads, the
store is aiosqlite, and the few ``isdir`` checks run in a thread too.

Usage (the control room runs it as a background worker)::

    service = WatchService(store, on_conflict=..., on_status=...)
    task = asyncio.create_task(service.run())
    await service.wait_ready()          # optional
    ...
    service.stop()
    await task

Callbacks may be plain functions or coroutine functions; an exception in one
is logged and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.conflict_rules import ConflictSpec, cause_gone, conflicts_for
from core.models import Conflict
from core.watcher import DEFAULT_RESCAN_INTERVAL, Change, SnapshotUpdate, WatchBatch, Watcher

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one watcher per store is then up to the user
    fcntl = None  # type: ignore[assignment]

__all__ = ["ConflictEvent", "WatchService", "WatchStatus"]

log = logging.getLogger("tower.watching")

# watchfiles logs every (re)start at INFO ("N changes detected" at DEBUG); Tower reports
# what matters itself (status, warnings).
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)
# Tower's warnings reach the user through ``warnings``/``on_status``; without a handler
# anywhere, logging's last resort would also print them on stderr (garbling the control room).
_tower_log = logging.getLogger("tower")
if not _tower_log.handlers:
    _tower_log.addHandler(logging.NullHandler())

_CHUNK = 200  # changes stored and judged per transaction
_STANDBY = "another Tower watcher is running on this store: standing by until it stops"


@dataclass(frozen=True)
class ConflictEvent:
    """A conflict the service opened, or resolved because its cause went away."""

    action: Literal["opened", "resolved"]
    conflict: Conflict
    reason: str | None = None


@dataclass(frozen=True)
class WatchStatus:
    """What the service is doing (passed to ``on_status`` whenever a field changes).

    ``status``: ``starting``, ``standby`` (another watcher holds the store),
    ``watching`` (native events), ``polling`` (fallback), ``rescan-only``
    (polling failed too: changes are found by the periodic rescan only),
    ``idle`` (no worktree to watch) or ``stopped``.
    """

    status: str
    warnings: tuple[str, ...] = ()
    worktrees: tuple[str, ...] = ()
    ready: bool = False


ConflictCallback = Callable[[ConflictEvent], Awaitable[None] | None]
StatusCallback = Callable[[WatchStatus], Awaitable[None] | None]



@dataclass(frozen=True)
class _Unit:
    """Part of a watcher batch, stored and judged in one transaction."""

    seq: int
    updates: list[SnapshotUpdate]
    changes: list[Change]


def _units(batch: WatchBatch, limit: int = _CHUNK) -> list[_Unit]:
    """Split a big batch by path: every change of a path (in every worktree) and that path's
    snapshot updates go together; the updates of unchanged paths ride with the first part. A
    batch holding a whole new snapshot (``replace``) stays whole: that snapshot already holds
    the content of the batch's changes."""
    if len(batch.changes) <= limit or any(u.replace for u in batch.updates):
        return [_Unit(batch.seq, list(batch.updates), list(batch.changes))]
    by_path: dict[str, list[Change]] = {}
    for c in batch.changes:
        by_path.setdefault(c.path, []).append(c)
    groups: list[list[Change]] = [[]]
    for same in by_path.values():
        if groups[-1] and len(groups[-1]) + len(same) > limit:
            groups.append([])
        groups[-1].extend(same)
    part_of = {(c.worktree, c.path): i for i, g in enumerate(groups) for c in g}
    updates: list[list[SnapshotUpdate]] = [[] for _ in groups]
    for u in batch.updates:
        split: dict[int, tuple[dict, list]] = {}
        for path, fp in u.upserts.items():
            split.setdefault(part_of.get((u.worktree, path), 0), ({}, []))[0][path] = fp
        for path in u.deletes:
            split.setdefault(part_of.get((u.worktree, path), 0), ({}, []))[1].append(path)
        for i, (upserts, deletes) in split.items():
            updates[i].append(SnapshotUpdate(u.worktree, False, upserts, deletes))
    return [_Unit(batch.seq, updates[i], g) for i, g in enumerate(groups)]


class WatchService:
    """Run the worktree watcher against a store; see the module doc.

    ``store``: an open ``store.Store`` (shared with the caller is fine: its
    verbs serialise on the connection). ``rescan_interval``: seconds between
    reconciliation rescans (None: never). ``debounce_ms``: watchfiles'
    debounce. ``force_polling``: see ``core.watcher.Watcher``.
    ``poll_interval``: how often the store's change signal is read.
    ``recheck_interval``: open conflicts and worktrees are re-read at least
    this often (default: ``rescan_interval``, else 10 s).
    """

    def __init__(
        self,
        store: Any,
        *,
        rescan_interval: float | None = DEFAULT_RESCAN_INTERVAL,
        debounce_ms: int = 50,
        force_polling: bool | None = None,
        on_conflict: ConflictCallback | None = None,
        on_status: StatusCallback | None = None,
        poll_interval: float = 0.1,
        recheck_interval: float | None = None,
        watcher_factory: Callable[..., Watcher] = Watcher,
    ) -> None:
        self.store = store
        self.rescan_interval = rescan_interval
        self.debounce_ms = debounce_ms
        self.force_polling = force_polling
        self.on_conflict = on_conflict
        self.on_status = on_status
        self.poll_interval = poll_interval
        self.recheck_interval = recheck_interval or min(rescan_interval or 10.0, 10.0)
        self._watcher_factory = watcher_factory
        #: while standing by, how often to try the single-watcher lock
        self.lock_retry_interval = 2.0

        self._watcher: Watcher | None = None
        self._stop_evt = asyncio.Event()
        self._ready_evt = asyncio.Event()
        self._lock = asyncio.Lock()  # batches, flushes and re-checks, one at a time
        self._lock_fd: int | None = None
        self._state = "idle"  # before run()
        self._own_warnings: dict[str, str] = {}  # key -> message
        self._roots: dict[str, str] = {}
        self._pending: deque[_Unit] = deque()  # received from the watcher, not yet stored
        self._received = 0  # seq of the last watcher batch received
        self._stored = 0  # seq of the last watcher batch stored (and judged) in full
        self._stored_evt = asyncio.Event()  # set whenever _stored moves
        self._last_status: WatchStatus | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._running = False
        #: counters, for the curious (and the benchmark)
        self.opened = 0
        self.resolved = 0
        self.batches = 0

    # -- public API ---------------------------------------------------------------

    @property
    def status(self) -> str:
        """See :class:`WatchStatus`."""
        if self._state == "running" and self._watcher is not None:
            return self._watcher.status if self._watcher.status != "stopped" else "stopped"
        return self._state

    @property
    def warnings(self) -> list[str]:
        """Problems to show (a watch limit hit and the fall-back to polling, missing worktrees,
        store errors, another watcher running); an entry goes away when its cause does."""
        out = list(self._own_warnings.values())
        if self._watcher is not None:
            out += [w for w in self._watcher.warnings if w not in out]
        return out

    @property
    def worktrees(self) -> dict[str, Path]:
        """The worktrees being watched: name -> root."""
        return {name: Path(root) for name, root in self._roots.items()}

    @property
    def watcher(self) -> Watcher | None:
        """The underlying ``core.watcher.Watcher`` while running (tests pause it)."""
        return self._watcher

    @property
    def ready(self) -> bool:
        return self._ready_evt.is_set()

    def snapshot_status(self) -> WatchStatus:
        return WatchStatus(self.status, tuple(self.warnings), tuple(sorted(self._roots)), self.ready)

    async def wait_ready(self) -> None:
        """Until every watched worktree is snapshotted, its snapshot stored, and events flow
        (again after a change of the worktrees table). Never returns while standing by."""
        await self._ready_evt.wait()

    async def run(self) -> None:
        """Watch until ``stop()``, then return. If the task running it is cancelled instead, it
        cleans up the same way (watcher closed, last updates stored) and re-raises. A service
        runs once: ``run()`` after ``stop()`` returns at once."""
        if self._running:
            raise RuntimeError("WatchService.run() is already running")
        if self._stop_evt.is_set():
            return
        self._running = True
        self._state = "starting"
        tasks: list[asyncio.Task[Any]] = []
        try:
            if not await self._take_lock():
                return
            self._state = "starting"  # (was "standby" while waiting for the lock)
            await self._report_status()
            roots = await self._load_roots()
            seeds = await self._load_seeds(roots)
            watcher = self._watcher_factory(
                roots,
                snapshot=seeds,
                debounce_ms=self.debounce_ms,
                rescan_interval=self.rescan_interval,
                force_polling=self.force_polling,
            )
            self._watcher = watcher
            self._roots = dict(roots)
            self._state = "running"
            if self._stop_evt.is_set():
                return
            tasks.append(asyncio.create_task(self._consume(watcher), name="watch-consume"))
            self._arm_ready(watcher)
            tasks.append(asyncio.create_task(self._supervise(), name="watch-supervise"))
            await self._stop_evt.wait()
        finally:
            if self._watcher is not None:
                self._watcher.stop()
            if self._ready_task is not None:
                self._ready_task.cancel()
                tasks.append(self._ready_task)
            for t in tasks:
                if t.get_name() == "watch-supervise":
                    t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._watcher is not None:
                await self._watcher.aclose()
                try:  # what the last batch left unsaved
                    await asyncio.shield(self._flush())
                except Exception:  # noqa: BLE001 - the store may be gone: a rescan catches up next time
                    log.exception("could not store the last snapshot updates")
            self._release_lock()
            self._state = "stopped"
            self._ready_evt.clear()
            self._running = False
            await self._report_status()

    def stop(self) -> None:
        """Ask ``run()`` to finish (returns at once; await the run task to wait for it)."""
        self._stop_evt.set()
        if self._watcher is not None:
            self._watcher.stop()

    async def rescan_now(self) -> list[Change]:
        """Reconcile every worktree with the disk now; the changes found are processed as a batch
        (conflicts recorded) before this returns."""
        watcher = self._watcher
        if watcher is None:
            return []
        changes = await watcher.rescan_now()
        await self._wait_stored(watcher.published)  # its batch, and every one before it
        await self._settle()
        return changes

    # -- the single-watcher lock ----------------------------------------------------

    async def _take_lock(self) -> bool:
        if fcntl is None:
            return True
        # one watcher per host: a store shared by several machines has one on each, and
        # hosts that share a file system (or the tests' "hosts") must not stand each other by
        host = getattr(self.store, "host", None)
        suffix = "-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in host) if host else ""
        path = f"{self.store.path}-watcher{suffix}.lock"
        try:
            self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as e:
            log.warning("cannot open %s (%s): not checking for another watcher", path, e)
            return True
        waiting = False
        while not self._stop_evt.is_set():
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if waiting:
                    self._own_warnings.pop("standby", None)
                    log.info("the other watcher stopped: taking over")
                return True
            except BlockingIOError:
                pass
            if not waiting:
                waiting = True
                self._state = "standby"
                self._own_warnings["standby"] = _STANDBY
                log.warning("%s", _STANDBY)
                await self._report_status()
            try:
                await asyncio.wait_for(self._stop_evt.wait(), self.lock_retry_interval)
            except TimeoutError:
                pass
        return False

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._own_warnings.pop("standby", None)

    # -- worktrees --------------------------------------------------------------------

    async def _load_roots(self) -> dict[str, str]:
        """Registered, active worktrees whose paths exist (name -> path); warns about the others."""
        # this host's worktrees: each host runs its own watcher over the shared store
        known = [w for w in await self.store.list_worktrees(local_only=True) if w.active]
        exists = await asyncio.to_thread(lambda: {w.name: os.path.isdir(w.path) for w in known})
        roots: dict[str, str] = {}
        for key in [k for k in self._own_warnings if k.startswith("missing:")]:
            if key[len("missing:"):] not in {w.name for w in known if not exists[w.name]}:
                del self._own_warnings[key]
        for w in known:
            if exists[w.name]:
                roots[w.name] = w.path
            else:
                self._own_warnings[f"missing:{w.name}"] = (
                    f"worktree {w.name}: {w.path} does not exist, not watched "
                    f"(`tower worktree sync` forgets worktrees git no longer has)"
                )
        if not known:
            self._own_warnings["none"] = "no worktrees registered: run `tower worktree sync`"
        else:
            self._own_warnings.pop("none", None)
        return roots

    async def _load_seeds(self, roots: dict[str, str]) -> dict[str, dict]:
        """Stored snapshots: a worktree without one gets a fresh snapshot (its baseline)."""
        seeds = {}
        for wt in roots:
            stored = await self.store.load_snapshot(wt)
            if stored:  # an empty one would make every file on disk look new
                seeds[wt] = stored
        return seeds

    async def _sync_worktrees(self) -> None:
        watcher = self._watcher
        if watcher is None:
            return
        roots = await self._load_roots()
        if roots != self._roots:
            log.info("worktrees changed: now watching %s", ", ".join(sorted(roots)) or "nothing")
            self._roots = dict(roots)
            watcher.set_worktrees(roots)
            self._arm_ready(watcher)

    def _arm_ready(self, watcher: Watcher) -> None:
        """(Re)start the task that sets ``ready`` once the watcher is ready and its snapshots stored."""
        self._ready_evt.clear()
        if self._ready_task is not None:
            self._ready_task.cancel()

        async def become_ready() -> None:
            # ready means: snapshots stored and the start-up differences judged (a restart
            # after a crash has flagged what the crash left unjudged)
            await watcher.wait_ready()
            if not await self._wait_stored(await watcher.settled()):
                return
            if self._watcher is watcher and not self._stop_evt.is_set():
                self._ready_evt.set()
            await self._report_status()

        self._ready_task = asyncio.create_task(become_ready(), name="watch-ready")

    # -- batches ------------------------------------------------------------------------

    async def _consume(self, watcher: Watcher) -> None:
        async for batch in watcher.batches():
            # queued before any await: whoever flushes next stores it, in order
            self._pending.extend(_units(batch))
            self._received = batch.seq
            async with self._lock:
                await self._flush()
                await self._recheck_safely()

    async def _flush(self) -> None:
        """Store the pending batches in order, each with the conflicts its changes open (one
        transaction per unit). Caller holds ``self._lock``. On a store error the rest stays
        pending for the next attempt; nothing of a unit is stored unless all of it is."""
        while self._pending:
            unit = self._pending[0]
            try:
                recorded = await self.store.apply_watch_batch(
                    unit.updates, unit.changes, judge=_judge(unit.changes))
            except Exception as e:  # noqa: BLE001 - kept, retried: a locked store must not lose changes
                self._store_failed(e)
                return
            self._pending.popleft()
            self.batches += 1
            self._store_ok()
            done = self._pending[0].seq - 1 if self._pending else self._received
            if done > self._stored:
                self._stored = done
                self._stored_evt.set()
            for conflict, new in recorded:
                if new:
                    self.opened += 1
                    log.info("conflict C%s opened: %s", conflict.id, conflict.message)
                    await self._emit(ConflictEvent("opened", conflict))

    async def _wait_stored(self, seq: int) -> bool:
        """Until every watcher batch up to ``seq`` is stored; False if the service stops first."""
        while self._stored < seq:
            if self._stop_evt.is_set():
                return False
            self._stored_evt.clear()
            waits = [asyncio.ensure_future(self._stored_evt.wait()), asyncio.ensure_future(self._stop_evt.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        return True

    async def _recheck_safely(self) -> None:
        try:
            await self._recheck()
        except Exception as e:  # noqa: BLE001
            self._store_failed(e)
        else:
            self._store_ok()

    async def _recheck(self) -> None:
        """Resolve every open conflict whose cause is gone. Caller holds ``self._lock``."""
        open_ = await self.store.list_conflicts("open")
        if not open_:
            return
        world = await self.store.watch_world({c.path for c in open_})
        for c in open_:
            reason = cause_gone(c, world)
            if reason is None:
                continue
            closed = await self.store.resolve_conflict(c.id, reason=reason)
            if closed.status == "resolved" and closed.closed_by == "watcher":
                self.resolved += 1
                log.info("conflict C%s resolved: %s", c.id, reason)
                await self._emit(ConflictEvent("resolved", closed, reason))

    async def _settle(self) -> None:
        """Wait until nothing is pending (used by rescan_now)."""
        async with self._lock:
            await self._flush()
            await self._recheck_safely()

    def _store_failed(self, e: BaseException) -> None:
        message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        text = f"store error, retrying: {message}"
        if self._own_warnings.get("store") != text:
            log.error("watcher: %s", text, exc_info=not hasattr(e, "message"))
        self._own_warnings["store"] = text

    def _store_ok(self) -> None:
        self._own_warnings.pop("store", None)

    # -- the supervisor: store changes, worktrees, status --------------------------------

    async def _supervise(self) -> None:
        signal: tuple[int, int] | None = None
        next_full = 0.0
        while not self._stop_evt.is_set():
            try:
                now_signal = await self.store.change_signal()
                due = time.monotonic() >= next_full
                if now_signal != signal or due or self._pending:
                    signal = now_signal  # taken before the work: a commit meanwhile triggers another pass
                    await self._sync_worktrees()
                    async with self._lock:
                        await self._flush()
                        await self._recheck()
                    self._store_ok()
                    if due:
                        next_full = time.monotonic() + self.recheck_interval
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - shown as a warning, retried
                self._store_failed(e)
            await self._report_status()
            try:
                await asyncio.wait_for(self._stop_evt.wait(), self.poll_interval)
            except TimeoutError:
                pass

    async def _report_status(self) -> None:
        current = self.snapshot_status()
        if current == self._last_status:
            return
        self._last_status = current
        if self.on_status is not None:
            await self._call(self.on_status, current)

    async def _emit(self, event: ConflictEvent) -> None:
        if self.on_conflict is not None:
            await self._call(self.on_conflict, event)

    @staticmethod
    async def _call(callback: Callable[[Any], Any], arg: Any) -> None:
        try:
            result = callback(arg)
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001 - a broken callback must not stop the watcher
            log.exception("watch callback %r failed", callback)


def _judge(changes: list[Change]) -> Callable[[Any], list[ConflictSpec]]:
    keys = list(dict.fromkeys((c.worktree, c.path) for c in changes))
    return lambda world: [spec for wt, path in keys for spec in conflicts_for(wt, path, world)]
