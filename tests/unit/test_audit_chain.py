"""core.audit: canonical hashing, signatures, key file, head, chain verification."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.audit import (
    GENESIS_HASH,
    HASHED_FIELDS,
    KEY_BYTES,
    AuditKeyError,
    Undecodable,
    Unreadable,
    Finding,
    canonical,
    check_signature,
    compute_hash,
    create_key,
    format_head,
    load_key,
    parse_head,
    sign,
    verify_chain,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

Row = dict[str, Any]


def seal(row: Row, key: bytes = KEY) -> Row:
    """Give ``row`` the hash and signature the store would write."""
    row["entry_hash"] = compute_hash(row)
    row["signature"] = sign(key, row["entry_hash"])
    return row


def make_chain(n: int = 20, key: bytes = KEY) -> list[Row]:
    rows: list[Row] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        details: Any = {"attempt": seq % 3, "note": "é→✓", "nested": {"b": [1, 2], "a": None}}
        if seq % 2:  # as the database returns it, with its own spacing
            details = json.dumps(details, indent=1)
        row = seal(
            {
                "seq": seq,
                "ts": f"2025-01-02T03:04:{seq:02d}.000000Z",
                "actor": "agent-a" if seq % 2 else "person",
                "event": "task.claimed",
                "task_id": seq,
                "lease_id": seq if seq % 4 else None,
                "approval_id": None,
                "worktree": "wt-1",
                "path": f"src/f{seq}.py",
                "details": details,
                "prev_hash": prev,
            },
            key,
        )
        rows.append(row)
        prev = row["entry_hash"]
    return rows


def renumber(rows: list[Row]) -> list[Row]:
    """Rewrite seq to 1..n, as someone closing a gap would (without the key)."""
    return [{**row, "seq": i} for i, row in enumerate(rows, 1)]


def locator(rows: list[Row]):
    """The store's locate(): the seq holding a given entry_hash, by lookup."""
    index = {row["entry_hash"]: row["seq"] for row in rows}
    return index.get


def verify(rows: list[Row], **kwargs: Any):
    return verify_chain(iter(rows), KEY, **kwargs)


def assert_finding(result, seq: int, reason: str, *fragments: str) -> Finding:
    assert not result.ok
    finding = result.finding
    assert (finding.seq, finding.reason) == (seq, reason), finding
    for fragment in fragments:
        assert fragment in finding.message, finding.message
    assert "\n" not in finding.message
    return finding


@pytest.fixture
def chain() -> list[Row]:
    return make_chain()


# --- canonical encoding and hashing -----------------------------------------------


def test_canonical_golden() -> None:
    entry = {
        "seq": 1,
        "ts": "2025-01-01T00:00:00Z",
        "actor": "ann",
        "event": "task.added",
        "task_id": 3,
        "lease_id": None,
        "approval_id": None,
        "worktree": None,
        "path": "src/ü.py",
        "details": '{"z": 1, "a": [1.5, "é"]}',
        "prev_hash": GENESIS_HASH,
        "entry_hash": "not hashed",
        "signature": "not hashed",
        "extra": "ignored",
    }
    expected = (
        '{"actor":"ann","approval_id":null,"details":{"a":[1.5,"é"],"z":1},'
        '"event":"task.added","lease_id":null,"path":"src/ü.py",'
        f'"prev_hash":"{GENESIS_HASH}","seq":1,"task_id":3,'
        '"ts":"2025-01-01T00:00:00Z","worktree":null}'
    ).encode()
    assert canonical(entry) == expected
    assert compute_hash(entry) == hashlib.sha256(expected).hexdigest()


def test_canonical_ignores_stored_spacing_and_key_order(chain: list[Row]) -> None:
    row = chain[0]
    as_dict = {**row, "details": json.loads(row["details"])}
    compact = {**row, "details": json.dumps(as_dict["details"], separators=(",", ":"))}
    assert canonical(row) == canonical(as_dict) == canonical(compact)
    assert canonical(dict(reversed(list(row.items())))) == canonical(row)


def test_canonical_covers_every_hashed_field(chain: list[Row]) -> None:
    row = chain[3]
    for field in HASHED_FIELDS:
        changed = {**row, field: ["changed"]}
        assert compute_hash(changed) != compute_hash(row), field


