"""ApprovalsPane: requests waiting for a person first (oldest first, with
their age), then the latest decisions.

A decision made here shows as "approving…" / "rejecting…" until the store has
committed it; only then does the row say approved or rejected.
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.models import Approval as ApprovalRow
from store.views import APPROVALS_DECIDED_LIMIT
from tui import theme
from tui.format import aid, clock_time, duration, plural
from tui.panes.base import Col, TablePane, cell

_LABEL = {
    "pending": " ● PENDING ",
    "approved": "✔ approved",
    "rejected": "✖ rejected",
    "expired": "⌛ expired",
    "cancelled": "– cancelled",
}


class ApprovalsPane(TablePane[ApprovalRow]):
    PANE_TITLE = "Approvals"
    PANE_NUMBER = 3
    EMPTY_TEXT = "no approval requests yet"
    TIME_DEPENDENT = True
    COLUMNS: ClassVar = [
        Col("id", "ID", 4),
        Col("status", "Status", 11),
        Col("kind", "Kind", 7),
        Col("summary", "Summary", 0, 16),
        Col("from", "From", 16),
        Col("age", "When", 8),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_flight: dict[int, str] = {}  # approval id -> "approving…" / "rejecting…"

    def key_of(self, record: ApprovalRow) -> str:
        return aid(record.id)

    def cells(self, a: ApprovalRow, now: float) -> tuple:
        pending = a.status == "pending"
        busy = self.in_flight.get(a.id) if pending else None
        if busy:
            status = cell(busy, theme.S_BUSY)
        else:
            status = cell(_LABEL[a.status], theme.APPROVAL_STATUS_STYLE[a.status])
        summary = a.summary
        if a.status == "rejected" and a.reason:
            summary += f"  — {a.reason}"
        who = a.requested_by + (f"@{a.worktree}" if a.worktree else "")
        if pending:
            age = cell(duration(now - a.created_at), theme.S_WARN, justify="right")
        else:
            age = cell(clock_time(a.decided_at), theme.S_DIM, justify="right")
        return (
            cell(aid(a.id), theme.S_WARN if pending else theme.S_ID),
            status,
            cell(a.kind, theme.S_TEXT if pending else theme.S_DIM),
            cell(summary, theme.S_BOLD if pending else theme.S_MUTED),
            cell(who, theme.S_INFO if pending else theme.S_DIM),
            age,
        )

    def sort_key(self, a: ApprovalRow) -> Any:
        # waiting: oldest first; decided: the latest decision first
        return (0, 0.0, a.id) if a.status == "pending" else (1, -(a.decided_at or 0.0), -a.id)

    def search_text(self, a: ApprovalRow) -> str:
        return " ".join(
            [aid(a.id), a.status, a.kind, a.summary, a.requested_by, a.worktree or "", a.reason or ""]
        )

    def apply(self, rows, *, full: bool = False) -> None:
        rows = list(rows)
        selected = self.selected
        for a in rows:
            if a.status != "pending":
                self.in_flight.pop(a.id, None)  # committed: the row now tells the truth
        super().apply(rows, full=full)
        # the selected request was just decided and sank below the pending ones:
        # go on to the next request waiting, as a person working the list expects
        if selected is not None and selected.status == "pending":
            now = self.records.get(self.key_of(selected))
            if now is None or now.status != "pending":
                waiting = [k for k in self.shown_keys if self.records[k].status == "pending"]
                if waiting:
                    self.select_key(waiting[0])

    def trim(self) -> None:
        decided = [r for r in self.records.values() if r.status != "pending"]
        if len(decided) > APPROVALS_DECIDED_LIMIT:
            decided.sort(key=lambda r: (-(r.decided_at or 0.0), -r.id))
            for r in decided[APPROVALS_DECIDED_LIMIT:]:
                del self.records[aid(r.id)]

    def mark(self, approval_id: int, label: str | None) -> None:
        if label is None:
            self.in_flight.pop(approval_id, None)
        else:
            self.in_flight[approval_id] = label
        self.sync()

    @property
    def pending_count(self) -> int:
        return sum(1 for r in self.records.values() if r.status == "pending")

    def subtitle(self) -> str:
        n = self.pending_count
        return f"{plural(n, 'request')} waiting · a approve · r reject" if n else ""
