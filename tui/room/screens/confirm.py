"""ConfirmDialog: "are you sure?" naming exactly what will happen.

Used where a decision or a cancellation does not come from a key pressed on
the row the person sees (the command palette), and before quitting while
approvals wait. Enter (or y) confirms, escape (or n) cancels; dismisses with
True or False. Every text shown is plain text: stored text is never markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from core.display import printable_line
from tui.room import theme


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS: ClassVar = [
        Binding("enter,y", "confirm", "Confirm", id="confirm-yes"),
        Binding("escape,n", "cancel", "Cancel", id="confirm-no"),
    ]

    def __init__(self, title: str, question: str, *, details: list[tuple[str, str]] | None = None,
                 confirm: str = "confirm", danger: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, classes="-danger" if danger else "")
        self.title_text = title
        self.question = question
        self.details = details or []
        self.confirm_label = confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = Text(printable_line(self.title_text))
            yield Static(Text(printable_line(self.question), style=theme.S_BOLD), id="confirm-question")
            if self.details:
                body = Text()
                for i, (label, value) in enumerate(self.details):
                    if i:
                        body.append("\n")
                    if label:
                        body.append(f"{label:<13}", theme.S_MUTED)
                    body.append(printable_line(value), theme.S_TEXT)
                yield Static(body, id="confirm-details")
            keys = Text()
            keys.append("enter", theme.S_KEY)
            keys.append(f" {self.confirm_label}   ", theme.S_TEXT)
            keys.append("escape", theme.S_KEY)
            keys.append(" cancel", theme.S_TEXT)
            yield Static(keys, id="confirm-keys")
        yield Footer()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
