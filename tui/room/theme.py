"""Tower's colours: every one of them comes from the app's current theme.

The stylesheet uses the theme's variables (``$warning``, ``$text-muted`` …).
Table cells and audit lines are Rich ``Text`` and cannot use CSS variables,
so :func:`use_theme` derives their styles from the same variables whenever
the theme changes (the panes then redraw): a light theme gets dark text, a
dark theme light text, and nothing is a hard-coded grey that vanishes on one
of them.

Pending approvals are the theme's warning colour and open conflicts its error
colour everywhere they appear (the header badges, the alert bar, the pane
borders, the rows), so neither can be missed at a glance; everything else
stays quiet. Without colour (``NO_COLOR``) the badges keep a contrasting
background and the important words stay bold, so they still stand out.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.style import Style
from textual.color import Color
from textual.theme import Theme

DEFAULT_THEME = "tower"

TOWER_THEME = Theme(
    name="tower",
    primary="#5fa8ff",
    secondary="#b392f0",
    accent="#56d4dd",
    warning="#ffb020",
    error="#ff5f5f",
    success="#4cc38a",
    foreground="#d6dde6",
    background="#0e1217",
    surface="#141a21",
    panel="#1c232c",
    dark=True,
    variables={
        "footer-key-foreground": "#5fa8ff",
        "block-cursor-background": "#2a3a52",
        "block-cursor-foreground": "#d6dde6",
        "block-cursor-text-style": "bold",
        "block-cursor-blurred-background": "#1f2a38",
        "block-cursor-blurred-text-style": "none",
        "input-selection-background": "#2a3a52",
    },
)

TOWER_LIGHT_THEME = Theme(
    name="tower-light",
    primary="#1d5fb4",
    secondary="#6e4bb8",
    accent="#0b7a83",
    warning="#b26a00",
    error="#c62828",
    success="#2e7d4f",
    foreground="#1d2430",
    background="#f4f6f8",
    surface="#ffffff",
    panel="#e4e9ef",
    dark=False,
    variables={
        "block-cursor-background": "#cfe0f7",
        "block-cursor-foreground": "#1d2430",
        "block-cursor-text-style": "bold",
        "block-cursor-blurred-background": "#e6eef9",
        "block-cursor-blurred-text-style": "none",
        "input-selection-background": "#cfe0f7",
    },
)

THEMES = (TOWER_THEME, TOWER_LIGHT_THEME)

# -- cell styles (set by use_theme; these defaults are the "tower" theme's) ----------------

S_ID = Style()
S_DIM = Style()
S_MUTED = Style()
S_TEXT = Style()
S_BOLD = Style(bold=True)
S_OK = Style()
S_WARN = Style(bold=True)
S_BAD = Style(bold=True)
S_INFO = Style()
S_BUSY = Style(italic=True)
S_KEY = Style(bold=True)
S_BRAND = Style(bold=True, reverse=True)
S_PENDING_BADGE = Style(bold=True, reverse=True)
S_CONFLICT_BADGE = Style(bold=True, reverse=True)
S_CURSOR = Style(bold=True, reverse=True)
S_CURSOR_BLURRED = Style(reverse=True)
S_MATCH = Style(bold=True, underline=True)

TASK_STATUS_STYLE: dict[str, Style] = {}
APPROVAL_STATUS_STYLE: dict[str, Style] = {}
AGENT_STATE_STYLE: dict[str, Style] = {}

#: bumped on every theme change: caches of rendered cells compare it
GENERATION = 0


def _color(value: str | None, fallback: Color) -> Color:
    if not value:
        return fallback
    try:
        return Color.parse(value)
    except Exception:  # noqa: BLE001 - "auto 87%" and such: not a colour of its own
        return fallback


def _hex(color: Color) -> str:
    return color.hex[:7]


def _luminance(c: Color) -> float:
    def channel(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def readable(color: Color, background: Color, text: Color, least: float) -> Color:
    """``color``, moved towards the theme's text colour until it reads on ``background``
    with at least ``least`` contrast (some themes' accents are pale on their own surface)."""
    for step in range(21):
        candidate = color.blend(text, step / 20)
        if contrast(candidate, background) >= least:
            return candidate
    return text


def use_theme(variables: Mapping[str, str]) -> None:
    """Derive every cell style from a theme's CSS variables (``App.get_css_variables()``)."""
    global S_ID, S_DIM, S_MUTED, S_TEXT, S_BOLD, S_OK, S_WARN, S_BAD, S_INFO, S_BUSY, S_KEY
    global S_BRAND, S_PENDING_BADGE, S_CONFLICT_BADGE, S_CURSOR, S_CURSOR_BLURRED, S_MATCH, GENERATION

    surface = _color(variables.get("surface"), Color(20, 26, 33))
    fg = _color(variables.get("foreground"), Color(214, 221, 230))
    if contrast(fg, surface) < 4.5:  # a theme whose text does not read on its own surface
        fg = readable(fg, surface, surface.get_contrast_text(1.0), 4.5)

    def tone(name: str, least: float) -> str:
        return _hex(readable(_color(variables.get(name), fg), surface, fg, least))

    # blends of the foreground over the pane's background, never fainter than readable
    muted = _hex(readable(surface.blend(fg, 0.66), surface, fg, 4.5))
    dim = _hex(readable(surface.blend(fg, 0.5), surface, fg, 3.0))
    text = _hex(fg)
    ok = tone("text-success", 3.0)
    warn = tone("text-warning", 3.0)
    bad = tone("text-error", 3.0)
    info = tone("text-primary", 3.0)
    primary = _color(variables.get("primary"), fg)
    warning = _color(variables.get("warning"), fg)
    error = _color(variables.get("error"), fg)

    def badge(bg: Color) -> Style:
        return Style(color=_hex(bg.get_contrast_text(1.0)), bgcolor=_hex(bg), bold=True)

    S_ID = Style(color=muted)
    S_DIM = Style(color=dim)
    S_MUTED = Style(color=muted)
    S_TEXT = Style(color=text)
    S_BOLD = Style(color=text, bold=True)
    S_OK = Style(color=ok)
    S_WARN = Style(color=warn, bold=True)
    S_BAD = Style(color=bad, bold=True)
    S_INFO = Style(color=info)
    S_BUSY = Style(color=info, italic=True)
    S_KEY = Style(color=info, bold=True)
    S_BRAND = badge(primary)
    S_PENDING_BADGE = badge(warning)
    S_CONFLICT_BADGE = badge(error)
    cursor_bg = _color(variables.get("block-cursor-background"), primary)
    blurred_bg = _color(variables.get("block-cursor-blurred-background"), surface.blend(cursor_bg, 0.5))
    S_CURSOR = Style(color=_hex(_color(variables.get("block-cursor-foreground"), cursor_bg.get_contrast_text(1.0))),
                     bgcolor=_hex(cursor_bg), bold=True)
    S_CURSOR_BLURRED = Style(bgcolor=_hex(blurred_bg))
    S_MATCH = Style(color=warn, bold=True, underline=True)

    TASK_STATUS_STYLE.clear()
    TASK_STATUS_STYLE.update({
        "pending": S_TEXT,
        "blocked": S_MUTED,
        "leased": Style(color=info, bold=True),
        "done": S_OK,
        "failed": S_BAD,
        "cancelled": S_DIM,
    })
    APPROVAL_STATUS_STYLE.clear()
    APPROVAL_STATUS_STYLE.update({
        "pending": S_PENDING_BADGE,
        "approved": S_OK,
        "rejected": S_BAD,
        "expired": S_WARN,
        "cancelled": S_WARN,
    })
    AGENT_STATE_STYLE.clear()
    AGENT_STATE_STYLE.update({
        "waiting": S_PENDING_BADGE,
        "stalled": S_CONFLICT_BADGE,
        "working": Style(color=info, bold=True),
        "idle": S_TEXT,
        "ended": S_DIM,
    })
    GENERATION += 1


def event_style(event: str) -> Style:
    """The colour of an audit event's name: what needs a person stands out."""
    if event == "approval.requested":
        return S_WARN
    if event in ("conflict.opened", "task.failed", "approval.rejected", "lease.expired", "approval.expired",
                 "approval.cancelled"):
        return S_BAD
    if event in ("task.done", "approval.approved", "conflict.resolved", "conflict.acked"):
        return S_OK
    if event.startswith("task.claimed") or event.startswith("files."):
        return S_INFO
    if event == "lease.heartbeat":
        return S_DIM
    return S_TEXT


def _initial() -> None:
    """The tower theme's styles until an app says otherwise (scripts that render rows)."""
    colors = TOWER_THEME.to_color_system().generate()
    use_theme(colors)


_initial()