def test_canonical_refuses_nan_and_missing_fields(chain: list[Row]) -> None:
    with pytest.raises(ValueError):
        canonical({**chain[0], "details": {"x": float("nan")}})
    row = dict(chain[0])
    del row["worktree"]
    with pytest.raises(KeyError):
        canonical(row)


def test_sign_and_check_signature() -> None:
    h = "ab" * 32
    sig = sign(KEY, h)
    assert len(sig) == 64 and int(sig, 16) >= 0
    assert check_signature(KEY, h, sig)
    assert not check_signature(OTHER_KEY, h, sig)
    assert not check_signature(KEY, "cd" * 32, sig)
    assert not check_signature(KEY, h, sig.upper())
    assert not check_signature(KEY, h, "")
    assert not check_signature(KEY, h, "é" * 64)  # non-ASCII must not raise
    assert not check_signature(KEY, h, None)  # type: ignore[arg-type]


# --- key file ----------------------------------------------------------------------


def test_create_and_load_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    old = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        key = create_key(path)
    finally:
        os.umask(old)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.hex() + "\n"
    assert load_key(path) == key
    assert create_key(tmp_path / "other.key") != key


def test_create_key_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    key = create_key(path)
    with pytest.raises(FileExistsError):
        create_key(path)
    assert load_key(path) == key
    dangling = tmp_path / "dangling.key"
    dangling.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        create_key(dangling)
    assert not (tmp_path / "elsewhere").exists()


def write_key_file(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_load_key_accepts_surrounding_whitespace(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k", "  " + KEY.hex().upper() + "\r\n")
    assert load_key(path) == KEY


def test_load_key_missing(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="not found"):
        load_key(tmp_path / "nope.key")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_load_key_refuses_open_permissions(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "audit.key", KEY.hex(), mode)
    with pytest.raises(AuditKeyError) as info:
        load_key(path)
    assert f"chmod 600 {path}" in str(info.value)
    assert f"{mode:04o}" in str(info.value)


def test_load_key_owner_only_modes_are_fine(tmp_path: Path) -> None:
    assert load_key(write_key_file(tmp_path / "k", KEY.hex(), 0o400)) == KEY


@pytest.mark.parametrize(
    "content",
    ["", "\n", KEY.hex()[:-2], KEY.hex() + "00", "zz" * 32, KEY.hex()[:-1] + "g", b"\xff" * 64],
    ids=["empty", "newline", "short", "long", "not-hex", "one-bad-digit", "binary"],
)
def test_load_key_refuses_bad_content(tmp_path: Path, content: str | bytes) -> None:
    path = write_key_file(tmp_path / "audit.key", content)
    with pytest.raises(AuditKeyError, match="malformed") as info:
        load_key(path)
    assert "\n" not in str(info.value)


def test_load_key_unreadable(tmp_path: Path) -> None:
    directory = tmp_path / "audit.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(AuditKeyError) as info:
        load_key(directory)
    assert str(directory) in str(info.value)


# --- head ------------------------------------------------------------------------


def test_head_round_trip() -> None:
    h = "0123456789abcdef" * 4
    assert format_head(42, h) == f"42:{h}"
    assert parse_head(format_head(42, h)) == (42, h)
    assert parse_head(f"  42:{h.upper()}\n") == (42, h)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "42",
        ":" + "a" * 64,
        "0:" + "a" * 64,
        "-1:" + "a" * 64,
        "x:" + "a" * 64,
        "042:" + "a" * 64,
        "1:" + "a" * 63,
        "1:" + "a" * 65,
        "1:" + "g" * 64,
        "1:" + "a" * 64 + ":2",
        "1 :" + "a" * 64,
        "1:\n" + "a" * 64,
    ],
)
def test_parse_head_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="SEQ:HASH") as info:
        parse_head(text)
    assert "\n" not in str(info.value)


# --- verification: intact chains ----------------------------------------------------


def test_intact_chain(chain: list[Row]) -> None:
    def must_not_locate(entry_hash: str) -> int | None:
        raise AssertionError("locate is for the failure path only")

    result = verify(chain, locate=must_not_locate)
    assert result.ok and result.finding is None
    assert result.checked == 20
    assert result.head == format_head(20, chain[-1]["entry_hash"])


