"""The tamper-evident audit chain.

Each audit row carries ``prev_hash`` (the previous row's ``entry_hash``, or
:data:`GENESIS_HASH` for seq 1), ``entry_hash`` = SHA-256 of the canonical JSON
of :data:`HASHED_FIELDS`, and ``signature`` = HMAC-SHA256 of ``entry_hash``
under the store's secret key.  Editing, deleting, reordering or inserting rows
breaks the chain; recomputing hashes without the key breaks the signatures.
Cutting off the tail leaves a valid chain, which is why a head (``SEQ:HASH``)
kept elsewhere can be checked too.

Pure: no database access.  The store feeds rows to :func:`verify_chain` and
may supply a lookup callback that is used only to explain a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from core.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Reason = Literal["edited", "deleted", "reordered", "forged", "truncated", "inserted", "unreadable"]

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq",
    "ts",
    "actor",
    "event",
    "task_id",
    "lease_id",
    "approval_id",
    "worktree",
    "path",
    "details",
    "prev_hash",
)
KEY_BYTES = 32

# How far a renumbered or moved row is searched for its original seq.
_SEARCH_WINDOW = 1000
_HEAD_RE = re.compile(r"([1-9][0-9]*):([0-9a-fA-F]{64})")

# Past this size a row that fails its hash is not searched for elsewhere in the log: the
# search re-hashes it up to 2 * _SEARCH_WINDOW times, and a tamperer chooses the size.
_EXPLAIN_MAX_BYTES = 64 * 1024

_REQUIRED_TEXT = ("ts", "actor", "event", "details", "prev_hash", "entry_hash", "signature")
_OPTIONAL_TEXT = ("worktree", "path")
_OPTIONAL_INT = ("task_id", "lease_id", "approval_id")
ROW_FIELDS = ("seq", *HASHED_FIELDS[1:], "entry_hash", "signature")


class Undecodable(bytes):
    """The bytes of a text column that are not UTF-8. Tower never writes such a value; a
    reader gives it in place of the text (sqlite3 would raise for the whole row)."""


@record(frozen=True)
class Unreadable:
    """Stands in a row stream where the database could not be read any further."""

    message: str


class AuditKeyError(Exception):
    """The audit key file is missing, unreadable, malformed or too open; ``str()`` is one line."""


@record(frozen=True)
class Finding:
    """The first bad seq of a chain and why."""

    seq: int
    reason: Reason
    message: str


@record(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain`.

    ``checked`` counts the rows that verified before any failure; ``head`` is
    ``format_head`` of the last of them (None if there is none).
    """

    ok: bool
    checked: int
    head: str | None
    finding: Finding | None


# --- hashing and signing -------------------------------------------------------


def canonical(entry: Mapping[str, Any]) -> bytes:
    """Return the canonical UTF-8 JSON encoding of the hashed fields of ``entry``.

    ``details`` may be a JSON string (as stored) or an object; it is encoded
    as a parsed object so that the stored spacing and key order never matter.
    Raises KeyError for a missing field and ValueError/TypeError for content
    that is not strict JSON (for example NaN).
    """
    return _encode(_hashed_fields(entry))


def compute_hash(entry: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of :func:`canonical` of ``entry``."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def sign(key: bytes, entry_hash: str) -> str:
    """Return the HMAC-SHA256 hex signature of ``entry_hash`` under ``key``."""
    return hmac.new(key, entry_hash.encode("utf-8"), hashlib.sha256).hexdigest()


def check_signature(key: bytes, entry_hash: str, signature: str) -> bool:
    """Return True if ``signature`` is ``sign(key, entry_hash)``, in constant time."""
    if not isinstance(entry_hash, str) or not isinstance(signature, str):
        return False
    # Compared as bytes: compare_digest refuses non-ASCII str, and a tampered
    # row may hold anything.
    return hmac.compare_digest(sign(key, entry_hash).encode(), signature.encode("utf-8"))


def field_problem(name: str, value: Any) -> str | None:
    """What is wrong with one stored field of an audit row (None: of the right type).

    Only types and encodings: whether the content is authentic is the chain's business.
    """
    if isinstance(value, Undecodable):
        return f"{name} is not valid UTF-8"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{name} is a blob, not {'an integer' if name in ('seq', *_OPTIONAL_INT) else 'text'}"
    if name == "seq" or name in _OPTIONAL_INT:
        if value is None and name != "seq":
            return None
        if value is None:
            return "seq is missing (NULL)"
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} is not an integer ({_short(value)})"
        return None
    if value is None:
        return f"{name} is missing (NULL)" if name in _REQUIRED_TEXT else None
    if name == "details" and isinstance(value, dict):  # already parsed (verify_chain takes either)
        return None
    if not isinstance(value, str):
        return f"{name} is not text ({_short(value)})"
    return None


