"""Where a store lives: a SQLite file, or a PostgreSQL database named by a URL.

A store always has a local directory (``.git/tower/`` in a repository) that
holds what never goes into a database: the audit key, the policy, and for a
Postgres store ``store.toml``, which records the database's URL (written by
``tower init --db postgresql://…``; never a password: libpq's ``.pgpass`` or
``PGPASSFILE`` holds that). So a store is named by a path in every case:
``…/tower.db`` (SQLite) or ``…/store.toml`` (Postgres), and every command and
every worktree finds it the same way. ``TOWER_DB`` / ``--db`` may also be the
URL itself; the local directory is then the repository's ``.git/tower/``.

Nothing here imports a database driver: the agents' path stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import BadInput, StoreUnusable

POINTER_NAME = "store.toml"
URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(value: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL: a Postgres store."""
    return isinstance(value, str) and value.startswith(URL_SCHEMES)


def is_pointer(path: Path) -> bool:
    return path.name == POINTER_NAME


def redact(url: str) -> str:
    """The URL without its password (messages, ``--json``, the control room's header)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}" if user else hostport
    # a password may also ride in the query (?password=…)
    if "password=" in tail:
        import re

        tail = re.sub(r"(?i)(^|[?&])password=[^&]*", r"\1password=***", tail)
    return f"{scheme}://{netloc}{slash}{tail}"


def has_password(url: str) -> bool:
    return redact(url) != url


def read_pointer(path: Path) -> str:
    """The URL that ``store.toml`` records."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StoreUnusable(f"cannot read {path}: {exc}") from None
    url = data.get("url")
    if not is_url(url):
        raise StoreUnusable(f"{path} names no postgresql:// URL (url = \"postgresql://…\")")
    assert isinstance(url, str)
    return url


def write_pointer(directory: Path, url: str) -> Path:
    """Record ``url`` in ``directory/store.toml`` (atomically); refuses a URL with a password."""
    if has_password(url):
        raise BadInput(
            "the URL holds a password, and .git/tower/store.toml must not: put it in ~/.pgpass"
            " (or the file PGPASSFILE names), or pass the URL in TOWER_DB instead of recording it",
            code="password_in_url",
        )
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / POINTER_NAME
    text = ("# the Tower store of this repository: a PostgreSQL database (tower init --db)\n"
            f"url = \"{_toml_escape(url)}\"\n")
    tmp = directory / f".{POINTER_NAME}.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


def _toml_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class StoreURL(str):
    """A ``postgresql://`` URL where code expects the store's path (``TOWER_DB`` or ``--db``
    holding the URL itself): ``parent`` is the local directory (the current repository's
    ``.git/tower/``, which holds the audit key and the policy), ``exists()`` leaves the
    answer to the database, ``name`` is the URL without its password."""

    @property
    def parent(self) -> Path:
        from core.errors import NotFound
        from core.gitrepo import discover

        info = discover()
        if info is None:
            raise NotFound(f"{redact(self)} is a database: run inside the repository whose .git/tower/ holds"
                           " its audit key", code="not_initialised")
        return info.store_dir

    @property
    def name(self) -> str:
        return redact(self)

    def exists(self) -> bool:
        return True

    def expanduser(self) -> StoreURL:
        return self

    def absolute(self) -> StoreURL:
        return self

    def resolve(self) -> StoreURL:
        return self


def store_ref(value: str | os.PathLike[str]) -> Path | StoreURL:
    """What ``--db`` / ``TOWER_DB`` names: a path (made absolute), or a URL kept as it is."""
    if is_url(value):
        return StoreURL(str(value))
    return Path(value).expanduser().absolute()


def store_in(directory: Path) -> Path:
    """The store of a local directory (``.git/tower/``): ``store.toml`` once ``tower init
    --db postgresql://…`` recorded one there, else the SQLite file ``tower.db``."""
    pointer = directory / POINTER_NAME
    return pointer if pointer.exists() else directory / "tower.db"
