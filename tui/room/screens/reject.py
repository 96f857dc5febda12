"""RejectDialog: ask the person why, before rejecting an approval.

Enter confirms (a reason is required: the agent is shown it), escape cancels
and changes nothing. Dismisses with the reason, or None.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from core.display import printable_line
from tui.format import ellipsize


class RejectDialog(ModalScreen[str | None]):
    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel", id="reject-cancel")]

    def __init__(self, approval_id: int, summary: str, requested_by: str) -> None:
        super().__init__(id="reject-dialog")
        self.approval_id = approval_id
        self.summary = summary
        self.requested_by = requested_by

    def compose(self) -> ComposeResult:
        with Vertical(id="reject-box") as box:
            box.border_title = f"Reject A{self.approval_id}"
            # stored text: shown as it is, never as markup, control characters made visible
            yield Static(Text(ellipsize(printable_line(self.summary), 200)), id="reject-summary")
            yield Label(Text(f"requested by {printable_line(self.requested_by)}"), id="reject-who")
            yield Label("Why? The agent is told this reason.", id="reject-prompt")
            yield Input(placeholder="reason (required)", id="reject-reason")
            yield Label("", id="reject-error")
            yield Static("[b]enter[/b] reject   [b]escape[/b] cancel", id="reject-keys")
        yield Footer()

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = getattr(self.app, "cursor_blink", True)
        self.set_focus(field)

    def on_key(self, event: events.Key) -> None:
        """Keys typed right behind ``r``, before the reason field had the focus: keep them."""
        try:
            field = self.query_one(Input)
        except NoMatches:
            return
        if self.focused is field:
            return
        if event.is_printable and event.character:
            event.stop()
            field.insert_text_at_cursor(event.character)
            self.set_focus(field)
        elif event.key == "enter":
            event.stop()
            self._submit_reason(field.value)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit_reason(event.value)

    def _submit_reason(self, value: str) -> None:
        reason = value.strip()
        if not reason:
            self.query_one("#reject-error", Label).update("A reason is required to reject.")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
