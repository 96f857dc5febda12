"""What a batch of audit events touched.

Every state change appends an audit event in the same transaction, naming the
task, lease and approval it concerns (conflicts name themselves in
``details.conflict``). So the events since the app's last seq say exactly
which rows to re-read; nothing is reloaded on a timer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.models import AuditEvent


@dataclass
class Touched:
    tasks: set[int] = field(default_factory=set)
    leases: set[int] = field(default_factory=set)
    approvals: set[int] = field(default_factory=set)
    conflicts: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.leases or self.approvals or self.conflicts)


def _conflict_id(value: object) -> int | None:
    if isinstance(value, str) and value[:1] in ("C", "c") and value[1:].isdigit():
        return int(value[1:])
    if isinstance(value, int):
        return value
    return None


def touched_by(events: Iterable[AuditEvent]) -> Touched:
    touched = Touched()
    for event in events:
        if event.task_id is not None:
            touched.tasks.add(event.task_id)
        if event.lease_id is not None:
            touched.leases.add(event.lease_id)
        if event.approval_id is not None:
            touched.approvals.add(event.approval_id)
        if event.event.startswith("conflict."):
            conflict = _conflict_id(event.details.get("conflict"))
            if conflict is not None:
                touched.conflicts.add(conflict)
    return touched
