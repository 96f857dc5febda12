"""TowerCommands: Tower's actions in the command palette (ctrl+p).

Built from what the panes already hold (no database read while typing). The
palette opens on the harmless commands (going to the next request waiting,
to a pane); deciding, cancelling and acknowledging are listed after them, and
the ones that decide or cancel ask for a confirmation naming the request
before anything is written (``TowerApp.confirm_approve`` …).

Titles and summaries come from agents: every prompt and help text is a plain
``Content`` (never parsed as markup, control characters made visible).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from core.display import printable_line
from tui.format import aid, cid, ellipsize, tid

if TYPE_CHECKING:
    from tui.room.app import TowerApp


def plain(text: str) -> Content:
    return Content(printable_line(text))


class TowerCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: TowerApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], object], str]] = []
        waiting = app.approvals_pane.pending_count
        if waiting:
            commands.append((f"Go to the next request waiting ({waiting} waiting)", app.action_next_request, "key n"))
        for number, name in enumerate(("queue", "leases", "approvals", "conflicts", "audit"), 1):
            commands.append((f"Go to {name.title()} pane", partial(app.action_focus_pane, name), f"key {number}"))
        for a in sorted(app.approvals_pane.records.values(), key=lambda r: r.id):
            if a.status == "pending":
                summary = ellipsize(a.summary, 60)
                commands.append((f"Approve {aid(a.id)}: {summary}", partial(app.confirm_approve, a.id),
                                 f"requested by {a.requested_by}; asks you to confirm"))
                commands.append((f"Reject {aid(a.id)}: {summary}", partial(app.ask_reject, a.id),
                                 "asks for a reason"))
        for c in sorted(app.conflicts_pane.records.values(), key=lambda r: r.id):
            commands.append((f"Acknowledge conflict {cid(c.id)}: {c.kind} {c.path}",
                             partial(app.ack_conflict, c.id), f"in {c.worktree}"))
        for t in sorted(app.queue_pane.records.values(), key=lambda r: r.id):
            title = ellipsize(t.title, 60)
            if t.status in ("failed", "cancelled"):
                commands.append((f"Retry task {tid(t.id)}: {title}", partial(app.retry_task, t.id),
                                 f"{t.status}; back to pending with a fresh attempt budget"))
            if t.status in ("pending", "leased"):
                commands.append((f"Cancel task {tid(t.id)}: {title}", partial(app.confirm_cancel_task, t.id),
                                 "releases its lease if it has one; asks you to confirm"))
        commands += [
            ("Reap expired leases now", app.reap_now, "expire leases past their expiry; their tasks go back"),
            ("Verify the audit log", app.verify_audit, "re-derive the hash chain and check every signature"),
            ("Show the audit head", app.show_head, "seq:hash to keep elsewhere (tower audit verify --head)"),
            ("Follow the audit tail", app.action_toggle_follow, "toggle following new events"),
        ]
        return commands

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(plain(text), command, text=printable_line(text),
                               help=plain(help_text))  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            safe = printable_line(text)
            score = matcher.match(safe)
            if score > 0:
                yield Hit(score, self._highlight(matcher, safe), command, text=safe,
                          help=plain(help_text))  # type: ignore[arg-type]

    @staticmethod
    def _highlight(matcher, text: str) -> Content:
        """``Matcher.highlight`` parses its text as markup: highlight a plain Content instead."""
        content = Content(text)
        try:
            score, offsets = matcher.fuzzy_search.match(matcher.query, text)
        except Exception:  # noqa: BLE001 - no highlight is better than no command
            return content
        if score:
            for offset in offsets:
                if not text[offset].isspace():
                    content = content.stylize(matcher.match_style, offset, offset + 1)
        return content
