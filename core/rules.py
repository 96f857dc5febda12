"""Task and lease state rules, independent of how they are stored.

The store applies these inside its transactions; keeping them here makes the
rules readable in one place and testable without a database.
"""

from __future__ import annotations

DEFAULT_TTL = 300.0
MIN_TTL = 1.0
MAX_TTL = 7 * 24 * 3600.0
DEFAULT_MAX_ATTEMPTS = 3

# status -> statuses it may move to. The store writes every task status through one
# statement guarded by this table (store/lifecycle.py, ``move_task``).
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"leased", "cancelled"}),
    "leased": frozenset({"done", "pending", "failed", "cancelled"}),
    "failed": frozenset({"pending"}),  # retry
    "cancelled": frozenset({"pending"}),  # retry
    "done": frozenset(),
}


def sources(target: str) -> tuple[str, ...]:
    """The statuses a task may move to ``target`` from (sorted)."""
    return tuple(sorted(s for s, targets in TASK_TRANSITIONS.items() if target in targets))


def after_lost_attempt(attempts: int, max_attempts: int) -> str:
    """Where a task goes when its lease fails or expires: back to the queue, or failed for good."""
    return "failed" if attempts >= max_attempts else "pending"


def check_ttl(ttl: float) -> float:
    from core.errors import BadInput

    if not (MIN_TTL <= ttl <= MAX_TTL):
        raise BadInput(f"ttl must be between {MIN_TTL:g} and {MAX_TTL:g} seconds, got {ttl:g}")
    return float(ttl)

