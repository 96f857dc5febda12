"""The control room's data feed: what the panes show, read from the store.

One ``RoomFeed`` per room, on the room's one store connection. ``run`` (the
room's store worker) opens the store, loads every pane once, then watches for
changes: it polls the store's change signal (``PRAGMA data_version`` and the
connection's own change count for SQLite) every 50 ms, reads the audit events
since the last seq it saw, and re-reads only the rows they name; the agent
sessions when ``session_rev`` moves, when a lease or an approval changed, and at
least every second (stalled and ended come with time alone). It also does the
housekeeping a reader may do (reap expired leases, sweep the sessions), never
waiting for another process's write lock. It posts typed facts
(``tui.room.messages``), one ``StoreChanged`` per look; it never touches a widget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.message import Message

from core.errors import TowerError
from core.models import AgentSession
from core.locate import StoreURL
from store import Store
from tui.room.changes import touched_by
from tui.room.messages import (
    ApprovalsChanged,
    AuditAppended,
    ConflictsChanged,
    CountsChanged,
    LeasesChanged,
    Loaded,
    SessionsChanged,
    StoreChanged,
    StoreFailed,
    StoreOpened,
    StoreRecovered,
    TasksChanged,
)

POLL_INTERVAL = 0.05  # seconds between change checks (PRAGMA data_version is a memory read)
REAP_INTERVAL = 1.0  # seconds between "has any lease expired?" checks
AUDIT_BATCH = 2000  # more new events than this in one tick: reload everything instead
TAIL_PRELOAD = 200  # audit events read with the first load
#: agent sessions are re-listed this often even when nothing was written: a session
#: turns stalled (or ended) by time alone
AGENTS_INTERVAL = 1.0


class RoomFeed:
    def __init__(self, store: Store, db_path: Path | StoreURL, post: Callable[[Message], Any], *, stall_after: float,
                 end_after: float) -> None:
        self.store = store
        self.db_path = db_path
        self.post = post
        self.stall_after = stall_after
        self.end_after = end_after
        self._open_task: asyncio.Future[Any] | None = None
        self._wake = asyncio.Event()
        self._policy_read: tuple[float | None, float | None] | None = None  # (policy mtime, ask timeout)
        self._sessions: dict[int, AgentSession] = {}  # the list last posted
        self._sessions_rev: int | None = None
        self._next_agents = 0.0
        self.sessions_read = 0  # times the sessions were listed (tests await it rather than sleep)

    async def run(self) -> None:
        """Open the store, load everything once, then follow the changes until cancelled."""
        store = self.store
        self._open_task = asyncio.ensure_future(store.open())
        try:
            # shielded: a quit during the open must not leave a half-made connection behind
            await asyncio.shield(self._open_task)
        except TowerError as exc:
            self.post(StoreFailed(exc.message, fatal=True))
            return
        self.post(StoreOpened(str(self.db_path)))
        last_seq: int | None = None
        signal: object = (-1, -1)
        next_reap = 0.0
        failing = False
        while True:
            try:
                if last_seq is None:
                    await self._sweep_sessions(store)  # first: the first load shows what it wrote
                    signal = await store.change_signal()
                    last_seq = await self._load_all(store)
                    self.post(Loaded())
                now_signal = await store.change_signal()
                if now_signal != signal:
                    last_seq = await self._load_changes(store, last_seq)
                    signal = now_signal  # only once read: a failed read is retried
                elif time.monotonic() >= self._next_agents:
                    facts = await self._load_sessions(store, force=True)
                    if facts:
                        self.post(StoreChanged(facts))
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + REAP_INTERVAL
                    if await store.reap_if_due():
                        continue  # our own commit: pick it up right away
                    if await self._sweep_sessions(store):
                        continue
                if failing:
                    failing = False
                    self.post(StoreRecovered())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - shown, then retried: never a crash
                failing = True
                message = exc.message if isinstance(exc, TowerError) else f"{type(exc).__name__}: {exc}"
                self.post(StoreFailed(message))
                await asyncio.sleep(1.0)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            except TimeoutError:
                pass

    async def _load_all(self, store: Store) -> int:
        """Every pane from scratch; returns the audit seq the panes are up to date with."""
        counts = await store.counts()
        head = counts.audit_seq
        tasks = await store.view_queue()
        leases = await store.view_leases()
        approvals = await store.view_approvals()
        sources = await store.approval_sources(a.id for a in approvals if a.status == "pending")
        conflicts = await store.view_conflicts()
        sessions = await self._load_sessions(store, force=True, always=True)
        tail = await store.audit_range(max(head - TAIL_PRELOAD + 1, 1), head) if head else []
        self.post(StoreChanged([
            TasksChanged(tasks, full=True),
            LeasesChanged(leases, full=True),
            ApprovalsChanged(approvals, full=True, sources=sources, ask_timeout=await self._ask_timeout()),
            ConflictsChanged(conflicts, full=True),
            *sessions,
            CountsChanged(counts),
            AuditAppended(1, head, tail, initial=True),
        ]))
        return head

    async def _load_changes(self, store: Store, last_seq: int) -> int:
        """Re-read what the audit events since ``last_seq`` touched."""
        events = await store.audit_after(last_seq, limit=AUDIT_BATCH)
        if len(events) >= AUDIT_BATCH:
            return await self._load_all(store)  # a flood: one full read is cheaper
        touched = touched_by(events)
        facts: list = []
        if touched.tasks:
            facts.append(TasksChanged(await store.view_tasks(touched.tasks)))
        if touched.leases:
            facts.append(LeasesChanged(await store.view_leases(touched.leases)))
        if touched.approvals:
            rows = await store.view_approvals(touched.approvals)
            sources = await store.approval_sources(a.id for a in rows if a.status == "pending")
            facts.append(ApprovalsChanged(rows, sources=sources,
                                          ask_timeout=await self._ask_timeout() if sources else None))
        if touched.conflicts:
            facts.append(ConflictsChanged(await store.view_conflicts(touched.conflicts)))
        # a session's shown state also follows its lease and the approvals filed under it
        facts += await self._load_sessions(store, force=bool(touched.leases or touched.approvals))
        if events:
            facts.append(AuditAppended(events[0].seq, events[-1].seq, events))
            facts.append(CountsChanged(await store.counts()))
        if facts:
            self.post(StoreChanged(facts))
        return events[-1].seq if events else last_seq

    async def _sweep_sessions(self, store: Store) -> bool:
        """Write down what time alone did to the sessions (stalled, ended: audited once each),
        as ``tower agent list`` does; never waiting for another process's write lock."""
        try:
            return bool(await store.sweep_sessions(stall_after=self.stall_after, end_after=self.end_after,
                                                   wait=False))
        except TowerError as exc:
            if getattr(exc, "code", None) == "locked":
                return False  # the next look does it
            raise

    async def _load_sessions(self, store: Store, *, force: bool, always: bool = False) -> list[SessionsChanged]:
        """The agent sessions, when one was written (``session_rev`` moved) or ``force``:
        posted only if the list differs from the last one posted (or ``always``)."""
        rev = await store.session_rev()
        if rev == self._sessions_rev and not force:
            return []
        rows = await store.list_sessions(all=True, stall_after=self.stall_after, end_after=self.end_after)
        self._sessions_rev = rev
        self._next_agents = time.monotonic() + AGENTS_INTERVAL
        self.sessions_read += 1
        before = self._sessions
        now = {r.id: r for r in rows}
        changed = {i for i, r in now.items() if before.get(i) != r} | (before.keys() - now.keys())
        self._sessions = now
        if not changed and not always:
            return []
        return [SessionsChanged(rows, changed=changed)]

    async def _ask_timeout(self) -> float | None:
        """How long a hook waits for a person (the policy beside the store), re-read when the file changes."""
        from core.gitrepo import POLICY_NAME

        path = self.db_path.parent / POLICY_NAME

        def read() -> tuple[float | None, float | None]:
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if self._policy_read is not None and self._policy_read[0] == mtime:
                return self._policy_read
            from core.policy import load_policy

            try:
                return (mtime, load_policy(path, cache=False).ask_timeout)
            except Exception:  # noqa: BLE001 - an invalid policy: the hook denies; no deadline to show
                return (mtime, None)

        self._policy_read = await asyncio.to_thread(read)
        return self._policy_read[1]

    async def opened(self) -> None:
        """Wait for an open still in flight (the connection must be whole before it is closed)."""
        if self._open_task is not None:
            try:
                await self._open_task
            except BaseException:  # noqa: BLE001 - reported already; it only needs to be finished
                pass

    def wake(self) -> None:
        """Look for changes now rather than at the next poll (after our own writes)."""
        self._wake.set()

