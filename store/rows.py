"""One SELECT and one converter per entity: every read of a task, lease, approval,
conflict or worktree (commands, the control room, the agents' hot path) goes through
these, so each entity is read one way and is one type (core/models.py).

Converters read columns by position (the SELECTs below fix the order): the control
room re-reads rows many times a second, and ``row["name"]`` is a search per column.
They never fail on what a row holds: JSON that does not decode becomes an empty list
or ``{"undecodable": …}``, so a damaged row still lists.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache

from core.limits import stored_detail
from core.models import Approval, Conflict, Lease, Task, Worktree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Dialect, Row


# the condition for a pending task whose dependencies are all done (alias ``t``)
READY = """NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks x ON x.id = d.depends_on
                  WHERE d.task_id = t.id AND x.status != 'done')"""


def json_items(text: str | None) -> tuple[Any, ...]:
    """A stored JSON list as a tuple; ``()`` for anything else. Most lists are empty, and
    the rest repeat (a queue's tasks share a few scopes): neither reaches the parser twice."""
    if not text or text == "[]":
        return ()
    return _parsed(text)


@lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[Any, ...]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError, TypeError):
        return ()
    return tuple(value) if isinstance(value, list) else ()


def _sorted(items: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(sorted(items)) if len(items) > 1 else items


@cache
def task_select(dialect: Dialect) -> str:
    """Every task column, its dependencies, whether it is blocked, its active lease's holder."""
    deps = dialect.json_array("d.depends_on", "task_deps d WHERE d.task_id = t.id", order_by="d.depends_on")
    return f"""
SELECT t.id, t.title, t.description, t.priority, t.status, t.scope, t.attempts, t.max_attempts,
       t.last_error, t.created_by, t.created_at, t.updated_at, {deps} AS deps,
       CASE WHEN {READY} THEN 0 ELSE 1 END AS blocked,
       l.id AS lease_id, l.agent, l.worktree
FROM tasks t LEFT JOIN leases l ON l.task_id = t.id AND l.status = 'active'
"""


def task_from_row(r: Row) -> Task:
    return Task(id=r[0], title=r[1], description=r[2], priority=r[3], status=r[4], scope=json_items(r[5]),
                attempts=r[6], max_attempts=r[7], last_error=r[8], created_by=r[9], created_at=r[10],
                updated_at=r[11], depends_on=_sorted(json_items(r[12])), blocked=bool(r[13]),
                lease_id=r[14], agent=r[15], worktree=r[16])


@cache
def lease_select(dialect: Dialect) -> str:
    """Every lease column, its task's title and scope, its active claims."""
    claims = dialect.json_array("c.path", "claims c WHERE c.lease_id = l.id AND c.active = 1", order_by="c.path")
    return f"""
SELECT l.id, l.task_id, t.title, l.agent, l.worktree, l.token, l.status, l.ttl, l.acquired_at,
       l.heartbeat_at, l.expires_at, l.ended_at, {claims} AS claims, t.scope
FROM leases l JOIN tasks t ON t.id = l.task_id
"""


def lease_from_row(r: Row) -> Lease:
    return Lease(id=r[0], task_id=r[1], task_title=r[2], agent=r[3], worktree=r[4], token=r[5], status=r[6],
                 ttl=r[7], acquired_at=r[8], heartbeat_at=r[9], expires_at=r[10], ended_at=r[11],
                 claims=json_items(r[12]), scope=json_items(r[13]))


APPROVAL_SELECT = """
SELECT id, kind, summary, detail, status, requested_by, worktree, lease_id, task_id, idem_key,
       created_at, decided_at, decided_by, reason
FROM approvals
"""


def approval_from_row(r: Row) -> Approval:
    return Approval(id=r[0], kind=r[1], summary=r[2], detail=stored_detail(r[3]), status=r[4],
                    requested_by=r[5], worktree=r[6], lease_id=r[7], task_id=r[8], key=r[9],
                    created_at=r[10], decided_at=r[11], decided_by=r[12], reason=r[13])


CONFLICT_SELECT = """
SELECT id, kind, path, worktree, other_worktree, lease_id, other_lease_id, task_id, status, message,
       detail, created_at, updated_at, closed_at, closed_by
FROM conflicts
"""


def conflict_from_row(r: Row) -> Conflict:
    return Conflict(id=r[0], kind=r[1], path=r[2], worktree=r[3], other_worktree=r[4], lease_id=r[5],
                    other_lease_id=r[6], task_id=r[7], status=r[8], message=r[9], detail=stored_detail(r[10]),
                    created_at=r[11], updated_at=r[12], closed_at=r[13], closed_by=r[14])


WORKTREE_SELECT = "SELECT name, path, branch, agent, last_seen, active, host FROM worktrees"


def worktree_from_row(r: Row) -> Worktree:
    return Worktree(name=r[0], path=r[1], branch=r[2], agent=r[3], last_seen=r[4], active=bool(r[5]),
                    host=r[6])
