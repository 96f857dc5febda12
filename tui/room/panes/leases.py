"""LeasesPane: who holds what, where, with which token, and how long is left.

The expiry counts down every second (the app's clock) and turns amber when
the lease is close to running out, red once it has (until the app reaps it).
A lease whose files are in an open conflict says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text

from core.display import printable_line
from core.models import Lease as LeaseRow
from tui.room import theme
from tui.format import duration, lid, tid
from tui.room.panes.base import Col, TablePane, cell


def warn_after(ttl: float) -> float:
    """Seconds before expiry at which a lease turns amber: a fifth of its ttl, 15 s to 2 min."""
    return min(max(ttl * 0.2, 15.0), 120.0)


def expiry_cell(lease: LeaseRow, now: float) -> Text:
    left = lease.expires_at - now
    if left <= 0:
        return cell("EXPIRED", theme.S_BAD, justify="right")
    style = theme.S_WARN if left <= warn_after(lease.ttl) else theme.S_TEXT
    return cell(duration(left), style, justify="right")


class LeasesPane(TablePane[LeaseRow]):
    PANE_TITLE = "Leases"
    PANE_NUMBER = 2
    EMPTY_TEXT = "no active leases"
    TIME_DEPENDENT = True
    COLUMNS: ClassVar = [
        Col("id", "ID", 6),
        Col("task", "Task", 7, drop=2),
        Col("holder", "Held by", 32, 8),
        Col("token", "Tok", 5, drop=3),
        Col("expires", "Expires", 7),
        Col("claims", "Claims", 0, 10),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conflicted: set[int] = set()  # lease ids named by open conflicts

    def key_of(self, record: LeaseRow) -> str:
        return lid(record.id)

    def keep(self, record: LeaseRow) -> bool:
        return record.status == "active"

    def cells(self, lease: LeaseRow, now: float) -> tuple:
        claims = Text(no_wrap=True, overflow="ellipsis", end="")
        if lease.id in self.conflicted:
            claims.append(" ⚠ ", theme.S_CONFLICT_BADGE)
            claims.append(" ")
        if lease.claims:
            claims.append(f"{len(lease.claims)} ", theme.S_MUTED)
            names = " ".join(path.rsplit("/", 1)[-1] for path in lease.claims)
            claims.append(printable_line(names), theme.S_TEXT)
        else:
            claims.append("—", theme.S_DIM)
        return (
            cell(lid(lease.id), theme.S_BAD if lease.id in self.conflicted else theme.S_ID),
            cell(tid(lease.task_id), theme.S_MUTED),
            cell(f"{lease.agent}@{lease.worktree}" if lease.worktree else lease.agent, theme.S_INFO),
            cell(lease.token, theme.S_MUTED, justify="right"),
            expiry_cell(lease, now),
            claims,
        )

    def sort_key(self, lease: LeaseRow) -> Any:
        return lease.id

    def search_text(self, lease: LeaseRow) -> str:
        return " ".join(
            [lid(lease.id), tid(lease.task_id), lease.task_title or "", lease.agent, lease.worktree or "", *lease.claims]
        )

    def set_conflicted(self, lease_ids: set[int]) -> None:
        if lease_ids != self.conflicted:
            self.conflicted = lease_ids
            self.sync()

    def subtitle(self) -> str:
        now = self.clock()
        soon = sum(1 for r in self.records.values() if r.expires_at - now <= warn_after(r.ttl))
        return f"{soon} expiring soon" if soon else ""