def test_empty_log() -> None:
    result = verify([])
    assert result.ok and result.checked == 0 and result.head is None


def test_head_checks_pass(chain: list[Row]) -> None:
    assert verify(chain, head=(20, chain[19]["entry_hash"])).ok
    assert verify(chain, head=(7, chain[6]["entry_hash"])).ok  # the log grew since
    assert verify(chain, head=parse_head(format_head(7, chain[6]["entry_hash"].upper()))).ok


def test_verification_streams_and_stops_at_first_bad_row(chain: list[Row]) -> None:
    chain[4]["actor"] = "mallory"
    consumed = []

    def rows() -> Iterator[Row]:
        for row in chain:
            consumed.append(row["seq"])
            yield row

    result = verify_chain(rows(), KEY)
    assert_finding(result, 5, "edited")
    assert consumed == [1, 2, 3, 4, 5]
    assert result.checked == 4
    assert result.head == format_head(4, chain[3]["entry_hash"])


def test_wrong_key_is_forged_at_seq_1(chain: list[Row]) -> None:
    result = verify_chain(chain, OTHER_KEY)
    assert_finding(result, 1, "forged")
    assert result.checked == 0 and result.head is None


# --- verification: tampering ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", "mallory"), ("ts", "2025-01-02T03:04:00Z"), ("details", '{"note": "rewritten"}'),
     ("path", None), ("task_id", 8), ("approval_id", 1), ("prev_hash", "1" * 64)],
)
def test_edited_field(chain: list[Row], field: str, value: Any) -> None:
    chain[6][field] = value
    for locate in (None, locator(chain)):
        assert_finding(verify(chain, locate=locate), 7, "edited", "seq 7 was edited")


def test_edited_entry_hash(chain: list[Row]) -> None:
    chain[6]["entry_hash"] = "f" * 64
    assert_finding(verify(chain), 7, "edited")


def test_details_spacing_is_not_an_edit(chain: list[Row]) -> None:
    chain[2]["details"] = json.dumps(json.loads(chain[2]["details"]), separators=(",", ":"))
    assert verify(chain).ok


def test_malformed_rows_are_reported_not_raised(chain: list[Row]) -> None:
    bad_json = [dict(r) for r in chain]
    bad_json[3]["details"] = "{not json"
    assert_finding(verify(bad_json), 4, "edited", "malformed")

    bad_seq = [dict(r) for r in chain]
    bad_seq[3]["seq"] = "4"
    assert_finding(verify(bad_seq), 4, "edited", "malformed seq")

    no_sig = [dict(r) for r in chain]
    del no_sig[3]["signature"]
    assert_finding(verify(no_sig), 4, "edited", "has no signature")

    null_sig = [dict(r) for r in chain]
    null_sig[3]["signature"] = None
    assert_finding(verify(null_sig), 4, "edited", "signature is missing (NULL)")


def test_deleted_row(chain: list[Row]) -> None:
    del chain[6]
    assert_finding(verify(chain), 7, "deleted", "seq 7 missing")


def test_deleted_rows_range(chain: list[Row]) -> None:
    del chain[6:9]
    assert_finding(verify(chain), 7, "deleted", "seq 7..9 missing")


def test_deleted_first_row(chain: list[Row]) -> None:
    assert_finding(verify(chain[1:]), 1, "deleted", "seq 1 missing")


@pytest.mark.parametrize("k", [1, 3])
def test_deleted_and_renumbered(chain: list[Row], k: int) -> None:
    tampered = renumber(chain[:6] + chain[6 + k :])
    expected = "1 entry before seq 7 was" if k == 1 else f"{k} entries before seq 7 were"
    for locate in (None, locator(tampered)):
        assert_finding(verify(tampered, locate=locate), 7, "deleted", expected)


def test_deleted_first_rows_and_renumbered(chain: list[Row]) -> None:
    tampered = renumber(chain[2:])
    result = verify(tampered, locate=locator(tampered))
    assert_finding(result, 1, "deleted", "2 entries before seq 1")


def test_last_row_deleted_needs_the_head(chain: list[Row]) -> None:
    head = (20, chain[-1]["entry_hash"])
    assert verify(chain[:-1]).ok  # a chain alone cannot tell
    result = verify(chain[:-1], head=head)
    assert_finding(result, 20, "truncated", "log ends at seq 19", "recorded head is 20")
    assert result.checked == 19
    assert result.head == format_head(19, chain[18]["entry_hash"])


