"""Tower's fixed words and time helpers, without pydantic.

The command line imports this on every call; ``core.models`` (pydantic) is
imported only where a model is built, so a hook call that never builds one
never pays for pydantic.
"""

from __future__ import annotations

from datetime import datetime, timezone

TASK_STATUSES = ("pending", "leased", "done", "failed", "cancelled")
LEASE_STATUSES = ("active", "completed", "failed", "expired", "released")
APPROVAL_KINDS = ("command", "write", "merge", "custom")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired", "cancelled")
CONFLICT_KINDS = ("claimed_by_other", "out_of_scope", "unleased_write", "concurrent_edit")
CONFLICT_STATUSES = ("open", "acked", "resolved")


def utc(ts: float | None) -> datetime | None:
    """Epoch seconds (how the store keeps time) to an aware UTC datetime."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def iso(ts: float | None) -> str | None:
    dt = utc(ts)
    return None if dt is None else dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
