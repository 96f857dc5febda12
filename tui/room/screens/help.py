"""HelpScreen: every key of the control room (``?``), and what the colours mean."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui.room import theme


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "close", "Close", id="help-close"),
        Binding("question_mark,q,enter", "close", "Close", show=False),
    ]

    def __init__(self, rows: list[tuple[str, str, str]], *, compact: bool = False) -> None:
        """``rows``: (group, keys, what they do), in display order. ``compact``: a small
        terminal, where everything must fit without scrolling."""
        super().__init__(id="help")
        self.rows = rows
        self.compact = compact

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Tower · keys"
            box.border_subtitle = "escape closes"
            yield Static(self._keys_table(), id="help-keys")
            yield Static(self._legend(), id="help-legend")
        yield Footer()

    def _keys_table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style=theme.S_MUTED, no_wrap=True)
        table.add_column(style=theme.S_KEY, no_wrap=True, min_width=14)
        table.add_column(style=theme.S_TEXT)
        group_shown = None
        for group, keys, what in self.rows:
            if group != group_shown and group_shown is not None and not self.compact:
                table.add_row("", "", "")
            table.add_row(group if group != group_shown else "", keys, what)
            group_shown = group
        return table

    def _legend(self) -> Text:
        text = Text()
        text.append("\n" if self.compact else "\nColours   ", theme.S_MUTED)
        text.append(" ● PENDING ", theme.S_PENDING_BADGE)
        text.append(" waits for you   ", theme.S_TEXT)
        text.append(" ⚠ ", theme.S_CONFLICT_BADGE)
        text.append(" open conflict   ", theme.S_TEXT)
        text.append("0m42s", theme.S_WARN)
        text.append(" lease expiring   ", theme.S_TEXT)
        text.append("✖ failed", theme.S_BAD)
        text.append(" needs a retry\n", theme.S_TEXT)
        if not self.compact:
            text.append(
                "\nOther processes' writes appear on their own; the audit pane follows the tail until you "
                "scroll up, then counts what arrived. A key acts only on the row you saw: if it changed "
                "under the cursor, the key does nothing until you move. Decisions made here are audited "
                "with you as the actor, and show as done only once the store has committed them.",
                theme.S_MUTED,
            )
        return text

    def action_close(self) -> None:
        self.dismiss(None)

