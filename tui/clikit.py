"""Shared plumbing of the ``tower`` command line: options, output, errors, store access.

Nothing here imports Textual: agents call ``tower`` for every step.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.display import printable
from core.errors import BadInput, NotFound, TowerError, describe_bug
from core.gitrepo import RepoInfo, discover
from core.people import login_person

if TYPE_CHECKING:
    from store import Store

T = TypeVar("T")

ISSUES_URL = "https://github.com/agent-tower/agent-tower/issues"


# -- options shared by every command -------------------------------------------


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # Options may be given before or after the subcommand; the last one wins.
    if value not in (None, False):
        ctx.find_root().meta[f"tower.{param.name}"] = value
    return value


class _StoreOption(click.ParamType):
    """--db: a store file (not a directory), or a postgresql:// URL taken as it is."""

    name = "store"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
            return value
        return click.Path(dir_okay=False, path_type=Path).convert(value, param, ctx)


def common_options(func: Callable) -> Callable:
    """--json, --db, --agent, --worktree on every command (and on ``tower`` itself)."""
    options = [
        click.option("--json", "json_output", is_flag=True, expose_value=False, callback=_remember,
                     help="Print exactly one JSON object on stdout."),
        click.option("--db", type=_StoreOption(), expose_value=False, callback=_remember,
                     help="Store: a file, or a postgresql:// URL (default: .git/tower/; env TOWER_DB)."),
        click.option("--agent", expose_value=False, callback=_remember,
                     help="Who is acting (env TOWER_AGENT)."),
        click.option("--worktree", expose_value=False, callback=_remember,
                     help="Worktree name (default: the git worktree of the current directory)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def opt(name: str) -> Any:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta.get(f"tower.{name}") if ctx else None


def json_mode() -> bool:
    return bool(opt("json_output"))


# -- who, where ------------------------------------------------------------------


_repo_cache: list[RepoInfo | None] = []


def repo() -> RepoInfo | None:
    if not _repo_cache:
        _repo_cache.append(discover(Path.cwd()))
    return _repo_cache[0]


def env(name: str) -> str | None:
    """A TOWER_* variable; one that is not valid UTF-8 is bad input (exit 2), not a crash later."""
    value = os.environ.get(name)
    if value is not None:
        check_text(value, name)
    return value


def check_text(value: str, what: str) -> str:
    """Refuse (exit 2) text that is not valid UTF-8: Python hands such bytes over as
    lone surrogates, which nothing downstream (SQLite, JSON, the terminal) can take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput(f"{printable(what)} is not valid UTF-8 (byte {_bad_byte(exc)} at position {exc.start})",
                       code="bad_text") from None
    return value


def _bad_byte(exc: UnicodeEncodeError) -> str:
    ch = exc.object[exc.start]
    code = ord(ch)
    return f"0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"


def check_path_length(path: str | os.PathLike, what: str) -> None:
    """A path component over 255 bytes names no file anywhere: bad input (exit 2)."""
    from core.limits import MAX_NAME_BYTES, name_too_long

    part = name_too_long(os.fspath(path))
    if part is not None:
        raise BadInput(f"{what}: a path component is {len(part.encode('utf-8', 'surrogateescape'))} bytes long,"
                       f" at most {MAX_NAME_BYTES} allowed ({printable(part[:40])}…)", code="bad_path")


def db_path() -> Path:
    """The store: ``--db`` / ``TOWER_DB`` (a path, or a ``postgresql://`` URL kept as a
    ``StoreURL``), else the repository's ``.git/tower/tower.db``, or its ``store.toml``
    once ``tower init --db postgresql://…`` recorded one (store/locate.py)."""
    from core.locate import is_url, store_in, store_ref

    explicit = opt("db") or env("TOWER_DB")
    if explicit:
        if not is_url(str(explicit)):
            check_path_length(explicit, "--db")
        return store_ref(explicit)  # type: ignore[return-value]  # a StoreURL quacks like the Path
    info = repo()
    if info is None:
        raise NotFound(
            "no Tower store: not inside a git repository (run `tower init` in one, or pass --db)",
            code="not_initialised",
        )
    return store_in(info.store_dir)


def agent_name() -> str | None:
    return opt("agent") or env("TOWER_AGENT") or None


def person() -> str:
    """Who is acting from this shell: the named agent (--agent, TOWER_AGENT), else the login user.

    Every command acts (and is audited) under this name: an unnamed caller is
    ``person:<login>``, never the holder of the lease it touches.
    """
    name = agent_name()
    if name:
        return name
    return login_person()


def policy_agents() -> tuple[str, ...]:
    """The policy's ``[agents] names`` globs (a policy file that cannot be read is exit 2: fail closed)."""
    from core.gitrepo import POLICY_NAME
    from core.policy import load_policy

    return load_policy(db_path().parent / POLICY_NAME).agent_names


async def require_person(store, act: str) -> str:
    """The acting person's name; Refused (exit 4, ``person_only``) when the actor is an agent:
    named by the policy's ``[agents] names``, or holding a lease in this store."""
    import fnmatch

    from core.errors import Refused

    actor = person()
    if await store.is_lease_holder(actor):
        why = f"{actor} is an agent (it holds leases in this store)"
    elif any(fnmatch.fnmatchcase(actor, g) for g in policy_agents()):
        why = f"{actor} is an agent (the policy's [agents] names say so)"
    else:
        return actor
    raise Refused(f"{why}: {act} is a person's act (in the control room, or in a shell without TOWER_AGENT)",
                  code="person_only", data={"actor": actor})


def worktree_hint() -> str | None:
    return opt("worktree") or env("TOWER_WORKTREE") or None


# -- running a command -------------------------------------------------------------


def run(body: Callable[..., Awaitable[T]], *, create: bool = False, actor: str | None = None,
        reap: bool = True) -> T:
    """Open the store, reap expired leases if any are due, run ``body(store)``, close."""
    import asyncio  # here, not at the top: commands that never open the store do not pay for it

    from store import Store

    async def main() -> T:
        async with Store(db_path(), actor=actor or person(), create=create) as store:
            if reap and not create:
                await store.reap_if_due()
            return await body(store)

    return asyncio.run(main())


async def current_worktree(store: Store, *, register: bool = True) -> tuple[str | None, Path | None]:
    """The worktree this command acts in: (name, root path)."""
    from tui.services.worktrees import resolve_worktree

    return await resolve_worktree(store, worktree_hint(), repo(), agent=agent_name(), register=register)


def normalize_paths(paths: list[str], root: Path | None) -> list[str]:
    """Repo-relative paths; bad ones are a usage error (exit 2)."""
    from tui.services.worktrees import normalize_paths as normalize

    for p in paths:
        check_path_length(p, "path")
    return normalize(paths, root, Path.cwd())


def parse(kind: str, text: str) -> int:
    from core.ids import parse_id

    return parse_id(kind, text)


# -- output ----------------------------------------------------------------------------


def to_data(value: Any) -> Any:
    from core.models import to_json

    return to_json(value)


def json_line(obj: Any) -> str:
    """One JSON object as one line. Exact: text an agent stored comes out as it went in,
    control characters escaped by JSON itself; a lone surrogate (JSON allows them,
    UTF-8 does not) is written as its ``\\udcxx`` escape instead of failing."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True)
    return text


def human_text(text: str) -> str:
    """Human output made safe for a terminal: every line passes through ``printable``,
    so no control character (ESC, OSC, CR, C1, bidi overrides …) from stored text
    reaches it. The line breaks the caller put in are kept; a newline inside a field
    must be dealt with where the field is formatted (``printable_line``)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def say(text: str, *, err: bool = False) -> None:
    """Print human output (never with --json): the one door to the person's terminal."""
    click.echo(human_text(text), err=err)


def log_to_stderr(level: int, fmt: str) -> None:
    """Logging for a person (``-v``): log lines quote paths and names agents chose, so
    they pass through the same printer as every other human line."""
    import logging

    class PrintableFormatter(logging.Formatter):
        def formatMessage(self, record: logging.LogRecord) -> str:
            return printable(super().formatMessage(record))  # one line, whatever a path holds

        def formatException(self, ei) -> str:
            return human_text(super().formatException(ei))

        def formatStack(self, stack_info: str) -> str:
            return human_text(super().formatStack(stack_info))

    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])


