"""AuditPane: the live tail of the audit log, fast with millions of events.

``AuditTail`` is a Line-API ``ScrollView`` in the manner of toolong's
``LogLines``: it holds no rows, only the number of lines (line ``i`` is seq
``i + 1``, seqs have no gaps) and an LRU of the events and rendered strips
near the viewport. Lines that are not cached are drawn as a placeholder and
fetched by seq in a worker; new events arrive from the store worker by seq and
go straight into the cache. It follows the tail until the person scrolls up;
then it counts the new events until ``f`` or reaching the bottom resumes.

A filter (``/``) maps lines onto the seqs the store found for the text (the
latest 10,000), and keeps matching new events as they arrive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from core.models import AuditEvent
from tui.room import theme
from core.display import printable_line
from tui.format import aid, iso_clock_time, lid, plural, tid
from tui.room.panes.base import FilterInput, escape_markup, focus_now

_FIRST_KEYS = ("title", "summary", "reason", "kind", "message", "paths")
_SKIP_KEYS = {"conflict"}
FETCH_MARGIN = 60  # lines fetched above and below the viewport
SEARCH_LIMIT = 10_000


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return ",".join(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def describe(e: AuditEvent) -> str:
    """One line of what happened, the words a person looks for first."""
    parts: list[str] = []
    if e.worktree:
        parts.append(f"@{e.worktree}")
    if e.path:
        parts.append(e.path)
    details = e.details or {}
    for key in _FIRST_KEYS:
        if key in details and details[key] not in (None, "", []):
            if key == "paths" and e.path and details[key] == [e.path]:
                continue
            value = _value(details[key])
            parts.append(value if key in ("title", "summary", "paths") else f"{key}: {value}")
    for key, value in details.items():
        if key in _FIRST_KEYS or key in _SKIP_KEYS or value in (None, "", [], {}):
            continue
        parts.append(f"{key}={_value(value)}")
    return "  ".join(parts)


def conflict_ref(e: AuditEvent) -> str:
    value = (e.details or {}).get("conflict")
    return value if isinstance(value, str) else ""


def event_line(e: AuditEvent) -> Text:
    """One audit line. Everything but the seq and the time was written by an agent at some
    point: shown with control characters made visible, and never as markup."""
    text = Text(no_wrap=True, end="")
    text.append(f"{e.seq:>8} ", theme.S_DIM)
    text.append(f"{iso_clock_time(e.ts)}  ", theme.S_MUTED)
    text.append(f"{printable_line(e.actor)[:18]:<18} ", theme.S_INFO)
    text.append(f"{printable_line(e.event):<20} ", theme.event_style(e.event))
    refs = " ".join(x for x in (tid(e.task_id), lid(e.lease_id), aid(e.approval_id), conflict_ref(e)) if x)
    text.append(f"{printable_line(refs):<13} ", theme.S_MUTED)
    text.append(printable_line(describe(e)), theme.S_TEXT)
    return text


def gap_line(seq: int, why: str) -> Text:
    """A line whose event the store does not give back: say so, once, instead of asking again."""
    text = Text(no_wrap=True, end="")
    text.append(f"{seq:>8} ", theme.S_DIM)
    text.append(f"seq {seq} {why} — run `tower audit verify`", theme.S_BAD)
    return text


def matches(e: AuditEvent, needle: str) -> bool:
    """The live counterpart of ``store.audit_search`` for events arriving while filtered."""
    n = needle.casefold().strip()
    if not n:
        return True
    hay = " ".join(
        [e.event, e.actor, e.worktree or "", e.path or "", json.dumps(e.details, ensure_ascii=False)]
    ).casefold()
    refs = {tid(e.task_id).casefold(), lid(e.lease_id).casefold(), aid(e.approval_id).casefold()}
    return n in hay or n in refs


class AuditSource(Protocol):
    """What the audit pane reads (the store's verbs of these names)."""

    async def audit_events(self, seqs: list[int] | set[int] | tuple[int, ...]) -> list[AuditEvent]: ...

    async def audit_search(self, text: str, *, limit: int = ...) -> list[int]: ...


class AuditTail(ScrollView, can_focus=True):
    """The virtual list of audit lines."""

    BINDINGS: ClassVar = [
        Binding("up,k", "cursor_up", "Up", show=False, priority=True),
        Binding("down,j", "cursor_down", "Down", show=False, priority=True),
        Binding("pageup", "page_up", "Page up", show=False, priority=True),
        Binding("pagedown", "page_down", "Page down", show=False, priority=True),
        Binding("home,g", "first", "Oldest", show=False, priority=True),
        Binding("end,G", "last", "Newest (follow)", show=False, priority=True),
        Binding("enter", "select", "Details", id="details"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    DEFAULT_CSS = """
    AuditTail { overflow-x: hidden; overflow-y: scroll; }
    """

    follow: reactive[bool] = reactive(True, init=False)
    new_events: reactive[int] = reactive(0, init=False)
    cursor: reactive[int | None] = reactive(None, init=False)

    class Fetched(Message):
        def __init__(self, events: list[AuditEvent], asked: list[int], unreadable: list[int] | None = None) -> None:
            super().__init__()
            self.events = events
            self.asked = asked
            self.unreadable = unreadable or []

    class Selected(Message):
        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    class StateChanged(Message):
        """Follow, the new-events count or the line count changed (for the pane's subtitle)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, AuditTail.StateChanged)

    def __init__(self, source: AuditSource, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.head = 0  # newest seq known
        self.seqs: list[int] | None = None  # filtered: line -> seq
        self.filter_text = ""
        self._events: LRUCache[int, AuditEvent] = LRUCache(4096)
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(1024)
        self._missing: set[int] = set()
        #: seqs the store could not give: absent from the log (a gap) or unreadable (damaged)
        self._gaps: dict[int, str] = {}
        self._fetch_scheduled = False
        self._fetch_paused_until = 0.0
        self._programmatic = 0

    # -- geometry --------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return len(self.seqs) if self.seqs is not None else self.head

    def seq_at(self, line: int) -> int | None:
        if line < 0 or line >= self.line_count:
            return None
        return self.seqs[line] if self.seqs is not None else line + 1

    def _resize_virtual(self) -> None:
        size = Size(self.scrollable_content_region.width, self.line_count)
        if size == self.virtual_size:
            return
        # The virtual_size reactive asks for a layout pass, which repaints the whole
        # screen; lines arrive many times a second and only this widget's scrollbar
        # changes (overflow-y is "scroll": the gutter never appears or goes).
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _scroll_to_line_y(self, y: float) -> None:
        self._programmatic += 1
        try:
            self.scroll_to(y=y, animate=False, immediate=True)
        finally:
            self._programmatic -= 1

    def scroll_to_tail(self) -> None:
        self._resize_virtual()
        self._scroll_to_line_y(self.max_scroll_y)
        self.refresh()

    def restyle(self) -> None:
        """The theme changed: draw every line again in its colours."""
        self._strips.clear()
        self.refresh()

    def on_resize(self) -> None:
        self._strips.clear()
        self._resize_virtual()
        if self.follow:
            self.call_after_refresh(self.scroll_to_tail)

    # -- data in -----------------------------------------------------------------

    def append(self, seq_from: int, seq_to: int, events: Iterable[AuditEvent], *, reset: bool = False) -> None:
        """Events ``seq_from..seq_to`` exist now; ``events`` (some or all of them) go to the cache."""
        before = self.line_count
        if reset:
            self._events.clear()
            self._strips.clear()
            self._gaps.clear()
        events = list(events)
        for e in events:
            self._events.set(e.seq, e)
        if self.seqs is not None:
            known = self.seqs[-1] if self.seqs else 0
            self.seqs.extend(e.seq for e in events if e.seq > known and matches(e, self.filter_text))
        self.head = max(self.head, seq_to) if not reset else seq_to
        added = self.line_count - before
        self._resize_virtual()
        if self.follow:
            self.scroll_to_tail()
        elif added > 0 and not reset:
            self.new_events += added
        self.refresh()
        self.post_message(self.StateChanged())

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        message.stop()
        for e in message.events:
            self._events.set(e.seq, e)
        got = {e.seq for e in message.events}
        unreadable = set(message.unreadable)
        for seq in message.asked:
            if seq in unreadable:
                self._gaps[seq] = "unreadable"
            elif seq not in got and seq <= self.head:
                self._gaps[seq] = "missing"
        self.refresh()

    def set_filter(self, text: str, seqs: list[int] | None) -> None:
        self.filter_text = text if seqs is not None else ""
        self.seqs = seqs
        self.cursor = None
        self.new_events = 0
        self._resize_virtual()
        self._programmatic += 1
        try:
            if self.follow:
                self.scroll_to_tail()
            else:
                self._scroll_to_line_y(min(self.scroll_y, self.max_scroll_y))
        finally:
            self._programmatic -= 1
        self.refresh()
        self.post_message(self.StateChanged())

    # -- follow ------------------------------------------------------------------

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self._programmatic:
            return
        at_bottom = new >= self.max_scroll_y
        if new < old and self.follow and not at_bottom:
            # the person scrolled up: stop moving under their eyes. (A resize or a shorter
            # list also moves scroll_y down, to the new bottom: that is not scrolling up.)
            self.follow = False
        elif new > old and not self.follow and at_bottom:
            self.follow = True

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.new_events = 0
            self.cursor = None
            self.scroll_to_tail()
        self.post_message(self.StateChanged())

    def watch_new_events(self) -> None:
        self.post_message(self.StateChanged())

    def watch_cursor(self) -> None:
        self.refresh()

    def toggle_follow(self) -> None:
        self.follow = not self.follow

    # -- keys --------------------------------------------------------------------

    def _visible_last_line(self) -> int:
        return min(int(self.scroll_y) + self.scrollable_content_region.height, self.line_count) - 1

    def _move_cursor(self, line: int) -> None:
        count = self.line_count
        if not count:
            return
        line = max(0, min(line, count - 1))
        self.cursor = line
        top = int(self.scroll_y)
        height = self.scrollable_content_region.height
        if line < top:
            self._scroll_to_line_y(line)
        elif line >= top + height:
            self._scroll_to_line_y(line - height + 1)
        self.refresh()

    def action_cursor_up(self) -> None:
        if self.cursor is None:
            self.follow = False
            self._move_cursor(self._visible_last_line())
        else:
            self._move_cursor(self.cursor - 1)

    def action_cursor_down(self) -> None:
        if self.cursor is None:
            self._move_cursor(int(self.scroll_y))
        elif self.cursor >= self.line_count - 1:
            self.follow = True
        else:
            self._move_cursor(self.cursor + 1)

    def action_page_up(self) -> None:
        self.follow = False
        height = self.scrollable_content_region.height
        start = self._visible_last_line() if self.cursor is None else self.cursor
        self._move_cursor(start - height)

    def action_page_down(self) -> None:
        if self.cursor is None:
            return
        self._move_cursor(self.cursor + self.scrollable_content_region.height)

    def action_first(self) -> None:
        self.follow = False
        self._move_cursor(0)

    def action_last(self) -> None:
        self.follow = True

    def action_clear_filter(self) -> None:
        pane = self.parent
        if self.seqs is not None and isinstance(pane, AuditPane):
            pane.clear_filter()

    def action_select(self) -> None:
        line = self.cursor if self.cursor is not None else self.line_count - 1
        seq = self.seq_at(line)
        if seq is not None:
            self.post_message(self.Selected(seq))

    # -- rendering ---------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        line = int(self.scroll_y) + y
        seq = self.seq_at(line)
        if seq is None:
            if line == 0 and not self.line_count:
                empty = "no events match the filter" if self.seqs is not None else "no audit events yet"
                return Strip(Text(f"  {empty}", style=theme.S_DIM).render(self.app.console)).crop_extend(
                    0, width, base).apply_style(base)
            return Strip.blank(width, base)
        strip = self._strips.get((seq, width))
        if strip is None:
            event = self._events.get(seq)
            if event is None:
                gap = self._gaps.get(seq)
                if gap is None:
                    self._want(seq)
                    text = Text(f"{seq:>8} …", style=theme.S_DIM)
                    return Strip(text.render(self.app.console)).crop_extend(0, width, base).apply_style(base)
                text = gap_line(seq, gap)
            else:
                text = event_line(event)
            text.truncate(width, overflow="ellipsis", pad=True)
            strip = Strip(text.render(self.app.console)).crop_extend(0, width, base)
            self._strips.set((seq, width), strip)
        if line == self.cursor:
            strip = strip.apply_style(theme.S_CURSOR if self.has_focus else theme.S_CURSOR_BLURRED)
        return strip.apply_style(base)

    def _want(self, seq: int) -> None:
        self._missing.add(seq)
        if not self._fetch_scheduled:
            self._fetch_scheduled = True
            self.call_after_refresh(self._request_fetch)

    def _request_fetch(self) -> None:
        self._fetch_scheduled = False
        if time.monotonic() < self._fetch_paused_until:
            self._missing.clear()
            self.set_timer(0.5, self.refresh)
            return
        top = int(self.scroll_y)
        height = self.scrollable_content_region.height
        first, last = max(top - FETCH_MARGIN, 0), min(top + height + FETCH_MARGIN, self.line_count)
        seqs = [s for s in (self.seq_at(i) for i in range(first, last))
                if s is not None and s not in self._events and s not in self._gaps]
        self._missing.clear()
        if seqs:
            self.fetch(seqs)

    @work(exclusive=True, exit_on_error=False, group="audit-fetch")
    async def fetch(self, seqs: list[int]) -> None:
        store = self.source
        try:
            events = await store.audit_events(seqs)
        except asyncio.CancelledError:
            raise
        except Exception:
            # one damaged row fails the whole read: find it, one seq at a time, and
            # show the rest (the store itself failing pauses the fetching for a while)
            events, unreadable = [], []
            try:
                for seq in seqs:
                    try:
                        events += await store.audit_events([seq])
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - damaged: shown as such, not retried
                        unreadable.append(seq)
            except asyncio.CancelledError:
                raise
            if len(unreadable) == len(seqs):
                # the store itself fails (the header says so): try again in a while
                self._fetch_paused_until = time.monotonic() + 1.0
                return
            self.post_message(self.Fetched(events, seqs, unreadable))
            return
        self.post_message(self.Fetched(events, seqs))


class AuditPane(Vertical):
    """The audit tail with its title, follow state and filter line."""

    class SearchDone(Message):
        def __init__(self, text: str, seqs: list[int]) -> None:
            super().__init__()
            self.text = text
            self.seqs = seqs

    def __init__(self, source: AuditSource, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.source = source

    def compose(self) -> ComposeResult:
        yield AuditTail(self.source, id="audit-tail")
        yield FilterInput(placeholder="filter events… (enter keeps it, escape clears)", id="audit-filter",
                          classes="filter")

    def on_mount(self) -> None:
        self.filter_input.display = False
        self._update_titles()

    @property
    def tail(self) -> AuditTail:
        return self.query_one(AuditTail)

    @property
    def filter_input(self) -> FilterInput:
        return self.query_one(FilterInput)

    @property
    def filter_text(self) -> str:
        return self.tail.filter_text

    def open_filter(self) -> None:
        field = self.filter_input
        field.display = True
        field.value = self.tail.filter_text
        focus_now(field)

    def clear_filter(self) -> None:
        self.filter_input.value = ""
        self.filter_input.display = False
        self.workers.cancel_group(self, "audit-search")
        self.tail.set_filter("", None)
        self.set_class(False, "-filtered")
        focus_now(self.tail)

    @on(Input.Changed, ".filter")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value.strip():
            self.search(event.value)
        else:
            self.workers.cancel_group(self, "audit-search")
            self.tail.set_filter("", None)
            self.set_class(False, "-filtered")

    @on(Input.Submitted, ".filter")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.clear_filter()
            return
        self.filter_input.display = False
        focus_now(self.tail)

    @on(FilterInput.Cleared)
    def _cleared(self, event: FilterInput.Cleared) -> None:
        event.stop()
        self.clear_filter()

    @work(exclusive=True, exit_on_error=False, group="audit-search")
    async def search(self, text: str) -> None:
        await asyncio.sleep(0.15)  # typing: search once the keys pause
        seqs = await self.source.audit_search(text.strip(), limit=SEARCH_LIMIT)
        self.post_message(self.SearchDone(text, seqs))

    @on(SearchDone)
    def _search_done(self, message: SearchDone) -> None:
        message.stop()
        self.tail.set_filter(message.text.strip(), message.seqs)
        self.set_class(True, "-filtered")

    @on(AuditTail.StateChanged)
    def _state_changed(self, message: AuditTail.StateChanged) -> None:
        message.stop()
        self._update_titles()

    def _update_titles(self) -> None:
        tail = self.tail
        title = f"[5] Audit · {plural(tail.head, 'event')}"
        if title != self.border_title:
            self.border_title = title
        parts = []
        if tail.follow:
            parts.append("● following")
        else:
            paused = "⏸ paused"
            if tail.new_events:
                paused += f" · {plural(tail.new_events, 'new event')}"
            parts.append(paused + " · f or End follows")
        if tail.seqs is not None:
            shown = len(tail.seqs)
            cap = " (latest)" if shown >= SEARCH_LIMIT else ""
            typed = escape_markup(printable_line(tail.filter_text))  # a border title is markup
            parts.append(f"filter “{typed}”: {plural(shown, 'match', 'matches')}{cap} · esc clears")
        subtitle = " · ".join(parts)
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
        self.set_class(not tail.follow, "-paused")