def load_details(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """Stored ``details`` text parsed: ``(object, None)``, or ``(None, why it is not one)``."""
    try:
        value = json.loads(text)
    except RecursionError:
        return None, "details nested too deeply to read"
    except MemoryError:
        return None, "details too large to read"
    except ValueError:
        return None, "details is not valid JSON"
    if not isinstance(value, dict):
        return None, "details is not a JSON object"
    return value, None


def details_problem(text: str) -> str | None:
    """Why stored ``details`` text is not a JSON object (None if it is)."""
    return load_details(text)[1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _row_problem(row: Mapping[str, Any]) -> str | None:
    for name in ROW_FIELDS[1:]:
        try:
            value = row[name]
        except (KeyError, IndexError):  # sqlite3.Row raises IndexError
            return f"{name} is missing (no such column)"
        problem = field_problem(name, value)
        if problem is not None:
            return problem
    return None


def _hashed_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: entry[name] for name in HASHED_FIELDS}
    if isinstance(fields["details"], (str, bytes)):
        fields["details"] = json.loads(fields["details"])
    return fields


def _encode(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _digest(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(_encode(fields)).hexdigest()


# --- key file ----------------------------------------------------------------------


def create_key(path: Path) -> bytes:
    """Create a new random key file at ``path`` (mode 0600, hex text) and return the key.

    Never overwrites: raises FileExistsError if ``path`` exists (even as a
    dangling symlink). The key is written and synced under a temporary name
    and then hard-linked into place, so a process racing to read it never sees
    a half-written key.
    """
    key = os.urandom(KEY_BYTES)
    write_key(Path(path), key)
    return key


def write_key(path: Path, key: bytes) -> None:
    """Write ``key`` to a new key file at ``path`` as :func:`create_key` does (0600, atomic,
    never over an existing file: FileExistsError)."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"an audit key is {KEY_BYTES} bytes")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            data = (key.hex() + "\n").encode("ascii")
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # atomic, and fails if the key already exists
    finally:
        os.unlink(tmp)


def parse_key(text: str) -> bytes:
    """The key in an exported key text (``2 * KEY_BYTES`` hex digits, surrounding
    whitespace allowed); ValueError with a one-line message that never echoes the text."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(f"not an audit key: expected {2 * KEY_BYTES} hex digits")
    return key


KEY_ID_LABEL = b"tower audit key id\n"  # as store.db.key_fingerprint: one fingerprint everywhere


def key_id(key: bytes) -> str:
    """A fingerprint that names a key without revealing it: hosts compare it (and a shared
    store records it) to tell whether they sign with the same key."""
    return hashlib.sha256(KEY_ID_LABEL + key).hexdigest()[:32]


def load_key(path: Path) -> bytes:
    """Read the key written by :func:`create_key`.

    Raises :class:`AuditKeyError` if the file is missing, unreadable, not
    exactly ``2 * KEY_BYTES`` hex digits, or accessible to group or others.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AuditKeyError(f"audit key {path} not found") from None
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit key {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuditKeyError(f"audit key {path} is not a regular file")
        # Write access matters as much as read: whoever can replace the key
        # can re-sign a rewritten log.
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise AuditKeyError(
                f"audit key {path} is accessible by group or others (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        raw = os.read(fd, 4 * KEY_BYTES)
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit key {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError included
        key = b""
    if len(key) != KEY_BYTES:
        raise AuditKeyError(
            f"audit key {path} is malformed: expected {2 * KEY_BYTES} hex digits"
        )
    return key


# --- head ------------------------------------------------------------------------


def format_head(seq: int, entry_hash: str) -> str:
    """Return the head ``SEQ:HASH`` that a person keeps to detect truncation."""
    return f"{seq}:{entry_hash}"


def parse_head(text: str) -> tuple[int, str]:
    """Parse ``SEQ:HASH`` (seq >= 1, 64 hex digits) into ``(seq, lowercase hash)``.

    Raises ValueError with a one-line message on anything else.
    """
    m = _HEAD_RE.fullmatch(text.strip())
    if m is None:
        shown = f"'{text}'" if text.isprintable() and len(text) <= 80 else repr(text[:80])
        raise ValueError(f"head must be SEQ:HASH (seq >= 1, 64 hex digits), got {shown}")
    return int(m.group(1)), m.group(2).lower()


# --- verification ------------------------------------------------------------------


def verify_chain(
    rows: Iterable[Mapping[str, Any]],
    key: bytes,
    locate: Callable[[str], int | None] | None = None,
    head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Re-derive the chain from ``rows`` (ascending seq) and report the first bad seq.

    Streams: memory stays constant however long the log.  ``locate(hash)``
    returns the seq of the row whose ``entry_hash`` is ``hash`` (or None); it
    is called only once a row has failed, to tell a moved row from deleted
    ones.  Without it, a row moved forward is reported as "deleted".
    ``head=(seq, hash)`` additionally requires the log to reach ``seq`` and
    to hold ``hash`` there.
    """
    prev_hash = GENESIS_HASH
    last = 0
    head_hash_seen = GENESIS_HASH if head is not None and head[0] == 0 else None
    for row in rows:
        if isinstance(row, Unreadable):
            return VerifyResult(False, last, _head_or_none(last, prev_hash), Finding(
                last + 1, "unreadable", f"the log cannot be read after seq {last}: {row.message}"))
        finding = _check_row(row, last + 1, prev_hash, key, locate)
        if finding is not None:
            return VerifyResult(False, last, _head_or_none(last, prev_hash), finding)
        last, prev_hash = last + 1, row["entry_hash"]
        if head is not None and last == head[0]:
            head_hash_seen = prev_hash

    finding = None
    if head is not None:
        head_seq, head_hash = head
        if last < head_seq:
            finding = Finding(
                last + 1,
                "truncated",
                f"log ends at seq {last} but the recorded head is {head_seq}: "
                "the tail was cut off",
            )
        elif head_hash_seen != head_hash.lower():
            finding = Finding(
                head_seq,
                "edited",
                f"head hash mismatch at seq {head_seq}: the log holds "
                f"{str(head_hash_seen)[:16]}, the recorded head says {head_hash[:16]}",
            )
    return VerifyResult(finding is None, last, _head_or_none(last, prev_hash), finding)


def _head_or_none(seq: int, entry_hash: str) -> str | None:
    return format_head(seq, entry_hash) if seq else None


def _check_row(
    row: Mapping[str, Any],
    expected: int,
    prev_hash: str,
    key: bytes,
    locate: Callable[[str], int | None] | None,
) -> Finding | None:
    values = []
    for name in ("seq", "entry_hash", "signature"):
        try:
            values.append(row[name])
        except (KeyError, IndexError):  # sqlite3.Row raises IndexError
            return Finding(expected, "edited", f"entry after seq {expected - 1} has no {name}")
    seq, entry_hash, signature = values
    if not isinstance(seq, int) or isinstance(seq, bool):
        return Finding(
            expected, "edited", f"entry after seq {expected - 1} has a malformed seq {seq!r}"
        )
    if seq > expected:
        gap = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
        return Finding(expected, "deleted", f"{gap} missing (deleted)")
    if seq < expected:
        return Finding(
            seq, "reordered", f"seq {seq} appears again after seq {expected - 1} (reordered)"
        )

    problem = _row_problem(row)
    if problem is None:
        try:
            fields = _hashed_fields(row)
            encoded = _encode(fields)
        except RecursionError:
            problem = "details nested too deeply to read"
        except MemoryError:
            problem = "too large to read"
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            problem = details_problem(row["details"]) or type(exc).__name__
        else:
            if not isinstance(fields["details"], dict):
                problem = "details is not a JSON object"
    if problem is not None:
        return Finding(seq, "edited", f"entry seq {seq} was edited: it is malformed ({problem})")
    if hashlib.sha256(encoded).hexdigest() != entry_hash:
        if len(encoded) > _EXPLAIN_MAX_BYTES:
            return Finding(
                seq, "edited", f"entry seq {seq} was edited: its content no longer matches its hash"
            )
        return _explain_mismatch(fields, entry_hash, seq, locate)

    if not check_signature(key, entry_hash, signature):
        return Finding(
            seq,
            "forged",
            f"seq {seq}: hash is consistent but the signature is not from this store's key "
            "(forged or re-hashed)",
        )

    if fields["prev_hash"] != prev_hash:
        found = locate(fields["prev_hash"]) if locate is not None else None
        if found is not None:
            return Finding(
                seq, "reordered", f"seq {seq} follows seq {found}, not seq {seq - 1} (reordered)"
            )
        if seq == 1:
            return Finding(
                1, "deleted", "seq 1 does not start the chain: earlier entries were removed"
            )
        return Finding(
            seq,
            "deleted",
            f"seq {seq} does not follow seq {seq - 1}: an entry was removed or inserted",
        )
    return None


def _explain_mismatch(
    fields: dict[str, Any],
    entry_hash: Any,
    seq: int,
    locate: Callable[[str], int | None] | None,
) -> Finding:
    """Classify a row whose content does not hash to its ``entry_hash``.

    A row still intact but at the wrong place hashes correctly under its
    original seq, so look for that seq: near this one, or right after its
    predecessor wherever that now is.
    """

    def hashes_at(s: int) -> bool:
        return _digest({**fields, "seq": s}) == entry_hash

    pred = locate(fields["prev_hash"]) if locate is not None else None
    if pred is not None and pred + 1 != seq and hashes_at(pred + 1):
        origin: int | None = pred + 1
    else:
        candidates = (s for k in range(1, _SEARCH_WINDOW + 1) for s in (seq + k, seq - k))
        origin = next((s for s in candidates if s >= 1 and hashes_at(s)), None)

    if origin is None:
        return Finding(
            seq, "edited", f"entry seq {seq} was edited: its content no longer matches its hash"
        )
    if origin < seq:
        # Every row before `seq` verified, so the original is still at `origin`.
        return Finding(seq, "inserted", f"entry at seq {seq} is a copy of seq {origin} (inserted)")
    if pred is not None:
        # Its predecessor is still in the log: the row was moved, not left
        # behind by a deletion (a deleted predecessor cannot be located).
        return Finding(
            seq, "reordered", f"entry at seq {seq} belongs at seq {origin} (reordered)"
        )
    k = origin - seq
    what = "1 entry" if k == 1 else f"{k} entries"
    verb = "was" if k == 1 else "were"
    return Finding(seq, "deleted", f"{what} before seq {seq} {verb} deleted and the log renumbered")
