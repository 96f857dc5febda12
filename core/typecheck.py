"""What the type checker needs of ``typing`` at run time, without importing ``typing``.

The agents' path (every ``tower hook`` call) keeps ``typing`` unloaded: importing
it is a noticeable part of a call (docs/DECISIONS.md). A module that needs a
decorator from it at run time takes it from here; names used in annotations
only are imported under ``if TYPE_CHECKING:``, with ``TYPE_CHECKING = False``
defined in the module (mypy takes any name ``TYPE_CHECKING`` as true).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import dataclass_transform, overload
else:

    def dataclass_transform(**_options):
        """A no-op at run time: only type checkers read it."""
        return lambda decorator: decorator

    def overload(function):
        """A no-op at run time: the last definition, the implementation, replaces the overloads."""
        return function


__all__ = ["dataclass_transform", "overload"]
