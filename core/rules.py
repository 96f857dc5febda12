"""Task and lease state rules, independent of how they are stored.

The store applies these inside its transactions; keeping them here makes the
rules readable in one place and testable without a database.
"""

from __future__ import annotations

DEFAULT_TTL = 300.0
MIN_TTL = 1.0
MAX_TTL = 7 * 24 * 3600.0
DEFAULT_MAX_ATTEMPTS = 3

# status -> statuses it may move to
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"leased", "cancelled"}),
    "leased": frozenset({"done", "pending", "failed", "cancelled"}),
    "failed": frozenset({"pending"}),  # retry
    "cancelled": frozenset({"pending"}),  # retry
    "done": frozenset(),
}

TERMINAL_TASK = frozenset({"done", "failed", "cancelled"})


def can_transition(current: str, target: str) -> bool:
    return target in TASK_TRANSITIONS.get(current, frozenset())


def after_lost_attempt(attempts: int, max_attempts: int) -> str:
    """Where a task goes when its lease fails or expires: back to the queue, or failed for good."""
    return "failed" if attempts >= max_attempts else "pending"


def check_ttl(ttl: float) -> float:
    from core.errors import BadInput

    if not (MIN_TTL <= ttl <= MAX_TTL):
        raise BadInput(f"ttl must be between {MIN_TTL:g} and {MAX_TTL:g} seconds, got {ttl:g}")
    return float(ttl)


def eligible_order_key(priority: int, task_id: int) -> tuple[int, int]:
    """Higher priority first, then the oldest (lowest id). Mirrors the store's ORDER BY."""
    return (-priority, task_id)


def pick_next(candidates: list[tuple[int, int, set[int]]], done: set[int]) -> int | None:
    """Choose from ``(task_id, priority, depends_on)`` pending tasks; ``done`` holds finished ids."""
    ready = [(eligible_order_key(p, t), t) for t, p, deps in candidates if deps <= done]
    return min(ready)[1] if ready else None
