"""Tower's own Claude Code hook, installed by `tower hook install claude-code`, under the real Claude Code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents import harness
from tests.agents.model_server import Text, ToolCall
from tests.conftest import Result, tower_env

pytestmark = pytest.mark.agents

TOWER_SCRIPT = Path(sys.executable).parent / "tower"


def tower(*args: str, cwd: Path, env: dict | None = None) -> Result:
    """The installed console script when there is one: `hook install` records the path it runs from."""
    argv = [str(TOWER_SCRIPT)] if TOWER_SCRIPT.exists() else [sys.executable, "-m", "tui.cli"]
    proc = subprocess.run([*argv, *args], cwd=cwd, env=tower_env(env), capture_output=True, text=True, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def claim_task(cwd: Path, agent: str, title: str) -> str:
    assert tower("task", "add", title, cwd=cwd).code == 0
    r = tower("--json", "task", "claim", cwd=cwd, env={"TOWER_AGENT": agent})
    assert r.code == 0, r.stderr
    return r.data["lease_id"]


def claims(cwd: Path) -> dict[str, str]:
    return {path: lease["id"] for lease in tower("--json", "lease", "list", cwd=cwd).data for path in lease["claims"]}


def test_claimed_file_is_blocked_naming_the_holder_and_a_free_file_is_claimed(claude_bin, sandbox, run_agent):
    repo, wt = sandbox.repo, sandbox.root
    assert tower("init", cwd=repo).code == 0
    holder = claim_task(repo, "agent-main", "the main worktree's task")
    assert tower("claim", holder, "src/app.py", cwd=repo, env={"TOWER_AGENT": "agent-main"}).code == 0
    mine = claim_task(wt, "claude-a", "the agent's task")

    r = tower("--json", "hook", "install", "claude-code", cwd=wt)
    assert r.code == 0, r.stderr
    settings = json.loads((wt / ".claude" / "settings.json").read_text())
    assert settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"] == r.data["command"]

    original = (wt / "src" / "app.py").read_text()
    run, srv = run_agent("claude", claude_bin, [
        # Claude Code writes an existing file only after reading it in the session
        ToolCall("Read", {"file_path": str(wt / "src" / "app.py")}),
        ToolCall("Write", {"file_path": str(wt / "src" / "app.py"), "content": "print('mine')\n"}),
        ToolCall("Write", {"file_path": str(wt / "src" / "new.py"), "content": "x = 1\n"}),
        Text("finished"),
    ])
    assert run.code == 0, run.describe()

    blocked = srv.result_for(1)
    assert blocked is not None and blocked.is_error, srv.tool_results()
    assert f"src/app.py is claimed by {holder} (agent-main in main" in blocked.output
    assert (wt / "src" / "app.py").read_text() == original

    written = srv.result_for(2)
    assert written is not None and not written.is_error, written
    assert (wt / "src" / "new.py").read_text() == "x = 1\n"
    assert claims(repo) == {"src/app.py": holder, "src/new.py": mine}
    # the blocked call changed nothing else in the agent's worktree
    assert sandbox.status().splitlines() == ["?? src/new.py"]
