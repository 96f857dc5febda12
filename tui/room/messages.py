"""Typed facts the store worker posts to the app; handlers own every UI change.

One message per fact. Table messages carry the rows that changed (or every
row with ``full=True``); the audit message carries the new events by seq.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from core.models import AgentSession
from core.models import Approval as ApprovalRow
from core.models import AuditEvent, Counts
from core.models import Conflict as ConflictRow
from core.models import Lease as LeaseRow
from core.models import Task as TaskRow


class StoreOpened(Message):
    """The store is open and the first full load follows."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class StoreFailed(Message):
    """A store call failed: shown in the alert bar; ``fatal`` when it cannot be opened at all."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__()
        self.message = message
        self.fatal = fatal


class StoreRecovered(Message):
    """The store answers again after a failure."""


class CountsChanged(Message):
    """New header counts (a burst keeps only the newest)."""

    def __init__(self, counts: Counts) -> None:
        super().__init__()
        self.counts = counts

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CountsChanged)


class RowsChanged(Message):
    """Rows of one table changed; ``full`` replaces the table's rows."""

    def __init__(self, rows: Sequence, *, full: bool = False) -> None:
        super().__init__()
        self.rows = list(rows)
        self.full = full


class TasksChanged(RowsChanged):
    rows: list[TaskRow]


class LeasesChanged(RowsChanged):
    rows: list[LeaseRow]


class ApprovalsChanged(RowsChanged):
    """``sources``: which hook filed each pending one (it stops waiting after the policy's
    ask timeout); ``ask_timeout``: that timeout, when the policy was read with them."""

    rows: list[ApprovalRow]

    def __init__(self, rows: Sequence, *, full: bool = False, sources: dict[int, str] | None = None,
                 ask_timeout: float | None = None) -> None:
        super().__init__(rows, full=full)
        self.sources = sources or {}
        self.ask_timeout = ask_timeout


class ConflictsChanged(RowsChanged):
    rows: list[ConflictRow]


class SessionsChanged(RowsChanged):
    """Every agent session as read now (always the whole, small list); ``changed``: the ids
    whose row differs from the last list posted (a details screen reads again for those)."""

    rows: list[AgentSession]

    def __init__(self, rows: Sequence, *, changed: set[int] | None = None) -> None:
        super().__init__(rows, full=True)
        self.changed = changed if changed is not None else {r.id for r in self.rows}


class AuditAppended(Message):
    """Events ``seq_from..seq_to`` were appended (``events`` may hold only the newest of a big burst)."""

    def __init__(self, seq_from: int, seq_to: int, events: Sequence[AuditEvent], *, initial: bool = False) -> None:
        super().__init__()
        self.seq_from = seq_from
        self.seq_to = seq_to
        self.events = list(events)
        self.initial = initial


class Loaded(Message):
    """The first full load is on screen."""


class ActionDone(Message):
    """A write made from the app was committed by the store."""

    def __init__(self, text: str, *, approval_id: int | None = None) -> None:
        super().__init__()
        self.text = text
        self.approval_id = approval_id


class ActionFailed(Message):
    """A write made from the app was refused or failed; nothing changed."""

    def __init__(self, text: str, *, approval_id: int | None = None, conflict_id: int | None = None) -> None:
        super().__init__()
        self.text = text
        self.approval_id = approval_id
        self.conflict_id = conflict_id


class WatcherChanged(Message):
    """The worktree watcher's state (``watching``, ``polling``, ``standby``…) and its new warnings."""

    def __init__(self, status: str, worktrees: int, new_warnings: list[str]) -> None:
        super().__init__()
        self.status = status
        self.worktrees = worktrees
        self.new_warnings = new_warnings


class StoreChanged(Message):
    """What one look at the store found, applied at once: one repaint per look, not one per fact."""

    def __init__(self, facts: Sequence[Message]) -> None:
        super().__init__()
        self.facts = facts
