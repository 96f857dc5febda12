"""QueuePane: the tasks, what needs a person first (failed), then what runs,
then what comes next, then what finished lately."""

from __future__ import annotations

from typing import Any, ClassVar

from core.models import Task as TaskRow
from store.views import QUEUE_FINISHED_LIMIT, QUEUE_PENDING_LIMIT
from tui.room import theme
from tui.format import plural, tid
from tui.room.panes.base import Col, TablePane, cell

_RANK = {"failed": 0, "leased": 1, "pending": 2, "blocked": 3, "done": 4, "cancelled": 4}
_LABEL = {
    "failed": "✖ failed",
    "leased": "▶ leased",
    "pending": "· pending",
    "blocked": "◌ blocked",
    "done": "✔ done",
    "cancelled": "– cancelled",
}


def shown_status(task: TaskRow) -> str:
    return "blocked" if task.status == "pending" and task.blocked else task.status


class QueuePane(TablePane[TaskRow]):
    PANE_TITLE = "Queue"
    PANE_NUMBER = 1
    EMPTY_TEXT = "no tasks: agents add them with `tower task add`"
    COLUMNS: ClassVar = [
        Col("id", "ID", 7),
        Col("status", "Status", 11, 9),
        Col("pri", "Pri", 4, drop=2),
        Col("title", "Title", 0, 30),
        Col("att", "Try", 5, drop=3),
        Col("holder", "Held by", 32, 8, drop=1),
    ]

    pending_total = 0  # from the header counts: more may exist than are shown

    def key_of(self, record: TaskRow) -> str:
        return tid(record.id)

    def cells(self, t: TaskRow, now: float) -> tuple:
        status = shown_status(t)
        style = theme.TASK_STATUS_STYLE[status]
        title = t.title
        if status == "blocked":
            title += "  (after " + ", ".join(tid(d) for d in t.depends_on) + ")"
        elif status == "failed" and t.last_error:
            title += f"  — {t.last_error}"
        holder = f"{t.agent}@{t.worktree}" if t.agent and t.worktree else (t.agent or "")
        finished = t.status in ("done", "cancelled")
        return (
            cell(tid(t.id), theme.S_BAD if status == "failed" else theme.S_ID),
            cell(_LABEL[status], style),
            cell(t.priority, theme.S_DIM if finished else theme.S_TEXT, justify="right"),
            cell(title, theme.S_DIM if finished else (theme.S_BAD if status == "failed" else theme.S_TEXT)),
            cell(f"{t.attempts}/{t.max_attempts}", theme.S_MUTED),
            cell(holder, theme.S_INFO),
        )

    def sort_key(self, t: TaskRow) -> Any:
        status = shown_status(t)
        rank = _RANK[status]
        if rank >= 4:
            return (rank, -t.updated_at, -t.id)
        if rank >= 2:
            return (rank, -t.priority, t.id)
        return (rank, t.id)

    def follows(self, before: TaskRow, after: TaskRow) -> bool:
        # a selected task that finishes sinks to the done section: the cursor stays with
        # the work in progress instead of following it there and hiding the leased ones
        finished = _RANK["done"]
        return not (_RANK[shown_status(after)] == finished and _RANK[shown_status(before)] < finished)

    def search_text(self, t: TaskRow) -> str:
        return " ".join(
            str(x) for x in (tid(t.id), shown_status(t), t.title, t.agent or "", t.worktree or "", t.last_error or "")
        )

    def trim(self) -> None:
        pending = [r for r in self.records.values() if r.status == "pending"]
        if len(pending) > QUEUE_PENDING_LIMIT:
            pending.sort(key=lambda r: (-r.priority, r.id))
            for r in pending[QUEUE_PENDING_LIMIT:]:
                del self.records[tid(r.id)]
        finished = [r for r in self.records.values() if r.status in ("done", "cancelled")]
        if len(finished) > QUEUE_FINISHED_LIMIT:
            finished.sort(key=lambda r: (-r.updated_at, -r.id))
            for r in finished[QUEUE_FINISHED_LIMIT:]:
                del self.records[tid(r.id)]

    def shown_pending(self) -> int:
        return sum(1 for r in self.records.values() if r.status == "pending")

    def subtitle(self) -> str:
        shown = self.shown_pending()
        if self.pending_total > shown:
            return f"next {shown} of {plural(self.pending_total, 'pending task')}"
        return ""
