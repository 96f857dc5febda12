"""The hook's own deadline: an `[ask] timeout` raised after `tower hook install` must not fail open.

Claude Code kills a hook that outlives its entry's `timeout` and then lets the
call through. `tower hook install` therefore tells the hook that timeout
(`--deadline N`), the hook stops waiting for a person 30 s before it, and
`tower hook check` says when the policy asks for more than the installed
entry allows.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.approvals.helpers import TOWER
from tests.conftest import run_tower, tower_env
from tests.hook.test_hook_claude_code import bash, decision_of
from tests.hook.test_hook_install import EXISTING, ours, settings_of, tower_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def project(repo: Path) -> Path:
    assert run_tower("init", cwd=repo).code == 0
    return repo


def set_policy(repo: Path, text: str) -> None:
    (repo / ".git" / "tower" / "policy.toml").write_text(text)


def run_hook(args: list[str], data: dict, cwd: Path, timeout: float = 60) -> tuple[tuple[str, str], float]:
    t0 = time.monotonic()
    proc = subprocess.run([*TOWER, "hook", "claude-code", *args], input=json.dumps(data).encode(), cwd=cwd,
                          env=tower_env(), capture_output=True, timeout=timeout)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b"", proc.stderr
    return decision_of(proc.stdout), took


def test_wait_budget_leaves_a_margin_before_the_deadline():
    from core.hook import installed_deadline, wait_budget

    assert wait_budget(600) == 570
    assert wait_budget(960) == 930
    assert wait_budget(3) == 1.5  # short deadlines: half of it
    assert installed_deadline("/v/bin/tower hook claude-code --deadline 600") == 600
    assert installed_deadline("/v/bin/tower hook claude-code --db '/a b/t.db' --deadline=720") == 720
    assert installed_deadline("/v/bin/tower hook claude-code") is None
    assert installed_deadline("/v/bin/tower hook claude-code --deadline nan") is None


def test_a_raised_ask_timeout_is_capped_by_the_installed_deadline(project):
    """[ask] timeout = 100000 after install: the hook still answers before Claude Code kills it."""
    set_policy(project, '[ask]\ntimeout = 100000\non_timeout = "deny"\n')
    (decision, reason), took = run_hook(["--deadline", "3"], bash("make deploy", project, tool_use_id="toolu_d"),
                                        project, timeout=30)
    assert decision == "deny", reason
    assert "nobody decided" in reason and "within 1.5s" in reason
    assert "deadline" in reason and "100000" in reason and "tower hook install" in reason
    assert took < 3  # answered before the deadline Claude Code would enforce
    listed = run_tower("--json", "approval", "list", cwd=project).data
    assert [(a["status"], a["key"]) for a in listed] == [("expired", "toolu_d")]


def test_a_deadline_longer_than_the_ask_timeout_changes_nothing(project):
    set_policy(project, '[ask]\ntimeout = 1\non_timeout = "ask"\n')
    (decision, reason), _ = run_hook(["--deadline", "600"], bash("make deploy", project), project)
    assert decision == "ask" and "within 1s" in reason and "deadline" not in reason


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "soon"])
def test_an_unusable_deadline_is_denied_not_a_usage_error(project, value):
    (decision, reason), _ = run_hook(["--deadline", value], bash("git status", project), project)
    assert decision == "deny" and "--deadline" in reason


def test_install_writes_the_deadline_and_reinstall_updates_it_in_place(project):
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    settings = json.loads(json.dumps(EXISTING))
    old = {"matcher": "*", "hooks": [{"type": "command", "command": "/old/bin/tower hook claude-code",
                                      "timeout": 600}]}
    after = {"matcher": "Write", "hooks": [{"type": "command", "command": "lint.sh"}]}
    settings["hooks"]["PreToolUse"] += [old, after]  # an entry of ours from before --deadline, in the middle
    path.write_text(json.dumps(settings))
    r = tower_cli("--json", "hook", "install", "claude-code", cwd=project)
    assert r.code == 0 and r.data["changed"] is True
    groups = settings_of(project)["hooks"]["PreToolUse"]
    assert len(groups) == 3 and groups[0] == EXISTING["hooks"]["PreToolUse"][0] and groups[2] == after
    entry = groups[1]["hooks"][0]
    assert entry["timeout"] == 600 and shlex.split(entry["command"])[-2:] == ["--deadline", "600"]
    # the policy asks for longer: installing again raises both, still in place, still one entry
    set_policy(project, "[ask]\ntimeout = 1200\n")
    r = tower_cli("--json", "hook", "install", "claude-code", cwd=project)
    assert r.code == 0 and r.data["changed"] is True and r.data["timeout"] == 1260
    groups = settings_of(project)["hooks"]["PreToolUse"]
    assert len(groups) == 3 and groups[2] == after
    assert groups[1]["hooks"][0]["timeout"] == 1260
    assert shlex.split(groups[1]["hooks"][0]["command"])[-2:] == ["--deadline", "1260"]
    assert len(ours(settings_of(project))) == 1
    assert tower_cli("--json", "hook", "install", "claude-code", cwd=project).data["changed"] is False


def test_check_warns_when_the_policy_outlasts_the_installed_deadline(project):
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    ok = tower_cli("--json", "hook", "check", cwd=project)
    assert ok.code == 0 and ok.data["warnings"] == []
    set_policy(project, "[ask]\ntimeout = 100000\n")
    human = tower_cli("hook", "check", cwd=project)
    assert human.code == 0, human.stderr
    warning = [line for line in human.stdout.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, human.stdout
    assert "100000" in warning[0] and "settings.json" in warning[0] and "570" in warning[0]
    assert "tower hook install claude-code" in warning[0]
    data = tower_cli("--json", "hook", "check", cwd=project)
    assert data.code == 0 and len(data.data["warnings"]) == 1
    assert len(data.stdout.strip().splitlines()) == 1
    # installing again gives the hook a deadline long enough
    assert tower_cli("hook", "install", "claude-code", cwd=project).code == 0
    assert tower_cli("--json", "hook", "check", cwd=project).data["warnings"] == []


def test_check_warns_about_an_entry_installed_without_a_deadline(project):
    local = project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text(json.dumps({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": f"{sys.executable} -m tui.cli hook claude-code", "timeout": 600}]}]}}))
    assert tower_cli("--json", "hook", "check", cwd=project).data["warnings"] == []  # 540 s fits in 600
    set_policy(project, "[ask]\ntimeout = 900\n")
    warnings = tower_cli("--json", "hook", "check", cwd=project).data["warnings"]
    assert len(warnings) == 1
    assert "settings.local.json" in warnings[0] and "no --deadline" in warnings[0]
