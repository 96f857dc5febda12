"""The store-backed worktree watcher: file changes in, conflicts out.

``core.watcher.Watcher`` turns file-system events into content changes;
``core.conflict_rules`` says which conflicts a change opens and when one's
cause is gone. :class:`WatchService` connects them to the store:

- loads the registered, active worktrees whose paths exist, and their stored
  snapshots, and runs one ``Watcher`` over them;
- for each batch of changes: persists the snapshot updates and the baseline
  bookkeeping (``store.apply_watch_batch``, one transaction), reads the world
  (``store.watch_world``), records the conflicts the rules ask for
  (``store.record_conflicts``, audited, one open conflict per key), then
  re-checks every open conflict and resolves those whose cause is gone;
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
from core.ids import format_id
from core.models import Conflict
from core.watcher import Change, SnapshotUpdate, Watcher

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one watcher per store is then up to the user
    fcntl = None  # type: ignore[assignment]

__all__ = ["ConflictEvent", "WatchService", "WatchStatus", "run_watcher"]

log = logging.getLogger("tower.watching")

# watchfiles logs every (re)start at INFO ("N changes detected" at DEBUG); Tower reports
# what matters itself (status, warnings).
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)
# Tower's warnings reach the user through ``warnings``/``on_status``; without a handler
# anywhere, logging's last resort would also print them on stderr (garbling the control room).
_tower_log = logging.getLogger("tower")
if not _tower_log.handlers:
    _tower_log.addHandler(logging.NullHandler())

_RECORD_CHUNK = 200  # conflicts recorded per transaction
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


# The reconciliation rescan is the watcher's whole idle cost (~0.15 s of CPU
# for 40,000 files): every 10 s measured 2.0 % CPU idle, every 20 s ~1 %.
# It only catches what events missed (kernel queue overflow, exhausted
# watches), so such a write is flagged at most this late, never lost.
DEFAULT_RESCAN_INTERVAL = 20.0

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
        self._pending_updates: list[SnapshotUpdate] = []
        self._pending_changes: list[Change] = []
        self._to_judge: dict[tuple[str, str], None] = {}  # (worktree, path), ordered
        self._last_status: WatchStatus | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._running = False
        self._done: deque[list[Change]] = deque(maxlen=64)  # the last batches processed
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
        if changes:  # published to the consumer as this very list: wait until it is through
            while not any(b is changes for b in self._done) and not self._stop_evt.is_set():
                await asyncio.sleep(0.01)
        await self._settle()
        return changes

    async def recheck_now(self) -> None:
        """Re-check every open conflict now (and resolve those whose cause is gone)."""
        async with self._lock:
            await self._recheck()

    # -- the single-watcher lock ----------------------------------------------------

    async def _take_lock(self) -> bool:
        if fcntl is None:
            return True
        path = f"{self.store.path}-watcher.lock"
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
        known = [w for w in await self.store.list_worktrees() if w.active]
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
            await watcher.wait_ready()
            async with self._lock:
                await self._flush()
            if self._watcher is watcher and not self._stop_evt.is_set():
                self._ready_evt.set()
            await self._report_status()

        self._ready_task = asyncio.create_task(become_ready(), name="watch-ready")

    # -- batches ------------------------------------------------------------------------

    async def _consume(self, watcher: Watcher) -> None:
        async for batch in watcher.changes():
            async with self._lock:
                self._pending_changes.extend(batch)
                for c in batch:
                    self._to_judge[(c.worktree, c.path)] = None
                await self._flush()
                await self._recheck_safely()
            self._done.append(batch)

    async def _flush(self) -> None:
        """Store pending snapshot updates and changes, then judge the changed paths. Caller holds
        ``self._lock``. On a store error everything stays pending for the next attempt."""
        watcher = self._watcher
        if watcher is not None:
            self._pending_updates.extend(watcher.take_snapshot_updates())
        if self._pending_updates or self._pending_changes:
            try:
                await self.store.apply_watch_batch(self._pending_updates, self._pending_changes)
            except Exception as e:  # noqa: BLE001 - kept, retried: a locked store must not lose changes
                self._store_failed(e)
                return
            self._pending_updates = []
            self._pending_changes = []
            self.batches += 1
        if self._to_judge:
            await self._judge()

    async def _judge(self) -> None:
        keys = list(self._to_judge)
        try:
            world = await self.store.watch_world({p for _, p in keys})

            def judge() -> list[ConflictSpec]:
                return [spec for wt, path in keys for spec in conflicts_for(wt, path, world)]

            # a branch switch can change thousands of files: judge them off the event loop
            specs = judge() if len(keys) <= 200 else await asyncio.to_thread(judge)
            for i in range(0, len(specs), _RECORD_CHUNK):  # short transactions: agents keep their turn
                for conflict, new in await self.store.record_conflicts(specs[i : i + _RECORD_CHUNK]):
                    if new:
                        self.opened += 1
                        log.info("conflict C%s opened: %s", conflict.id, conflict.message)
                        await self._emit(ConflictEvent("opened", conflict))
        except Exception as e:  # noqa: BLE001 - judged again next time (recording is idempotent)
            self._store_failed(e)
            return
        self._store_ok()
        for k in keys:
            self._to_judge.pop(k, None)

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
                if now_signal != signal or due or self._pending_changes or self._pending_updates:
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


async def run_watcher(
    store: Any,
    *,
    report: Callable[[str, str], Any] | None = None,
    **options: Any,
) -> None:
    """Run a :class:`WatchService` until cancelled, telling ``report(message, severity)`` about
    each new warning (severity ``"warning"``; ``"error"`` once changes can only be found by the
    periodic rescan) and each conflict opened (``"information"``). ``options`` go to
    ``WatchService``. A convenience for a UI worker: ``await run_watcher(store, report=notify)``.
    """
    shown: set[str] = set()

    def on_status(st: WatchStatus) -> None:
        if report is None:
            return
        for w in st.warnings:
            if w not in shown:
                report(w, "error" if st.status == "rescan-only" else "warning")
        shown.intersection_update(st.warnings)
        shown.update(st.warnings)

    def on_conflict(event: ConflictEvent) -> None:
        if report is not None and event.action == "opened":
            report(f"{format_id('conflict', event.conflict.id)} {event.conflict.kind}: "
                   f"{event.conflict.message}", "information")

    options.setdefault("on_status", on_status)
    options.setdefault("on_conflict", on_conflict)
    service = WatchService(store, **options)
    task = asyncio.ensure_future(service.run())
    try:
        await asyncio.shield(task)
    finally:
        service.stop()
        if not task.done():
            await asyncio.wait({task})
