"""Tampering with the audit log through plain sqlite3 is named by `tower audit verify`."""

from __future__ import annotations

import sqlite3

import pytest


@pytest.fixture
def log(tower, db_path):
    """A store with a dozen real audit events."""
    tower("init")
    for i in range(4):
        tower("task", "add", f"task {i}")
    for agent in ("a", "b"):
        lease = tower("task", "claim", "--agent", agent, "--json").data["lease_id"]
        tower("claim", lease, f"src/{agent}.py")
        tower("task", "done", lease)
    assert tower("audit", "verify").code == 0
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
    import json

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
