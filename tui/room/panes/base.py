"""A titled pane around one keyed DataTable, updated by diffing rows by key.

Like Dolphie's process list: the pane keeps its records by key; every change
(new rows from the store, a filter, the clock ticking) recomputes the rows it
should show and, inside ``app.batch_update()``, removes the keys that went,
adds the new ones, ``update_cell``s only the cells that changed, sorts once
if the order moved, and puts the cursor back on the same key. The table is
never cleared for new data, so the cursor never jumps.

Columns fit the space: each one is as wide as its content (within bounds),
the flexible one takes what is left, and when that gets too narrow the
least useful columns go (and come back when the pane grows).

The pane also remembers the row the person last *saw* selected (their own
cursor move, a jump to the pane): when the row under the cursor changes
without them (decided elsewhere, gone, moved), :meth:`TablePane.changed_under_cursor`
says how, and the app's action keys refuse to act until the person moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.cells import cell_len
from rich.console import JustifyMethod
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from core.display import printable_line
from tui.room import theme

R = TypeVar("R")


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    width: int = 0  # the most it takes (0: flexible, it takes whatever the others leave)
    min_width: int = 0  # the least it gets before it is dropped or cut (0: its label's width)
    drop: int = 0  # 0: always shown; when space runs out the highest number goes first
    hide_empty: bool = False  # not shown while none of the rows has anything in it

    @property
    def flexible(self) -> bool:
        return not self.width

    @property
    def least(self) -> int:
        return self.min_width or min(len(self.label), self.width or len(self.label))


def focus_now(widget: Widget) -> None:
    """Focus at once. ``Widget.focus()`` waits for the next refresh, so keys typed
    right behind ``/`` (or ``3``) would still go to the old widget."""
    try:
        widget.screen.set_focus(widget)
    except Exception:  # noqa: BLE001 - not on a screen (yet): the deferred way
        widget.focus()


def path_cell(path: str, width: int, style: Any = "") -> Text:
    """A path keeps its end (the file name) when it does not fit."""
    path = printable_line(path)
    if len(path) > width > 1:
        path = "…" + path[-(width - 1):]
    return Text(path, style=style, no_wrap=True, overflow="ellipsis", end="")


def cell(text: object, style: Any = "", *, justify: JustifyMethod = "left") -> Text:
    """One table cell. Stored text comes from agents: shown with its control characters
    made visible (never sent to the terminal) and as plain text (never as markup)."""
    return Text(printable_line(text), style=style, no_wrap=True, overflow="ellipsis", justify=justify, end="")


def same_cell(a: object, b: object) -> bool:
    """Rich's ``Text ==`` ignores the text's own style: a cell that only changed colour
    (a request decided, the theme switched) would never be redrawn."""
    if a is b:
        return True
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return a == b


def same_cells(a: tuple, b: tuple) -> bool:
    if a is b:
        return True
    return len(a) == len(b) and all(same_cell(x, y) for x, y in zip(a, b))


def fit_columns(columns: list[Col], naturals: dict[str, int], width: int, pad: int) -> dict[str, int]:
    """Which columns to show in ``width`` cells, and how wide: every fixed column at its
    natural width (bounded by its ``width``), the flexible ones sharing the rest; columns
    are dropped (highest ``drop`` first), then cut down to their least, until the
    flexible ones get at least their ``min_width``."""
    shown = list(columns)

    def layout(cols: list[Col], squeeze: bool) -> dict[str, int] | None:
        fixed = {c.key: max(min(naturals.get(c.key, c.least), c.width), c.least) for c in cols if not c.flexible}
        flex = [c for c in cols if c.flexible]
        used = sum(w + pad for w in fixed.values()) + pad * len(flex)
        left = width - used
        need = sum(c.least for c in flex)
        if left < need and squeeze:
            # cut fixed columns down towards their least, the widest first
            for c in sorted((c for c in cols if not c.flexible), key=lambda c: -fixed[c.key]):
                give = min(fixed[c.key] - c.least, need - left)
                if give > 0:
                    fixed[c.key] -= give
                    left += give
        if left < need and not squeeze:
            return None
        out = dict(fixed)
        if flex:
            share, extra = divmod(max(left, 0), len(flex))
            for i, c in enumerate(flex):
                out[c.key] = max(share + (1 if i < extra else 0), 1)
        return out

    while True:
        result = layout(shown, squeeze=False)
        if result is not None:
            return result
        droppable = [c for c in shown if c.drop]
        if not droppable:
            return layout(shown, squeeze=True) or {}
        shown.remove(max(droppable, key=lambda c: c.drop))


class PaneTable(DataTable):
    """A pane's table: row cursor, vim keys, no focus-stealing on refresh. Every cursor
    move the person makes is remembered as what they saw."""

    BINDINGS: ClassVar = [
        # priority: moved in order with the app's own keys (see TowerApp.BINDINGS)
        Binding("down,j", "cursor_down", "Down", show=False, priority=True),
        Binding("up,k", "cursor_up", "Up", show=False, priority=True),
        Binding("g,home", "scroll_top", "Top", show=False),
        Binding("G,end", "scroll_bottom", "Bottom", show=False),
        Binding("enter", "select_cursor", "Details", id="details"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, show_cursor=True, **kwargs)

    def _seen(self) -> None:
        pane = self.parent
        if isinstance(pane, TablePane):
            pane.mark_seen()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._seen()

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self._seen()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._seen()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._seen()

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self._seen()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._seen()

    def on_click(self, event: events.Click) -> None:
        # runs before DataTable's own click handler moves the cursor: look after it
        self.call_later(self._seen)

    def action_clear_filter(self) -> None:
        pane = self.parent
        if isinstance(pane, TablePane) and pane.filter_text:
            pane.clear_filter()


class FilterInput(Input):
    """The ``/`` filter line at the bottom of a pane: typing filters live,
    enter keeps the filter and goes back to the rows, escape clears it."""

    BINDINGS: ClassVar = [
        Binding("enter", "submit", "Keep filter", id="filter-keep"),
        Binding("escape", "clear", "Clear filter", id="filter-clear"),
    ]

    class Cleared(Message):
        pass

    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "cursor_blink", True)

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())


def escape_markup(text: str) -> str:
    """Border titles are markup: text the person typed (a filter) is shown as typed."""
    return text.replace("\\", "\\\\").replace("[", "\\[")


class TablePane(Vertical, Generic[R]):
    """Subclasses say how a record is keyed, drawn, sorted, searched and kept."""

    PANE_TITLE: ClassVar[str] = ""
    PANE_NUMBER: ClassVar[int] = 0
    COLUMNS: ClassVar[list[Col]] = []
    EMPTY_TEXT: ClassVar[str] = "nothing here"
    #: cells change with the clock: redrawn every second, never cached
    TIME_DEPENDENT: ClassVar[bool] = False

    filter_text: reactive[str] = reactive("", init=False)

    class Selected(Message):
        """Enter on a row: open its details."""

        def __init__(self, pane: TablePane, key: str) -> None:
            super().__init__()
            self.pane = pane
            self.key = key

    def __init__(self, *, id: str | None = None, clock: Callable[[], float]) -> None:
        super().__init__(id=id, classes="pane")
        self.clock = clock
        self.records: dict[str, R] = {}
        self._shown: dict[str, tuple] = {}  # key -> the visible columns' cells, as the table holds them
        self._cells: dict[str, tuple[R, int, tuple, tuple]] = {}  # key -> (record, epoch, cells, widths)
        self._epoch = 0  # bumped when something other than the record changes how rows look
        self._theme_generation = theme.GENERATION
        self._widths: dict[str, int] = {}  # the shown columns and their widths
        self._seen: tuple[str | None, int, R | None] | None = None
        self._rebuilt_cursor: str | None = None
        self.loaded = False

    # -- subclass hooks ----------------------------------------------------------

    def key_of(self, record: R) -> str:
        raise NotImplementedError

    def cells(self, record: R, now: float) -> tuple:
        raise NotImplementedError

    def sort_key(self, record: R) -> Any:
        return self.key_of(record)

    def keep(self, record: R) -> bool:
        """Whether a changed record still belongs in this pane."""
        return True

    def search_text(self, record: R) -> str:
        raise NotImplementedError

    def trim(self) -> None:
        """Drop records beyond what the pane shows (after an update)."""

    def subtitle(self) -> str:
        return ""

    def follows(self, before: R, after: R) -> bool:
        """Whether the cursor moves with a changed record to its new place (else it stays
        where it was, on the row that took the place)."""
        return True

    def describe_change(self, key: str, before: R | None, after: R | None) -> str:
        """What happened to the row the person had selected, in a few words."""
        if after is None:
            return f"{key} is no longer listed"
        return f"{key} changed"

    # -- composition -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield PaneTable(id=f"{self.id}-table")
        yield FilterInput(placeholder="filter… (enter keeps it, escape clears)", id=f"{self.id}-filter",
                          classes="filter")

    def on_mount(self) -> None:
        self.border_title = f"[{self.PANE_NUMBER}] {self.PANE_TITLE}"
        self._set_columns({c.key: c.least for c in self.COLUMNS})
        self.filter_input.display = False
        self._update_subtitle()

    @property
    def table(self) -> PaneTable:
        return self.query_one(PaneTable)

    @property
    def filter_input(self) -> FilterInput:
        return self.query_one(FilterInput)

    def on_resize(self) -> None:
        self.sync()

    # -- columns ---------------------------------------------------------------

    def _set_columns(self, widths: dict[str, int]) -> None:
        """Show exactly these columns (a different set rebuilds the table's columns)."""
        table = self.table
        if list(widths) != list(self._widths):
            cursor_key = self.cursor_key
            table.clear(columns=True)
            for col in self.COLUMNS:
                if col.key in widths:
                    table.add_column(col.label, key=col.key, width=widths[col.key])
            self._shown = {}
            self._widths = dict(widths)
            self._rebuilt_cursor = cursor_key
            return
        changed = False
        for key, width in widths.items():
            column = table.columns.get(key)  # type: ignore[call-overload]
            if column is not None and column.width != width:
                column.width = width
                changed = True
        if changed:
            self._widths = dict(widths)
            first = next(iter(table.ordered_rows), None)
            if first is None:
                self._widths = {}  # no rows to measure with: rebuild the columns (cheap, empty)
                self._set_columns(widths)
                return
            # DataTable has no "set a column's width": a cell update that asks it to measure
            # again re-reads the widths (and drops its cached lines)
            key = next(iter(widths))
            table.update_cell(first.key, key, table.get_cell(first.key, key), update_width=True)
            table.refresh(layout=True)

    def _fit(self, rows: dict[str, tuple]) -> dict[str, int]:
        table = self.table
        width = self.content_region.width or self.size.width
        if not width:
            return self._widths or {c.key: c.least for c in self.COLUMNS}
        naturals: dict[str, int] = {}
        columns = []
        widths = [self._widths_of(key, cells) for key, cells in rows.items()]
        for i, col in enumerate(self.COLUMNS):
            if col.flexible:
                columns.append(col)
                continue
            widest = max((w[i] for w in widths), default=0)
            if col.hide_empty and not widest:
                continue
            columns.append(col)
            naturals[col.key] = max(widest, len(col.label))
        # 1 cell for the scrollbar gutter, so the table never scrolls sideways
        return fit_columns(columns, naturals, width - 1, 2 * table.cell_padding)

    def col_width(self, key: str) -> int:
        """The current width of a column (the flexible one changes with the pane)."""
        return self._widths.get(key, 20)

    # -- records ---------------------------------------------------------------

    def apply(self, rows: Iterable[R], *, full: bool = False) -> None:
        """Merge changed rows (or replace them all) and redraw what differs."""
        if full:
            self.records = {}
        before = self.selected
        for record in rows:
            key = self.key_of(record)
            if self.keep(record):
                self.records[key] = record
            else:
                self.records.pop(key, None)
        self.trim()
        if len(self._cells) > 2 * len(self.records) + 64:
            self._cells = {k: v for k, v in self._cells.items() if k in self.records}
        self.loaded = True
        after = self.records.get(self.key_of(before)) if before is not None else None
        stay = before is not None and after is not None and not self.follows(before, after)
        self.sync(stay_in_place=stay)

    def sync(self, *, stay_in_place: bool = False) -> None:
        """Make the table show exactly the records that pass the filter, in order."""
        if not self.is_mounted:
            return
        if self._theme_generation != theme.GENERATION:
            self._theme_generation = theme.GENERATION
            self._epoch += 1
        table = self.table
        now = self.clock()
        needle = self.filter_text.casefold().strip()
        visible = [
            (k, r) for k, r in self.records.items() if not needle or needle in self.search_text(r).casefold()
        ]
        visible.sort(key=lambda kr: self.sort_key(kr[1]))
        desired = {k: self._cells_for(k, r, now) for k, r in visible}

        cursor_key = self.cursor_key
        cursor_row = table.cursor_row
        with self.app.batch_update():
            self._rebuilt_cursor = None
            widths = self._fit(desired)
            flex_before = [self._widths.get(c.key) for c in self.COLUMNS if c.flexible]
            self._set_columns(widths)
            if [self._widths.get(c.key) for c in self.COLUMNS if c.flexible] != flex_before:
                self._epoch += 1  # cells that fit their text to a column width
                desired = {k: self._cells_for(k, r, now) for k, r in visible}
            if self._rebuilt_cursor is not None:
                cursor_key = self._rebuilt_cursor
            index = [i for i, c in enumerate(self.COLUMNS) if c.key in self._widths]
            project = (lambda cells: tuple(cells[i] for i in index)) if len(index) != len(self.COLUMNS) else tuple
            for key in [k for k in self._shown if k not in desired]:
                table.remove_row(key)
                del self._shown[key]
            shown_cols = [c for c in self.COLUMNS if c.key in self._widths]
            for key, all_cells in desired.items():
                cells = project(all_cells)
                old = self._shown.get(key)
                if old is None:
                    table.add_row(*cells, key=key)
                    self._shown[key] = cells
                elif not same_cells(old, cells):
                    merged = []
                    for col, before, after in zip(shown_cols, old, cells):
                        if not same_cell(before, after):
                            table.update_cell(key, col.key, after)
                            merged.append(after)
                        else:
                            merged.append(before)
                    # mirror exactly the objects the table holds (the sort below relies on it)
                    self._shown[key] = tuple(merged)
            order = [k for k, _ in visible]
            if order != [row.key.value for row in table.ordered_rows]:
                # DataTable.sort hands the key function cell values only: rank rows
                # by the identity of their first cell, which is unique per row
                rank = {id(self._shown[k][0]): i for i, k in enumerate(order)}
                table.sort(key=lambda row_cells: rank[id(row_cells[0])])
            if table.row_count:
                if cursor_key is not None and cursor_key in desired and not stay_in_place:
                    target = table.get_row_index(cursor_key)
                else:
                    target = min(max(cursor_row, 0), table.row_count - 1)
                if target != table.cursor_row:
                    table.move_cursor(row=target, animate=False)
        self._update_subtitle()

    def _cells_for(self, key: str, record: R, now: float) -> tuple:
        """The row's cells; computed once per record unless the pane depends on the clock."""
        if self.TIME_DEPENDENT:
            return self.cells(record, now)
        cached = self._cells.get(key)
        if cached is not None and cached[0] is record and cached[1] == self._epoch:
            return cached[2]
        cells = self.cells(record, now)
        self._cells[key] = (record, self._epoch, cells, tuple(cell_len(c.plain) for c in cells))
        return cells

    def _widths_of(self, key: str, cells: tuple) -> tuple:
        """Each cell's width (kept with the cached cells: the columns are refitted on every sync)."""
        cached = self._cells.get(key)
        if cached is not None and cached[2] is cells:
            return cached[3]
        return tuple(cell_len(c.plain) for c in cells)

    def restyle(self) -> None:
        """Something a row's look depends on (besides the record) changed: redraw."""
        self._epoch += 1
        self.sync()

    def tick(self) -> None:
        """The clock moved: redraw time-dependent cells (only those that changed)."""
        if self.records:
            self.sync()

    @property
    def cursor_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):
            return None

    @property
    def selected(self) -> R | None:
        key = self.cursor_key
        return self.records.get(key) if key is not None else None

    def select_key(self, key: str) -> bool:
        try:
            index = self.table.get_row_index(key)
        except RowDoesNotExist:
            return False
        self.table.move_cursor(row=index, animate=False)
        return True

    @property
    def shown_keys(self) -> list[str]:
        return [row.key.value for row in self.table.ordered_rows if row.key.value is not None]

    # -- what the person saw -----------------------------------------------------

    def mark_seen(self) -> None:
        """The person chose the row under the cursor (moved to it, jumped to it)."""
        self._seen = (self.cursor_key, self.table.cursor_row, self.selected)

    def changed_under_cursor(self) -> str | None:
        """How the selected row changed since the person last chose it (None: it did not)."""
        if self._seen is None:
            return "nothing was selected yet"
        key, row, record = self._seen
        now_key = self.cursor_key
        if key is None:
            return None if now_key is None else "the rows changed under the cursor"
        if now_key != key:
            return self.describe_change(key, record, self.records.get(key))
        if self.records.get(now_key) != record:
            return self.describe_change(key, record, self.records.get(now_key))
        if self.table.cursor_row != row:
            return f"the rows moved: {key} is now on another line"
        return None

    # -- filter ----------------------------------------------------------------

    def open_filter(self) -> None:
        field = self.filter_input
        field.display = True
        field.value = self.filter_text
        focus_now(field)

    def clear_filter(self) -> None:
        self.filter_input.value = ""
        self.filter_input.display = False
        self.filter_text = ""
        focus_now(self.table)

    def watch_filter_text(self) -> None:
        self.set_class(bool(self.filter_text), "-filtered")
        self.sync()

    @on(Input.Changed, ".filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value

    @on(Input.Submitted, ".filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.filter_text = event.value
        if not event.value.strip():
            self.clear_filter()
        else:
            self.filter_input.display = False
            focus_now(self.table)

    @on(FilterInput.Cleared)
    def _filter_cleared(self, event: FilterInput.Cleared) -> None:
        event.stop()
        self.clear_filter()

    # -- selection -------------------------------------------------------------

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Selected(self, event.row_key.value))

    def _update_subtitle(self) -> None:
        parts = []
        extra = self.subtitle()
        if extra:
            parts.append(extra)
        if self.filter_text:
            typed = escape_markup(printable_line(self.filter_text))
            parts.append(f"filter “{typed}”: {len(self._shown)} of {len(self.records)} · esc clears")
        elif self.loaded and not self.records:
            parts.append(self.EMPTY_TEXT)
        subtitle = " · ".join(parts)
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
