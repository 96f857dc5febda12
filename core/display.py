"""Agent-controlled text made safe to show a person.

Titles, agent names, paths, summaries, reasons and details come from agents.
Written raw to a terminal, an ESC sequence can clear the screen, retitle the
window or write the clipboard (OSC 52), a newline can forge a row, and a
bidirectional override can make text read differently from what it is. Every
human-readable output passes stored text through :func:`printable`; ``--json``
stays exact.
"""

from __future__ import annotations

import functools
import re

# C0 and C1 controls, DEL, zero-width and bidirectional formatting characters,
# line/paragraph separators, the BOM and lone surrogates (JSON allows them);
# and the other invisible format characters that can hide text from a reader:
# soft hyphen, Mongolian vowel separator, interlinear annotation marks and the
# tag characters (U+E0000 block: invisible on screen, read by a model).
# Compiled on first use: the hook imports this module for `ellipsize` on every
# tool call, and compiling the class costs more than the rest of the module.
_UNSAFE = ("[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
           "\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]")


@functools.cache
def _unsafe() -> re.Pattern[str]:
    return re.compile(_UNSAFE)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object) -> str:
    """``text`` with every control or formatting character shown as a visible escape.

    The result is one line and has no character a terminal would act on.
    """
    s = text if isinstance(text, str) else str(text)
    return _unsafe().sub(_escape, s)


def printable_line(text: object) -> str:
    """Like :func:`printable`, but whitespace runs (newlines included) fold to one space.

    For table cells and one-line summaries, where ``\\n`` escapes would be noise.
    """
    s = text if isinstance(text, str) else str(text)
    return printable(" ".join(s.split()))


def ellipsize(text: str, width: int) -> str:
    """``text`` on one line (whitespace runs folded to one space), cut to ``width`` with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