def emit(data: Any, human: str | Callable[[], str] | None = None) -> None:
    """Print the result: one JSON object with --json, else a short human line."""
    if json_mode():
        click.echo(json_line({"ok": True, "data": to_data(data)}))
    elif human is not None:
        text = human() if callable(human) else human
        if text:
            say(text)


def fail(code: str, message: str, exit_code: int, data: dict | None = None) -> int:
    message = " ".join(message.split()) if message else code
    if json_mode() or "--json" in sys.argv[1:]:
        error: dict[str, Any] = {"code": code, "message": message}
        if data:
            error["data"] = data
        click.echo(json_line({"ok": False, "error": error}))
    else:
        say(f"tower: {message}", err=True)
    return exit_code


def report(exc: BaseException) -> int:
    if isinstance(exc, TowerError):
        return fail(exc.code, exc.message, exc.exit_code, exc.data)
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        # a path given on the command line that no file system can hold
        return fail("bad_path", f"path too long: {exc.strerror}: {exc.filename}", 2)
    return fail("internal", f"internal error: {describe_bug(exc)} (a bug: please report it at {ISSUES_URL})", 1)


def short(ts: float | None) -> str:
    """A timestamp (epoch seconds) for humans: local time, seconds."""
    if ts is None:
        return "-"
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().strftime("%H:%M:%S")
