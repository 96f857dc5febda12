"""DetailScreen: everything about one task, lease, approval, conflict or audit
event (``enter`` on a row). Its data is read in a worker when it opens."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui import theme
from tui.format import aid, cid, full_time, lid, tid

KINDS = {"task": tid, "lease": lid, "approval": aid, "conflict": cid, "audit": lambda n: f"seq {n}"}


def _ts(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return full_time(value)
    return str(value)


def _grid(rows: list[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style=theme.S_MUTED, no_wrap=True, min_width=12)
    table.add_column(style=theme.S_TEXT)
    for label, value in rows:
        if value is None or value == "" or value == []:
            continue
        table.add_row(label, value if isinstance(value, Text) else str(value))
    return table


def _json(value: Any) -> Syntax:
    return Syntax(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True), "json",
                  theme="ansi_dark", background_color="default", word_wrap=True)


def _section(title: str) -> Text:
    return Text(f"\n{title}", style=theme.S_KEY)


class DetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "close", "Close", id="detail-close"),
        Binding("q,enter", "close", "Close", show=False),
        Binding("a", "approve", "Approve", id="detail-approve"),
        Binding("r", "reject", "Reject", id="detail-reject"),
    ]

    class Loaded(Message):
        def __init__(self, body: RenderableType, pending_approval: bool) -> None:
            super().__init__()
            self.body = body
            self.pending_approval = pending_approval

    def __init__(self, kind: str, ident: int) -> None:
        super().__init__(id="detail")
        self.kind = kind
        self.ident = ident
        self.pending_approval = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box") as box:
            box.border_title = f"{self.kind.title()} {KINDS[self.kind](self.ident)}"
            box.border_subtitle = "escape closes"
            yield Static(Text("loading…", style=theme.S_DIM), id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "reject"):
            return True if self.pending_approval else False
        return True

    @work(exclusive=True, exit_on_error=False, group="detail")
    async def load(self) -> None:
        store = self.app.store  # type: ignore[attr-defined]
        loader = getattr(self, f"_load_{self.kind}")
        body, pending = await loader(store)
        self.post_message(self.Loaded(body, pending))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.pending_approval = message.pending_approval
        self.query_one("#detail-body", Static).update(message.body)
        if message.pending_approval:
            self.query_one("#detail-box").border_subtitle = "a approve · r reject · escape closes"
        self.refresh_bindings()

    # -- loaders (run in the worker) -------------------------------------------------

    async def _load_task(self, store) -> tuple[RenderableType, bool]:
        t = await store.get_task(self.ident)
        leases = await store.list_leases(all=True, task_id=self.ident)
        parts: list[RenderableType] = [
            Text(t.title, style=theme.S_BOLD),
            _grid([
                ("status", Text(t.status, style=theme.TASK_STATUS_STYLE.get(t.status, theme.S_TEXT))),
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
            parts += [_section("Description"), Text(t.description)]
        parts.append(_section(f"Leases ({len(leases)})"))
        if leases:
            table = Table(box=None, padding=(0, 1), header_style=theme.S_MUTED)
            for col in ("lease", "status", "agent", "worktree", "token", "acquired", "ended", "claims"):
                table.add_column(col)
            for lease in leases:
                table.add_row(lid(lease.id), lease.status, lease.agent, lease.worktree or "-", str(lease.token),
                              _ts(lease.acquired_at), _ts(lease.ended_at), "\n".join(lease.claims) or "-")
            parts.append(table)
        else:
            parts.append(Text("never leased", style=theme.S_DIM))
        return Group(*parts), False

    async def _load_lease(self, store) -> tuple[RenderableType, bool]:
        lease = await store.get_lease(self.ident)
        parts: list[RenderableType] = [
            Text(f"{tid(lease.task_id)}  {lease.task_title or ''}", style=theme.S_BOLD),
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
            Text("\n".join(lease.claims) or "none", style=theme.S_TEXT if lease.claims else theme.S_DIM),
        ]
        return Group(*parts), False

    async def _load_approval(self, store) -> tuple[RenderableType, bool]:
        a = await store.get_approval(self.ident)
        status = Text(a.status, style=theme.APPROVAL_STATUS_STYLE.get(a.status, theme.S_TEXT))
        parts: list[RenderableType] = [
            Text(a.summary, style=theme.S_BOLD),
            _grid([
                ("status", status),
                ("kind", a.kind),
                ("requested by", a.requested_by + (f" in {a.worktree}" if a.worktree else "")),
                ("lease / task", " ".join(x for x in (lid(a.lease_id), tid(a.task_id)) if x) or None),
                ("requested", _ts(a.created_at)),
                ("decided", f"{_ts(a.decided_at)} by {a.decided_by}" if a.decided_at else None),
                ("reason", a.reason),
                ("key", a.key),
            ]),
            _section("Detail"),
            _json(a.detail) if a.detail else Text("(none)", style=theme.S_DIM),
        ]
        return Group(*parts), a.status == "pending"

    async def _load_conflict(self, store) -> tuple[RenderableType, bool]:
        c = await store.get_conflict(self.ident)
        parts: list[RenderableType] = [
            Text(f"{c.kind}: {c.path}", style=theme.S_BAD),
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
        if c.detail:
            parts += [_section("Detail"), _json(c.detail)]
        return Group(*parts), False

    async def _load_audit(self, store) -> tuple[RenderableType, bool]:
        events = await store.audit_events([self.ident])
        if not events:
            return Text(f"no audit event {self.ident}", style=theme.S_BAD), False
        e = events[0]
        parts: list[RenderableType] = [
            Text(e.event, style=theme.event_style(e.event)),
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
            _json(e.details) if e.details else Text("(none)", style=theme.S_DIM),
        ]
        return Group(*parts), False

    # -- actions -----------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss(None)

    def action_approve(self) -> None:
        if self.pending_approval:
            self.dismiss(None)
            self.app.approve_approval(self.ident)  # type: ignore[attr-defined]

    def action_reject(self) -> None:
        if self.pending_approval:
            self.dismiss(None)
            self.app.ask_reject(self.ident)  # type: ignore[attr-defined]
