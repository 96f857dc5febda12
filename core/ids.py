"""Short, typeable ids: ``T3`` for task 3, ``L7`` for lease 7 and so on.

The number is the row id (AUTOINCREMENT, so never reused); the letter only
tells a reader which kind of thing it is.
"""

from __future__ import annotations

import re

from core.errors import BadInput
from core.typecheck import overload

PREFIXES = {"task": "T", "lease": "L", "approval": "A", "conflict": "C", "session": "S"}
_ID = re.compile(r"^\s*([A-Za-z]?)(\d{1,18})\s*$")


@overload
def format_id(kind: str, number: int) -> str: ...
@overload
def format_id(kind: str, number: None) -> None: ...
@overload
def format_id(kind: str, number: int | None) -> str | None: ...
def format_id(kind: str, number: int | None) -> str | None:
    if number is None:
        return None
    return f"{PREFIXES[kind]}{number}"


def parse_id(kind: str, text: str | int) -> int:
    """Parse ``T3`` / ``t3`` / ``3`` into 3 for kind ``task``; refuse another kind's letter."""
    if isinstance(text, int):
        return text
    match = _ID.match(str(text))
    prefix = PREFIXES[kind]
    if not match or (match.group(1) and match.group(1).upper() != prefix):
        raise BadInput(f"invalid {kind} id {text!r}: expected {prefix}<number>, e.g. {prefix}1")
    return int(match.group(2))
