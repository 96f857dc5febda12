"""The name a person acts under: ``person:<login>``, as every decision of theirs is audited."""

from __future__ import annotations

import getpass


def login() -> str | None:
    """The login name (getpass reads LOGNAME, USER, … then the password database), or None."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return None


def login_person() -> str:
    """``person:<login>``, or ``person`` where there is no login name."""
    name = login()
    return f"person:{name}" if name else "person"
