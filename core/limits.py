"""Bounds on what agents may store, checked where it comes in.

An approval's detail is JSON an agent chose. Unbounded, one request nested 300
levels deep made every later ``approval list --json`` fail (pydantic refuses
to serialise past 255 levels), and one huge request bloats every reader.
Input beyond these bounds is refused (exit 2); rows stored before the bounds
existed are shown clipped rather than breaking a listing for everyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from core.errors import BadInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DETAIL_DEPTH = 32  # nesting levels of objects and arrays, the outer object counting as 1
# Encoded size. A Claude Code hook files the call's tool input (strings clipped
# to 2,000 characters, lists to 50 items), which stays well below this.
MAX_DETAIL_BYTES = 256 * 1024
MAX_NAME_BYTES = 255  # a path component (NAME_MAX on Linux and macOS)

_DEEP = f"… (nested deeper than {MAX_DETAIL_DEPTH} levels: not shown)"
_SHOWN_TEXT = 2000


def depth_over(value: Any, limit: int) -> bool:
    """True if ``value`` nests objects and arrays more than ``limit`` levels deep.

    Iterative: a value handed over by a caller may be nested deeper than
    Python's recursion limit.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_detail(text: str, *, what: str = "--detail") -> dict[str, Any]:
    """Parse an approval's detail given as JSON text; refuse (BadInput) what is not a bounded object."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DETAIL_BYTES:
        raise BadInput(f"{what} is {size} bytes: at most {MAX_DETAIL_BYTES} allowed", code="too_large")
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadInput(f"{what} is nested too deeply: at most {MAX_DETAIL_DEPTH} levels allowed",
                       code="too_deep") from None
    except ValueError as exc:
        where = f": {exc.msg} at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadInput(f"{what} is not valid JSON{where}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object")
    check_detail(value, what=what)
    return value


def check_detail(value: dict[str, Any], *, what: str = "detail") -> None:
    """Refuse (BadInput, exit 2) a detail nested or sized beyond the bounds."""
    if depth_over(value, MAX_DETAIL_DEPTH):
        raise BadInput(f"{what} is nested too deeply: at most {MAX_DETAIL_DEPTH} levels allowed",
                       code="too_deep")
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{what} cannot be stored as JSON: {exc}") from None
    if size > MAX_DETAIL_BYTES:
        raise BadInput(f"{what} is {size} bytes as JSON: at most {MAX_DETAIL_BYTES} allowed",
                       code="too_large")


def stored_detail(text: str | None) -> dict[str, Any]:
    """A detail as stored, made safe to hand to every reader: never raises.

    Text that is not a JSON object comes back as ``{"undecodable": <text, clipped>}``;
    anything nested beyond the bound is replaced by a note saying so.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {"undecodable": _clip_text(text)}
    if not isinstance(value, dict):
        return {"undecodable": _clip_text(text)}
    if depth_over(value, MAX_DETAIL_DEPTH):
        return _clip_depth(value, 1)
    return value


def _clip_text(text: str) -> str:
    return text if len(text) <= _SHOWN_TEXT else text[:_SHOWN_TEXT] + f"… ({len(text)} characters)"


def _clip_depth(value: Any, depth: int) -> Any:
    # recursion is bounded by MAX_DETAIL_DEPTH: deeper levels are cut, not visited
    if isinstance(value, dict):
        return _DEEP if depth > MAX_DETAIL_DEPTH else {k: _clip_depth(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return _DEEP if depth > MAX_DETAIL_DEPTH else [_clip_depth(v, depth + 1) for v in value]
    return value


def name_too_long(path: str) -> str | None:
    """The first component of ``path`` longer than a file system allows, or None."""
    for part in str(path).replace("\\", "/").split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            return part
    return None
