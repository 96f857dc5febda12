"""DetailScreen: everything about one task, lease, approval, conflict or audit
event (``enter`` on a row). Its data is read in a worker when it opens, and
again when the store says the row changed.

Below the facts, "Related" lists the rows it names (its task, lease, the
approvals and conflicts about it): enter opens one on top, escape comes back.
A pending approval can be decided here (a / r), an open conflict
acknowledged (x). Everything stored was written by an agent at some point:
shown with control characters made visible and never as markup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from core.display import printable, printable_line
from core.models import Approval as ApprovalRow
from store import Store
from tui.room import theme
from tui.format import aid, cid, duration, ellipsize, full_time, iso_clock_time, lid, tid

KINDS = {"task": tid, "lease": lid, "approval": aid, "conflict": cid, "audit": lambda n: f"seq {n}",
         "session": lambda n: f"S{n}"}


class RoomView(Protocol):
    """What a details screen asks the room (the rows it already holds, the clock, a request's deadline)."""

    clock: Callable[[], float]

    def rows_of(self, pane: str) -> list[Any]: ...

    def approval_deadline(self, row: ApprovalRow) -> float | None: ...

    def approval_deadline_note(self, row: ApprovalRow) -> str: ...


@dataclass(frozen=True)
class Link:
    kind: str
    ident: int
    label: str


@dataclass
class View:
    """What a loader found: the facts, the raw JSON (shown below the related rows), the
    related rows, and what can be done here."""

    body: RenderableType
    links: list[Link] = field(default_factory=list)
    raw: RenderableType | None = None
    pending_approval: bool = False
    open_conflict: bool = False


def _ts(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return full_time(value)
    return printable_line(value)


def _iso(value: str, now: float) -> str:
    """An ISO-8601 time of the JSON rows, as the other details show times (and how far off)."""
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return printable_line(value)
    delta = ts - now
    return f"{full_time(ts)} ({'in ' + duration(delta) if delta > 0 else duration(-delta) + ' ago'})"


def _text(value: Any, style: Any = "") -> Text:
    return Text(printable_line(value), style=style)


def _grid(rows: list[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style=theme.S_MUTED, no_wrap=True, min_width=12)
    table.add_column(style=theme.S_TEXT)
    for label, value in rows:
        if value is None or value == "" or value == []:
            continue
        table.add_row(label, value if isinstance(value, Text) else _text(value))
    return table


def _value(value: Any) -> Text:
    if isinstance(value, str):
        # a command or a message keeps its lines, each made safe
        return Text("\n".join(printable(line) for line in value.splitlines() or [""]), style=theme.S_TEXT)
    return _text(json.dumps(value, ensure_ascii=False, sort_keys=True), theme.S_TEXT)


def _fields(detail: dict[str, Any]) -> Table:
    """A request's detail as readable fields (what a person decides on) rather than raw JSON."""
    first = ("command", "path", "tool", "cwd", "policy", "branch")
    ordered = [k for k in first if k in detail] + sorted(k for k in detail if k not in first)
    table = Table.grid(padding=(0, 2))
    table.add_column(style=theme.S_MUTED, no_wrap=True, min_width=12)
    table.add_column(style=theme.S_TEXT)
    for key in ordered:
        table.add_row(_text(key, theme.S_MUTED), _value(detail[key]))
    return table


def _json(value: Any) -> Text:
    dumped = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    # json escapes control characters, not bidi overrides and friends: printable does
    return Text("\n".join(printable(line) for line in dumped.splitlines()), style=theme.S_MUTED)


def _section(title: str) -> Text:
    return Text(f"\n{title}", style=theme.S_KEY)


class DetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "close", "Close", id="detail-close"),
        Binding("q", "close", "Close", show=False),
        Binding("enter", "close", "Close", show=False),
        Binding("a", "approve", "Approve", id="detail-approve"),
        Binding("r", "reject", "Reject", id="detail-reject"),
        Binding("x", "ack", "Acknowledge", id="detail-ack"),
        # the related rows have the arrows; the page keys scroll the details themselves
        Binding("pageup", "scroll('page_up')", "Page up", show=False, priority=True),
        Binding("pagedown", "scroll('page_down')", "Page down", show=False, priority=True),
    ]

    class Act(Message):
        """A key on the details: the room approves (``approve``), asks for the reason of a
        rejection (``reject``) or acknowledges a conflict (``ack``) -- as the same keys in its panes."""

        def __init__(self, action: str, ident: int) -> None:
            super().__init__()
            self.action = action
            self.ident = ident

    class Loaded(Message):
        def __init__(self, view: View) -> None:
            super().__init__()
            self.body = view.body
            self.raw = view.raw
            self.links = view.links
            self.pending_approval = view.pending_approval
            self.open_conflict = view.open_conflict

    def __init__(self, kind: str, ident: int, *, store: Store, room: RoomView) -> None:
        super().__init__(classes="detail")
        self.kind = kind
        self.ident = ident
        self.store = store
        self.room = room
        self.pending_approval = False
        self.open_conflict = False
        self.links: list[Link] = []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box") as box:
            box.border_title = f"{self.kind.title()} {KINDS[self.kind](self.ident)}"
            box.border_subtitle = "escape closes"
            yield Static(Text("loading…", style=theme.S_DIM), id="detail-body")
            yield Static(Text("\nRelated (enter opens)", style=theme.S_KEY), id="detail-related")
            yield OptionList(id="detail-links")
            yield Static(id="detail-raw")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-related").display = False
        self.query_one("#detail-links").display = False
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "reject"):
            return True if self.pending_approval else False
        if action == "ack":
            return True if self.open_conflict else False
        return True

    def touched(self, kind: str, ids: set[int]) -> bool:
        """Whether a change to these rows concerns this screen (then it reads again)."""
        if kind == self.kind and self.ident in ids:
            return True
        return any(link.kind == kind and link.ident in ids for link in self.links)

    @work(exclusive=True, exit_on_error=False, group="detail")
    async def load(self) -> None:
        store = self.store
        loader = getattr(self, f"_load_{self.kind}")
        try:
            view = await loader(store)
        except Exception as exc:  # noqa: BLE001 - a row the store cannot read: say so, keep the screen
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            view = View(_text(f"cannot read {KINDS[self.kind](self.ident)}: {message}", theme.S_BAD))
        self.post_message(self.Loaded(view))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.pending_approval = message.pending_approval
        self.open_conflict = message.open_conflict
        self.query_one("#detail-body", Static).update(message.body)
        raw = self.query_one("#detail-raw", Static)
        raw.update(message.raw if message.raw is not None else "")
        raw.display = message.raw is not None
        box = self.query_one("#detail-box")
        keys = []
        if message.pending_approval:
            keys.append("a approve · r reject")
        if message.open_conflict:
            keys.append("x acknowledge")
        box.border_subtitle = " · ".join([*keys, "escape closes"])
        links = self.query_one("#detail-links", OptionList)
        if message.links != self.links:
            self.links = message.links
            highlighted = links.highlighted
            links.clear_options()
            links.add_options([Option(self._link_prompt(link), id=f"{link.kind}:{link.ident}")
                               for link in message.links])
            if message.links:
                links.highlighted = min(highlighted or 0, len(message.links) - 1)
        shown = bool(message.links)
        self.query_one("#detail-related").display = shown
        links.display = shown
        if shown and self.focused is not links:
            links.focus(scroll_visible=False)  # the top (what it is, its status) stays in view
        self.refresh_bindings()

    @staticmethod
    def _link_prompt(link: Link) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{link.kind:<9}", theme.S_MUTED)
        text.append(f"{KINDS[link.kind](link.ident):<7}", theme.S_KEY)
        text.append(printable_line(link.label), theme.S_TEXT)
        return text

    @on(OptionList.OptionSelected, "#detail-links")
    def _open_link(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        kind, _, ident = (event.option.id or "").partition(":")
        if kind in KINDS and ident.isdigit():
            self.app.push_screen(DetailScreen(kind, int(ident), store=self.store, room=self.room))

    # -- what the app already holds (no extra read) ------------------------------------

    def _pane_records(self, pane: str) -> list[Any]:
        try:
            return self.room.rows_of(pane)
        except Exception:  # noqa: BLE001 - the main screen is closing
            return []

    def _approval_links(self, *, lease_id: int | None = None, task_id: int | None = None) -> list[Link]:
        out = []
        for a in sorted(self._pane_records("approvals"), key=lambda r: r.id):
            if (lease_id is not None and a.lease_id == lease_id) or (task_id is not None and a.task_id == task_id):
                out.append(Link("approval", a.id, f"{a.status}: {ellipsize(a.summary, 70)}"))
        return out

    def _conflict_links(self, *, lease_id: int | None = None, task_id: int | None = None) -> list[Link]:
        out = []
        for c in sorted(self._pane_records("conflicts"), key=lambda r: r.id):
            if (lease_id is not None and lease_id in (c.lease_id, c.other_lease_id)) or \
                    (task_id is not None and c.task_id == task_id):
                out.append(Link("conflict", c.id, f"{c.kind}: {c.path}"))
        return out

    def _deadline(self, approval_id: int) -> tuple[float | None, str]:
        try:
            row = next((r for r in self.room.rows_of("approvals") if r.id == approval_id), None)
            if row is None or row.status != "pending":
                return None, ""
            return self.room.approval_deadline(row), self.room.approval_deadline_note(row)
        except Exception:  # noqa: BLE001 - the main screen is closing
            return None, ""

    # -- loaders (run in the worker) -------------------------------------------------

    async def _load_task(self, store) -> View:
        t = await store.get_task(self.ident)
        leases = await store.list_leases(all=True, task_id=self.ident)
        parts: list[RenderableType] = [
            _text(t.title, theme.S_BOLD),
            _grid([
                ("status", _text(t.status, theme.TASK_STATUS_STYLE.get(t.status, theme.S_TEXT))),
                ("priority", t.priority),
                ("attempts", f"{t.attempts} of {t.max_attempts}"),
                ("depends on", ", ".join(tid(d) for d in t.depends_on) or "-"),
                ("scope", ", ".join(t.scope) or "(anywhere)"),
                ("last error", t.last_error),
                ("created", f"{_ts(t.created_at)} by {t.created_by or '-'}"),
                ("updated", _ts(t.updated_at)),
            ]),
        ]
        if t.description:
            parts += [_section("Description"), _value(t.description)]
        parts.append(_section(f"Leases ({len(leases)})"))
        if leases:
            table = Table(box=None, padding=(0, 1), header_style=theme.S_MUTED)
            for col in ("lease", "status", "agent", "worktree", "token", "acquired", "ended", "claims"):
                table.add_column(col)
            for lease in leases:
                table.add_row(lid(lease.id), lease.status, _text(lease.agent), _text(lease.worktree or "-"),
                              str(lease.token), _ts(lease.acquired_at), _ts(lease.ended_at),
                              Text("\n".join(printable_line(c) for c in lease.claims) or "-"))
            parts.append(table)
        else:
            parts.append(Text("never leased", style=theme.S_DIM))
        links = [Link("lease", lease.id, f"{lease.status} · {lease.agent}@{lease.worktree or '-'}")
                 for lease in leases]
        links += [Link("task", d, "a dependency") for d in t.depends_on]
        links += self._approval_links(task_id=t.id) + self._conflict_links(task_id=t.id)
        return View(Group(*parts), links)

    async def _load_lease(self, store) -> View:
        lease = await store.get_lease(self.ident)
        parts: list[RenderableType] = [
            _text(f"{tid(lease.task_id)}  {lease.task_title or ''}", theme.S_BOLD),
            _grid([
                ("status", lease.status),
                ("agent", lease.agent),
                ("worktree", lease.worktree or "-"),
                ("token", lease.token),
                ("ttl", f"{lease.ttl:g}s"),
                ("acquired", _ts(lease.acquired_at)),
                ("heartbeat", _ts(lease.heartbeat_at)),
                ("expires", _ts(lease.expires_at)),
                ("ended", _ts(lease.ended_at) if lease.ended_at else None),
            ]),
            _section(f"Claims ({len(lease.claims)})"),
            Text("\n".join(printable_line(c) for c in lease.claims) or "none",
                 style=theme.S_TEXT if lease.claims else theme.S_DIM),
        ]
        links = [Link("task", lease.task_id, lease.task_title or "")]
        links += self._approval_links(lease_id=lease.id) + self._conflict_links(lease_id=lease.id)
        return View(Group(*parts), links)

    async def _load_approval(self, store) -> View:
        a = await store.get_approval(self.ident)
        status = _text(a.status if a.status == "pending" else f"{a.status}",
                       theme.S_WARN if a.status == "pending" else theme.APPROVAL_STATUS_STYLE.get(a.status,
                                                                                                   theme.S_TEXT))
        waits = None
        if a.status == "pending":
            deadline, note = self._deadline(a.id)
            if deadline is None:
                waits = "none known: it waits for a decision (or until its requester gives up)"
            else:
                left = deadline - self.room.clock()
                when = f"{full_time(deadline)} (in {duration(left)})" if left > 0 else "now"
                waits = f"{when} unless someone decides: {note}"
        parts: list[RenderableType] = [
            _text(a.summary, theme.S_BOLD),
            _grid([
                ("status", status),
                ("deadline", waits),
                ("kind", a.kind),
                ("requested by", a.requested_by + (f" in {a.worktree}" if a.worktree else "")),
                ("lease / task", " ".join(x for x in (lid(a.lease_id), tid(a.task_id)) if x) or None),
                ("requested", _ts(a.created_at)),
                ("decided", f"{_ts(a.decided_at)} by {a.decided_by}" if a.decided_at and a.decided_by else
                 (_ts(a.decided_at) if a.decided_at else None)),
                ("reason", a.reason),
                ("key", a.key),
            ]),
            _section("Detail"),
            _fields(a.detail) if a.detail else Text("(none)", style=theme.S_DIM),
        ]
        raw = Group(_section("Raw detail (JSON)"), _json(a.detail)) if a.detail else None
        links = []
        if a.lease_id is not None:
            links.append(Link("lease", a.lease_id, f"{a.requested_by}@{a.worktree or '-'}"))
        if a.task_id is not None:
            links.append(Link("task", a.task_id, "the task it was asked for"))
        return View(Group(*parts), links, raw, pending_approval=a.status == "pending")

    async def _load_conflict(self, store) -> View:
        c = await store.get_conflict(self.ident)
        parts: list[RenderableType] = [
            _text(f"{c.kind}: {c.path}", theme.S_BAD),
            _grid([
                ("status", c.status),
                ("worktree", c.worktree),
                ("other worktree", c.other_worktree),
                ("lease", lid(c.lease_id)),
                ("other lease", lid(c.other_lease_id)),
                ("task", tid(c.task_id)),
                ("message", c.message),
                ("opened", _ts(c.created_at)),
                ("closed", f"{_ts(c.closed_at)} by {c.closed_by}" if c.closed_at else None),
            ]),
        ]
        raw = None
        if c.detail:
            parts += [_section("Detail"), _fields(c.detail)]
            raw = Group(_section("Raw detail (JSON)"), _json(c.detail))
        links = []
        if c.lease_id is not None:
            links.append(Link("lease", c.lease_id, f"in {c.worktree}"))
        if c.other_lease_id is not None:
            links.append(Link("lease", c.other_lease_id, f"in {c.other_worktree or '-'} (the claim's holder)"))
        if c.task_id is not None:
            links.append(Link("task", c.task_id, "the task of the write"))
        return View(Group(*parts), links, raw, open_conflict=c.status == "open")

    async def _load_session(self, store) -> View:
        from tui.room.panes.agents import last_tool, waits_for, who

        d = await store.session_detail(self.ident)
        s = d["session"]
        now = self.room.clock()
        state = _text(s.state, theme.AGENT_STATE_STYLE.get(s.state, theme.S_TEXT))
        state.append(f"  for {duration(now - s.state_since)}", theme.S_MUTED)
        parts: list[RenderableType] = [
            _text(f"{who(s)}  ({s.kind} session {s.session})", theme.S_BOLD),
            _grid([
                ("state", state),
                ("waits for", waits_for(s) or None),
                ("why", s.waiting_reason if s.state != "waiting" else None),
                ("last tool", last_tool(s)),
                ("last event", f"{s.last_event} at {_ts(s.last_event_at)} ({duration(now - s.last_event_at)} ago)"),
                ("started", _ts(s.started_at)),
                ("process", f"pid {s.pid}" if s.pid else None),
            ]),
        ]
        calls = d["tool_calls"]
        parts.append(_section(f"Recent tool calls ({len(calls)}, newest first)"))
        if calls:
            table = Table(box=None, padding=(0, 1), header_style=theme.S_MUTED)
            for col in ("time", "tool", "target", "outcome"):
                table.add_column(col, no_wrap=col != "target")
            for c in calls[:20]:
                table.add_row(iso_clock_time(c["at"]), _text(c["tool"] or c["event"]), _text(c["target"] or ""),
                              _text(c["outcome"] or "", theme.S_MUTED))
            parts.append(table)
        else:
            parts.append(Text("none recorded", style=theme.S_DIM))
        lease = d["lease"]
        parts.append(_section("Lease"))
        if lease is None:
            parts.append(Text("none", style=theme.S_DIM))
        else:
            parts.append(_grid([
                ("lease", f"{lease['id']} {lease['status']} (token {lease['token']})"),
                ("task", f"{lease['task_id']} {lease['task_title'] or ''}"),
                ("expires", _iso(lease["expires_at"], now) if lease["status"] == "active" else None),
                ("ended", _iso(lease["ended_at"], now) if lease["ended_at"] else None),
            ]))
            parts.append(_section(f"Claims ({len(d['claims'])})"))
            parts.append(Text("\n".join(printable_line(c) for c in d["claims"]) or "none",
                              style=theme.S_TEXT if d["claims"] else theme.S_DIM))
        approvals = d["approvals"]
        parts.append(_section(f"Approvals ({len(approvals)})"))
        if approvals:
            table = Table(box=None, padding=(0, 1), header_style=theme.S_MUTED)
            for col in ("id", "status", "kind", "summary"):
                table.add_column(col, no_wrap=col != "summary")
            for a in approvals[:20]:
                style = theme.S_WARN if a["status"] == "pending" else theme.S_MUTED
                table.add_row(_text(a["id"], style), _text(a["status"], style), _text(a["kind"]),
                              _text(a["summary"]))
            parts.append(table)
        else:
            parts.append(Text("none", style=theme.S_DIM))
        events = d["audit"]
        if lease is not None:
            parts.append(_section(f"Audit of {lease['task_id']} (latest {len(events)})"))
            for e in events[-20:]:
                line = Text(no_wrap=True, overflow="ellipsis")
                line.append(f"{e['seq']:>7}  ", theme.S_DIM)
                line.append(f"{iso_clock_time(e['ts'])}  ", theme.S_MUTED)
                line.append(f"{printable_line(e['actor']):<18} ", theme.S_TEXT)
                line.append(e["event"], theme.event_style(e["event"]))
                parts.append(line)
        links = []
        for a in approvals:
            if a["status"] == "pending":
                links.append(Link("approval", int(a["id"][1:]), f"pending: {ellipsize(a['summary'], 70)}"))
        if lease is not None:
            links.append(Link("lease", int(lease["id"][1:]), f"{lease['status']} · {lease['agent']}"))
            links.append(Link("task", int(lease["task_id"][1:]), lease["task_title"] or ""))
        for a in approvals:
            if a["status"] != "pending":
                links.append(Link("approval", int(a["id"][1:]), f"{a['status']}: {ellipsize(a['summary'], 70)}"))
        return View(Group(*parts), links)

    async def _load_audit(self, store) -> View:
        try:
            events = await store.audit_events([self.ident])
        except Exception as exc:  # noqa: BLE001 - a damaged row: say so, do not crash the screen
            return View(_text(f"seq {self.ident} cannot be read ({type(exc).__name__}) — run `tower audit verify`",
                              theme.S_BAD))
        if not events:
            return View(_text(f"seq {self.ident} is missing from the log — run `tower audit verify`", theme.S_BAD))
        e = events[0]
        parts: list[RenderableType] = [
            _text(e.event, theme.event_style(e.event)),
            _grid([
                ("seq", e.seq),
                ("time", e.ts),
                ("actor", e.actor),
                ("task", tid(e.task_id)),
                ("lease", lid(e.lease_id)),
                ("approval", aid(e.approval_id)),
                ("worktree", e.worktree),
                ("path", e.path),
                ("prev hash", e.prev_hash),
                ("entry hash", e.entry_hash),
                ("signature", e.signature),
                ("head", f"{e.seq}:{e.entry_hash}"),
            ]),
            _section("Details"),
            _fields(e.details) if e.details else Text("(none)", style=theme.S_DIM),
        ]
        links = []
        if e.task_id is not None:
            links.append(Link("task", e.task_id, "the task it concerns"))
        if e.lease_id is not None:
            links.append(Link("lease", e.lease_id, "the lease it concerns"))
        if e.approval_id is not None:
            links.append(Link("approval", e.approval_id, "the approval it concerns"))
        conflict = (e.details or {}).get("conflict")
        if isinstance(conflict, str) and conflict[:1] in "Cc" and conflict[1:].isdigit():
            links.append(Link("conflict", int(conflict[1:]), "the conflict it concerns"))
        return View(Group(*parts), links)

    # -- actions -----------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, how: str) -> None:
        box = self.query_one("#detail-box", VerticalScroll)
        getattr(box, f"scroll_{how}")(animate=False)

    def action_approve(self) -> None:
        if self.pending_approval:
            self.dismiss(None)
            self.app.post_message(self.Act("approve", self.ident))

    def action_reject(self) -> None:
        if self.pending_approval:
            self.dismiss(None)
            self.app.post_message(self.Act("reject", self.ident))

    def action_ack(self) -> None:
        if self.open_conflict:
            self.dismiss(None)
            self.app.post_message(self.Act("ack", self.ident))
