"""HeaderBar (counts and the audit head, one line), AlertBar (what needs the
person now: pending approvals, open conflicts, a store error) and TabStrip (the
panes as tabs, in the compact layout).

All three fit their line to the terminal's width: what needs the person (the
approvals and conflicts badges) always stays; the rest shortens, then goes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from core.display import printable_line
from core.models import Counts
from tui.room import theme
from tui.format import head_text, plural

Piece = Sequence[tuple[str, Style | str]]  # (text, style) parts of one piece of a line


def fit_pieces(variants: Sequence[Sequence[Piece | None]], order: list[int], width: int,
               sep: tuple[str, Style | str]) -> Text:
    """Join one variant of each piece with ``sep``: the first (longest) variants while they
    fit, then pieces shortened or dropped one step at a time: each entry of ``order`` (an
    index into ``variants``) moves that piece on to its next variant."""
    chosen = [0] * len(variants)

    def build() -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        first = True
        for i, options in enumerate(variants):
            piece = options[chosen[i]]
            if piece is None:
                continue
            if not first:
                text.append(sep[0], sep[1])
            first = False
            for part, style in piece:
                text.append(part, style)
        return text

    line = build()
    for i in order:
        if cell_len(line.plain) <= width:
            break
        chosen[i] = min(chosen[i] + 1, len(variants[i]) - 1)
        line = build()
    return line


class HeaderBar(Static):
    def __init__(self, db_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.db_name = db_name
        self.counts: Counts | None = None
        self.live = True
        self.watcher: tuple[str, int] | None = None  # (status, worktrees); None: not running
        self._shown = Text()

    def on_mount(self) -> None:
        self._shown = self._line()
        self.update(self._shown)

    def on_resize(self) -> None:
        self.show()

    def show(self, counts: Counts | None = None, *, live: bool | None = None,
             watcher: tuple[str, int] | None = None, force: bool = False) -> None:
        if counts is not None:
            self.counts = counts
        if watcher is not None:
            self.watcher = watcher
        if live is not None:
            self.live = live
        line = self._line()
        if force or line != self._shown:
            self._shown = line
            self.update(line, layout=False)  # one line, always: no layout pass (many a second)

    def _line(self) -> Text:
        width = self.size.width or 160
        brand = [[(" TOWER ", theme.S_BRAND)], [(" T ", theme.S_BRAND)]]
        c = self.counts
        if c is None:
            text = Text(no_wrap=True, overflow="ellipsis", end="")
            text.append(" TOWER ", theme.S_BRAND)
            text.append("  opening ", theme.S_MUTED)
            text.append(printable_line(self.db_name), theme.S_DIM)
            return text
        failed = theme.S_BAD if c.failed else theme.S_TEXT
        tasks: list[Piece | None] = [
            [(" tasks ", theme.S_MUTED), (f"{c.pending:,}", theme.S_BOLD), (" pending · ", theme.S_MUTED),
             (f"{c.leased:,}", theme.S_INFO), (" leased · ", theme.S_MUTED), (f"{c.failed:,}", failed),
             (" failed · ", theme.S_MUTED), (f"{c.done:,}", theme.S_OK), (" done", theme.S_MUTED)],
            [(f"{c.pending:,}", theme.S_BOLD), (" pending · ", theme.S_MUTED), (f"{c.leased:,}", theme.S_INFO),
             (" leased", theme.S_MUTED)] + ([(" · ", theme.S_MUTED), (f"{c.failed:,}", failed),
                                             (" failed", theme.S_MUTED)] if c.failed else []),
            None,
        ]
        leases: list[Piece | None] = [
            [(f"{c.active_leases:,}", theme.S_BOLD),
             (" " + ("lease" if c.active_leases == 1 else "leases"), theme.S_MUTED)],
            None,
        ]
        if c.pending_approvals:
            approvals: list[Piece | None] = [
                [(f" ● {plural(c.pending_approvals, 'approval')} waiting ", theme.S_PENDING_BADGE)],
                [(f" ● {plural(c.pending_approvals, 'approval')} ", theme.S_PENDING_BADGE)],
                [(f" ●{c.pending_approvals} ", theme.S_PENDING_BADGE)],
            ]
        else:
            approvals = [[("no approvals waiting", theme.S_MUTED)], [("no approvals", theme.S_MUTED)], None]
        if c.open_conflicts:
            conflicts: list[Piece | None] = [
                [(f" ⚠ {plural(c.open_conflicts, 'conflict')} ", theme.S_CONFLICT_BADGE)],
                [(f" ⚠{c.open_conflicts} ", theme.S_CONFLICT_BADGE)],
            ]
        else:
            conflicts = [[("no conflicts", theme.S_MUTED)], None]
        audit: list[Piece | None] = [
            [("audit ", theme.S_MUTED), (head_text(c.audit_seq, c.audit_hash), theme.S_TEXT)],
            [("audit ", theme.S_MUTED), (f"{c.audit_seq:,}", theme.S_TEXT)],
            None,
        ]
        live: list[tuple[str, Style | str]] = []
        if self.live:
            live.append(("● live", theme.S_OK))
        else:
            live.append(("✖ store unavailable", theme.S_BAD))
        short_live = list(live)
        if self.watcher is not None:
            status, worktrees = self.watcher
            live.append((" · ", theme.S_DIM))
            if status in ("watching", "polling"):
                live.append((f"{status} {plural(worktrees, 'worktree')}",
                             theme.S_OK if status == "watching" else theme.S_WARN))
            elif status == "rescan-only":
                live.append(("watcher: rescans only", theme.S_BAD))
                short_live += [(" · rescans only", theme.S_BAD)]
            elif status == "idle":
                live.append(("no worktrees to watch", theme.S_MUTED))
            else:
                live.append((f"watcher {status}", theme.S_MUTED))
        variants: list[Sequence[Piece | None]] = [brand, tasks, leases, approvals, conflicts, audit,
                                              [live, short_live]]
        # shortened first: the audit head, the lease count, the task counts, the watcher, ...
        order = [5, 5, 2, 1, 6, 3, 1, 3, 5, 4, 0]
        return fit_pieces(variants, order, width, (" │ ", theme.S_DIM))


class AlertBar(Static):
    """Hidden when nothing needs the person."""

    _shown = Text()
    _state: tuple = (None, None)
    #: agents that need the person other than through an approval: (waiting at their own prompt, stalled)
    agents: tuple[int, int] = (0, 0)

    def on_mount(self) -> None:
        self.display = False
        self._shown = Text()
        self._state: tuple = (None, None)

    def on_resize(self) -> None:
        self.show(*self._state, force=True)

    def show(self, counts: Counts | None, error: str | None, *, agents: tuple[int, int] | None = None,
             force: bool = False) -> None:
        self._state = (counts, error)
        if agents is not None:
            self.agents = agents
        waiting, stalled = self.agents
        width = self.content_region.width or self.size.width or 160
        asks = bool(counts and counts.pending_approvals) or bool(waiting or stalled)
        self.set_class(bool(error), "-error")
        self.set_class(asks and not error, "-approvals")
        self.set_class(bool(counts and counts.open_conflicts and not asks) and not error, "-conflicts")
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        if error:
            text.append(f" ✖ {printable_line(error)}", "bold")
        elif counts is not None:
            variants: list[list[Piece | None]] = []
            if counts.pending_approvals:
                n = plural(counts.pending_approvals, "approval")
                variants.append([
                    [(f" ● {n} waiting for you", "bold"),
                     (" — n selects the next, then a approve · r reject ", "")],
                    [(f" ● {n} waiting", "bold"), (" — n, then a / r ", "")],
                    [(f" ● {n}", "bold"), (" n ", "")],
                ])
            if waiting or stalled:
                both = [f"{plural(waiting, 'agent')} waiting at its prompt" if waiting == 1 else
                        f"{plural(waiting, 'agent')} waiting at their prompts" if waiting else "",
                        f"{plural(stalled, 'agent')} stalled" if stalled else ""]
                long = " · ".join(p for p in both if p)
                short = " · ".join(p for p in (f"{waiting} waiting" if waiting else "",
                                               f"{stalled} stalled" if stalled else "") if p)
                variants.append([
                    [(f" ◆ {long}", "bold"), (" — press 6 ", "")],
                    [(f" ◆ agents: {short}", "bold"), (" — 6 ", "")],
                    [(f" ◆ {waiting + stalled} agents", "bold"), (" 6 ", "")],
                ])
            if counts.open_conflicts:
                style = theme.S_CONFLICT_BADGE if asks else Style(bold=True)
                n = plural(counts.open_conflicts, "open conflict")
                variants.append([
                    [(f" ⚠ {n}", style), (" — press 4, then x to acknowledge ", "")],
                    [(f" ⚠ {n}", style), (" — 4, then x ", "")],
                    [(f" ⚠ {counts.open_conflicts}", style)],
                ])
            if variants:
                text = fit_pieces(variants, list(range(len(variants))) * 2, width, ("  ", ""))
        if text == self._shown and not force:
            return
        self._shown = text
        visible = bool(text.plain.strip())
        # only showing or hiding the bar moves the panes: no layout pass otherwise
        self.update(text, layout=visible != self.display)
        self.display = visible


class TabStrip(Static):
    """The compact layout's tabs: one pane on screen, every pane's count here."""

    TABS = (("queue", "Queue"), ("leases", "Leases"), ("approvals", "Approvals"), ("conflicts", "Conflicts"),
            ("audit", "Audit"), ("agents", "Agents"))

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = "queue"
        self.counts: Counts | None = None
        self.agents: tuple[int, int] = (0, 0)  # (live sessions, those waiting or stalled)
        self._shown = Text()

    def on_resize(self) -> None:
        self.show(force=True)

    def show(self, current: str | None = None, counts: Counts | None = None, *,
             agents: tuple[int, int] | None = None, force: bool = False) -> None:
        if current is not None:
            self.current = current
        if counts is not None:
            self.counts = counts
        if agents is not None:
            self.agents = agents
        width = self.content_region.width or self.size.width or 80
        text = self._line(width, short=False)
        if cell_len(text.plain) > width:
            text = self._line(width, short=True)
        if text != self._shown or force:
            self._shown = text
            self.update(text, layout=False)

    def _line(self, width: int, *, short: bool) -> Text:
        c = self.counts
        badges: dict[str, tuple[str, Style]] = {}
        if c is not None:
            badges["queue"] = (f"{c.pending + c.leased + c.failed:,}", theme.S_MUTED)
            badges["leases"] = (f"{c.active_leases:,}", theme.S_MUTED)
            if c.pending_approvals:
                badges["approvals"] = (f" ●{c.pending_approvals} ", theme.S_PENDING_BADGE)
            if c.open_conflicts:
                badges["conflicts"] = (f" ⚠{c.open_conflicts} ", theme.S_CONFLICT_BADGE)
        live, needs = self.agents
        if needs:
            badges["agents"] = (f" ◆{needs} ", theme.S_PENDING_BADGE)
        elif live:
            badges["agents"] = (f"{live:,}", theme.S_MUTED)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for number, (name, label) in enumerate(self.TABS, 1):
            if short:
                label = label[:4] if name != "approvals" else "Appr"
            current = name == self.current
            # the current tab is marked without colour too: brackets and reverse video
            style = Style(bold=True, reverse=True) if current else theme.S_TEXT
            action = Style(meta={"@click": f"app.focus_pane('{name}')"})
            text.append("▸" if current else " ", theme.S_KEY)
            text.append(f"{number} {label}", style + action)
            badge = badges.get(name)
            if badge is not None:
                text.append(" ")
                text.append(badge[0], badge[1] + action)
            text.append(" ")
        return text
