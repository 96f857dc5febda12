"""A titled pane around one keyed DataTable, updated by diffing rows by key.

Like Dolphie's process list: the pane keeps its records by key; every change
(new rows from the store, a filter, the clock ticking) recomputes the rows it
should show and, inside ``app.batch_update()``, removes the keys that went,
adds the new ones, ``update_cell``s only the cells that changed, sorts once
if the order moved, and puts the cursor back on the same key. The table is
never cleared, so the cursor never jumps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widget import Widget
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

R = TypeVar("R")


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    width: int = 0  # 0: this column takes the width left over
    min_width: int = 8


def focus_now(widget: Widget) -> None:
    """Focus at once. ``Widget.focus()`` waits for the next refresh, so keys typed
    right behind ``/`` (or ``3``) would still go to the old widget."""
    try:
        widget.screen.set_focus(widget)
    except Exception:  # noqa: BLE001 - not on a screen (yet): the deferred way
        widget.focus()


def path_cell(path: str, width: int, style: Any = "") -> Text:
    """A path keeps its end (the file name) when it does not fit."""
    if len(path) > width > 1:
        path = "…" + path[-(width - 1):]
    return cell(path, style)


def cell(text: object, style: Any = "", *, justify: str = "left") -> Text:
    return Text(str(text), style=style, no_wrap=True, overflow="ellipsis", justify=justify, end="")


class PaneTable(DataTable):
    """A pane's table: row cursor, vim keys, no focus-stealing on refresh."""

    BINDINGS: ClassVar = [
        # priority: moved in order with the app's own keys (see TowerApp.BINDINGS)
        Binding("down,j", "cursor_down", "Down", show=False, priority=True),
        Binding("up,k", "cursor_up", "Up", show=False, priority=True),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
        Binding("enter", "select_cursor", "Details", id="details"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, show_cursor=True, **kwargs)

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
        self._shown: dict[str, tuple] = {}
        self._cells: dict[str, tuple[R, int, tuple]] = {}  # key -> (record, epoch, cells)
        self._epoch = 0  # bumped when something other than the record changes how rows look
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

    # -- composition -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield PaneTable(id=f"{self.id}-table")
        yield FilterInput(placeholder="filter… (enter keeps it, escape clears)", id=f"{self.id}-filter",
                          classes="filter")

    def on_mount(self) -> None:
        self.border_title = f"[{self.PANE_NUMBER}] {self.PANE_TITLE}"
        table = self.table
        for col in self.COLUMNS:
            table.add_column(col.label, key=col.key, width=col.width or col.min_width)
        self.filter_input.display = False
        self._update_subtitle()

    @property
    def table(self) -> PaneTable:
        return self.query_one(PaneTable)

    @property
    def filter_input(self) -> FilterInput:
        return self.query_one(FilterInput)

    def on_resize(self) -> None:
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Give the flexible column whatever width the fixed ones leave."""
        table = self.table
        width = self.content_region.width or self.size.width
        if not width:
            return
        pad = 2 * table.cell_padding
        fixed = sum(c.width + pad for c in self.COLUMNS if c.width)
        flex = [c for c in self.COLUMNS if not c.width]
        if not flex:
            return
        # 1 cell for the scrollbar gutter, so the table never scrolls sideways
        share = max((width - fixed - 1) // len(flex) - pad, 0)
        changed = False
        for col in flex:
            column = table.columns.get(col.key)  # type: ignore[call-overload]
            new = max(share, col.min_width)
            if column is not None and column.width != new:
                column.width = new
                changed = True
        if changed:
            self._epoch += 1  # cells that fit text to a column width
            # DataTable has no public "set column width": mark dimensions stale
            table._require_update_dimensions = True
            table._clear_caches()
            table.refresh(layout=True)
            self.sync()

    # -- records ---------------------------------------------------------------

    def apply(self, rows: Iterable[R], *, full: bool = False) -> None:
        """Merge changed rows (or replace them all) and redraw what differs."""
        if full:
            self.records = {}
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
        self.sync()

    def sync(self) -> None:
        """Make the table show exactly the records that pass the filter, in order."""
        if not self.is_mounted:
            return
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
            for key in [k for k in self._shown if k not in desired]:
                table.remove_row(key)
                del self._shown[key]
            for key, cells in desired.items():
                old = self._shown.get(key)
                if old is None:
                    table.add_row(*cells, key=key)
                    self._shown[key] = cells
                elif old != cells:
                    merged = []
                    for col, before, after in zip(self.COLUMNS, old, cells):
                        if before != after:
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
                if cursor_key is not None and cursor_key in desired:
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
        self._cells[key] = (record, self._epoch, cells)
        return cells

    def restyle(self) -> None:
        """Something a row's look depends on (besides the record) changed: redraw."""
        self._epoch += 1
        self.sync()

    def tick(self) -> None:
        """The clock moved: redraw time-dependent cells (only those that changed)."""
        if self.records:
            self.sync()

    def col_width(self, key: str) -> int:
        """The current width of a column (the flexible one changes with the pane)."""
        column = self.table.columns.get(key) if self.is_mounted else None  # type: ignore[call-overload]
        return column.width if column is not None else 20

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
        self.table.move_cursor(row=index)
        return True

    @property
    def shown_keys(self) -> list[str]:
        return [row.key.value for row in self.table.ordered_rows]

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
            parts.append(f"filter “{self.filter_text}”: {len(self._shown)} of {len(self.records)} · esc clears")
        elif self.loaded and not self.records:
            parts.append(self.EMPTY_TEXT)
        subtitle = " · ".join(parts)
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
