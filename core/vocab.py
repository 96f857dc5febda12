"""Tower's fixed words and the time format of its JSON: the store's CHECK constraints,
the command line's choices and the row types (core/models.py) use the same words."""

from __future__ import annotations

from datetime import datetime, timezone

TASK_STATUSES = ("pending", "leased", "done", "failed", "cancelled")
LEASE_STATUSES = ("active", "completed", "failed", "expired", "released")
APPROVAL_KINDS = ("command", "write", "merge", "custom")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired", "cancelled")
CONFLICT_KINDS = ("claimed_by_other", "out_of_scope", "unleased_write", "concurrent_edit")
CONFLICT_STATUSES = ("open", "acked", "resolved")


def iso(ts: float | None) -> str | None:
    """Epoch seconds (how the store keeps time) as ISO-8601 UTC with milliseconds: ``…Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