def test_truncated(chain: list[Row]) -> None:
    result = verify(chain[:12], head=(20, chain[-1]["entry_hash"]))
    assert_finding(result, 13, "truncated", "log ends at seq 12 but the recorded head is 20")


def test_truncated_to_nothing(chain: list[Row]) -> None:
    assert_finding(verify([], head=(3, chain[2]["entry_hash"])), 1, "truncated", "seq 0")


def test_head_hash_mismatch(chain: list[Row]) -> None:
    result = verify(chain, head=(10, "e" * 64))
    assert_finding(result, 10, "edited", "head hash mismatch at seq 10")
    assert result.checked == 20


def test_rewritten_with_the_key_is_caught_by_the_head(chain: list[Row]) -> None:
    """Someone holding the key rebuilds the tail: only the kept head can tell."""
    head = (15, chain[14]["entry_hash"])
    rewritten = chain[:10]
    for row in chain[10:]:
        prev = rewritten[-1]["entry_hash"]
        rewritten.append(seal({**row, "actor": "mallory", "prev_hash": prev}))
    assert verify(rewritten).ok
    assert_finding(verify(rewritten, head=head), 15, "edited", "head hash mismatch")


def test_swapped_adjacent_rows(chain: list[Row]) -> None:
    # Contents of seq 5 and 6 exchanged, the seq column left in place.
    tampered = [dict(r) for r in chain]
    tampered[4], tampered[5] = {**chain[5], "seq": 5}, {**chain[4], "seq": 6}
    result = verify(tampered, locate=locator(tampered))
    assert_finding(result, 5, "reordered", "entry at seq 5 belongs at seq 6")
    # Without the lookup a row moved one place up looks like one deleted row.
    assert_finding(verify(tampered), 5, "deleted", "1 entry before seq 5")


def test_swapped_distant_rows(chain: list[Row]) -> None:
    tampered = [dict(r) for r in chain]
    tampered[4], tampered[11] = {**chain[11], "seq": 5}, {**chain[4], "seq": 12}
    assert_finding(
        verify(tampered, locate=locator(tampered)), 5, "reordered", "belongs at seq 12"
    )


def test_moved_far_beyond_the_search_window() -> None:
    rows = make_chain(1205)
    tampered = [dict(r) for r in rows]
    tampered[2], tampered[1202] = {**rows[1202], "seq": 3}, {**rows[2], "seq": 1203}
    # Found through its predecessor (seq 1202 is still in place).
    assert_finding(
        verify(tampered, locate=locator(tampered)), 3, "reordered", "belongs at seq 1203"
    )
    assert_finding(verify(tampered), 3, "edited")  # nothing to go on without the lookup


def test_copy_inserted(chain: list[Row]) -> None:
    tampered = renumber(chain[:9] + [chain[2]] + chain[9:])
    for locate in (None, locator(tampered)):
        assert_finding(
            verify(tampered, locate=locate), 10, "inserted", "seq 10 is a copy of seq 3"
        )


def test_rehashed_without_the_key(chain: list[Row]) -> None:
    chain[6]["actor"] = "mallory"
    chain[6]["entry_hash"] = compute_hash(chain[6])
    assert_finding(verify(chain), 7, "forged", "seq 7", "signature")


def test_appended_row_without_the_key(chain: list[Row]) -> None:
    extra = seal({**chain[-1], "seq": 21, "prev_hash": chain[-1]["entry_hash"]}, OTHER_KEY)
    assert_finding(verify(chain + [extra]), 21, "forged")


def test_signed_row_that_does_not_chain(chain: list[Row]) -> None:
    # A genuinely signed row for seq 8 from another history (e.g. a spliced
    # backup): hash and signature fine, link broken.
    fork = [dict(r) for r in chain]
    fork[7] = seal({**chain[7], "actor": "other-history", "prev_hash": "ab" * 32})
    assert_finding(verify(fork), 8, "deleted", "seq 8 does not follow seq 7")
    assert_finding(verify(fork, locate=lambda h: None), 8, "deleted")


