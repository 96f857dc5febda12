"""`tower hook install / uninstall claude-code`: merge into .claude/settings.json, keep everything else."""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from core.hook import install_entry, is_tower_hook, remove_entry
from tests.conftest import git, run_tower, tower_env

TOWER_SCRIPT = Path(sys.executable).parent / "tower"

EXISTING = {
    "permissions": {"allow": ["Bash(npm test:*)"], "deny": ["Read(./secrets/**)"]},
    "env": {"FOO": "1"},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/guard.sh", "timeout": 5}]},
        ],
        "PostToolUse": [
            {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "ruff format"}]},
        ],
    },
    "model": "opus",
}


def tower_cli(*args: str, cwd: Path, env: dict | None = None):
    """The real console script when there is one (install records its absolute path)."""
    if TOWER_SCRIPT.exists():
        proc = subprocess.run([str(TOWER_SCRIPT), *args], cwd=cwd, env=tower_env(env), capture_output=True,
                              text=True, timeout=60)
        from tests.conftest import Result

        return Result(proc.returncode, proc.stdout, proc.stderr)
    return run_tower(*args, cwd=cwd, env=env)


@pytest.fixture
def project(repo: Path) -> Path:
    assert run_tower("init", cwd=repo).code == 0
    return repo


def settings_of(root: Path) -> dict:
    return json.loads((root / ".claude" / "settings.json").read_text())


def ours(settings: dict) -> list[dict]:
    return [h for g in settings["hooks"]["PreToolUse"] for h in g["hooks"] if is_tower_hook(h["command"])]


