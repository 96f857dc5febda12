"""Tower's colours: one palette for the stylesheet (a registered theme) and for
the Rich styles of table cells and audit lines, which cannot use CSS variables.

Pending approvals are amber and open conflicts red everywhere they appear (the
header badges, the alert bar, the pane borders, the rows), so neither can be
missed at a glance; everything else stays quiet.
"""

from __future__ import annotations

from rich.style import Style
from textual.theme import Theme

AMBER = "#ffb020"
RED = "#ff5f5f"
GREEN = "#4cc38a"
BLUE = "#5fa8ff"
CYAN = "#56d4dd"
VIOLET = "#b392f0"
FG = "#d6dde6"
MUTED = "#7d8896"
DIM = "#56606c"
BG = "#0e1217"
SURFACE = "#141a21"
PANEL = "#1c232c"
INK = "#0e1217"  # text on a bright badge

TOWER_THEME = Theme(
    name="tower",
    primary=BLUE,
    secondary=VIOLET,
    accent=CYAN,
    warning=AMBER,
    error=RED,
    success=GREEN,
    foreground=FG,
    background=BG,
    surface=SURFACE,
    panel=PANEL,
    dark=True,
    variables={
        "footer-key-foreground": BLUE,
        "block-cursor-background": "#2a3a52",
        "block-cursor-foreground": FG,
        "block-cursor-text-style": "bold",
        "block-cursor-blurred-background": "#1f2a38",
        "block-cursor-blurred-text-style": "none",
        "input-selection-background": "#2a3a52",
    },
)

# -- cell styles -----------------------------------------------------------------

S_ID = Style(color=MUTED)
S_DIM = Style(color=DIM)
S_MUTED = Style(color=MUTED)
S_TEXT = Style(color=FG)
S_BOLD = Style(color=FG, bold=True)
S_OK = Style(color=GREEN)
S_WARN = Style(color=AMBER, bold=True)
S_BAD = Style(color=RED, bold=True)
S_INFO = Style(color=CYAN)
S_BUSY = Style(color=BLUE, italic=True)
S_KEY = Style(color=BLUE, bold=True)
S_BRAND = Style(color=INK, bgcolor=BLUE, bold=True)
S_PENDING_BADGE = Style(color=INK, bgcolor=AMBER, bold=True)
S_CONFLICT_BADGE = Style(color=INK, bgcolor=RED, bold=True)

TASK_STATUS_STYLE = {
    "pending": S_TEXT,
    "blocked": S_MUTED,
    "leased": Style(color=CYAN, bold=True),
    "done": S_OK,
    "failed": S_BAD,
    "cancelled": S_DIM,
}

APPROVAL_STATUS_STYLE = {
    "pending": S_PENDING_BADGE,
    "approved": S_OK,
    "rejected": S_BAD,
    "expired": S_DIM,
    "cancelled": S_DIM,
}


def event_style(event: str) -> Style:
    """The colour of an audit event's name: what needs a person stands out."""
    if event == "approval.requested":
        return S_WARN
    if event in ("conflict.opened", "task.failed", "approval.rejected", "lease.expired"):
        return S_BAD
    if event in ("task.done", "approval.approved", "conflict.resolved", "conflict.acked"):
        return S_OK
    if event.startswith("task.claimed") or event.startswith("files."):
        return S_INFO
    if event == "lease.heartbeat":
        return S_DIM
    return S_TEXT
