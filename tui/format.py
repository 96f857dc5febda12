"""Small text helpers shared by the panes: durations, times, ids, truncation."""

from __future__ import annotations

from datetime import datetime, timezone

from core.display import ellipsize  # noqa: F401 - the panes' truncation is the one of core.display


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``: short, and the same width for a while."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def clock_time(ts: float | None) -> str:
    """Local wall-clock time of an epoch timestamp, to the second."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def iso_clock_time(ts: str) -> str:
    """Local ``HH:MM:SS`` of an audit event's ISO-8601 UTC timestamp."""
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts[:8]
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone().strftime("%H:%M:%S")


def full_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def short_hash(entry_hash: str | None, n: int = 12) -> str:
    return (entry_hash or "")[:n]


def head_text(seq: int, entry_hash: str | None) -> str:
    """The audit head as the header shows it: ``seq:hash`` with the hash shortened."""
    if not seq:
        return "0:genesis"
    return f"{seq}:{short_hash(entry_hash)}"


def tid(n: int | None) -> str:
    return f"T{n}" if n is not None else ""


def lid(n: int | None) -> str:
    return f"L{n}" if n is not None else ""


def aid(n: int | None) -> str:
    return f"A{n}" if n is not None else ""


def cid(n: int | None) -> str:
    return f"C{n}" if n is not None else ""


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
