"""Reaching a person who looks elsewhere: the terminal's title and desktop notifications.

The title says what waits ("Tower — 2 approvals, 1 conflict"), so a tab or a
window list shows it. Terminals that turn an escape sequence into a desktop
notification get one for each announcement: OSC 9 (iTerm2, WezTerm, Ghostty,
…) or OSC 777 (foot, urxvt, Ghostty, WezTerm …). Which one is guessed from the
environment, or set in the settings file; inside tmux or screen the sequence
would be swallowed (or printed), so nothing is sent there unless asked for.

Every text put in a sequence is made safe first: agent text passes through
``printable_line`` (no ESC, BEL or other control character survives to end
the sequence early or start another one), field separators are replaced, and
the length is bounded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from core.display import printable_line

MAX_TEXT = 180

_OSC9_PROGRAMS = {"iTerm.app", "WezTerm", "ghostty"}
_OSC777_TERMS = ("foot", "rxvt")


def safe_text(text: str, limit: int = MAX_TEXT) -> str:
    """One line with no control character and no OSC field separator, at most ``limit`` long."""
    line = printable_line(text).replace(";", ",")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def title_sequence(title: str) -> str:
    """OSC 2: set the window title."""
    return f"\x1b]2;{safe_text(title)}\x07"


PUSH_TITLE = "\x1b[22;0t"  # XTWINOPS: save the title, restored on the way out
POP_TITLE = "\x1b[23;0t"


def notification_kind(env: Mapping[str, str] | None = None, choice: str = "auto") -> str | None:
    """Which desktop notification sequence this terminal understands (None: none we know of)."""
    if choice in ("osc9", "osc777"):
        return choice
    if choice == "off":
        return None
    env = os.environ if env is None else env
    if env.get("TMUX") or env.get("STY"):
        return None  # a multiplexer swallows (or shows) the sequence: not without being asked
    program = env.get("TERM_PROGRAM", "")
    term = env.get("TERM", "")
    if program in _OSC9_PROGRAMS:
        return "osc9"
    if any(t in term for t in _OSC777_TERMS):
        return "osc777"
    return None


def notification_sequence(kind: str, title: str, body: str) -> str:
    if kind == "osc777":
        return f"\x1b]777;notify;{safe_text(title, 60)};{safe_text(body)}\x07"
    # OSC 9 takes one text; "Tower:" first, so it never reads as ConEmu's "9;4;…" progress codes
    return f"\x1b]9;{safe_text('Tower: ' + title + ' — ' + body)}\x07"


def waiting_title(approvals: int, conflicts: int, agents: int = 0) -> str:
    """``agents``: agents that need the person other than through an approval (waiting at
    their own prompt, or stalled)."""
    parts = []
    if approvals:
        parts.append(f"{approvals} approval{'s' if approvals != 1 else ''}")
    if agents:
        parts.append(f"{agents} agent{'s' if agents != 1 else ''}")
    if conflicts:
        parts.append(f"{conflicts} conflict{'s' if conflicts != 1 else ''}")
    return "Tower — " + ", ".join(parts) if parts else "Tower"
