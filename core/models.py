"""Pydantic models of Tower's entities.

Ids are ints in Python and prefixed strings (``T3``) in JSON; timestamps are
UTC ``datetime`` in Python and ISO-8601 in JSON. ``model_dump(mode="json")``
is exactly what ``--json`` prints as ``data``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from core.vocab import (  # noqa: F401 - re-exported
    APPROVAL_KINDS,
    APPROVAL_STATUSES,
    CONFLICT_KINDS,
    CONFLICT_STATUSES,
    LEASE_STATUSES,
    TASK_STATUSES,
    iso,
    utc,
)

# The words live in core.vocab (no pydantic) so that light callers need not import this module.
TaskStatus = Literal[TASK_STATUSES]  # type: ignore[valid-type]
LeaseStatus = Literal[LEASE_STATUSES]  # type: ignore[valid-type]
ApprovalKind = Literal[APPROVAL_KINDS]  # type: ignore[valid-type]
ApprovalStatus = Literal[APPROVAL_STATUSES]  # type: ignore[valid-type]
ConflictKind = Literal[CONFLICT_KINDS]  # type: ignore[valid-type]
ConflictStatus = Literal[CONFLICT_STATUSES]  # type: ignore[valid-type]


def _prefixed(prefix: str):
    return PlainSerializer(
        lambda v: None if v is None else f"{prefix}{v}", return_type=str | None, when_used="json"
    )


TaskId = Annotated[int, _prefixed("T")]
LeaseId = Annotated[int, _prefixed("L")]
ApprovalId = Annotated[int, _prefixed("A")]
ConflictId = Annotated[int, _prefixed("C")]


Timestamp = Annotated[
    datetime,
    PlainSerializer(
        lambda v: v.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        return_type=str,
        when_used="json",
    ),
]


class Model(BaseModel):
    # defer_build: building every schema at import costs ~50 ms on each command
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Task(Model):
    id: TaskId
    title: str
    description: str = ""
    priority: int = 0
    status: TaskStatus = "pending"
    depends_on: list[TaskId] = Field(default_factory=list)
    scope: list[str] = Field(default_factory=list)
    attempts: int = 0
    max_attempts: int = 3
    last_error: str | None = None
    created_by: str | None = None
    created_at: Timestamp
    updated_at: Timestamp


class Claim(Model):
    path: str
    lease_id: LeaseId
    worktree: str | None = None
    claimed_at: Timestamp


class Lease(Model):
    id: LeaseId
    task_id: TaskId
    task_title: str | None = None
    agent: str
    worktree: str | None = None
    token: int
    status: LeaseStatus
    ttl: float
    acquired_at: Timestamp
    heartbeat_at: Timestamp
    expires_at: Timestamp
    ended_at: Timestamp | None = None
    claims: list[str] = Field(default_factory=list)


class Worktree(Model):
    name: str
    path: str
    branch: str | None = None
    agent: str | None = None
    last_seen: Timestamp | None = None
    active: bool = True


class Approval(Model):
    id: ApprovalId
    kind: ApprovalKind
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict)
    status: ApprovalStatus
    requested_by: str
    worktree: str | None = None
    lease_id: LeaseId | None = None
    task_id: TaskId | None = None
    key: str | None = None
    created_at: Timestamp
    decided_at: Timestamp | None = None
    decided_by: str | None = None
    reason: str | None = None


class Conflict(Model):
    id: ConflictId
    kind: ConflictKind
    path: str
    worktree: str
    other_worktree: str | None = None
    lease_id: LeaseId | None = None
    other_lease_id: LeaseId | None = None
    task_id: TaskId | None = None
    status: ConflictStatus
    message: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None = None
    closed_by: str | None = None


class AuditEvent(Model):
    seq: int
    ts: str
    actor: str
    event: str
    task_id: TaskId | None = None
    lease_id: LeaseId | None = None
    approval_id: ApprovalId | None = None
    worktree: str | None = None
    path: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    entry_hash: str
    signature: str
    #: what could not be read in the stored row (None: it decoded cleanly); see store/audit_log.py
    damaged: str | None = None


class ClaimResult(Model):
    """What ``tower task claim`` answers."""

    lease_id: LeaseId
    token: int
    task_id: TaskId
    title: str
    scope: list[str] = Field(default_factory=list)
    expires_at: Timestamp


class Counts(Model):
    """The control room's header line."""

    pending: int = 0
    leased: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    active_leases: int = 0
    pending_approvals: int = 0
    open_conflicts: int = 0
    audit_seq: int = 0
    audit_hash: str | None = None
