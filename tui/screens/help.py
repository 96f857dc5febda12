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

from tui import theme


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "close", "Close", id="help-close"),
        Binding("question_mark,q,enter", "close", "Close", show=False),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        """``rows``: (group, keys, what they do), in display order."""
        super().__init__(id="help")
        self.rows = rows

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
            if group != group_shown and group_shown is not None:
                table.add_row("", "", "")
            table.add_row(group if group != group_shown else "", keys, what)
            group_shown = group
        return table

    def _legend(self) -> Text:
        text = Text()
        text.append("\nColours   ", theme.S_MUTED)
        text.append(" ● PENDING ", theme.S_PENDING_BADGE)
        text.append(" an approval waits for you      ", theme.S_TEXT)
        text.append(" ⚠ ", theme.S_CONFLICT_BADGE)
        text.append(" an open conflict (also on its lease)\n          ", theme.S_TEXT)
        text.append("0m42s", theme.S_WARN)
        text.append(" a lease about to expire         ", theme.S_TEXT)
        text.append("✖ failed", theme.S_BAD)
        text.append(" a task that needs a retry\n", theme.S_TEXT)
        text.append(
            "\nOther processes' writes appear on their own; the audit pane follows the tail until you "
            "scroll up, then counts what arrived. Decisions made here are audited with you as the actor, "
            "and show as done only once the store has committed them.",
            theme.S_MUTED,
        )
        return text

    def action_close(self) -> None:
        self.dismiss(None)

