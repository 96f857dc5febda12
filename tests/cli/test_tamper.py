"""Tampering with the audit log through plain sqlite3 is named by `tower audit verify`."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from tests.conftest import run_tower

pytestmark = pytest.mark.sqlite_only  # damages the file; tests/pg/test_pg_backend.py tampers with Postgres


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A store with a dozen real audit events, made once by the real command line."""
    db = tmp_path_factory.mktemp("pristine") / "tower.db"

    def tower(*args):
        result = run_tower("--db", str(db), *args)
        assert result.code == 0, result
        return result

    tower("init")
    for i in range(4):
        tower("task", "add", f"task {i}")
    for agent in ("a", "b"):
        lease = json.loads(tower("task", "claim", "--agent", agent, "--json").stdout)["data"]["lease_id"]
        tower("claim", lease, f"src/{agent}.py")
        tower("task", "done", lease)
    tower("audit", "verify")
    assert not db.with_name("tower.db-wal").exists() or db.with_name("tower.db-wal").stat().st_size == 0
    return db.parent


@pytest.fixture
def log(pristine, db_path):
    """A copy of the pristine store for this test to damage."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for name in ("tower.db", "audit.key"):
        shutil.copy2(pristine / name, db_path.parent / name)
    return db_path


def damage(db_path, *statements) -> None:
    conn = sqlite3.connect(db_path)
    with conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def verify(tower, *extra):
    result = tower("audit", "verify", *extra, "--json")
    assert result.code == 6, result
    return result.json["error"]


def test_edited_row(tower, log):
    damage(log, "UPDATE audit SET actor = 'mallory' WHERE seq = 4")
    error = verify(tower)
    assert error["data"]["seq"] == 4 and error["data"]["reason"] == "edited"
    assert "seq 4" in error["message"]


def test_deleted_row(tower, log):
    damage(log, "DELETE FROM audit WHERE seq = 5")
    error = verify(tower)
    assert error["data"]["reason"] == "deleted" and error["data"]["seq"] == 5
    assert "5" in error["message"]


def test_deleted_and_renumbered(tower, log):
    damage(log, "DELETE FROM audit WHERE seq = 5", "UPDATE audit SET seq = seq - 1 WHERE seq > 5")
    error = verify(tower)
    assert error["data"]["reason"] == "deleted" and error["data"]["seq"] == 5


def test_reordered_rows(tower, log):
    conn = sqlite3.connect(log)
    cols = "ts, actor, event, task_id, lease_id, approval_id, worktree, path, details, prev_hash, entry_hash, signature"
    a = conn.execute(f"SELECT {cols} FROM audit WHERE seq = 6").fetchone()
    b = conn.execute(f"SELECT {cols} FROM audit WHERE seq = 7").fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    with conn:
        conn.execute(f"UPDATE audit SET {sets} WHERE seq = 6", b)
        conn.execute(f"UPDATE audit SET {sets} WHERE seq = 7", a)
    conn.close()
    error = verify(tower)
    assert error["data"]["seq"] == 6 and error["data"]["reason"] == "reordered"


def test_forged_row_rehashed_without_the_key(tower, log):
    from core import audit as chain

    conn = sqlite3.connect(log)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM audit WHERE seq = 3").fetchone())
    row["actor"] = "mallory"
    row["details"] = json.loads(row["details"])
    forged = chain.compute_hash(row)
    with conn:
        conn.execute("UPDATE audit SET actor = 'mallory', entry_hash = ? WHERE seq = 3", (forged,))
    conn.close()
    error = verify(tower)
    assert error["data"]["seq"] == 3 and error["data"]["reason"] == "forged"


def test_truncated_tail_is_caught_only_with_a_head(tower, log):
    head = tower("audit", "head", "--json").data["head"]
    seq = int(head.split(":")[0])
    damage(log, f"DELETE FROM audit WHERE seq >= {seq - 1}")
    assert tower("audit", "verify").code == 0  # a chain alone cannot see a cut tail
    error = verify(tower, "--head", head)
    assert error["data"]["reason"] == "truncated"


def test_intact_log_passes_with_its_head(tower, log):
    head = tower("audit", "head").stdout.strip()
    result = tower("audit", "verify", "--head", head, "--json")
    assert result.code == 0 and result.data["head"] == head
    assert tower("audit", "verify", "--head", "nonsense").code == 2


# -- damage that is not a clean edit: verify names it (exit 6), tail prints what it can ----------

def loosen(db_path) -> None:
    """Rebuild the audit table without its constraints, as a tamperer with sqlite3 can."""
    damage(db_path, "CREATE TABLE audit_loose AS SELECT * FROM audit", "DROP TABLE audit",
           "ALTER TABLE audit_loose RENAME TO audit")


def tail(tower, *extra):
    """`audit tail` in both modes: it must answer (exit 0) however damaged the log is."""
    human = tower("audit", "tail", "-n", "100", *extra)
    assert human.code == 0, human
    assert "Traceback" not in human.stderr
    as_json = tower("audit", "tail", "-n", "100", "--json", *extra)
    assert as_json.code == 0, as_json
    return human.stdout.splitlines(), as_json.data


@pytest.mark.parametrize(
    ("statements", "why"),
    [
        (["UPDATE audit SET actor = CAST(x'6d616c6c6f72ff' AS TEXT) WHERE seq = 4"], "actor is not valid UTF-8"),
        (["UPDATE audit SET details = CAST(x'7b2278223a22ff227d' AS TEXT) WHERE seq = 4"],
         "details is not valid UTF-8"),
        (["UPDATE audit SET details = printf('%.*c', 100000, '[') || printf('%.*c', 100000, ']') WHERE seq = 4"],
         "details nested too deeply"),
        (["UPDATE audit SET details = x'7b7d' WHERE seq = 4"], "details is a blob"),
        (["UPDATE audit SET task_id = 'T1' WHERE seq = 4"], "task_id is not an integer"),
        (["UPDATE audit SET details = '[1, 2]' WHERE seq = 4"], "details is not a JSON object"),
        (["UPDATE audit SET details = '{\"x\": ' WHERE seq = 4"], "details is not valid JSON"),
    ],
    ids=["utf8-actor", "utf8-details", "deep-details", "blob-details", "text-task-id", "list-details",
         "broken-json"],
)
def test_undecodable_row_is_named_by_verify_and_marked_by_tail(tower, log, statements, why):
    damage(log, *statements)
    error = verify(tower)
    assert (error["data"]["seq"], error["data"]["reason"]) == (4, "edited"), error
    assert why in error["message"]
    lines, events = tail(tower)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # every row, in order
    marked = [e for e in events if e["damaged"]]
    assert [e["seq"] for e in marked] == [4] and why in marked[0]["damaged"]
    line = next(x for x in lines if x.split()[0] == "4")
    assert "damaged" in line and why in line
    assert all("damaged" not in x for x in lines if x.split()[0] != "4")


@pytest.mark.parametrize(
    ("column", "why"),
    [("actor", "actor is missing (NULL)"), ("details", "details is missing (NULL)"),
     ("ts", "ts is missing (NULL)"), ("prev_hash", "prev_hash is missing (NULL)"),
     ("entry_hash", "entry_hash is missing (NULL)"), ("signature", "signature is missing (NULL)")],
)
def test_nulls_in_required_columns(tower, log, column, why):
    loosen(log)
    damage(log, f"UPDATE audit SET {column} = NULL WHERE seq = 5")
    error = verify(tower)
    assert (error["data"]["seq"], error["data"]["reason"]) == (5, "edited"), error
    assert why in error["message"]
    _, events = tail(tower)
    assert [e["seq"] for e in events if e["damaged"]] == [5]


def test_a_seq_that_is_not_a_number(tower, log):
    loosen(log)
    damage(log, "UPDATE audit SET seq = 'five' WHERE seq = 5")
    error = verify(tower)
    assert error["data"]["reason"] in ("edited", "deleted") and error["data"]["seq"] == 5, error
    lines, events = tail(tower)
    assert any(e["damaged"] and "seq" in e["damaged"] for e in events)


def test_a_huge_value_is_named_quickly(tower, log):
    """20 MB of details: verify must not hash it two thousand times looking for where it moved."""
    damage(log, "UPDATE audit SET details = json_object('x', hex(zeroblob(10000000))) WHERE seq = 3")
    result = tower("audit", "verify", "--json", timeout=30)
    assert result.code == 6 and result.json["error"]["data"]["seq"] == 3
    assert result.json["error"]["data"]["reason"] == "edited"


def test_a_missing_seq_is_marked_by_the_human_tail(tower, log):
    damage(log, "DELETE FROM audit WHERE seq = 5")
    lines, events = tail(tower)
    assert 5 not in [e["seq"] for e in events]
    at = [i for i, x in enumerate(lines) if x.split()[0] == "4"][0]
    assert "seq 5 missing" in lines[at + 1] and "tower audit verify" in lines[at + 1]


def test_a_log_without_its_table_is_exit_6_with_one_line(tower, log):
    damage(log, "DROP TABLE audit")
    for args in (["audit", "verify"], ["audit", "tail"]):
        result = tower(*args)
        assert result.code == 6, result
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
