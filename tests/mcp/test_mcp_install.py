"""`tower mcp install|uninstall <agent>`: each agent's documented config format, what was there kept.

Formats (from each agent's documentation):
- Claude Code, project scope: `.mcp.json` {"mcpServers": {name: {"type": "stdio", "command", "args", "env"}}}
- Codex: `.codex/config.toml` [mcp_servers.<name>] command, args, env, env_vars, startup_timeout_sec, ...
- Gemini CLI: `.gemini/settings.json` {"mcpServers": {name: {"command", "args", "env", "cwd", "timeout" (ms)}}}
- Cursor: `.cursor/mcp.json` {"mcpServers": {name: {"type": "stdio", "command", "args", "env"}}}
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from tests.conftest import run_tower
from tests.mcp.helpers import Agent

pytestmark = pytest.mark.slow

CODEX_BEFORE = """\
# my Codex settings
model = "o3"  # keep this comment

[mcp_servers.docs]
command = "docs-server"
args = ["--port", "4000"]

[profiles.fast]
model = "gpt-5"
"""

JSON_BEFORE = {
    "claude-code": {"mcpServers": {"github": {"type": "stdio", "command": "npx", "args": ["-y", "gh-mcp"],
                                              "env": {"TOKEN": "${GITHUB_TOKEN}"}}}},
    "gemini": {"theme": "dark", "mcp": {"allowed": ["docs"]},
               "mcpServers": {"docs": {"command": "docs", "timeout": 5000, "trust": False}}},
    "cursor": {"mcpServers": {"browser": {"url": "https://example.invalid/mcp"}}},
}
FILES = {"claude-code": ".mcp.json", "codex": ".codex/config.toml", "gemini": ".gemini/settings.json",
         "cursor": ".cursor/mcp.json"}


@pytest.fixture
def project(repo: Path, tmp_path: Path):
    assert run_tower("init", cwd=repo).code == 0
    wt = tmp_path / "wt-b"
    assert run_tower("worktree", "add", "wt-b", "--path", str(wt), cwd=repo).code == 0
    return repo, wt.resolve()


def seed(root: Path, agent: str) -> str:
    path = root / FILES[agent]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = CODEX_BEFORE if agent == "codex" else json.dumps(JSON_BEFORE[agent], indent=4) + "\n"
    path.write_text(text)
    return text


def read(root: Path, agent: str) -> dict:
    text = (root / FILES[agent]).read_text()
    return tomllib.loads(text) if agent == "codex" else json.loads(text)


@pytest.mark.parametrize("agent", ["claude-code", "codex", "gemini", "cursor"])
def test_install_writes_the_agents_format_keeps_everything_else_and_uninstall_restores(project, agent):
    main, wt = project
    before = seed(wt, agent)
    r = run_tower("--json", "mcp", "install", agent, "--worktree", "wt-b", cwd=main)
    assert r.code == 0, r.stderr
    assert r.data["changed"] is True and r.data["config"] == str(wt / FILES[agent])
    config = read(wt, agent)
    if agent == "codex":
        entry = config["mcp_servers"]["tower"]
        assert config["model"] == "o3" and config["profiles"] == {"fast": {"model": "gpt-5"}}
        assert config["mcp_servers"]["docs"] == {"command": "docs-server", "args": ["--port", "4000"]}
        # Codex passes MCP servers only a fixed set of variables: Tower's are named
        assert {"TOWER_AGENT", "TOWER_WORKTREE", "TOWER_DB"} <= set(entry["env_vars"])
        assert entry["startup_timeout_sec"] >= 10
        text = (wt / FILES[agent]).read_text()
        assert "# my Codex settings" in text and "# keep this comment" in text
    else:
        entry = config["mcpServers"]["tower"]
        for key, value in JSON_BEFORE[agent].items():
            if key != "mcpServers":
                assert config[key] == value
        for name, server in JSON_BEFORE[agent]["mcpServers"].items():
            assert config["mcpServers"][name] == server
        if agent == "gemini":
            assert isinstance(entry["timeout"], int) and 30_000 <= entry["timeout"] <= 600_000  # milliseconds
            assert "type" not in entry
        else:
            assert entry["type"] == "stdio"
    assert isinstance(entry["command"], str) and Path(entry["command"]).is_absolute()
    assert entry["args"][-1] == "mcp" and all(isinstance(a, str) for a in entry["args"])
    assert "env" not in entry  # identity comes from the agent's environment, not the (committable) file

    again = run_tower("--json", "mcp", "install", agent, "--worktree", "wt-b", cwd=main)
    assert again.code == 0 and again.data["changed"] is False

    gone = run_tower("--json", "mcp", "uninstall", agent, cwd=wt)
    assert gone.code == 0 and gone.data["removed"] is True
    if agent == "codex":
        assert (wt / FILES[agent]).read_text() == before  # byte for byte: comments and layout kept
    else:
        assert read(wt, agent) == JSON_BEFORE[agent]
    assert run_tower("--json", "mcp", "uninstall", agent, cwd=wt).data["removed"] is False


@pytest.mark.parametrize("agent", ["claude-code", "codex", "gemini", "cursor"])
def test_install_creates_the_file_and_agent_pins_the_name(project, agent):
    main, _ = project
    r = run_tower("--json", "--agent", "alice", "mcp", "install", agent, cwd=main)
    assert r.code == 0, r.stderr
    entry = read(main, agent)["mcpServers" if agent != "codex" else "mcp_servers"]["tower"]
    assert entry["env"] == {"TOWER_AGENT": "alice"}
    assert run_tower("--json", "mcp", "uninstall", agent, cwd=main).data["removed"] is True
    assert read(main, agent) == {}


def test_a_broken_file_or_someone_elses_tower_entry_is_refused_untouched(project):
    main, _ = project
    bad = main / ".mcp.json"
    bad.write_text('{"mcpServers": {')
    r = run_tower("--json", "mcp", "install", "claude-code", cwd=main)
    assert r.code == 2 and ".mcp.json line 1" in r.json["error"]["message"]
    assert bad.read_text() == '{"mcpServers": {'
    theirs = {"mcpServers": {"tower": {"command": "/opt/air-traffic/tower-control", "args": ["serve"]}}}
    bad.write_text(json.dumps(theirs))
    r = run_tower("--json", "mcp", "install", "claude-code", cwd=main)
    assert r.code == 2 and "already configured for something else" in r.json["error"]["message"]
    assert json.loads(bad.read_text()) == theirs
    codex = main / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text("model = \n")
    assert run_tower("mcp", "install", "codex", cwd=main).code == 2 and codex.read_text() == "model = \n"
    assert run_tower("mcp", "install", "claude-code", "--worktree", "nope", cwd=main).code == 3


@pytest.mark.parametrize("agent", ["claude-code", "codex", "gemini", "cursor"])
async def test_the_installed_entry_starts_a_working_server(project, agent):
    """Run the entry exactly as the agent would (its command, args and env, in the worktree)."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    from tests.conftest import tower_env

    main, wt = project
    assert run_tower("mcp", "install", agent, "--worktree", "wt-b", cwd=main).code == 0
    servers = read(wt, agent)["mcp_servers" if agent == "codex" else "mcpServers"]
    entry = servers["tower"]
    env = tower_env({"TOWER_AGENT": "bob", **entry.get("env", {})})
    if agent == "codex":  # Codex's whitelist: only these of Tower's variables get through
        env = {k: v for k, v in env.items() if not k.startswith("TOWER_") or k in entry["env_vars"]}
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=str(wt))
    async with stdio_client(params) as (read_stream, write_stream):
        async with ClientSession(read_stream, write_stream) as session:
            await session.initialize()
            me = await Agent(session).data("status")
    assert (me["agent"], me["worktree"]) == ("bob", "wt-b")
    assert os.path.samefile(me["store"], main / ".git" / "tower" / "tower.db")
