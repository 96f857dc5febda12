"""Which host this process runs on, for a store shared by several machines.

A worktree's path names a directory on one machine: two hosts can both have
``/home/dev/repo``. In a shared store a worktree is therefore (host, path), and
each host's commands and watcher act only on their own host's worktrees.
"""

from __future__ import annotations

import os

HOST_ENV = "TOWER_HOST"


def local_host(backend: str) -> str | None:
    """This host's name: ``TOWER_HOST``, else (for a shared, Postgres store) the machine's host
    name. ``None`` for a one-machine (SQLite) store without ``TOWER_HOST``: every worktree is
    local, and renaming the machine changes nothing."""
    explicit = os.environ.get(HOST_ENV, "").strip()
    if explicit:
        return explicit
    if backend == "sqlite":
        return None
    import socket  # only for a shared store: a one-machine store's commands skip loading it

    return socket.gethostname() or None