def test_install_into_a_fresh_worktree(project):
    r = tower_cli("--json", "hook", "install", "claude-code", cwd=project)
    assert r.code == 0, r.stderr
    assert r.data["changed"] is True
    settings = settings_of(project)
    assert settings == {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": r.data["command"], "timeout": 600}]}]}}
    words = shlex.split(r.data["command"])
    assert words[-4:] == ["hook", "claude-code", "--deadline", "600"]  # the hook knows when it is killed
    assert r.data["deadline"] == r.data["timeout"] == 600
    if TOWER_SCRIPT.exists():
        assert words[0] == str(TOWER_SCRIPT)


def test_install_keeps_existing_settings_and_hooks_and_is_idempotent(project):
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps(EXISTING, indent=4))
    os.chmod(path, 0o600)
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    settings = settings_of(project)
    expected = copy.deepcopy(EXISTING)
    expected["hooks"]["PreToolUse"].append(settings["hooks"]["PreToolUse"][-1])
    assert settings == expected
    assert list(settings) == list(EXISTING)  # key order kept too
    assert len(ours(settings)) == 1
    assert path.stat().st_mode & 0o777 == 0o600
    # again: nothing changes, the file is not even rewritten
    before = (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
    again = tower_cli("--json", "hook", "install", "claude-code", cwd=project)
    assert again.code == 0 and again.data["changed"] is False
    assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before
    assert not list(path.parent.glob("*.tmp"))


def test_reinstall_with_another_db_replaces_our_entry(project, tmp_path):
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    other = tmp_path / "elsewhere" / "tower.db"
    r = tower_cli("--json", "--db", str(other), "hook", "install", "claude-code", cwd=project)
    assert r.code == 0 and r.data["changed"] is True
    entries = ours(settings_of(project))
    assert len(entries) == 1
    assert shlex.split(entries[0]["command"])[-4:] == ["--db", str(other), "--deadline", "600"]


@pytest.mark.parametrize("kind", ["claude-code", "gemini"])
def test_a_postgres_url_is_installed_as_it_is(project, kind):
    url = "postgresql://tower@db.example:5432/tower?sslmode=require"
    r = tower_cli("--json", "--db", url, "hook", "install", kind, cwd=project)
    assert r.code == 0, r.stderr
    text = Path(r.data["settings"]).read_text()
    commands = [shlex.split(c) for c in _commands(json.loads(text))]
    assert commands and all(c[c.index("--db") + 1] == url for c in commands), commands


@pytest.mark.parametrize("url", ["postgresql://tower:s3cret@db.example/tower",
                                 "postgresql://tower@db.example/tower?password=s3cret"])
def test_a_store_url_holding_a_password_is_never_written_into_a_hook_file(project, url):
    r = tower_cli("--db", url, "hook", "install", "claude-code", cwd=project)
    assert r.code == 2 and "password" in r.stderr and "s3cret" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (project / ".claude").exists()


def _commands(node) -> list[str]:
    """Every hook command string in an agent's settings, wherever its format nests it."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("command", "bash") and isinstance(v, str)]
        return found + [c for v in node.values() for c in _commands(v)]
    if isinstance(node, list):
        return [c for v in node for c in _commands(v)]
    return []


def test_uninstall_removes_only_ours(project):
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps(EXISTING))
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    r = tower_cli("--json", "hook", "uninstall", "claude-code", cwd=project)
    assert r.code == 0 and r.data["removed"] == 1
    assert settings_of(project) == EXISTING
    again = tower_cli("--json", "hook", "uninstall", "claude-code", cwd=project)
    assert again.code == 0 and again.data["removed"] == 0


def test_uninstall_of_a_tower_only_file_leaves_an_empty_object(project):
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    assert tower_cli("hook", "uninstall", "claude-code", cwd=project).code == 0
    assert settings_of(project) == {}


def test_install_into_another_worktree_by_name(project, tmp_path):
    wt = tmp_path / "wt-b"
    git("worktree", "add", "-q", str(wt), "-b", "b", cwd=project)
    assert run_tower("worktree", "sync", cwd=project).code == 0
    names = {w["name"] for w in run_tower("--json", "worktree", "list", cwd=project).data}
    assert "wt-b" in names
    r = tower_cli("--json", "hook", "install", "claude-code", "--worktree", "wt-b", cwd=project)
    assert r.code == 0, r.stderr
    assert Path(r.data["settings"]) == wt.resolve() / ".claude" / "settings.json"
    assert not (project / ".claude").exists()
    assert tower_cli("hook", "install", "claude-code", "--worktree", "nope", cwd=project).code == 3


def test_invalid_settings_are_left_alone(project):
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"hooks": {"PreToolUse": [\n  {"matcher": "Bash",,}\n]}}')
    before = path.read_text()
    r = tower_cli("hook", "install", "claude-code", cwd=project)
    assert r.code == 2
    assert "line 2" in r.stderr and "settings.json" in r.stderr
    assert path.read_text() == before
    path.write_text('{"hooks": []}')
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 2


def test_the_entry_timeout_outlives_the_policy_deadline(project):
    policy = project / ".git" / "tower" / "policy.toml"
    policy.write_text('[ask]\ntimeout = 900\n')
    r = tower_cli("--json", "hook", "install", "claude-code", cwd=project)
    assert r.data["timeout"] == 960
    assert ours(settings_of(project))[0]["timeout"] == 960
    assert shlex.split(ours(settings_of(project))[0]["command"])[-2:] == ["--deadline", "960"]
    policy.write_text('[ask]\ntimeout = "soon"\n')
    bad = tower_cli("hook", "install", "claude-code", cwd=project)
    assert bad.code == 2 and "line 2" in bad.stderr


def test_the_installed_command_runs(project):
    r = tower_cli("--json", "hook", "install", "claude-code", cwd=project)
    command = r.data["command"]
    call = {"session_id": "s", "transcript_path": "/tmp/t.jsonl", "cwd": str(project),
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": "git status"}, "tool_use_id": "toolu_1"}
    proc = subprocess.run(command, shell=True, input=json.dumps(call), cwd=project, env=tower_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"


def test_merge_functions_directly():
    settings = copy.deepcopy(EXISTING)
    settings["hooks"]["PreToolUse"][0]["hooks"].append(
        {"type": "command", "command": "/old/venv/bin/tower hook claude-code", "timeout": 600})
    assert install_entry(settings, "/new/bin/tower hook claude-code", 600)
    assert settings["hooks"]["PreToolUse"][0] == EXISTING["hooks"]["PreToolUse"][0]  # ours left the group
    assert not install_entry(settings, "/new/bin/tower hook claude-code", 600)
    assert remove_entry(settings) == 1
    assert settings == EXISTING
    assert is_tower_hook("python -m tui.cli hook claude-code --db /x")
    assert is_tower_hook("'/a b/tower' hook claude-code")
    assert not is_tower_hook("/usr/local/bin/guard.sh hook claude-code")
    assert not is_tower_hook("tower hook install claude-code")
    with pytest.raises(ValueError):
        install_entry({"hooks": {"PreToolUse": {}}}, "tower hook claude-code", 600)


@pytest.mark.parametrize("text, words", [
    ('{"hooks":{"PreToolUse":[{"hooks":5}]}}', '"hooks"."PreToolUse"[0]."hooks" is a JSON number, not a list'),
    ('{"hooks":{"PreToolUse":[5]}}', '"hooks"."PreToolUse"[0] is a JSON number, not an object'),
    ('{"hooks":{"PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"a"}, "b"]}]}}',
     '"hooks"."PreToolUse"[0]."hooks"[1] is a JSON string, not an object'),
    ('{"hooks":{"PreToolUse":[{"hooks":{"type":"command"}}]}}', 'is a JSON object, not a list'),
])
@pytest.mark.parametrize("verb", ["install", "uninstall"])
def test_settings_of_an_unexpected_shape_are_refused_untouched(project, text, words, verb):
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(text)
    r = tower_cli("--json", "hook", verb, "claude-code", cwd=project)
    assert r.code == 2, r.stdout + r.stderr
    assert r.json["error"]["code"] == "bad_input"
    assert words in r.json["error"]["message"] and "settings.json" in r.json["error"]["message"]
    assert len(r.stdout.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert path.read_text() == text
    human = tower_cli("hook", verb, "claude-code", cwd=project)
    assert human.code == 2 and human.stderr.startswith("tower: ") and len(human.stderr.splitlines()) == 1


@pytest.mark.parametrize("token", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
def test_numbers_json_cannot_hold_are_refused_untouched(project, token):
    """Python's json reads 1e999 as inf and NaN/Infinity as floats; writing them back is not JSON."""
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    text = '{\n  "env": {"A": "1"},\n  "cleanupPeriodDays": %s\n}\n' % token
    path.write_text(text)
    r = tower_cli("hook", "install", "claude-code", cwd=project)
    assert r.code == 2, r.stderr
    assert "line 3" in r.stderr and token.lstrip("-") in r.stderr and "settings.json" in r.stderr
    assert path.read_text() == text
    assert tower_cli("hook", "uninstall", "claude-code", cwd=project).code == 2
    assert path.read_text() == text


def test_large_but_finite_numbers_are_kept(project):
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"big": 1e300, "huge": 123456789012345678901234567890}')
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    settings = json.loads(path.read_text())  # strict enough: the file is plain JSON
    assert settings["big"] == 1e300 and settings["huge"] == 123456789012345678901234567890
    assert "Infinity" not in path.read_text() and "NaN" not in path.read_text()
