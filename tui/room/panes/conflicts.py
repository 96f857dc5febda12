"""ConflictsPane: open flags raised by the watcher, until acknowledged (``x``)
or their cause goes away."""

from __future__ import annotations

from typing import Any, ClassVar

from core.models import Conflict as ConflictRow
from tui.room import theme
from tui.format import cid, duration, lid, plural
from tui.room.panes.base import Col, TablePane, cell, path_cell

KIND_LABEL = {
    "claimed_by_other": "claimed",
    "out_of_scope": "out of scope",
    "unleased_write": "unleased",
    "concurrent_edit": "concurrent",
}


class ConflictsPane(TablePane[ConflictRow]):
    PANE_TITLE = "Conflicts"
    PANE_NUMBER = 4
    EMPTY_TEXT = "no open conflicts"
    TIME_DEPENDENT = True
    COLUMNS: ClassVar = [
        Col("id", "ID", 5),
        Col("kind", "Kind", 12, 8),
        Col("path", "Path", 0, 12),
        Col("where", "Worktrees", 40, 9, drop=1),
        Col("age", "Age", 6, drop=2),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_flight: set[int] = set()

    def key_of(self, record: ConflictRow) -> str:
        return cid(record.id)

    def keep(self, record: ConflictRow) -> bool:
        return record.status == "open"

    def cells(self, c: ConflictRow, now: float) -> tuple:
        where = c.worktree + (f" ↔ {c.other_worktree}" if c.other_worktree else "")
        kind = "acking…" if c.id in self.in_flight else KIND_LABEL.get(c.kind, c.kind)
        return (
            cell(cid(c.id), theme.S_BAD),
            cell(kind, theme.S_BUSY if c.id in self.in_flight else theme.S_BAD),
            path_cell(c.path, self.col_width("path"), theme.S_BOLD),
            cell(where, theme.S_TEXT),
            cell(duration(now - c.created_at), theme.S_MUTED, justify="right"),
        )

    def sort_key(self, c: ConflictRow) -> Any:
        return c.id

    def search_text(self, c: ConflictRow) -> str:
        return " ".join(
            [cid(c.id), c.kind, KIND_LABEL.get(c.kind, ""), c.path, c.worktree, c.other_worktree or "",
             lid(c.lease_id), c.message]
        )

    def apply(self, rows, *, full: bool = False) -> None:
        rows = list(rows)
        selected = self.selected
        mine = set()
        for c in rows:
            if c.status != "open" and c.id in self.in_flight:
                self.in_flight.discard(c.id)
                mine.add(c.id)
        super().apply(rows, full=full)
        if selected is not None and selected.id in mine:
            self.mark_seen()  # the person's own acknowledgement: the next row is theirs to act on

    def mark(self, conflict_id: int, busy: bool) -> None:
        (self.in_flight.add if busy else self.in_flight.discard)(conflict_id)
        self.sync()

    def describe_change(self, key: str, before: ConflictRow | None, after: ConflictRow | None) -> str:
        if after is None:
            return f"{key} was closed elsewhere (acknowledged or resolved)"
        return f"{key} changed"

    def lease_ids(self) -> set[int]:
        ids: set[int] = set()
        for c in self.records.values():
            ids.update(x for x in (c.lease_id, c.other_lease_id) if x is not None)
        return ids

    def subtitle(self) -> str:
        n = len(self.records)
        return f"{plural(n, 'open conflict')} · x acknowledges" if n else ""
