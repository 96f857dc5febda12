"""Task scopes: path globs and matching.

A scope is a list of globs naming the files a task may write.  Globs match
repo-relative POSIX paths such as ``src/app.py`` (see :mod:`core.paths`), with
these rules, close to ``.gitignore``:

- ``*`` matches any run of characters within one segment, never ``/``; ``?``
  matches one character other than ``/``; ``[abc]``, ``[a-z]`` match one
  character of a class and ``[!a-z]`` (or ``[^a-z]``) one character outside
  it, never ``/``.  A ``]`` right after ``[`` or ``[!`` is a member; a ``[``
  with no closing ``]`` is literal.  There are no escapes (``\\`` is an
  ordinary character), and matching is case-sensitive.
- ``**`` as a whole segment matches zero or more whole segments: ``**/x``
  matches ``x`` and ``a/b/x``, ``a/**/x`` matches ``a/x`` and ``a/b/x``.  A
  trailing ``a/**`` matches everything below ``a`` (one or more segments) but
  not ``a`` itself; ``**`` alone matches every path.  Inside a segment ``**``
  is just ``*``.
- A glob without ``/`` matches the last segment at any depth: ``*.md`` is
  ``**/*.md``.
- A glob containing ``/`` is anchored at the repository root.  A leading ``/``
  only anchors: ``/Makefile`` matches the top-level ``Makefile`` alone.
- A trailing ``/`` means everything under that directory: ``docs/api/`` is
  ``docs/api/**``.  Unlike ``.gitignore``, ``build/`` is therefore anchored
  too (a scope names a place in the repository, not a name).
- A glob matches paths, not the contents of directories: ``src`` matches a
  file named ``src``; write ``src/`` for the directory.
- Repeated slashes and ``.`` segments are ignored; ``..`` segments, NUL bytes
  and empty globs are refused with :class:`ScopeError`.
- An empty scope (no globs at all) is unrestricted: it matches every path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache


class ScopeError(ValueError):
    """An invalid glob; ``str()`` is one line for the user."""


# A set of characters is a sorted tuple of disjoint inclusive code-point
# ranges, so that classes, "?" and literals can be intersected exactly.
CharSet = tuple[tuple[int, int], ...]

_MAX = 0x10FFFF
_SLASH = ord("/")
_ANY: CharSet = ((0, _SLASH - 1), (_SLASH + 1, _MAX))
_STAR = "*"  # atom: any run of non-"/" characters
_GLOBSTAR = "**"  # segment: zero or more whole segments

Atom = str | CharSet  # _STAR or a CharSet matching one character
Segment = str | tuple[Atom, ...]  # _GLOBSTAR or a sequence of atoms


def validate_glob(glob: str) -> str:
    """Check ``glob`` and return its normal form.

    The normal form drops repeated slashes and ``.`` segments, spells a
    trailing ``/`` as ``/**`` and keeps a leading ``/`` only where it matters
    (``/Makefile``); it matches exactly the same paths, and normalising it
    again changes nothing.  Raises :class:`ScopeError`.
    """
    anchored, parts = _split(glob)
    text = "/".join(parts)
    if anchored and len(parts) == 1 and parts[0] != _GLOBSTAR:
        return "/" + text
    return text


def match_one(path: str, glob: str) -> bool:
    """Return True if the repo-relative POSIX ``path`` matches ``glob``."""
    return _regex(glob).fullmatch(path) is not None


def matches(path: str, globs: Sequence[str]) -> bool:
    """Return True if ``path`` matches any of ``globs``; an empty scope matches everything."""
    return not globs or any(match_one(path, g) for g in globs)


# --- parsing -----------------------------------------------------------------


def _split(glob: str) -> tuple[bool, list[str]]:
    """Validate ``glob``; return whether it is anchored and its segments."""
    if "\0" in glob:
        raise ScopeError("glob contains a NUL byte")
    if not glob.strip():
        raise ScopeError("empty glob")
    shown = f"'{glob}'" if glob.isprintable() else repr(glob)
    parts = [p for p in glob.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ScopeError(f"glob {shown} contains a '..' segment")
    if not parts:
        raise ScopeError(f"glob {shown} names the repository root; use '**' for everything")
    if glob.endswith("/"):
        parts.append(_GLOBSTAR)
    collapsed: list[str] = []
    for p in parts:
        if not (p == _GLOBSTAR and collapsed and collapsed[-1] == _GLOBSTAR):
            collapsed.append(p)
    return "/" in glob, collapsed


@lru_cache(maxsize=1024)
def _segments(glob: str) -> tuple[Segment, ...]:
    anchored, parts = _split(glob)
    if not anchored and parts[0] != _GLOBSTAR:
        parts = [_GLOBSTAR, *parts]
    return tuple(p if p == _GLOBSTAR else _atoms(p) for p in parts)


def _atoms(seg: str) -> tuple[Atom, ...]:
    atoms: list[Atom] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            if not atoms or atoms[-1] != _STAR:
                atoms.append(_STAR)
            i += 1
        elif c == "?":
            atoms.append(_ANY)
            i += 1
        elif c == "[" and (cls := _char_class(seg, i)) is not None:
            atoms.append(cls[0])
            i = cls[1]
        else:
            atoms.append(((ord(c), ord(c)),))
            i += 1
    return tuple(atoms)


def _char_class(seg: str, i: int) -> tuple[CharSet, int] | None:
    """Parse the class opening at ``seg[i] == "["``: its set and the index past ``]``."""
    j = i + 1
    negate = j < len(seg) and seg[j] in "!^"
    j += negate
    body_start = j
    if j < len(seg) and seg[j] == "]":
        j += 1
    close = seg.find("]", j)
    if close < 0:
        return None
    body = seg[body_start:close]
    ranges: list[tuple[int, int]] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = ord(body[k]), ord(body[k + 2])
            if lo <= hi:  # a reversed range is empty, as in fnmatch
                ranges.append((lo, hi))
            k += 3
        else:
            ranges.append((ord(body[k]), ord(body[k])))
            k += 1
    chars = _union(ranges)
    return _meet(_complement(chars) if negate else chars, _ANY), close + 1


# --- character sets ----------------------------------------------------------


def _union(ranges: list[tuple[int, int]]) -> CharSet:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(chars: CharSet) -> CharSet:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in chars:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX:
        out.append((nxt, _MAX))
    return tuple(out)


def _meet(a: CharSet, b: CharSet) -> CharSet:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


# --- matching by regex -------------------------------------------------------


@lru_cache(maxsize=1024)
def _regex(glob: str) -> re.Pattern[str]:
    segs = _segments(glob)
    out: list[str] = []
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg == _GLOBSTAR:
            if i:
                out.append("/")
            out.append("[^/]+(?:/[^/]+)*" if last else "(?:[^/]+/)*")
            continue
        if i and segs[i - 1] != _GLOBSTAR:
            out.append("/")
        out.extend("[^/]*" if isinstance(a, str) else _charset_regex(a) for a in seg)
    return re.compile("".join(out))


def _charset_regex(chars: CharSet) -> str:
    if chars == _ANY:
        return "[^/]"
    if not chars:
        return "(?!)"
    if len(chars) == 1 and chars[0][0] == chars[0][1]:
        return re.escape(chr(chars[0][0]))
    return "[" + "".join(
        f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in chars
    ) + "]"
