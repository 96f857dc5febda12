"""`tower key`: the audit key reaches another host out of band, never through the store."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import git, run_tower


def clone(origin: Path, where: Path) -> Path:
    git("clone", "-q", str(origin), str(where), cwd=origin.parent)
    return where.resolve()


@pytest.fixture
def host_a(repo: Path) -> Path:
    assert run_tower("init", cwd=repo).code == 0
    return repo


def key_file(root: Path) -> Path:
    return root / ".git" / "tower" / "audit.key"


def test_an_exported_key_lets_a_second_host_verify_and_sign_the_same_log(host_a, tmp_path):
    host_b = clone(host_a, tmp_path / "host-b")
    assert run_tower("task", "add", "signed on A", cwd=host_a).code == 0
    exported = run_tower("key", "export", cwd=host_a)
    assert exported.code == 0, exported.stderr

    imported = run_tower("--json", "key", "import", cwd=host_b, input=exported.stdout)
    assert imported.code == 0, imported.stdout
    assert imported.data["created"] is True
    a_id = run_tower("--json", "key", "id", cwd=host_a).data["key_id"]
    assert imported.data["key_id"] == a_id == run_tower("--json", "key", "id", cwd=host_b).data["key_id"]
    assert stat.S_IMODE(key_file(host_b).stat().st_mode) == 0o600
    assert a_id not in exported.stdout  # the fingerprint is not the key

    # B now holds the key that signed A's log: B verifies A's events and appends its own
    shutil.copy(host_a / ".git" / "tower" / "tower.db", host_b / ".git" / "tower" / "tower.db")
    assert run_tower("audit", "verify", cwd=host_b).code == 0
    assert run_tower("task", "add", "signed on B", cwd=host_b).code == 0
    shutil.copy(host_b / ".git" / "tower" / "tower.db", host_a / ".git" / "tower" / "tower.db")
    verified = run_tower("--json", "audit", "verify", cwd=host_a)
    assert verified.code == 0, verified.stdout


def test_a_host_with_its_own_key_cannot_verify_the_log_and_import_will_not_replace_it(host_a, tmp_path):
    host_b = clone(host_a, tmp_path / "host-b")
    assert run_tower("init", cwd=host_b).code == 0  # B made its own key
    own = key_file(host_b).read_bytes()
    shutil.copy(host_a / ".git" / "tower" / "tower.db", tmp_path / "a.db")
    shutil.copy(tmp_path / "a.db", host_b / ".git" / "tower" / "tower.db")
    assert run_tower("audit", "verify", cwd=host_b).code == 6  # signed with another key: forged

    exported = run_tower("key", "export", cwd=host_a).stdout
    refused = run_tower("--json", "key", "import", cwd=host_b, input=exported)
    assert refused.code == 4 and refused.json["error"]["code"] == "key_exists"
    assert key_file(host_b).read_bytes() == own  # untouched

    again = run_tower("--json", "key", "import", cwd=host_a, input=exported)  # the same key: a no-op
    assert again.code == 0 and again.data["created"] is False


@pytest.mark.parametrize("text", ["", "not a key", "ab" * 31, "zz" * 32, "ab" * 33])
def test_a_malformed_key_is_bad_input_and_never_echoed(tmp_path, repo, text):
    result = run_tower("--json", "key", "import", cwd=repo, input=text + "\n")
    assert result.code == 2 and result.json["error"]["code"] == "bad_key"
    if text:
        assert text not in result.stdout
    assert not key_file(repo).exists()


def test_export_to_a_file_is_private_and_never_overwrites(host_a, tmp_path):
    out = tmp_path / "carry.key"
    assert run_tower("key", "export", "--out", str(out), cwd=host_a).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text() == key_file(host_a).read_text()
    assert run_tower("key", "export", "--out", str(out), cwd=host_a).code == 4
    host_b = clone(host_a, tmp_path / "host-b")
    assert run_tower("key", "import", "--file", str(out), cwd=host_b).code == 0
    assert key_file(host_b).read_text() == key_file(host_a).read_text()


def test_without_a_key_id_and_export_say_how_to_get_one(repo):
    for args in (["key", "id"], ["key", "export"]):
        result = run_tower("--json", *args, cwd=repo)
        assert result.code == 3 and result.json["error"]["code"] == "no_key", result.stdout


def test_an_agent_may_not_export_or_import_the_key(host_a, tmp_path):
    # an agent holding a lease is an agent, whatever it calls itself
    assert run_tower("task", "add", "x", cwd=host_a).code == 0
    assert run_tower("task", "claim", cwd=host_a, env={"TOWER_AGENT": "bot"}).code == 0
    exported = run_tower("--json", "key", "export", cwd=host_a, env={"TOWER_AGENT": "bot"})
    assert exported.code == 4 and exported.json["error"]["code"] == "person_only"
    assert key_file(host_a).read_text().strip() not in exported.stdout

    # and one the policy names, even on a host with no store yet
    host_b = clone(host_a, tmp_path / "host-b")
    (host_b / ".git" / "tower").mkdir()
    (host_b / ".git" / "tower" / "policy.toml").write_text('[agents]\nnames = ["claude-*"]\n')
    key = run_tower("key", "export", cwd=host_a).stdout
    refused = run_tower("--json", "key", "import", cwd=host_b, input=key, env={"TOWER_AGENT": "claude-1"})
    assert refused.code == 4 and refused.json["error"]["code"] == "person_only"
    assert not key_file(host_b).exists()


def test_key_id_is_the_fingerprint_a_shared_store_records():
    from core.audit import key_id
    from store.db import key_fingerprint

    key = bytes(range(32))
    assert key_id(key) == key_fingerprint(key)


def test_a_second_host_joins_a_shared_store_only_with_its_key(repo, tmp_path, pg_database):
    """Two clones ("hosts") against one PostgreSQL database: B's init is refused until B holds
    A's key; a wrong key is taken back at import; with the right one both sign one chain."""
    url = pg_database.url
    assert run_tower("init", "--db", url, cwd=repo, env={"TOWER_HOST": "host-a"}).code == 0
    host_b = clone(repo, tmp_path / "host-b")
    b = {"TOWER_HOST": "host-b"}

    refused = run_tower("--json", "init", "--db", url, cwd=host_b, env=b)
    assert refused.code == 6 and refused.json["error"]["code"] == "bad_key", refused.stdout
    assert "tower key import" in refused.json["error"]["message"]
    assert not key_file(host_b).exists()

    # a stray key on B (another store's): the store refuses it, the import takes it back
    other = tmp_path / "other"
    other.mkdir()
    git("init", "-q", cwd=other)
    assert run_tower("init", cwd=other).code == 0
    wrong = run_tower("key", "export", cwd=other).stdout
    (host_b / ".git" / "tower").mkdir(parents=True, exist_ok=True)
    (host_b / ".git" / "tower" / "store.toml").write_text(f'url = "{url}"\n')
    mismatch = run_tower("--json", "key", "import", cwd=host_b, env=b, input=wrong)
    assert mismatch.code == 4 and mismatch.json["error"]["code"] == "key_mismatch", mismatch.stdout
    assert not key_file(host_b).exists()

    right = run_tower("key", "export", cwd=repo).stdout
    imported = run_tower("--json", "key", "import", cwd=host_b, env=b, input=right)
    assert imported.code == 0 and imported.data["checked"] is True, imported.stdout
    assert run_tower("task", "add", "from B", cwd=host_b, env=b).code == 0
    assert run_tower("task", "add", "from A", cwd=repo, env={"TOWER_HOST": "host-a"}).code == 0
    for root in (repo, host_b):
        verified = run_tower("--json", "audit", "verify", cwd=root)
        assert verified.code == 0, verified.stdout
