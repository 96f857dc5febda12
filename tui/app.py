"""The control room: a live, keyboard-driven view of the store.

One ``Store`` (one aiosqlite connection) for the whole app. A single store
worker opens it, loads every pane once, then watches for changes: it polls
``PRAGMA data_version`` (another process committed) and the connection's own
``total_changes`` (this app committed) every 50 ms, reads the audit events
since the last seq it saw, and re-reads only the rows those events name. It
posts typed messages (``tui.messages``); handlers update the widgets. Writes
(approve, reject, ack, retry, cancel, reap) run in their own workers through
the same store verbs as the command line, with the person as actor, and wake
the store worker so their effect shows at once — but only once committed.

Nothing here blocks the event loop on the database: every query is awaited in
a worker, and the audit pane reads only the lines on screen.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widget import Widget
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from core.errors import TowerError
from core.models import Approval as ApprovalRow
from core.models import Counts
from store import Store
from tui import theme
from tui.changes import touched_by
from tui.format import aid, cid, tid
from tui.messages import (
    ActionDone,
    ActionFailed,
    ApprovalsChanged,
    AuditAppended,
    ConflictsChanged,
    CountsChanged,
    LeasesChanged,
    Loaded,
    StoreFailed,
    StoreOpened,
    StoreRecovered,
    StoreChanged,
    TasksChanged,
    WatcherChanged,
)
from tui.palette import TowerCommands
from tui.panes.approvals import ApprovalsPane
from tui.panes.audit import AuditPane, AuditTail
from tui.panes.base import TablePane
from tui.panes.conflicts import ConflictsPane
from tui.panes.leases import LeasesPane
from tui.panes.queue import QueuePane
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.reject import RejectDialog
from tui.widgets.header import AlertBar, HeaderBar

POLL_INTERVAL = 0.05  # seconds between change checks (PRAGMA data_version is a memory read)
REAP_INTERVAL = 1.0  # seconds between "has any lease expired?" checks
AUDIT_BATCH = 2000  # more new events than this in one tick: reload everything instead
TAIL_PRELOAD = 200  # audit events read with the first load

PANES = ("queue", "leases", "approvals", "conflicts", "audit")


def while_running(handler):
    """Messages from workers can still arrive while the app closes its screens: drop them."""

    @functools.wraps(handler)
    def guarded(self, *args, **kwargs):
        if not self.screen_stack or not self.is_running:
            return None
        return handler(self, *args, **kwargs)

    return guarded


def default_actor() -> str:
    """Decisions made in the control room are the logged-in person's."""
    try:
        return f"person:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "person"


class TowerApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Tower"
    COMMANDS = App.COMMANDS | {TowerCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    NOTIFICATION_TIMEOUT = 6

    # The single keys of the control room are priority bindings: the app runs them
    # the moment it reads them, in order. Non-priority bindings resolve later, while
    # the key bubbles up from the focused widget, so in a burst ("3a", "/conf" from a
    # fast typist, a paste or tmux) the second key would be routed before the first
    # had moved the focus. check_action() lets them through to a text field or a dialog.
    BINDINGS: ClassVar = [
        Binding("tab", "focus_next", "Next pane", show=False, id="next-pane"),
        Binding("shift+tab", "focus_previous", "Previous pane", show=False, id="previous-pane"),
        Binding("1", "focus_pane('queue')", "Queue", show=False, id="pane-queue", priority=True),
        Binding("2", "focus_pane('leases')", "Leases", show=False, id="pane-leases", priority=True),
        Binding("3", "focus_pane('approvals')", "Approvals", show=False, id="pane-approvals", priority=True),
        Binding("4", "focus_pane('conflicts')", "Conflicts", show=False, id="pane-conflicts", priority=True),
        Binding("5", "focus_pane('audit')", "Audit", show=False, id="pane-audit", priority=True),
        Binding("a", "approve", "Approve", id="approve", priority=True),
        Binding("r", "reject", "Reject", id="reject", priority=True),
        Binding("x", "ack_conflict", "Ack conflict", id="ack-conflict", priority=True),
        Binding("slash", "filter", "Filter", id="filter", priority=True),
        Binding("f", "toggle_follow", "Follow", id="follow", priority=True),
        Binding("question_mark", "help", "Help", id="help", priority=True),
        Binding("q", "quit", "Quit", id="quit", priority=True),
    ]
    MAIN_SCREEN_ACTIONS = frozenset(
        {"focus_pane", "approve", "reject", "ack_conflict", "filter", "toggle_follow", "help", "quit"}
    )

    HELP_ROWS: ClassVar[list[tuple[str, str, str]]] = [
        ("Move", "tab / shift+tab", "next / previous pane"),
        ("Move", "1 2 3 4 5", "jump to Queue, Leases, Approvals, Conflicts, Audit"),
        ("Move", "↑ ↓ / j k", "move in the pane (g / G: first / last)"),
        ("Move", "enter", "details of the selected row (task, lease, approval, conflict, event)"),
        ("Act", "a", "approve the selected approval"),
        ("Act", "r", "reject it: a dialog asks for the reason (enter confirms, escape cancels)"),
        ("Act", "x", "acknowledge the selected conflict"),
        ("Act", "ctrl+p", "command palette: retry / cancel a task, reap, verify the audit log …"),
        ("View", "/", "filter the current pane (escape clears)"),
        ("View", "f", "audit pane: follow the tail on / off (scrolling up pauses, End resumes)"),
        ("App", "?", "this help"),
        ("App", "q", "quit"),
    ]

    def __init__(
        self,
        db_path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        watch: bool = True,
        actor: str | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.clock = clock
        self.watch_enabled = watch
        self.actor = actor or default_actor()
        self.store = Store(self.db_path, actor=self.actor, clock=clock)
        self.counts: Counts | None = None
        self.store_error: str | None = None
        self.loaded = asyncio.Event()
        self.bells = 0  # announcements rung (the terminal bell is silent in tests)
        self.cursor_blink = True  # text inputs; snapshots turn it off
        self._open_task: asyncio.Future | None = None
        self._watcher_worker: Worker | None = None
        self._wake = asyncio.Event()
        self._known_approvals: set[int] | None = None
        self._known_conflicts: set[int] | None = None
        self._current_pane = "queue"
        self._binding_state: tuple = ()
        self.register_theme(theme.TOWER_THEME)
        self.theme = "tower"

    # -- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.db_path.name, id="header")
        yield AlertBar(id="alerts")
        with Grid(id="panes"):
            yield QueuePane(id="queue", clock=self.clock)
            yield LeasesPane(id="leases", clock=self.clock)
            yield ApprovalsPane(id="approvals", clock=self.clock)
            yield ConflictsPane(id="conflicts", clock=self.clock)
            yield AuditPane(id="audit")
        yield Footer()

    @property
    def queue_pane(self) -> QueuePane:
        return self.query_one("#queue", QueuePane)

    @property
    def leases_pane(self) -> LeasesPane:
        return self.query_one("#leases", LeasesPane)

    @property
    def approvals_pane(self) -> ApprovalsPane:
        return self.query_one("#approvals", ApprovalsPane)

    @property
    def conflicts_pane(self) -> ConflictsPane:
        return self.query_one("#conflicts", ConflictsPane)

    @property
    def audit_pane(self) -> AuditPane:
        return self.query_one("#audit", AuditPane)

    @property
    def audit_tail(self) -> AuditTail:
        return self.query_one(AuditTail)

    def pane(self, name: str) -> Widget:
        return self.query_one(f"#{name}")

    def on_mount(self) -> None:
        self.queue_pane.table.focus()
        self.set_interval(1.0, self._tick, name="clock-tick")
        self.watch_store()
        if self.watch_enabled:
            self.start_watcher()

    async def on_unmount(self) -> None:
        await self.close_store()

    async def close_store(self) -> None:
        """Close the one connection, after any open still in flight and after the
        watcher has stopped writing (aiosqlite's thread is not a daemon: a
        connection left open hangs the process at exit)."""
        if self._watcher_worker is not None:
            self._watcher_worker.cancel()
            try:
                await asyncio.wait_for(self._watcher_worker.wait(), 6)
            except BaseException:  # noqa: BLE001 - cancelled, failed or slow: close anyway
                pass
        if self._open_task is not None:
            try:
                await self._open_task
            except BaseException:  # noqa: BLE001 - reported already; we only need it finished
                pass
        await self.store.close()

    # -- the store worker -------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="store", name="store-watch")
    async def watch_store(self) -> None:
        store = self.store
        self._open_task = asyncio.ensure_future(store.open())
        try:
            # shielded: a quit during the open must not leave a half-made connection behind
            await asyncio.shield(self._open_task)
        except TowerError as exc:
            self.post_message(StoreFailed(exc.message, fatal=True))
            return
        self.post_message(StoreOpened(str(self.db_path)))
        last_seq: int | None = None
        signal = (-1, -1)
        next_reap = 0.0
        failing = False
        while True:
            try:
                if last_seq is None:
                    signal = await store.change_signal()
                    last_seq = await self._load_all(store)
                    self.post_message(Loaded())
                now_signal = await store.change_signal()
                if now_signal != signal:
                    last_seq = await self._load_changes(store, last_seq)
                    signal = now_signal  # only once read: a failed read is retried
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + REAP_INTERVAL
                    if await store.reap_if_due():
                        continue  # our own commit: pick it up right away
                if failing:
                    failing = False
                    self.post_message(StoreRecovered())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - shown, then retried: never a crash
                failing = True
                message = exc.message if isinstance(exc, TowerError) else f"{type(exc).__name__}: {exc}"
                self.post_message(StoreFailed(message))
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
        conflicts = await store.view_conflicts()
        tail = await store.audit_range(max(head - TAIL_PRELOAD + 1, 1), head) if head else []
        self.post_message(StoreChanged([
            TasksChanged(tasks, full=True),
            LeasesChanged(leases, full=True),
            ApprovalsChanged(approvals, full=True),
            ConflictsChanged(conflicts, full=True),
            CountsChanged(counts),
            AuditAppended(1, head, tail, initial=True),
        ]))
        return head

    async def _load_changes(self, store: Store, last_seq: int) -> int:
        """Re-read what the audit events since ``last_seq`` touched."""
        events = await store.audit_after(last_seq, limit=AUDIT_BATCH)
        if not events:
            return last_seq
        if len(events) >= AUDIT_BATCH:
            return await self._load_all(store)  # a flood: one full read is cheaper
        touched = touched_by(events)
        facts: list = []
        if touched.tasks:
            facts.append(TasksChanged(await store.view_tasks(touched.tasks)))
        if touched.leases:
            facts.append(LeasesChanged(await store.view_leases(touched.leases)))
        if touched.approvals:
            facts.append(ApprovalsChanged(await store.view_approvals(touched.approvals)))
        if touched.conflicts:
            facts.append(ConflictsChanged(await store.view_conflicts(touched.conflicts)))
        facts.append(AuditAppended(events[0].seq, events[-1].seq, events))
        facts.append(CountsChanged(await store.counts()))
        self.post_message(StoreChanged(facts))
        return events[-1].seq

    def wake(self) -> None:
        """Look for changes now rather than at the next poll (after our own writes)."""
        self._wake.set()

    # -- the watcher -------------------------------------------------------------------

    def start_watcher(self) -> None:
        """Run the worktree watcher (``tui.watching.WatchService``) as a background worker.

        It shares the app's store; its conflicts reach the panes like any other write (the store
        worker sees the connection's own commits), its status goes to the
        header and its warnings (a watch limit hit, polling) to notifications.
        """
        self._watcher_worker = self._run_watcher()

    @work(exclusive=True, exit_on_error=False, group="watcher", name="watcher")
    async def _run_watcher(self) -> None:
        from tui.watching import WatchService, WatchStatus

        await self.loaded.wait()
        shown: set[str] = set()

        def on_status(status: WatchStatus) -> None:
            new = [w for w in status.warnings if w not in shown]
            shown.intersection_update(status.warnings)
            shown.update(status.warnings)
            self.post_message(WatcherChanged(status.status, len(status.worktrees), new))

        service = WatchService(self.store, on_status=on_status)
        task = asyncio.ensure_future(service.run())
        try:
            await asyncio.shield(task)
        finally:
            # quitting cancels this worker: let the watcher store its last snapshot first
            service.stop()
            if not task.done():
                await asyncio.wait({task}, timeout=5)

    # -- store messages -> widgets ---------------------------------------------------------

    @while_running
    def on_store_changed(self, message: StoreChanged) -> None:
        handlers = {
            TasksChanged: self.on_tasks_changed,
            LeasesChanged: self.on_leases_changed,
            ApprovalsChanged: self.on_approvals_changed,
            ConflictsChanged: self.on_conflicts_changed,
            AuditAppended: self.on_audit_appended,
            CountsChanged: self.on_counts_changed,
        }
        with self.batch_update():
            for fact in message.facts:
                handlers[type(fact)](fact)

    @while_running
    def on_watcher_changed(self, message: WatcherChanged) -> None:
        self.header_bar.show(watcher=(message.status, message.worktrees))
        for warning in message.new_warnings:
            severity = "error" if message.status == "rescan-only" else "warning"
            self.notify(warning, title="watcher", severity=severity, timeout=15, markup=False)

    @while_running
    def on_store_opened(self, message: StoreOpened) -> None:
        self.header_bar.show(live=True)

    @while_running
    def on_store_failed(self, message: StoreFailed) -> None:
        text = message.message
        if message.fatal:
            text = f"cannot open the store: {text}"
        if text != self.store_error:
            self.notify(text, title="store error", severity="error", timeout=10)
        self.store_error = text + ("" if message.fatal else " — retrying")
        self.header_bar.show(live=False)
        self.alert_bar.show(self.counts, self.store_error)

    @while_running
    def on_store_recovered(self, message: StoreRecovered) -> None:
        self.store_error = None
        self.header_bar.show(live=True)
        self.alert_bar.show(self.counts, None)
        self.notify("the store answers again", title="store")

    @while_running
    def on_counts_changed(self, message: CountsChanged) -> None:
        self.counts = message.counts
        self.header_bar.show(message.counts)
        self.alert_bar.show(message.counts, self.store_error)
        self.queue_pane.pending_total = message.counts.pending
        self.set_class(bool(message.counts.pending_approvals), "-approvals-pending")
        self.set_class(bool(message.counts.open_conflicts), "-conflicts-open")
        self.approvals_pane.set_class(bool(message.counts.pending_approvals), "-alert")
        self.conflicts_pane.set_class(bool(message.counts.open_conflicts), "-alert")
        self.queue_pane._update_subtitle()

    @while_running
    def on_tasks_changed(self, message: TasksChanged) -> None:
        self.queue_pane.apply(message.rows, full=message.full)

    @while_running
    def on_leases_changed(self, message: LeasesChanged) -> None:
        self.leases_pane.apply(message.rows, full=message.full)

    @while_running
    def on_approvals_changed(self, message: ApprovalsChanged) -> None:
        pane = self.approvals_pane
        pane.apply(message.rows, full=message.full)
        pending = {r.id for r in message.rows if r.status == "pending"}
        if self._known_approvals is None:
            self._known_approvals = {r.id for r in pane.records.values()}
            return
        new = sorted(pending - self._known_approvals)
        self._known_approvals.update(r.id for r in message.rows)
        rows = [row for row in (pane.records.get(aid(i)) for i in new) if row is not None]
        if rows:
            self.announce(rows)
        self.sync_bindings()

    def announce(self, rows: list[ApprovalRow]) -> None:
        """New requests wait for the person: say so (one toast per burst, not per request), and ring."""
        if len(rows) == 1:
            row = rows[0]
            who = row.requested_by + (f" in {row.worktree}" if row.worktree else "")
            text, title = f"{row.summary}\n{who} · press 3, then a or r", f"Approval {aid(row.id)} requested"
        else:
            text = "\n".join(f"{aid(r.id)} {r.summary[:60]}" for r in rows[:4])
            text += f"\n… and {len(rows) - 4} more" if len(rows) > 4 else ""
            text += "\npress 3, then a or r"
            title = f"{len(rows)} approvals requested"
        self.notify(text, title=title, severity="warning", timeout=10, markup=False)
        self.bells += 1
        self.bell()

    @while_running
    def on_conflicts_changed(self, message: ConflictsChanged) -> None:
        pane = self.conflicts_pane
        pane.apply(message.rows, full=message.full)
        self.leases_pane.set_conflicted(pane.lease_ids())
        if self._known_conflicts is None:
            self._known_conflicts = {r.id for r in pane.records.values()}
        else:
            new = [r for r in message.rows if r.status == "open" and r.id not in self._known_conflicts]
            if len(new) == 1:
                row = new[0]
                where = row.worktree + (f" ↔ {row.other_worktree}" if row.other_worktree else "")
                self.notify(f"{row.path} ({where})\npress 4 to see it".rstrip(),
                            title=f"Conflict {cid(row.id)}: {row.kind}", severity="error", timeout=8,
                            markup=False)
            elif new:
                lines = [f"{cid(r.id)} {r.kind} {r.path}" for r in new[:4]]
                more = [f"… and {len(new) - 4} more"] if len(new) > 4 else []
                self.notify("\n".join([*lines, *more, "press 4 to see them"]),
                            title=f"{len(new)} new conflicts", severity="error", timeout=8, markup=False)
            self._known_conflicts.update(r.id for r in message.rows)
        self.sync_bindings()

    @while_running
    def on_audit_appended(self, message: AuditAppended) -> None:
        self.audit_tail.append(message.seq_from, message.seq_to, message.events, reset=message.initial)

    @while_running
    def on_loaded(self, message: Loaded) -> None:
        self.loaded.set()
        self.sync_bindings()

    @while_running
    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, title="decision recorded" if message.approval_id else "done")
        self.sync_bindings()

    @while_running
    def on_action_failed(self, message: ActionFailed) -> None:
        if message.approval_id is not None:
            self.approvals_pane.mark(message.approval_id, None)
        if message.conflict_id is not None:
            self.conflicts_pane.mark(message.conflict_id, False)
        self.notify(message.text, title="not done", severity="error", timeout=10)
        self.sync_bindings()

    @while_running
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died unexpectedly is shown, never swallowed."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            text = error.message if isinstance(error, TowerError) else f"{type(error).__name__}: {error}"
            self.notify(text, title=f"{event.worker.name or 'worker'} failed", severity="error", timeout=10)

    @while_running
    def _tick(self) -> None:
        for pane in (self.leases_pane, self.approvals_pane, self.conflicts_pane):
            pane.tick()

    @property
    def header_bar(self) -> HeaderBar:
        return self.query_one(HeaderBar)

    @property
    def alert_bar(self) -> AlertBar:
        return self.query_one(AlertBar)

    # -- focus and selection -------------------------------------------------------------

    @while_running
    def on_descendant_focus(self, event) -> None:
        self.sync_bindings()

    @while_running
    def on_data_table_row_highlighted(self, event) -> None:
        self.sync_bindings()

    def sync_bindings(self) -> None:
        """Refresh the footer's keys only when one of them changed state: the Footer
        recomposes on every refresh, and rows arrive many times a second."""
        if not self.screen_stack:
            return
        state = (self.check_action("approve", ()), self.check_action("ack_conflict", ()),
                 self.current_pane, len(self.screen_stack), type(self.focused))
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    @property
    def current_pane(self) -> str:
        """The pane holding the main screen's focus (read now: a key typed right
        after ``3`` must act on the Approvals pane before any focus event arrives)."""
        stack = self.screen_stack
        node: Any = stack[0].focused if stack else None
        while node is not None and getattr(node, "id", None) not in PANES:
            node = node.parent
        if node is not None:
            self._current_pane = node.id
        return self._current_pane

    def _selected_approval(self) -> ApprovalRow | None:
        if self.current_pane != "approvals" or len(self.screen_stack) != 1:
            return None  # another screen is on top (or the app is closing)
        return self.approvals_pane.selected

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MAIN_SCREEN_ACTIONS:
            if len(self.screen_stack) != 1 or isinstance(self.focused, Input):
                return False  # a dialog, the palette or a filter line has the keys: let them type
        if action in ("approve", "reject"):
            row = self._selected_approval()
            ok = row is not None and row.status == "pending" and row.id not in self.approvals_pane.in_flight
            return True if ok else None  # None: shown greyed out in the footer
        if action == "ack_conflict":
            if self.current_pane != "conflicts":
                return None
            row = self.conflicts_pane.selected
            return True if row is not None and row.id not in self.conflicts_pane.in_flight else None
        return True

    # -- actions ---------------------------------------------------------------------

    def action_focus_pane(self, name: str) -> None:
        pane = self.pane(name)
        target = pane.table if isinstance(pane, TablePane) else pane.tail if isinstance(pane, AuditPane) else None
        if target is not None:
            # now, not after the next refresh (Widget.focus defers): "3a" typed in one go
            # must approve in the pane that "3" selected
            self.screen_stack[0].set_focus(target)

    def action_filter(self) -> None:
        pane = self.pane(self.current_pane)
        if isinstance(pane, (TablePane, AuditPane)):
            pane.open_filter()

    def action_toggle_follow(self) -> None:
        self.audit_tail.toggle_follow()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.HELP_ROWS))

    def action_approve(self) -> None:
        row = self._selected_approval()
        if row is None or row.status != "pending":
            self.bell()
            return
        self.approve_approval(row.id)

    def action_reject(self) -> None:
        row = self._selected_approval()
        if row is None or row.status != "pending":
            self.bell()
            return
        self.ask_reject(row.id)

    def action_ack_conflict(self) -> None:
        row = self.conflicts_pane.selected if self.current_pane == "conflicts" else None
        if row is None:
            self.bell()
            return
        self.ack_conflict(row.id)

    def on_table_pane_selected(self, message: TablePane.Selected) -> None:
        kind = {"queue": "task", "leases": "lease", "approvals": "approval", "conflicts": "conflict"}
        pane_id = message.pane.id or ""
        if pane_id in kind:
            self.push_screen(DetailScreen(kind[pane_id], int(message.key[1:])))

    def on_audit_tail_selected(self, message: AuditTail.Selected) -> None:
        self.push_screen(DetailScreen("audit", message.seq))

    # -- decisions and other writes (never exclusive: a write is not cancelled half-way) --------

    def approve_approval(self, approval_id: int) -> None:
        pane = self.approvals_pane
        if approval_id in pane.in_flight:
            return
        pane.mark(approval_id, "approving…")
        self.sync_bindings()
        self._decide(approval_id, True, None)

    def ask_reject(self, approval_id: int) -> None:
        pane = self.approvals_pane
        row = pane.records.get(aid(approval_id))
        if approval_id in pane.in_flight or row is None or row.status != "pending":
            self.bell()
            return

        def rejected(reason: str | None) -> None:
            if reason:
                pane.mark(approval_id, "rejecting…")
                self.sync_bindings()
                self._decide(approval_id, False, reason)

        self.push_screen(RejectDialog(approval_id, row.summary, row.requested_by), rejected)

    @work(exit_on_error=False, group="decide")
    async def _decide(self, approval_id: int, approve: bool, reason: str | None) -> None:
        try:
            approval = await self.store.decide_approval(approval_id, approve=approve, reason=reason, actor=self.actor)
        except TowerError as exc:
            self.post_message(ActionFailed(exc.message, approval_id=approval_id))
            return
        # the committed row, straight away; the store worker follows with the audit event
        self.post_message(ApprovalsChanged([approval]))
        verdict = "approved" if approval.status == "approved" else f"rejected: {approval.reason}"
        self.post_message(ActionDone(f"{aid(approval_id)} {verdict}", approval_id=approval_id))
        self.wake()

    def ack_conflict(self, conflict_id: int) -> None:
        self.conflicts_pane.mark(conflict_id, True)
        self.sync_bindings()
        self._write(f"{cid(conflict_id)} acknowledged", "ack_conflict", conflict_id, actor=self.actor,
                    conflict_id=conflict_id)

    def retry_task(self, task_id: int) -> None:
        self._write(f"{tid(task_id)} back in the queue", "retry_task", task_id, actor=self.actor)

    def cancel_task(self, task_id: int) -> None:
        self._write(f"{tid(task_id)} cancelled", "cancel_task", task_id, actor=self.actor)

    def reap_now(self) -> None:
        self._write("reaped", "reap", actor=self.actor)

    @work(exit_on_error=False, group="write")
    async def _write(self, done_text: str, verb: str, *args: Any, conflict_id: int | None = None,
                     **kwargs: Any) -> None:
        try:
            result = await getattr(self.store, verb)(*args, **kwargs)
        except TowerError as exc:
            self.post_message(ActionFailed(exc.message, conflict_id=conflict_id))
            return
        if verb == "reap":
            done_text = f"reaped {len(result)} expired lease(s)" if result else "no lease had expired"
        self.post_message(ActionDone(done_text))
        self.wake()

    @work(exclusive=True, exit_on_error=False, group="verify")
    async def verify_audit(self) -> None:
        self.notify("verifying the audit chain…", title="audit")
        result = await self.store.verify_audit()
        if result.ok:
            self.notify(f"{result.checked:,} events verified; head {result.head}", title="audit log intact",
                        timeout=15)
        else:
            finding = result.finding
            self.notify(f"seq {finding.seq}: {finding.message}", title=f"audit log {finding.reason}",
                        severity="error", timeout=30)

    def show_head(self) -> None:
        c = self.counts
        if c is None or not c.audit_seq:
            self.notify("the audit log is empty", title="audit head")
            return
        full = f"{c.audit_seq}:{c.audit_hash}"
        try:
            self.copy_to_clipboard(full)
        except Exception:  # noqa: BLE001 - clipboard is best effort
            pass
        self.notify(f"{full}\nKeep it elsewhere; `tower audit verify --head {full}` proves the log still holds it.",
                    title="audit head (copied)", timeout=30, markup=False)


def run_app(db_path: Path, watch: bool = True) -> None:
    """``tower`` with no subcommand.

    The store is opened once before the screen is taken over, so a missing,
    corrupt or newer store (or a bad audit key) is the command line's usual
    one-line error and exit code, not an empty control room.
    """
    db_path = Path(db_path)

    async def check() -> None:
        async with Store(db_path):
            pass

    asyncio.run(check())
    TowerApp(db_path, watch=watch).run()
