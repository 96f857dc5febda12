"""HeaderBar (counts and the audit head, one line) and AlertBar (what needs the
person now: pending approvals, open conflicts, a store error)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from core.models import Counts
from tui import theme
from tui.format import head_text, plural


class HeaderBar(Static):
    def __init__(self, db_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.db_name = db_name
        self.counts: Counts | None = None
        self.live = True
        self.watcher: tuple[str, int] | None = None  # (status, worktrees); None: not running

    def on_mount(self) -> None:
        self._shown = self._line()
        self.update(self._shown)

    def show(self, counts: Counts | None = None, *, live: bool | None = None,
             watcher: tuple[str, int] | None = None) -> None:
        if counts is not None:
            self.counts = counts
        if watcher is not None:
            self.watcher = watcher
        if live is not None:
            self.live = live
        line = self._line()
        if line != self._shown:
            self._shown = line
            self.update(line, layout=False)  # one line, always: no layout pass (many a second)

    def _line(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(" TOWER ", theme.S_BRAND)
        c = self.counts
        if c is None:
            text.append("  opening ", theme.S_MUTED)
            text.append(self.db_name, theme.S_DIM)
            return text
        sep = (" │ ", theme.S_DIM)
        text.append(" tasks ", theme.S_MUTED)
        text.append(f"{c.pending:,}", theme.S_BOLD)
        text.append(" pending · ", theme.S_MUTED)
        text.append(f"{c.leased:,}", theme.S_INFO)
        text.append(" leased · ", theme.S_MUTED)
        text.append(f"{c.failed:,}", theme.S_BAD if c.failed else theme.S_TEXT)
        text.append(" failed · ", theme.S_MUTED)
        text.append(f"{c.done:,}", theme.S_OK)
        text.append(" done", theme.S_MUTED)
        text.append(*sep)
        text.append(f"{c.active_leases:,}", theme.S_BOLD)
        text.append(" " + ("lease" if c.active_leases == 1 else "leases"), theme.S_MUTED)
        text.append(*sep)
        if c.pending_approvals:
            text.append(f" ● {plural(c.pending_approvals, 'approval')} waiting ", theme.S_PENDING_BADGE)
        else:
            text.append("no approvals waiting", theme.S_MUTED)
        text.append(*sep)
        if c.open_conflicts:
            text.append(f" ⚠ {plural(c.open_conflicts, 'conflict')} ", theme.S_CONFLICT_BADGE)
        else:
            text.append("no conflicts", theme.S_MUTED)
        text.append(*sep)
        text.append("audit ", theme.S_MUTED)
        text.append(head_text(c.audit_seq, c.audit_hash), theme.S_TEXT)
        text.append(*sep)
        if self.live:
            text.append("● live", theme.S_OK)
        else:
            text.append("✖ store unavailable", theme.S_BAD)
        if self.watcher is not None:
            status, worktrees = self.watcher
            text.append(" · ", theme.S_DIM)
            if status in ("watching", "polling"):
                text.append(f"{status} {plural(worktrees, 'worktree')}",
                            theme.S_OK if status == "watching" else theme.S_WARN)
            elif status == "rescan-only":
                text.append("watcher: rescans only", theme.S_BAD)
            elif status == "idle":
                text.append("no worktrees to watch", theme.S_MUTED)
            else:
                text.append(f"watcher {status}", theme.S_MUTED)
        return text


class AlertBar(Static):
    """Hidden when nothing needs the person."""

    def on_mount(self) -> None:
        self.display = False
        self._shown = Text()

    def show(self, counts: Counts | None, error: str | None) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        self.set_class(bool(error), "-error")
        self.set_class(bool(counts and counts.pending_approvals) and not error, "-approvals")
        self.set_class(bool(counts and counts.open_conflicts and not counts.pending_approvals) and not error,
                       "-conflicts")
        if error:
            text.append(f" ✖ {error}", "bold")
        elif counts is not None:
            if counts.pending_approvals:
                text.append(f" ● {plural(counts.pending_approvals, 'approval')} waiting for you", "bold")
                text.append(" — press 3, then a to approve or r to reject ")
            if counts.open_conflicts:
                if counts.pending_approvals:
                    text.append("   ")
                text.append(f" ⚠ {plural(counts.open_conflicts, 'open conflict')}",
                            theme.S_CONFLICT_BADGE if counts.pending_approvals else "bold")
                text.append(" — press 4, then x to acknowledge ")
        if text == self._shown:
            return
        self._shown = text
        visible = bool(text.plain.strip())
        # only showing or hiding the bar moves the panes: no layout pass otherwise
        self.update(text, layout=visible != self.display)
        self.display = visible
