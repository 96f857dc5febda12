"""The real agents read what `tower mcp install` wrote, and connect to the server.

Needs the pinned agent binaries of scripts/install-agents.sh (`.agents/` or
$TOWER_AGENTS_DIR, found as tests/agents finds them): skipped without them, failed
under TOWER_REQUIRE_AGENTS=1 (CI). No model is needed: `claude mcp list` and
`gemini mcp list` start each configured server and report whether it connected;
`codex mcp get --json` shows how Codex parsed the entry.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.agents.harness import find_binary
from tests.conftest import run_tower, tower_env

pytestmark = pytest.mark.slow



def need(kind: str) -> Path:
    path, why = find_binary(kind)
    if path is None:
        if os.environ.get("TOWER_REQUIRE_AGENTS") == "1":
            pytest.fail(f"TOWER_REQUIRE_AGENTS=1 but {why}")
        pytest.skip(why)
    return path


@pytest.fixture
def worktree(repo: Path) -> Path:
    assert run_tower("init", cwd=repo).code == 0
    return repo


def test_claude_code_connects_to_the_installed_server(worktree, tmp_path):
    CLAUDE = need("claude")
    assert run_tower("mcp", "install", "claude-code", cwd=worktree).code == 0
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    # Claude Code runs a project's .mcp.json servers only once a person approved them
    (home / ".claude" / "settings.json").write_text(json.dumps({"enabledMcpjsonServers": ["tower"]}))
    env = tower_env({"HOME": str(home), "TOWER_AGENT": "alice", "ANTHROPIC_API_KEY": "unused",
                     "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"})
    out = subprocess.run([str(CLAUDE), "mcp", "list"], cwd=worktree, env=env, capture_output=True, text=True,
                         timeout=180).stdout
    assert any(line.startswith("tower:") and "Connected" in line for line in out.splitlines()), out


def test_gemini_cli_connects_to_the_installed_server(worktree, tmp_path):
    GEMINI = need("gemini")
    assert run_tower("mcp", "install", "gemini", cwd=worktree).code == 0
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    env = tower_env({"HOME": str(home), "TOWER_AGENT": "alice", "GEMINI_API_KEY": "unused",
                     "GEMINI_CLI_TRUST_WORKSPACE": "true"})
    proc = subprocess.run([str(GEMINI), "mcp", "list"], cwd=worktree, env=env, capture_output=True, text=True,
                          timeout=180)
    out = proc.stdout + proc.stderr
    assert any("tower:" in line and "Connected" in line for line in out.splitlines()), out


def test_codex_reads_the_installed_entry(worktree, tmp_path):
    CODEX = need("codex")
    assert run_tower("mcp", "install", "codex", cwd=worktree).code == 0
    home = tmp_path / "codex-home"
    home.mkdir()
    # Codex reads a project's .codex/config.toml only for a trusted project
    (home / "config.toml").write_text(f'[projects."{worktree}"]\ntrust_level = "trusted"\n')
    env = tower_env({"CODEX_HOME": str(home)})
    proc = subprocess.run([str(CODEX), "mcp", "get", "tower", "--json"], cwd=worktree, env=env, capture_output=True,
                          text=True, timeout=120)
    got = json.loads(proc.stdout)
    assert got["enabled"] is True and got["transport"]["type"] == "stdio"
    assert got["transport"]["args"][-1] == "mcp"
    assert "TOWER_AGENT" in got["transport"]["env_vars"] and got["startup_timeout_sec"] == 30
