"""AgentsPane: every agent session, who needs the person first.

Waiting agents first (on a Tower approval, or at their own prompt), then
stalled ones (a live lease and no event for a while), working, idle, and the
latest ended ones; within a state, the longest in it first. Each row says how
long it has been in its state, what it waits for, and its last tool call with
its target. ``w`` on a row waiting for a Tower approval jumps to that approval
in the Approvals pane; enter opens the session.

Every name, tool, target and reason was sent by an agent: cells pass them
through ``printable_line`` (``tui.room.panes.base.cell``), never as markup.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text

from core.display import printable_line
from core.ids import format_id
from core.models import AgentSession
from store.sessions import sort_key as session_order
from tui.room import theme
from tui.format import duration, plural
from tui.room.panes.base import Col, TablePane, cell

ENDED_SHOWN = 20  # ended sessions kept in the pane (the newest); `tower agent list --all` has the rest

_LABEL = {
    "waiting": " ● WAITING ",
    "stalled": " ⚠ STALLED ",
    "working": "▶ working",
    "idle": "◦ idle",
    "ended": "· ended",
}


def sid(n: int | None) -> str:
    return f"S{n}" if n is not None else ""


def who(s: AgentSession) -> str:
    name = s.agent or f"{s.kind}:{s.session[:8]}"
    return f"{name}@{s.worktree}" if s.worktree else name


def waits_for(s: AgentSession) -> str:
    """What a waiting session waits for: a Tower approval (by id), or its own prompt."""
    if s.state != "waiting":
        return ""
    reason = s.waiting_reason or ""
    if s.waiting_for is not None:
        prefix = f"Tower approval {format_id('approval', s.waiting_for)}"
        if reason.startswith(prefix):
            reason = reason[len(prefix):].lstrip(": ")
        return f"{format_id('approval', s.waiting_for)} {reason}".rstrip()
    return f"its prompt: {reason or 'input'}"


def last_tool(s: AgentSession) -> str:
    if s.last_tool:
        return s.last_tool + (f": {s.last_target}" if s.last_target else "")
    return s.last_event


class AgentsPane(TablePane[AgentSession]):
    PANE_TITLE = "Agents"
    PANE_NUMBER = 6
    EMPTY_TEXT = "no agent sessions yet"
    TIME_DEPENDENT = True
    COLUMNS: ClassVar = [
        Col("id", "ID", 5),
        Col("state", "State", 11, 9),
        Col("for", "For", 7),
        Col("agent", "Agent", 28, 8),
        Col("kind", "Kind", 11, drop=2),
        # what it waits for first (a waiting row), then its last tool call: one column, so
        # that the wait is never the part a narrow pane drops
        Col("doing", "Waits for · last tool call", 0, 14),
    ]

    def key_of(self, record: AgentSession) -> str:
        return sid(record.id)

    def cells(self, s: AgentSession, now: float) -> tuple:
        needs = s.state in ("waiting", "stalled")
        quiet = s.state == "ended"
        time_style = theme.S_WARN if s.state == "waiting" else theme.S_BAD if s.state == "stalled" else theme.S_MUTED
        last = last_tool(s)
        if s.state == "stalled":
            last = f"no event for {duration(now - s.last_event_at)} · {last}"
        elif s.state == "ended" and s.waiting_reason:
            last = f"{s.waiting_reason} · {last}"
        doing = Text(no_wrap=True, overflow="ellipsis", end="")
        wait = waits_for(s)
        if wait:
            doing.append(printable_line(wait), theme.S_BOLD)
            doing.append(" · ", theme.S_DIM)
        doing.append(printable_line(last), theme.S_DIM if quiet or wait else theme.S_TEXT)
        return (
            cell(sid(s.id), theme.S_WARN if s.state == "waiting" else theme.S_BAD if needs else theme.S_ID),
            cell(_LABEL.get(s.state, s.state), theme.AGENT_STATE_STYLE.get(s.state, theme.S_TEXT)),
            cell(duration(now - s.state_since), time_style, justify="right"),
            cell(who(s), theme.S_DIM if quiet else theme.S_INFO),
            cell(s.kind, theme.S_DIM if quiet else theme.S_MUTED),
            doing,
        )

    def sort_key(self, s: AgentSession) -> Any:
        if s.state == "ended":
            return (9, -s.state_since, -s.id)  # the latest ended first
        return session_order(s)

    def search_text(self, s: AgentSession) -> str:
        return " ".join([sid(s.id), s.state, s.kind, s.session, who(s), waits_for(s), last_tool(s)])

    def trim(self) -> None:
        ended = sorted((r for r in self.records.values() if r.state == "ended"), key=lambda r: -r.state_since)
        for r in ended[ENDED_SHOWN:]:
            del self.records[sid(r.id)]

    def changed_under_cursor(self) -> str | None:
        """A session changes on every tool call, and the list re-sorts as states change:
        what a key acts on is the session and the approval it waits for, not its line."""
        if self._seen is None:
            return "nothing was selected yet"
        key, _row, record = self._seen
        now_key = self.cursor_key
        if key is None:
            return None if now_key is None else "the rows changed under the cursor"
        if now_key != key:
            return self.describe_change(key, record, self.records.get(key))
        now = self.records.get(now_key)
        if record is not None and now is not None and now.waiting_for != record.waiting_for:
            return self.describe_change(key, record, now)
        return None

    def describe_change(self, key: str, before: AgentSession | None, after: AgentSession | None) -> str:
        if after is None:
            return f"{key} is no longer listed"
        if before is not None and before.waiting_for != after.waiting_for:
            if after.waiting_for is None:
                return f"{key} no longer waits for {format_id('approval', before.waiting_for)}"
            return f"{key} now waits for {format_id('approval', after.waiting_for)}"
        return f"{key} changed"

    @property
    def waiting(self) -> list[AgentSession]:
        return [r for r in self.records.values() if r.state == "waiting"]

    @property
    def stalled(self) -> list[AgentSession]:
        return [r for r in self.records.values() if r.state == "stalled"]

    def subtitle(self) -> str:
        parts = []
        waiting, stalled = len(self.waiting), len(self.stalled)
        if waiting:
            parts.append(f"{waiting} waiting")
        if stalled:
            parts.append(f"{stalled} stalled")
        selected = self.selected
        if selected is not None and selected.waiting_for is not None:
            parts.append(f"w: {format_id('approval', selected.waiting_for)}")
        if self.records:
            parts.append("enter: details")
        return " · ".join(parts)

    def live_count(self) -> int:
        return sum(1 for r in self.records.values() if r.state != "ended")


def agents_summary(waiting: int, stalled: int) -> str:
    parts = []
    if waiting:
        parts.append(f"{plural(waiting, 'agent')} waiting")
    if stalled:
        parts.append(f"{plural(stalled, 'agent')} stalled")
    return ", ".join(parts)
