"""TowerCommands: Tower's actions in the command palette (ctrl+p).

Built from what the panes already hold (no database read while typing):
approve / reject each pending approval, retry failed tasks, cancel open ones,
acknowledge conflicts, reap, verify the audit chain, jump to a pane.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.format import aid, cid, ellipsize, tid

if TYPE_CHECKING:
    from tui.app import TowerApp


class TowerCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: TowerApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], object], str]] = []
        for a in sorted(app.approvals_pane.records.values(), key=lambda r: r.id):
            if a.status == "pending":
                summary = ellipsize(a.summary, 60)
                commands.append((f"Approve {aid(a.id)}: {summary}", partial(app.approve_approval, a.id),
                                 f"requested by {a.requested_by}"))
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
                commands.append((f"Cancel task {tid(t.id)}: {title}", partial(app.cancel_task, t.id),
                                 "releases its lease if it has one"))
        commands += [
            ("Reap expired leases now", app.reap_now, "expire leases past their expiry; their tasks go back"),
            ("Verify the audit log", app.verify_audit, "re-derive the hash chain and check every signature"),
            ("Show the audit head", app.show_head, "seq:hash to keep elsewhere (tower audit verify --head)"),
            ("Follow the audit tail", app.action_toggle_follow, "toggle following new events"),
        ]
        for number, name in enumerate(("queue", "leases", "approvals", "conflicts", "audit"), 1):
            commands.append((f"Go to {name.title()} pane", partial(app.action_focus_pane, name), f"key {number}"))
        return commands

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
