"""The control room: a live, keyboard-driven view of the store.

One ``Store`` (one aiosqlite connection) for the whole app. A single store
worker opens it, loads every pane once, then watches for changes: it polls
``PRAGMA data_version`` (another process committed) and the connection's own
``total_changes`` (this app committed) every 50 ms, reads the audit events
since the last seq it saw, and re-reads only the rows those events name. It
posts typed messages (``tui.room.messages``); handlers update the widgets. Writes
(approve, reject, ack, retry, cancel, reap) run in their own workers through
the same store verbs as the command line, with the person as actor, and wake
the store worker so their effect shows at once — but only once committed.

Nothing here blocks the event loop on the database: every query is awaited in
a worker, and the audit pane reads only the lines on screen.

The person's key press is the product. A key acts only on the row the person
saw (``TablePane.changed_under_cursor``); decisions that do not come from the
row itself (the palette) and quitting while requests wait ask first; what
needs the person is announced once per burst (a toast, the bell, the terminal
title, a desktop notification where the terminal has them), never over a
dialog. Below ``COMPACT_WIDTH`` x ``COMPACT_HEIGHT`` the room shows one pane at
a time with a tab strip.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Grid
from textual.filter import LineFilter, Monochrome
from textual.geometry import Size
from textual.notifications import Notification, Notify, SeverityLevel
from textual.widget import Widget
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from core.display import printable_line
from core.errors import BadInput, TowerError
from core.ids import format_id
from core.models import AgentSession
from core.models import Approval as ApprovalRow
from core.models import Conflict as ConflictRow
from core.models import Counts
from core.people import login_person
from store import Store
from core.locate import store_ref
from store.sessions import DEFAULT_END_AFTER, DEFAULT_STALL_AFTER, end_after_default, stall_after_default
from tui.room import settings, terminal, theme
from tui.format import aid, cid, duration, ellipsize, tid
from tui.room.messages import (
    ActionDone,
    ActionFailed,
    ApprovalsChanged,
    AuditAppended,
    ConflictsChanged,
    CountsChanged,
    LeasesChanged,
    Loaded,
    SessionsChanged,
    StoreFailed,
    StoreOpened,
    StoreRecovered,
    StoreChanged,
    TasksChanged,
    WatcherChanged,
)
from tui.room.feed import RoomFeed
from tui.room.palette import TowerCommands
from tui.room.panes.agents import AgentsPane, agents_summary, waits_for
from tui.room.panes.agents import who as agent_name
from tui.room.panes.approvals import ApprovalsPane, ended_how
from tui.room.panes.audit import AuditPane, AuditTail
from tui.room.panes.base import TablePane
from tui.room.panes.conflicts import ConflictsPane
from tui.room.panes.leases import LeasesPane
from tui.room.panes.queue import QueuePane
from tui.room.screens.confirm import ConfirmDialog
from tui.room.screens.detail import DetailScreen
from tui.room.screens.help import HelpScreen
from tui.room.screens.reject import RejectDialog
from tui.room.widgets.header import AlertBar, HeaderBar, TabStrip

PANES = ("queue", "leases", "approvals", "conflicts", "audit", "agents")


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
    return login_person()


class SafeMonochrome(Monochrome):
    """Textual's NO_COLOR filter fails on a segment without a style (Textual 8.2 writes
    some); such a segment has no colour to remove anyway."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        null = Style.null()
        return super().apply([Segment(t, s if s is not None else null, c) for t, s, c in segments], background)


class TowerApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Tower"
    COMMANDS = App.COMMANDS | {TowerCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    NOTIFICATION_TIMEOUT = 6

    #: below either, one pane at a time with a tab strip (titles keep their width)
    COMPACT_WIDTH = 110
    COMPACT_HEIGHT = 32

    # The single keys of the control room are priority bindings: the app runs them
    # the moment it reads them, in order. Non-priority bindings resolve later, while
    # the key bubbles up from the focused widget, so in a burst ("3a", "/conf" from a
    # fast typist, a paste or tmux) the second key would be routed before the first
    # had moved the focus. check_action() lets them through to a text field or a dialog.
    BINDINGS: ClassVar = [
        Binding("tab", "next_pane", "Next pane", show=False, id="next-pane", priority=True),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, id="previous-pane", priority=True),
        Binding("1", "focus_pane('queue')", "Queue", show=False, id="pane-queue", priority=True),
        Binding("2", "focus_pane('leases')", "Leases", show=False, id="pane-leases", priority=True),
        Binding("3", "focus_pane('approvals')", "Approvals", show=False, id="pane-approvals", priority=True),
        Binding("4", "focus_pane('conflicts')", "Conflicts", show=False, id="pane-conflicts", priority=True),
        Binding("5", "focus_pane('audit')", "Audit", show=False, id="pane-audit", priority=True),
        Binding("6", "focus_pane('agents')", "Agents", show=False, id="pane-agents", priority=True),
        Binding("n", "next_request", "Next waiting", id="next-request", priority=True),
        Binding("a", "approve", "Approve", id="approve", priority=True),
        Binding("r", "reject", "Reject", id="reject", priority=True),
        Binding("x", "ack_conflict", "Ack conflict", id="ack-conflict", priority=True),
        Binding("w", "jump_to_wait", "Its approval", id="jump-to-wait", priority=True),
        Binding("slash", "filter", "Filter", id="filter", priority=True),
        Binding("f", "toggle_follow", "Follow", id="follow", priority=True),
        Binding("question_mark", "help", "Help", id="help", priority=True),
        Binding("q", "quit_room", "Quit", id="quit", priority=True),
    ]
    MAIN_SCREEN_ACTIONS = frozenset(
        {"focus_pane", "next_pane", "previous_pane", "next_request", "approve", "reject", "ack_conflict",
         "jump_to_wait", "filter", "toggle_follow", "help", "quit_room"}
    )

    HELP_ROWS: ClassVar[list[tuple[str, str, str]]] = [
        ("Move", "tab / shift+tab", "next / previous pane"),
        ("Move", "1 2 3 4 5 6", "a pane (3: the oldest request waiting; 6: agents)"),
        ("Move", "n", "the next request waiting, from anywhere"),
        ("Move", "↑ ↓ / j k", "move in the pane (g / G: first / last)"),
        ("Move", "enter", "details (there, enter opens a related row)"),
        ("Act", "a", "approve the selected request"),
        ("Act", "r", "reject it: a dialog asks for the reason"),
        ("Act", "x", "acknowledge the selected conflict"),
        ("Act", "w", "agents: go to the approval the agent waits for"),
        ("Act", "ctrl+p", "palette: retry, cancel, reap, verify, theme …"),
        ("View", "/", "filter the current pane (escape clears)"),
        ("View", "f", "audit: follow the tail on / off (End resumes)"),
        ("App", "?  q", "this help · quit (asks while requests wait)"),
    ]

    def __init__(
        self,
        db_path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        watch: bool = True,
        actor: str | None = None,
        settings_path: Path | None | object = ...,
    ) -> None:
        super().__init__()
        # NO_COLOR: Textual's filter breaks on unstyled segments; ours copes
        self._safe_monochrome = SafeMonochrome()
        self._toasts: list[Notification] = []  # the toasts this room has on screen (expired ones drop out)
        self.db_path = store_ref(db_path)  # a path, or a postgresql:// URL as it is
        self.clock = clock
        self.watch_enabled = watch
        self.actor = actor or default_actor()
        # pool: on Postgres the room's reads never queue behind a write waiting for the gate
        self.store = Store(self.db_path, actor=self.actor, clock=clock, pool=True)
        self.counts: Counts | None = None
        self.store_error: str | None = None
        self.loaded = asyncio.Event()
        self.bells = 0  # announcements rung (the terminal bell is silent in tests)
        self.terminal_log: list[str] = []  # escape sequences sent (title, notifications): for tests
        self.cursor_blink = True  # text inputs; snapshots turn it off
        self.compact = False
        self._layout_set = False
        self._watcher_worker: Worker | None = None
        self._known_approvals: dict[int, str] | None = None  # id -> status last seen
        self._known_conflicts: set[int] | None = None
        self._known_agents: dict[int, str] | None = None  # session id -> state last announced
        self._threshold_error: str | None = None
        self.stall_after, self.end_after = self._thresholds()
        self.feed = RoomFeed(self.store, self.db_path, self.post_message, stall_after=self.stall_after,
                             end_after=self.end_after)
        self._hook_sources: dict[int, str] = {}  # pending approval id -> the hook that filed it
        self._hook_wait: float | None = None
        self._current_pane = "queue"
        self._binding_state: tuple = ()
        self._burst = Burst()
        self._channels: dict[str, Notification] = {}  # the toast showing per channel
        self._held: list[Notification] = []  # toasts kept off a dialog, shown once it closes
        self._title = ""
        self._notify_kind: str | None = None
        # ... (the default): the user's config dir; None: no settings file at all
        self.settings_path: Path | None = (settings.default_path() if settings_path is ...  # type: ignore[assignment]
                                           else settings_path)
        self.settings = settings.Settings.load(self.settings_path)
        for t in theme.THEMES:
            self.register_theme(t)
        self._theme_ready = False
        chosen = self.settings.theme
        self.theme = chosen if chosen in self.available_themes else theme.DEFAULT_THEME
        self._theme_ready = True

    def _thresholds(self) -> tuple[float, float]:
        """When a session counts as stalled / ended (TOWER_STALL_AFTER, TOWER_SESSION_END_AFTER):
        a bad value is said once, and the default used, rather than failing every read."""
        try:
            stall = stall_after_default()
        except BadInput as exc:
            self._threshold_error, stall = exc.message, DEFAULT_STALL_AFTER
        try:
            end = end_after_default()
        except BadInput as exc:
            self._threshold_error, end = exc.message, DEFAULT_END_AFTER
        return stall, end

    def get_line_filters(self) -> Sequence[LineFilter]:
        """NO_COLOR: Textual's monochrome filter breaks on unstyled segments; ours copes."""
        return [self._safe_monochrome if type(f) is Monochrome else f for f in super().get_line_filters()]

    # -- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.db_path.name, id="header")
        yield AlertBar(id="alerts")
        yield TabStrip(id="tabs")
        with Grid(id="panes"):
            # grid order: the Queue spans two rows, beside Leases above Agents
            yield QueuePane(id="queue", clock=self.clock)
            yield LeasesPane(id="leases", clock=self.clock)
            yield AgentsPane(id="agents", clock=self.clock)
            yield ApprovalsPane(id="approvals", clock=self.clock)
            yield ConflictsPane(id="conflicts", clock=self.clock)
            yield AuditPane(self.store, id="audit")
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
    def agents_pane(self) -> AgentsPane:
        return self.query_one("#agents", AgentsPane)

    @property
    def audit_pane(self) -> AuditPane:
        return self.query_one("#audit", AuditPane)

    @property
    def audit_tail(self) -> AuditTail:
        return self.query_one(AuditTail)

    @property
    def tab_strip(self) -> TabStrip:
        return self.query_one(TabStrip)

    def pane(self, name: str) -> Widget:
        return self.query_one(f"#{name}")

    def on_mount(self) -> None:
        theme.use_theme(self.get_css_variables())
        self.approvals_pane.deadline = self.approval_deadline
        self._apply_layout()
        self.queue_pane.table.focus()
        self.set_interval(1.0, self._tick, name="clock-tick")
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self._notify_kind = terminal.notification_kind(choice=self.settings.desktop_notifications)
        self.emit_terminal(terminal.PUSH_TITLE)
        self.set_terminal_title(terminal.waiting_title(0, 0))
        if self._threshold_error is not None:
            self.toast(self._threshold_error, title="agent sessions", severity="warning", timeout=15)
        self.watch_store()
        if self.watch_enabled:
            self.start_watcher()

    async def on_unmount(self) -> None:
        self.emit_terminal(terminal.POP_TITLE)
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
        await self.feed.opened()
        await self.store.close()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_layout(event.size)

    def _apply_layout(self, size: Size | None = None) -> None:
        """The grid of five panes when there is room; one pane at a time with tabs when not."""
        if not self.screen_stack:
            return
        width, height = size or self.size
        compact = width < self.COMPACT_WIDTH or height < self.COMPACT_HEIGHT
        if compact != self.compact or not self._layout_set:
            self.compact = compact
            self._layout_set = True
            self.set_class(compact, "-compact")
            self.tab_strip.display = compact
        self._mark_current(self.current_pane)

    def _mark_current(self, name: str) -> None:
        for pane_name in PANES:
            self.pane(pane_name).set_class(pane_name == name, "-current")
        self.tab_strip.show(current=name)

    def watch_theme(self, name: str) -> None:
        """Every colour comes from the theme: re-derive the cells' styles, redraw, remember the choice."""
        theme.use_theme(self.get_css_variables())
        if not self.screen_stack:
            return
        for pane_name in ("queue", "leases", "approvals", "conflicts", "agents"):
            self.pane(pane_name).restyle()  # type: ignore[attr-defined]
        self.audit_tail.restyle()
        self.header_bar.show(force=True)
        self.alert_bar.show(self.counts, self.store_error, force=True)
        self.tab_strip.show(force=True)
        if self._theme_ready and name != self.settings.theme:
            self.settings.theme = name
            try:
                self.settings.save(self.settings_path)
            except OSError as exc:
                self.toast(f"the theme is used now but not kept for next time: {exc}", title="settings",
                           severity="warning")

    # -- the store worker -------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="store", name="store-watch")
    async def watch_store(self) -> None:
        await self.feed.run()

    def wake(self) -> None:
        """Look for changes now rather than at the next poll (after our own writes)."""
        self.feed.wake()

    # -- the watcher -------------------------------------------------------------------

    def start_watcher(self) -> None:
        """Run the worktree watcher (``tui.services.watch.WatchService``) as a background worker.

        It shares the app's store; its conflicts reach the panes like any other write (the store
        worker sees the connection's own commits), its status goes to the
        header and its warnings (a watch limit hit, polling) to notifications.
        """
        self._watcher_worker = self._run_watcher()

    @work(exclusive=True, exit_on_error=False, group="watcher", name="watcher")
    async def _run_watcher(self) -> None:
        from tui.services.watch import WatchService, WatchStatus

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
            SessionsChanged: self.on_sessions_changed,
        }
        with self.batch_update():
            self._burst.open += 1
            try:
                for fact in message.facts:
                    handlers[type(fact)](fact)
            finally:
                self._burst.open -= 1
            self._refresh_details(message.facts)
        self._flush_burst()

    def _refresh_details(self, facts: Sequence[Any]) -> None:
        """A details screen shows the truth too: read again when its row (or a related one) changed."""
        kinds = {TasksChanged: "task", LeasesChanged: "lease", ApprovalsChanged: "approval",
                 ConflictsChanged: "conflict"}
        changed = [(kinds[type(f)], {r.id for r in f.rows}) for f in facts if type(f) in kinds]
        changed += [("session", f.changed) for f in facts if isinstance(f, SessionsChanged) and f.changed]
        if not changed:
            return
        for screen in self.screen_stack[1:]:
            if isinstance(screen, DetailScreen) and any(screen.touched(kind, ids) for kind, ids in changed):
                screen.load()

    @while_running
    def on_watcher_changed(self, message: WatcherChanged) -> None:
        self.header_bar.show(watcher=(message.status, message.worktrees))
        for warning in message.new_warnings:
            severity: SeverityLevel = "error" if message.status == "rescan-only" else "warning"
            self.toast(warning, title="watcher", severity=severity, timeout=15)

    @while_running
    def on_store_opened(self, message: StoreOpened) -> None:
        self.header_bar.show(live=True)

    @while_running
    def on_store_failed(self, message: StoreFailed) -> None:
        text = message.message
        if message.fatal:
            text = f"cannot open the store: {text}"
        if text != self.store_error:
            self.toast(text, title="store error", severity="error", timeout=10)
        self.store_error = text + ("" if message.fatal else " — retrying")
        self.header_bar.show(live=False)
        self.alert_bar.show(self.counts, self.store_error)

    @while_running
    def on_store_recovered(self, message: StoreRecovered) -> None:
        self.store_error = None
        self.header_bar.show(live=True)
        self.alert_bar.show(self.counts, None)
        self.toast("the store answers again", title="store")

    @while_running
    def on_counts_changed(self, message: CountsChanged) -> None:
        counts = message.counts
        self.counts = counts
        self.header_bar.show(counts)
        self.alert_bar.show(counts, self.store_error)
        self.tab_strip.show(counts=counts)
        self.queue_pane.pending_total = counts.pending
        self.set_class(bool(counts.pending_approvals), "-approvals-pending")
        self.set_class(bool(counts.open_conflicts), "-conflicts-open")
        self.approvals_pane.set_class(bool(counts.pending_approvals), "-alert")
        self.conflicts_pane.set_class(bool(counts.open_conflicts), "-alert")
        self.queue_pane._update_subtitle()
        self._show_agent_alerts()

    @while_running
    def on_tasks_changed(self, message: TasksChanged) -> None:
        self.queue_pane.apply(message.rows, full=message.full)

    @while_running
    def on_leases_changed(self, message: LeasesChanged) -> None:
        self.leases_pane.apply(message.rows, full=message.full)

    @while_running
    def on_approvals_changed(self, message: ApprovalsChanged) -> None:
        if message.full:
            self._hook_sources = {}
        self._hook_sources.update(message.sources)
        for row in message.rows:
            if row.status != "pending":
                self._hook_sources.pop(row.id, None)
        if message.ask_timeout is not None:
            self._hook_wait = message.ask_timeout
        pane = self.approvals_pane
        pane.apply(message.rows, full=message.full)
        known = self._known_approvals
        if known is None:
            self._known_approvals = {r.id: r.status for r in pane.records.values()}
        else:
            for row in message.rows:
                before = known.get(row.id)
                if row.status == "pending" and before is None:
                    self._burst.requested.append(row)
                elif (before == "pending" and row.status in ("expired", "cancelled")
                      and row.decided_by != self.actor):
                    self._burst.ended.append(row)  # ended without anyone deciding: say so
                known[row.id] = row.status
        self.sync_bindings()
        self._flush_burst()

    @while_running
    def on_conflicts_changed(self, message: ConflictsChanged) -> None:
        pane = self.conflicts_pane
        pane.apply(message.rows, full=message.full)
        self.leases_pane.set_conflicted(pane.lease_ids())
        if self._known_conflicts is None:
            self._known_conflicts = {r.id for r in pane.records.values()}
        else:
            self._burst.conflicts += [r for r in message.rows
                                      if r.status == "open" and r.id not in self._known_conflicts]
            self._known_conflicts.update(r.id for r in message.rows)
        self.sync_bindings()
        self._flush_burst()

    @while_running
    def on_sessions_changed(self, message: SessionsChanged) -> None:
        pane = self.agents_pane
        pane.apply(message.rows, full=True)
        known = self._known_agents
        if known is None:
            self._known_agents = {r.id: r.state for r in message.rows}
        else:
            approvals = self._known_approvals or {}
            for row in message.rows:
                before = known.get(row.id)
                if row.state in ("waiting", "stalled") and row.state != before:
                    if row.state == "waiting" and row.waiting_for is not None:
                        if row.waiting_for not in approvals:
                            # its approval is not on screen yet (committed between two reads):
                            # decided on the next look, announced with the approval
                            continue
                        # waiting on a Tower approval: the approval's own announcement says it
                    else:
                        self._burst.agents.append(row)
                known[row.id] = row.state
            for gone in known.keys() - {r.id for r in message.rows}:
                del known[gone]
        self._show_agent_alerts()
        self.sync_bindings()
        self._flush_burst()

    def _show_agent_alerts(self) -> None:
        """The alert bar, the tabs and the terminal title count the agents that need the
        person other than through an approval: waiting at their own prompt, or stalled."""
        pane = self.agents_pane
        own = sum(1 for r in pane.waiting if r.waiting_for is None)
        stalled = len(pane.stalled)
        self.alert_bar.show(self.counts, self.store_error, agents=(own, stalled))
        self.tab_strip.show(agents=(pane.live_count(), len(pane.waiting) + stalled))
        pane.set_class(bool(own or stalled), "-alert")
        c = self.counts
        self.set_terminal_title(terminal.waiting_title(c.pending_approvals if c else 0,
                                                       c.open_conflicts if c else 0, own + stalled))

    @while_running
    def on_audit_appended(self, message: AuditAppended) -> None:
        self.audit_tail.append(message.seq_from, message.seq_to, message.events, reset=message.initial)

    @while_running
    def on_loaded(self, message: Loaded) -> None:
        self.loaded.set()
        self.sync_bindings()

    @while_running
    def on_action_done(self, message: ActionDone) -> None:
        self.toast(message.text, title="decision recorded" if message.approval_id else "done",
                   channel="feedback")
        self.sync_bindings()

    @while_running
    def on_action_failed(self, message: ActionFailed) -> None:
        if message.approval_id is not None:
            self.approvals_pane.mark(message.approval_id, None)
        if message.conflict_id is not None:
            self.conflicts_pane.mark(message.conflict_id, False)
        self.toast(message.text, title="not done", severity="error", timeout=10, channel="feedback")
        self.sync_bindings()

    @while_running
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died unexpectedly is shown, never swallowed."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            text = error.message if isinstance(error, TowerError) else f"{type(error).__name__}: {error}"
            self.toast(text, title=f"{event.worker.name or 'worker'} failed", severity="error", timeout=10)

    @while_running
    def _tick(self) -> None:
        for pane in (self.leases_pane, self.approvals_pane, self.conflicts_pane, self.agents_pane):
            pane.tick()

    @property
    def header_bar(self) -> HeaderBar:
        return self.query_one(HeaderBar)

    @property
    def alert_bar(self) -> AlertBar:
        return self.query_one(AlertBar)

    # -- announcements: one toast per burst, a bell, the title, a desktop notification ------------

    def _flush_burst(self) -> None:
        burst = self._burst
        if burst.open or not burst:
            return
        self._burst = Burst()
        lines: list[str] = []
        titles: list[str] = []
        waiting = self.approvals_pane.pending_keys()
        if burst.requested:
            rows = burst.requested
            if len(rows) == 1:
                row = rows[0]
                who = row.requested_by + (f" in {row.worktree}" if row.worktree else "")
                titles.append(f"{aid(row.id)} requested by {who}")
                lines.append(ellipsize(row.summary, 90))
            else:
                titles.append(f"{len(rows)} approvals requested")
                lines += [f"{aid(r.id)} {ellipsize(r.summary, 60)}" for r in rows[:3]]
                if len(rows) > 3:
                    lines.append(f"… and {len(rows) - 3} more")
            first = aid(rows[0].id)
            if len(rows) == 1 and waiting[:1] == [first]:
                lines.append("press 3, then a or r")  # 3 selects the oldest waiting: this one
            else:
                lines.append(f"{len(waiting)} waiting, oldest first: press n to go through them")
        for row in burst.ended[:3]:
            titles.append(f"{aid(row.id)} {row.status}")
            lines.append(f"{aid(row.id)} {row.status} without a decision: {ellipsize(row.summary, 50)}"
                         + (f" ({row.reason})" if row.reason else ""))
        if len(burst.ended) > 3:
            lines.append(f"… and {len(burst.ended) - 3} more ended")
        if burst.conflicts:
            conflicts = burst.conflicts
            if len(conflicts) == 1:
                c = conflicts[0]
                where = c.worktree + (f" ↔ {c.other_worktree}" if c.other_worktree else "")
                titles.append(f"Conflict {cid(c.id)}: {c.kind}")
                lines.append(f"{c.path} ({where})")
            else:
                titles.append(f"{len(conflicts)} new conflicts")
                lines += [f"{cid(c.id)} {c.kind} {c.path}" for c in conflicts[:3]]
                if len(conflicts) > 3:
                    lines.append(f"… and {len(conflicts) - 3} more")
            lines.append("press 4, then x to acknowledge")
        if burst.agents:
            agents = burst.agents
            if len(agents) == 1:
                a = agents[0]
                how = "is stalled" if a.state == "stalled" else "waits at its prompt"
                titles.append(f"{format_id('session', a.id)} {agent_name(a)} {how}")
                if a.state == "stalled":
                    lines.append(f"no event for {duration(self.clock() - a.last_event_at)} with its lease active")
                else:
                    lines.append(ellipsize(waits_for(a), 90))
            else:
                titles.append(agents_summary(sum(r.state == "waiting" for r in agents),
                                             sum(r.state == "stalled" for r in agents)))
                lines += [f"{format_id('session', r.id)} {r.state}: {ellipsize(agent_name(r), 40)}"
                          for r in agents[:3]]
                if len(agents) > 3:
                    lines.append(f"… and {len(agents) - 3} more")
            lines.append("press 6 to see the agents")
        title = " · ".join(titles)
        severity: SeverityLevel = "error" if burst.conflicts or burst.ended else "warning"
        text = "\n".join(lines)
        self.toast(text, title=title, severity=severity, timeout=10, channel="announce")
        self.bells += 1
        self.bell()
        self.desktop_notify(title, " · ".join(lines[:2]))

    def toast(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
              timeout: float | None = None, channel: str | None = None) -> None:
        """A notification: always plain text (stored text is never markup, and its control
        characters are made visible), held back while a dialog is open, and one at a time
        per ``channel`` ("announce": what needs the person; "feedback": what a key did):
        a new one replaces the last, so a burst never stacks up over the panes."""
        note = Notification("\n".join(printable_line(line) for line in message.splitlines()),
                            printable_line(title), severity,
                            self.NOTIFICATION_TIMEOUT if timeout is None else timeout, markup=False)
        if channel is not None:
            old = self._channels.get(channel)
            if old is not None:
                self._drop_toast(old)
            self._channels[channel] = note
        if len(self.screen_stack) > 1:
            self._held = [n for n in self._held if n is not note]
            self._held.append(note)
            return
        self._show_toast(note)

    def _show_toast(self, note: Notification) -> None:
        self._toasts = [n for n in self._toasts if not n.has_expired]
        self._toasts.append(note)
        self.post_message(Notify(note))

    def _drop_toast(self, note: Notification) -> None:
        """Take one toast off the screen (Textual removes one only when it expires): clear
        them all and show the others again, with the time they have left."""
        self._held = [n for n in self._held if n is not note]
        if any(n is note for n in self._toasts):
            keep = [n for n in self._toasts if n is not note and not n.has_expired]
            self._toasts = []
            self.clear_notifications()
            for n in keep:
                self._show_toast(n)

    def _screen_changed(self, screen) -> None:
        """Toasts never cover a dialog: kept aside while one is open, shown again after."""
        if not self.screen_stack:
            return
        if len(self.screen_stack) > 1:
            live = [n for n in self._toasts if not n.has_expired]
            self._toasts = []
            if live:
                self._held += [n for n in live if n not in self._held]
                self.clear_notifications()
        elif self._held:
            held, self._held = self._held, []
            for note in held:
                if not note.has_expired or note is self._channels.get("announce"):
                    note.raised_at = time.time() if note.has_expired else note.raised_at
                    self._show_toast(note)

    def emit_terminal(self, sequence: str) -> None:
        """Write an escape sequence to the terminal (between frames; never in headless tests)."""
        self.terminal_log.append(sequence)
        # Textual has no public way to write a sequence between its frames: its driver does
        driver = self._driver
        if driver is not None and not self.is_headless:
            try:
                driver.write(sequence)
            except Exception:  # noqa: BLE001 - a title is not worth a crash
                pass

    def set_terminal_title(self, title: str) -> None:
        if title != self._title:
            self._title = title
            self.emit_terminal(terminal.title_sequence(title))

    def desktop_notify(self, title: str, body: str) -> None:
        if self._notify_kind is not None:
            self.emit_terminal(terminal.notification_sequence(self._notify_kind, title, body))

    # -- focus and selection -------------------------------------------------------------

    @while_running
    def on_descendant_focus(self, event) -> None:
        name = self.current_pane
        if len(self.screen_stack) == 1:
            self._mark_current(name)
        self.sync_bindings()

    @while_running
    def on_data_table_row_highlighted(self, event) -> None:
        self.approvals_pane._update_subtitle()
        self.agents_pane._update_subtitle()
        self.sync_bindings()

    def sync_bindings(self) -> None:
        """Refresh the footer's keys only when one of them changed state: the Footer
        recomposes on every refresh, and rows arrive many times a second."""
        if not self.screen_stack:
            return
        state = (self.check_action("approve", ()), self.check_action("ack_conflict", ()),
                 self.check_action("jump_to_wait", ()),
                 self.check_action("next_request", ()), self.current_pane, len(self.screen_stack),
                 type(self.focused))
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
        if self.compact and action in ("approve", "reject", "ack_conflict", "toggle_follow", "jump_to_wait"):
            # one pane on screen and a narrow footer: only the keys of that pane
            home = {"approve": "approvals", "reject": "approvals", "ack_conflict": "conflicts",
                    "toggle_follow": "audit", "jump_to_wait": "agents"}[action]
            if self.current_pane != home:
                return False
        if action in ("approve", "reject"):
            row = self._selected_approval()
            if row is None:
                return None
            if self.approvals_pane.changed_under_cursor() is not None:
                return True  # the key is answered (nothing done, and why)
            ok = row.status == "pending" and row.id not in self.approvals_pane.in_flight
            return True if ok else None  # None: shown greyed out in the footer
        if action == "ack_conflict":
            if self.current_pane != "conflicts":
                return None
            conflict = self.conflicts_pane.selected
            return True if conflict is not None and conflict.id not in self.conflicts_pane.in_flight else None
        if action == "jump_to_wait":
            if self.current_pane != "agents" or len(self.screen_stack) != 1:
                return False
            agent = self.agents_pane.selected
            return True if agent is not None and agent.waiting_for is not None else None
        if action == "next_request":
            return True if self.loaded.is_set() and self.approvals_pane.pending_count else None
        return True

    def _still_what_was_seen(self, pane: TablePane, key: str) -> bool:
        """A key acts only on the row the person saw: if it changed under the cursor
        (decided elsewhere, gone, moved), do nothing, and say so."""
        why = pane.changed_under_cursor()
        if why is None:
            return True
        self.toast(f"{why}.\nNothing done: move (↑ ↓, n) to choose a row, then press {key} again.",
                   title="the selection changed under the cursor", severity="warning", timeout=8,
                   channel="feedback")
        self.bell()
        return False

    # -- actions ---------------------------------------------------------------------

    def action_focus_pane(self, name: str) -> None:
        pane = self.pane(name)
        target = pane.table if isinstance(pane, TablePane) else pane.tail if isinstance(pane, AuditPane) else None
        if target is None:
            return
        self._mark_current(name)
        # now, not after the next refresh (Widget.focus defers): "3a" typed in one go
        # must approve in the pane that "3" selected
        self.screen_stack[0].set_focus(target)
        if name == "approvals":
            # the oldest request waiting, never a decided row the cursor was left on
            waiting = self.approvals_pane.pending_keys()
            if waiting:
                self.approvals_pane.select_key(waiting[0])
        if name == "agents":
            # like 3: the agent that needs the person most (the list puts it first)
            agents = self.agents_pane
            first = agents.shown_keys[:1]
            if first and agents.records[first[0]].state in ("waiting", "stalled"):
                agents.select_key(first[0])
        if isinstance(pane, TablePane):
            pane.mark_seen()

    def action_next_pane(self, step: int = 1) -> None:
        index = PANES.index(self.current_pane)
        self.action_focus_pane(PANES[(index + step) % len(PANES)])

    def action_previous_pane(self) -> None:
        self.action_next_pane(-1)

    def action_next_request(self) -> None:
        """The next request waiting for a decision, from anywhere (oldest first, then on)."""
        pane = self.approvals_pane
        waiting = pane.pending_keys()
        if not waiting:
            self.toast("no request is waiting for a decision", title="approvals", channel="feedback")
            return
        here = self.current_pane == "approvals" and len(self.screen_stack) == 1
        key = pane.cursor_key
        if here and key in waiting:
            target = waiting[(waiting.index(key) + 1) % len(waiting)]
        else:
            target = waiting[0]
        self._mark_current("approvals")
        self.screen_stack[0].set_focus(pane.table)
        pane.select_key(target)
        pane.mark_seen()
        pane._update_subtitle()

    def action_filter(self) -> None:
        pane = self.pane(self.current_pane)
        if isinstance(pane, (TablePane, AuditPane)):
            pane.open_filter()

    def action_toggle_follow(self) -> None:
        self.audit_tail.toggle_follow()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.HELP_ROWS, compact=self.compact))

    def action_approve(self) -> None:
        pane = self.approvals_pane
        row = self._selected_approval()
        if row is None or not self._still_what_was_seen(pane, "a"):
            return
        if row.status != "pending":
            self.bell()
            return
        self.approve_approval(row.id)

    def action_reject(self) -> None:
        pane = self.approvals_pane
        row = self._selected_approval()
        if row is None or not self._still_what_was_seen(pane, "r"):
            return
        if row.status != "pending":
            self.bell()
            return
        self.ask_reject(row.id)

    def action_ack_conflict(self) -> None:
        pane = self.conflicts_pane
        row = pane.selected if self.current_pane == "conflicts" else None
        if row is None:
            self.bell()
            return
        if not self._still_what_was_seen(pane, "x"):
            return
        self.ack_conflict(row.id)

    def action_jump_to_wait(self) -> None:
        """From the agent the person sees to the approval it waits for, selected in its pane."""
        pane = self.agents_pane
        row = pane.selected if self.current_pane == "agents" else None
        if row is None or row.waiting_for is None:
            self.bell()
            return
        if not self._still_what_was_seen(pane, "w"):
            return
        target = aid(row.waiting_for)
        approvals = self.approvals_pane
        if approvals.filter_text and target not in approvals.shown_keys:
            approvals.clear_filter()
        self._mark_current("approvals")
        self.screen_stack[0].set_focus(approvals.table)
        if not approvals.select_key(target):
            self.toast(f"{target} is not in the Approvals pane (any more)", title="nothing to show",
                       severity="warning", channel="feedback")
        approvals.mark_seen()
        approvals._update_subtitle()

    def action_quit_room(self) -> None:
        self.action_quit_checked()

    async def action_quit(self) -> None:
        """ctrl+q (and the palette's Quit): asks first while approvals wait, like q."""
        self.action_quit_checked()

    def action_quit_checked(self) -> None:
        waiting = self.approvals_pane.pending_count if self.screen_stack else 0
        if not waiting:
            self.exit()
            return
        if any(isinstance(s, ConfirmDialog) and s.id == "confirm-quit" for s in self.screen_stack):
            return

        def answered(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self.exit()

        noun = "approval is" if waiting == 1 else "approvals are"
        dialog = ConfirmDialog("Quit Tower?", f"{waiting} {noun} waiting: quit anyway?",
                               details=[("", "They stay pending: their agents keep waiting (until they give up "
                                             "on their own), and `tower` shows them again.")],
                               confirm="quit", id="confirm-quit")
        self.push_screen(dialog, answered)

    def on_table_pane_selected(self, message: TablePane.Selected) -> None:
        kind = {"queue": "task", "leases": "lease", "approvals": "approval", "conflicts": "conflict",
                "agents": "session"}
        pane_id = message.pane.id or ""
        if pane_id in kind:
            self.push_screen(DetailScreen(kind[pane_id], int(message.key[1:]), store=self.store, room=self))

    def on_audit_tail_selected(self, message: AuditTail.Selected) -> None:
        self.push_screen(DetailScreen("audit", message.seq, store=self.store, room=self))

    def on_detail_screen_act(self, message: DetailScreen.Act) -> None:
        if message.action == "approve":
            self.approve_approval(message.ident)
        elif message.action == "reject":
            self.ask_reject(message.ident)
        elif message.action == "ack":
            self.ack_conflict(message.ident)

    def rows_of(self, pane: str) -> list[Any]:
        """The rows a pane holds now (a details screen links to them without reading again)."""
        panes: dict[str, TablePane[Any]] = {"queue": self.queue_pane, "leases": self.leases_pane,
                                            "approvals": self.approvals_pane, "conflicts": self.conflicts_pane,
                                            "agents": self.agents_pane}
        return list(panes[pane].records.values())

    # -- decisions and other writes (never exclusive: a write is not cancelled half-way) --------

    def approve_approval(self, approval_id: int) -> None:
        pane = self.approvals_pane
        if approval_id in pane.in_flight:
            return
        pane.mark(approval_id, "approving…")
        self.sync_bindings()
        self._decide(approval_id, True, None)

    def confirm_approve(self, approval_id: int) -> None:
        """Approve from somewhere other than the row itself (the palette): name it, ask first."""
        row = self.approvals_pane.records.get(aid(approval_id))
        if row is None or row.status != "pending":
            self.toast(f"{aid(approval_id)} is not waiting any more" + (f": {ended_how(row)}" if row else ""),
                       title="nothing done", severity="warning", channel="feedback")
            return

        def answered(yes: bool | None) -> None:
            now = self.approvals_pane.records.get(aid(approval_id))
            if not yes:
                return
            if now is None or now.status != "pending":
                self.toast(f"{aid(approval_id)} " + (ended_how(now) if now else "is gone") + " meanwhile",
                           title="nothing done", severity="warning", channel="feedback")
                return
            self.approve_approval(approval_id)

        who = row.requested_by + (f" in {row.worktree}" if row.worktree else "")
        self.push_screen(ConfirmDialog(f"Approve {aid(approval_id)}?", f"Approve {aid(approval_id)}: {row.summary}",
                                       details=[("requested by", who), ("kind", row.kind)], confirm="approve"),
                         answered)

    def ask_reject(self, approval_id: int) -> None:
        pane = self.approvals_pane
        row = pane.records.get(aid(approval_id))
        if approval_id in pane.in_flight or row is None or row.status != "pending":
            self.bell()
            return

        def rejected(reason: str | None) -> None:
            now = pane.records.get(aid(approval_id))
            if reason and now is not None and now.status != "pending":
                self.toast(f"{aid(approval_id)} {ended_how(now)} meanwhile", title="nothing done",
                           severity="warning", channel="feedback")
                return
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
        if approval.decided_by != self.actor:
            # the same decision was already taken by someone else: ours changed nothing
            verdict = f"was already {approval.status} by {approval.decided_by}"
        else:
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

    def confirm_cancel_task(self, task_id: int) -> None:
        row = self.queue_pane.records.get(tid(task_id))
        if row is None or row.status not in ("pending", "leased"):
            self.toast(f"{tid(task_id)} is not open any more", title="nothing done", severity="warning",
                       channel="feedback")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_task(task_id)

        details = [("status", row.status)]
        if row.agent:
            details.append(("held by", f"{row.agent}@{row.worktree or '-'}: its lease is released"))
        self.push_screen(ConfirmDialog(f"Cancel {tid(task_id)}?", f"Cancel {tid(task_id)}: {row.title}",
                                       details=details, confirm="cancel the task", danger=True), answered)

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
        self.toast("verifying the audit chain…", title="audit")
        result = await self.store.verify_audit()
        if result.ok:
            self.toast(f"{result.checked:,} events verified; head {result.head}", title="audit log intact",
                       timeout=15)
        elif (finding := result.finding) is not None:
            self.toast(f"seq {finding.seq}: {finding.message}", title=f"audit log {finding.reason}",
                       severity="error", timeout=30)

    def show_head(self) -> None:
        c = self.counts
        if c is None or not c.audit_seq:
            self.toast("the audit log is empty", title="audit head")
            return
        full = f"{c.audit_seq}:{c.audit_hash}"
        try:
            self.copy_to_clipboard(full)
        except Exception:  # noqa: BLE001 - clipboard is best effort
            pass
        self.toast(f"{full}\nKeep it elsewhere; `tower audit verify --head {full}` proves the log still holds it.",
                   title="audit head (copied)", timeout=30)

    # -- deadlines -------------------------------------------------------------------------

    def approval_deadline(self, row: ApprovalRow) -> float | None:
        """When a pending request ends without a person: its own deadline if the store keeps
        one; for a request a hook filed, when the hook stops waiting (the policy's ask
        timeout from the request); else None (its requester waits until someone decides,
        or gives up at a time only it knows)."""
        own = getattr(row, "expires_at", None)
        if own is not None:
            return own
        if row.id in self._hook_sources and self._hook_wait is not None:
            return row.created_at + self._hook_wait
        return None

    def approval_deadline_note(self, row: ApprovalRow) -> str:
        """What happens at the deadline, in words (for the details)."""
        source = self._hook_sources.get(row.id)
        if source is not None:
            return f"then the {source} hook stops waiting and answers on its own"
        return "then it ends without a decision"


@dataclass
class Burst:
    """What one look at the store found that a person should hear about."""

    requested: list[ApprovalRow] = field(default_factory=list)
    ended: list[ApprovalRow] = field(default_factory=list)
    conflicts: list[ConflictRow] = field(default_factory=list)
    agents: list[AgentSession] = field(default_factory=list)  # entered waiting (own prompt) or stalled
    open: int = 0  # > 0 while a batch of facts is being applied: announce once, after it

    def __bool__(self) -> bool:
        return bool(self.requested or self.ended or self.conflicts or self.agents)


CRASH_LINE = "the control room stopped on an internal error (a bug: please report it at {url})"


def run_app(db_path: Path | str, watch: bool = True) -> int:
    """``tower`` with no subcommand; returns the exit code.

    The store is opened once before the screen is taken over, so a missing,
    corrupt or newer store (or a bad audit key) is the command line's usual
    one-line error and exit code, not an empty control room. A crash inside
    the room is exit 1, never 0.
    """
    db_path = store_ref(db_path)

    async def check() -> None:
        async with Store(db_path):
            pass

    asyncio.run(check())
    app = TowerApp(db_path, watch=watch)
    app.run()
    code = app.return_code or 0
    if code:
        from tui.clikit import ISSUES_URL

        print(f"tower: {CRASH_LINE.format(url=ISSUES_URL)}", file=sys.stderr)
    return code
