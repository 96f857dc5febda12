"""ApprovalsPane: requests waiting for a person first (oldest first, with
their age and time left), then the latest decisions and endings.

A decision made here shows as "approving…" / "rejecting…" until the store has
committed it; only then does the row say approved or rejected, and the cursor
goes on to the next request waiting. A request decided elsewhere, or ending
without anyone (expired, cancelled with its lease), keeps the cursor: the row
shows what became of it, and the app's keys refuse to act until the person
moves (see ``TablePane.changed_under_cursor``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from core.models import Approval as ApprovalRow
from store.views import APPROVALS_DECIDED_LIMIT
from tui.room import theme
from tui.format import aid, clock_time, duration, plural
from tui.room.panes.base import Col, TablePane, cell

_LABEL = {
    "pending": " ● PENDING ",
    "approved": "✔ approved",
    "rejected": "✖ rejected",
    "expired": "⌛ expired",
    "cancelled": "⊘ cancelled",
}


def ended_how(a: ApprovalRow) -> str:
    """What became of a request, in words: "approved by person:ada", "expired: nobody decided…"."""
    if a.status == "pending":
        return "waiting"
    text = a.status
    if a.decided_by and a.status in ("approved", "rejected"):
        text += f" by {a.decided_by}"
    if a.reason:
        text += f": {a.reason}"
    return text


class ApprovalsPane(TablePane[ApprovalRow]):
    PANE_TITLE = "Approvals"
    PANE_NUMBER = 3
    EMPTY_TEXT = "no approval requests yet"
    TIME_DEPENDENT = True
    COLUMNS: ClassVar = [
        Col("id", "ID", 6),
        Col("status", "Status", 11, 9),
        Col("kind", "Kind", 7, drop=4),
        Col("summary", "Summary", 0, 30),
        Col("from", "From", 32, 8, drop=3),
        Col("left", "Left", 8, drop=2, hide_empty=True),
        Col("age", "When", 8),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_flight: dict[int, str] = {}  # approval id -> "approving…" / "rejecting…"
        #: the time by which a pending request ends without a person (None: it waits for one)
        self.deadline: Callable[[ApprovalRow], float | None] = lambda a: None

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
        if a.status in ("rejected", "expired", "cancelled") and a.reason:
            summary += f"  — {a.reason}"
        who = a.requested_by + (f"@{a.worktree}" if a.worktree else "")
        left = cell("", theme.S_DIM)
        if pending:
            age = cell(duration(now - a.created_at), theme.S_WARN, justify="right")
            deadline = self.deadline(a)
            if deadline is not None:
                remaining = deadline - now
                left = cell(duration(remaining) if remaining > 0 else "now", theme.S_BAD if remaining < 60
                            else theme.S_WARN, justify="right")
        else:
            age = cell(clock_time(a.decided_at), theme.S_DIM, justify="right")
        ended_alone = a.status in ("expired", "cancelled")
        return (
            cell(aid(a.id), theme.S_WARN if pending else theme.S_ID),
            status,
            cell(a.kind, theme.S_TEXT if pending else theme.S_DIM),
            cell(summary, theme.S_BOLD if pending else (theme.S_TEXT if ended_alone else theme.S_MUTED)),
            cell(who, theme.S_INFO if pending else theme.S_DIM),
            left,
            age,
        )

    def sort_key(self, a: ApprovalRow) -> Any:
        # waiting: oldest first; decided: the latest decision first
        return (0, 0.0, a.id) if a.status == "pending" else (1, -(a.decided_at or 0.0), -a.id)

    def search_text(self, a: ApprovalRow) -> str:
        return " ".join(
            [aid(a.id), a.status, a.kind, a.summary, a.requested_by, a.worktree or "", a.reason or ""]
        )

    def describe_change(self, key: str, before: ApprovalRow | None, after: ApprovalRow | None) -> str:
        if after is None:
            return f"{key} is no longer listed"
        if before is not None and before.status == "pending" and after.status != "pending":
            return f"{key} was {ended_how(after)}"
        return f"{key} changed"

    def apply(self, rows, *, full: bool = False) -> None:
        rows = list(rows)
        selected = self.selected
        mine = set()
        for a in rows:
            if a.status != "pending" and self.in_flight.pop(a.id, None) is not None:
                mine.add(a.id)  # committed: the row now tells the truth
        super().apply(rows, full=full)
        # the person's own decision on the selected request: go on to the next one
        # waiting, as someone working through the list expects
        if selected is not None and selected.id in mine:
            waiting = self.pending_keys()
            if waiting:
                self.select_key(waiting[0])
            self.mark_seen()

    def pending_keys(self) -> list[str]:
        """The requests waiting, as shown (oldest first)."""
        return [k for k in self.shown_keys if self.records[k].status == "pending"]

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
        if not n:
            return ""
        selected = self.selected
        key = aid(selected.id) if selected is not None and selected.status == "pending" else None
        waiting = self.pending_keys() if key else []
        where = f"{waiting.index(key) + 1} of {n} waiting" if key in waiting else f"{plural(n, 'request')} waiting"
        return f"{where} · a approve · r reject · n next"
