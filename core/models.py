"""Tower's entities: one slotted record per entity, one JSON encoder.

Every command, the control room and the agents' hot path use these same
types, so they are cheap to build and to import (no pydantic). Ids are ints,
times are epoch seconds (floats, as the store keeps and compares them),
lists are tuples. ``to_json()`` is exactly what ``--json`` prints as
``data``: ids prefixed (``T3``), times ISO-8601 UTC with milliseconds,
tuples as lists; a field marked ``local`` is read with the row (the control
room shows it) but is not part of the JSON contract.

Nothing here validates: input is checked where it enters (the store's verbs,
the command line, the policy file), and a damaged stored row still becomes a
row, so that a listing shows every row as it is stored.
"""

from __future__ import annotations

from core.ids import PREFIXES
from core.records import field, fields
from core.records import record as _record
from core.typecheck import dataclass_transform
from core.vocab import iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar

    _Encode = Callable[[Any], Any]
    T = TypeVar("T")


def _ref(kind: str) -> _Encode:
    letter = PREFIXES[kind]
    return lambda v: None if v is None else f"{letter}{v}"


def _refs(kind: str) -> _Encode:
    letter = PREFIXES[kind]
    return lambda vs: [f"{letter}{v}" for v in vs]


_ENCODERS: dict[str, _Encode] = {
    **{f"ref:{kind}": _ref(kind) for kind in PREFIXES},
    **{f"refs:{kind}": _refs(kind) for kind in PREFIXES},
    "time": iso,
    "list": list,
}


def ref(kind: str, **kw: Any) -> Any:
    """A field holding the id of a ``kind`` (``task``, ``lease``…): ``T3`` in JSON."""
    return field(metadata={"json": f"ref:{kind}"}, **kw)


def refs(kind: str, **kw: Any) -> Any:
    """A tuple of ids of a ``kind``: a list of ``T3`` in JSON."""
    return field(metadata={"json": f"refs:{kind}"}, **kw)


def when(**kw: Any) -> Any:
    """Epoch seconds: ISO-8601 UTC in JSON."""
    return field(metadata={"json": "time"}, **kw)


def items(**kw: Any) -> Any:
    """A tuple: a list in JSON."""
    return field(metadata={"json": "list"}, **kw)


def local(**kw: Any) -> Any:
    """Read with the row, not part of its JSON."""
    return field(metadata={"json": None}, **kw)


class Record:
    """The base of every row: ``to_json()`` from the fields' markers."""

    __slots__ = ()
    _plan: ClassVar[tuple[tuple[str, _Encode | None], ...]] = ()

    def to_json(self) -> dict[str, Any]:
        plan = type(self)._plan or _make_plan(type(self))
        out: dict[str, Any] = {}
        for name, encode in plan:
            value = getattr(self, name)
            out[name] = value if encode is None else encode(value)
        return out


_SKIP: Any = object()


def _make_plan(cls: type[Record]) -> tuple[tuple[str, _Encode | None], ...]:
    plan = []
    for f in fields(cls):
        marker = f.metadata.get("json", _SKIP)
        if marker is None:
            continue
        plan.append((f.name, None if marker is _SKIP else _ENCODERS[marker]))
    cls._plan = tuple(plan)
    return cls._plan


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field, ref, refs, when, items, local))
def record(cls: type[T]) -> type[T]:
    """A row type: a slotted record (core/records.py), keyword-only, compared and hashed
    by value, immutable as far as the type checker is concerned. Not frozen at run time:
    a frozen row is slower to build, and the store builds rows in bulk."""
    return _record(slots=True, kw_only=True, unsafe_hash=True)(cls)


def to_json(value: Any) -> Any:
    """Rows (and lists and dicts of them) as their JSON data; anything else as it is."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


@record
class Task(Record):
    id: int = ref("task")
    title: str
    description: str = ""
    priority: int = 0
    status: str = "pending"
    depends_on: tuple[int, ...] = refs("task", default=())
    scope: tuple[str, ...] = items(default=())
    attempts: int = 0
    max_attempts: int = 3
    last_error: str | None = None
    created_by: str | None = None
    created_at: float = when()
    updated_at: float = when()
    # pending with a dependency not done yet
    blocked: bool = local(default=False)
    # the active lease (if any) and its holder
    lease_id: int | None = local(default=None)
    agent: str | None = local(default=None)
    worktree: str | None = local(default=None)


@record
class Lease(Record):
    id: int = ref("lease")
    task_id: int = ref("task")
    task_title: str | None = None
    agent: str
    worktree: str | None = None
    token: int
    status: str
    ttl: float
    acquired_at: float = when()
    heartbeat_at: float = when()
    expires_at: float = when()
    ended_at: float | None = when(default=None)
    claims: tuple[str, ...] = items(default=())
    # the task's scope: what the holder may write
    scope: tuple[str, ...] = local(default=())


@record
class ClaimResult(Record):
    """What claiming a task answers: the lease, its fencing token, the task."""

    lease_id: int = ref("lease")
    token: int
    task_id: int = ref("task")
    title: str
    scope: tuple[str, ...] = items(default=())
    expires_at: float = when()


@record
class Worktree(Record):
    name: str
    path: str
    branch: str | None = None
    agent: str | None = None
    last_seen: float | None = when(default=None)
    active: bool = True
    host: str | None = None  # the machine it is on, in a store shared by several (None: this one)


@record
class Approval(Record):
    id: int = ref("approval")
    kind: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    status: str
    requested_by: str
    worktree: str | None = None
    lease_id: int | None = ref("lease", default=None)
    task_id: int | None = ref("task", default=None)
    key: str | None = None
    created_at: float = when()
    decided_at: float | None = when(default=None)
    decided_by: str | None = None
    reason: str | None = None


@record
class Conflict(Record):
    id: int = ref("conflict")
    kind: str
    path: str
    worktree: str
    other_worktree: str | None = None
    lease_id: int | None = ref("lease", default=None)
    other_lease_id: int | None = ref("lease", default=None)
    task_id: int | None = ref("task", default=None)
    status: str
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: float = when()
    updated_at: float = when()
    closed_at: float | None = when(default=None)
    closed_by: str | None = None


@record
class AuditEvent(Record):
    seq: int
    ts: str
    actor: str
    event: str
    task_id: int | None = ref("task", default=None)
    lease_id: int | None = ref("lease", default=None)
    approval_id: int | None = ref("approval", default=None)
    worktree: str | None = None
    path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str
    entry_hash: str
    signature: str
    #: what could not be read in the stored row (None: it decoded cleanly); see store/audit_log.py
    damaged: str | None = None


@record
class Counts(Record):
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


@record
class AgentSession(Record):
    """An agent session as a reader sees it (states derived at read time: store/sessions.py)."""

    id: int = ref("session")
    kind: str
    session: str
    agent: str | None
    worktree: str | None
    lease_id: int | None = ref("lease")  # the session's lease while it is active
    state: str
    last_tool: str | None
    last_event_at: float = when()
    waiting_for: int | None = ref("approval")  # a pending Tower approval
    last_target: str | None
    last_event: str
    state_since: float = when()
    waiting_reason: str | None
    task_id: int | None = ref("task")
    last_lease_id: int | None = ref("lease")  # the last lease it held, whatever its status
    started_at: float = when()
    pid: int | None
    stored_state: str = local()
    rev: int = local()
