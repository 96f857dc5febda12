"""Following the audit log as it grows (``tower audit tail -f``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from core.models import AuditEvent

if TYPE_CHECKING:
    from store import Store

# events read per query while following: a backlog is printed page by page, at once
FOLLOW_PAGE = 1000


async def follow_log(store: Store, count: int, show: Callable[[AuditEvent], object], ready: Callable[[int], object],
                     *, page: int = FOLLOW_PAGE, interval: float = 0.1) -> None:
    """Print the last ``count`` events, call ``ready(seq)``, then print every later event as it is
    committed (until cancelled). From ``ready(seq)`` on, every event after ``seq`` is shown."""
    # The change signal first, then the head: a commit after either wakes the loop below,
    # and every event up to the head comes from the tail. (Reading the tail before the head
    # lost what was committed between the two.)
    signal = await store.change_signal()
    last = (await store.audit_head())[0]
    for e in await store.audit_tail(count, upto=last):
        show(e)
    ready(last)
    while True:
        while True:  # a backlog is printed now, page by page, not one page per commit
            events = await store.audit_after(last, limit=page)
            for e in events:
                show(e)
                last = max(last, e.seq)
            if len(events) < page:
                break
        signal = await store.wait_for_change(signal, interval=interval)
