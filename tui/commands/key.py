"""``tower key``: carry the audit key to another host (never through the database).

Every host that runs agents or the control room against one shared store signs
and verifies the audit chain with the same key (docs/postgres.md, "The audit
chain on a shared database"). The key stays a file beside the store's
configuration (``.git/tower/audit.key``, mode 0600); these commands move it
over a channel the person chooses:

    ssh host-a 'cd repo && tower key export' | tower key import

``export`` and ``import`` are a person's acts: whoever holds the key can sign
events that ``tower audit verify`` accepts, and importing a key decides which
log a host's signatures belong to. ``tower key id`` prints only the key's
fingerprint, for anyone.
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import click

from core import audit as chain
from core.errors import BadInput, NotFound, Refused, StoreUnusable
from core.gitrepo import KEY_NAME
from tui.clikit import common_options, db_path, emit, person, policy_agents, run


def key_path() -> Path:
    """The key of this repository's store: beside the store's file or configuration."""
    return db_path().parent / KEY_NAME


def _load(path: Path) -> bytes:
    try:
        return chain.load_key(path)
    except chain.AuditKeyError as exc:
        if not path.exists() and not path.is_symlink():
            raise NotFound(f"{exc}: run `tower init`, or `tower key import` on this host",
                           code="no_key") from None
        raise StoreUnusable(str(exc), code="bad_key") from None


def _store_exists() -> bool:
    """A store this host can open: a SQLite file or a recorded (or given) database, with a key."""
    return db_path().exists() and key_path().exists()


def _require_person(act: str) -> str:
    """The person acting; Refused (exit 4, ``person_only``) when the actor is an agent: named by
    the policy, or holding a lease in the store (when this host has one)."""
    actor = person()
    if any(fnmatch.fnmatchcase(actor, g) for g in policy_agents()):
        raise Refused(f"{actor} is an agent (the policy's [agents] names say so): {act} is a person's act",
                      code="person_only", data={"actor": actor})
    if _store_exists():
        from tui.clikit import require_person

        run(lambda s: require_person(s, act), reap=False)
    return actor


@click.group()
@common_options
def key() -> None:
    """The audit key: its fingerprint, and carrying it to another host."""


@key.command("id")
@common_options
def key_id_cmd() -> None:
    """Print the audit key's fingerprint (never the key): equal on every host of one store."""
    path = key_path()
    kid = chain.key_id(_load(path))
    emit({"key_id": kid, "path": str(path)}, kid)


@key.command("export")
@common_options
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the key to this new file (mode 0600) instead of stdout.")
def key_export(out: Path | None) -> None:
    """Print the audit key (a person's act): pipe it to `tower key import` on another host."""
    _require_person("exporting the audit key")
    path = key_path()
    k = _load(path)
    if out is not None:
        try:
            chain.write_key(out, k)
        except FileExistsError:
            raise Refused(f"{out} exists: the key is written only to a new file", code="file_exists") from None
        except OSError as exc:
            raise BadInput(f"cannot write {out}: {exc.strerror or exc}", code="bad_path") from None
        emit({"key_id": chain.key_id(k), "path": str(out)}, f"audit key {chain.key_id(k)} written to {out}")
        return
    # --json carries the key in ``data.key``; plain output is the key file's own text, so
    # `tower key export > f` and `tower key import < f` (or a secret manager) round-trip
    emit({"key": k.hex(), "key_id": chain.key_id(k)}, k.hex())


@key.command("import")
@common_options
@click.option("--file", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the key from this file instead of stdin.")
def key_import(source: Path | None) -> None:
    """Install an exported audit key on this host (a person's act); refused if a different key is here."""
    _require_person("importing the audit key")
    try:
        text = source.read_text(encoding="ascii", errors="replace") if source else sys.stdin.read(4096)
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror or exc}", code="bad_path") from None
    try:
        k = chain.parse_key(text)
    except ValueError as exc:
        raise BadInput(f"{source or 'stdin'}: {exc}", code="bad_key") from None
    kid = chain.key_id(k)
    path = key_path()
    if path.exists() or path.is_symlink():
        if _load(path) == k:
            emit({"key_id": kid, "path": str(path), "created": False}, f"audit key {kid} already at {path}")
            return
        # a different key would make every event this host signed look forged, and this
        # host's future events unverifiable by the others: the person moves it away first
        raise Refused(f"{path} holds a different audit key ({chain.key_id(_load(path))}, not {kid}):"
                      " move it away first if this host is to sign with the imported one", code="key_exists")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        chain.write_key(path, k)
    except FileExistsError:
        raise Refused(f"{path} appeared meanwhile: run the import again", code="key_exists") from None
    except OSError as exc:
        raise StoreUnusable(f"cannot write the audit key {path}: {exc.strerror or exc}", code="bad_key") from None
    checked = _check_against_store(path, kid)
    emit({"key_id": kid, "path": str(path), "created": True, "checked": checked},
         f"imported audit key {kid} into {path}" + ("" if checked else " (no store to check it against yet)"))


def _check_against_store(path: Path, kid: str) -> bool:
    """Open the store with the imported key: a shared store records its key's fingerprint and
    refuses another (exit 6 from the store); the key just written is then taken back (exit 4).
    False when there is no store yet (``tower init --db`` will check)."""
    if not db_path().exists():
        return False
    from tui.clikit import run

    try:
        run(lambda s: s.audit_head(), reap=False)
    except StoreUnusable as exc:
        if exc.code == "bad_key":
            path.unlink(missing_ok=True)
            raise Refused(f"key {kid} does not sign this store: {exc.message}", code="key_mismatch") from None
        raise
    except NotFound:
        return False
    return True