def test_signed_row_that_follows_another_row(chain: list[Row]) -> None:
    fork = [dict(r) for r in chain]
    fork[7] = seal({**chain[7], "prev_hash": chain[4]["entry_hash"]})
    assert_finding(
        verify(fork, locate=locator(fork)), 8, "reordered", "seq 8 follows seq 5, not seq 7"
    )


def test_first_row_must_start_from_genesis(chain: list[Row]) -> None:
    first = seal({**chain[0], "prev_hash": "ab" * 32})
    assert_finding(verify([first, *chain[1:]]), 1, "deleted", "seq 1 does not start the chain")


def test_repeated_seq_is_reported_as_reordered(chain: list[Row]) -> None:
    result = verify(chain[:5] + [chain[4]] + chain[5:])
    assert_finding(result, 5, "reordered", "seq 5 appears again")


def test_sqlite_rows_verify(chain: list[Row]) -> None:
    """The store hands over sqlite3.Row objects; they are Mappings enough."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    columns = [*HASHED_FIELDS, "entry_hash", "signature"]
    db.execute(f"CREATE TABLE audit ({', '.join(columns)})")
    db.executemany(
        f"INSERT INTO audit VALUES ({', '.join('?' * len(columns))})",
        [
            [json.dumps(v) if isinstance(v, dict) else v for v in (r[c] for c in columns)]
            for r in chain
        ],
    )
    result = verify_chain(db.execute("SELECT * FROM audit ORDER BY seq"), KEY)
    assert result.ok and result.checked == 20
    db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 9")
    assert_finding(verify_chain(db.execute("SELECT * FROM audit ORDER BY seq"), KEY), 9, "edited")
    partial = db.execute("SELECT seq, entry_hash FROM audit ORDER BY seq")
    assert_finding(verify_chain(partial, KEY), 1, "edited", "has no signature")
    db.close()


# -- damage that is not a clean edit: named, never raised ------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("actor", Undecodable(b"mal\xfflory"), "actor is not valid UTF-8"),
        ("details", Undecodable(b'{"x": "\xff"}'), "details is not valid UTF-8"),
        ("actor", b"mallory", "actor is a blob, not text"),
        ("task_id", b"\x07", "task_id is a blob, not an integer"),
        ("ts", 12345, "ts is not text (12345)"),
        ("task_id", "T7", "task_id is not an integer ('T7')"),
        ("task_id", True, "task_id is not an integer (True)"),
        ("event", None, "event is missing (NULL)"),
        ("prev_hash", None, "prev_hash is missing (NULL)"),
        ("entry_hash", 7.5, "entry_hash is not text (7.5)"),
        ("details", "[" * 100_000 + "]" * 100_000, "details nested too deeply to read"),
        ("details", "[1, 2]", "details is not a JSON object"),
        ("details", '{"x": "\\ud800"}', "malformed (UnicodeEncodeError)"),
    ],
)
def test_undecodable_and_mistyped_values_are_named(chain: list[Row], field: str, value: Any, why: str) -> None:
    chain[6][field] = value
    for locate in (None, locator(chain)):
        assert_finding(verify(chain, locate=locate), 7, "edited", "seq 7 was edited", why)


def test_a_missing_column_is_named(chain: list[Row]) -> None:
    del chain[6]["ts"]
    assert_finding(verify(chain), 7, "edited", "ts is missing (no such column)")


def test_an_unreadable_log_is_named_where_reading_stopped(chain: list[Row]) -> None:
    rows = [*chain[:5], Unreadable("database disk image is malformed"), *chain[5:]]
    finding = assert_finding(verify(rows), 6, "unreadable", "after seq 5", "disk image is malformed")
    assert verify(rows).checked == 5 and finding


def test_a_huge_edited_row_is_not_searched_for_elsewhere(chain: list[Row]) -> None:
    """The search for where a row moved re-hashes it up to 2,000 times: not for a tamperer's 1 MB."""
    located: list[str] = []

    def locate(entry_hash: str) -> int | None:
        located.append(entry_hash)
        return None

    chain[6]["details"] = json.dumps({"x": "y" * 1_000_000})
    assert_finding(verify(chain, locate=locate), 7, "edited", "no longer matches its hash")
    assert located == []
    chain[6]["details"] = json.dumps({"x": "y"})  # a small edit is still explained
    assert_finding(verify(chain, locate=locate), 7, "edited")
    assert located
