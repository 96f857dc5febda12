"""`tower hook install|uninstall|check` for Codex CLI, Gemini CLI, Copilot CLI and Cursor.

Each agent's own file keeps what was in it, a second install changes nothing,
uninstall removes only Tower's entries, Codex gets its trust records (and loses
only Tower's), the timeouts written fit the hook's deadline, and `tower hook
check` names every installed agent and what is broken in it.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
from pathlib import Path

import pytest

from tests.conftest import git, run_tower
from tests.hook.test_hook_install import tower_cli
from tui.services import hook_install

AGENTS = ("codex", "gemini", "copilot", "cursor")

# what a person already has in each agent's file: other hooks on Tower's events and others, other settings
EXISTING = {
    "codex": {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh",
                                                                       "timeout": 5}]}],
                        "PostCompact": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}},
    "gemini": {"general": {"vimMode": True}, "mcpServers": {"x": {"command": "x"}},
               "hooks": {"BeforeTool": [{"matcher": "write_file", "hooks": [{"type": "command", "command": "fmt",
                                                                             "name": "fmt", "timeout": 5000}]}]}},
    "copilot": {"version": 1, "hooks": {"preToolUse": [{"type": "command", "bash": "./audit.sh", "timeoutSec": 10}],
                                        "errorOccurred": [{"type": "command", "bash": "./err.sh"}]}},
    "cursor": {"version": 1, "hooks": {"beforeShellExecution": [{"command": "./guard.sh", "timeout": 5}],
                                       "afterAgentResponse": [{"command": "./log.sh"}]}},
}
CODEX_CONFIG = '''model = "o3"  # the person's own settings

[projects."/elsewhere"]
trust_level = "trusted"

[hooks.state."/elsewhere/.codex/hooks.json:pre_tool_use:0:0"]
trusted_hash = "sha256:0000"
'''


@pytest.fixture
def project(repo: Path, tmp_path: Path):
    """The main worktree with Tower, a linked worktree the agent uses, and a CODEX_HOME."""
    assert run_tower("init", cwd=repo).code == 0
    wt = tmp_path / "wt-agent"
    git("worktree", "add", "-q", "-b", "agent", str(wt), cwd=repo)
    home = tmp_path / "codex-home"
    home.mkdir()
    return repo, wt.resolve(), home


def cli(*args: str, cwd: Path, home: Path):
    return tower_cli(*args, cwd=cwd, env={"CODEX_HOME": str(home)})


def file_of(kind: str, repo: Path, wt: Path) -> Path:
    base = repo if kind == "codex" else wt  # Codex reads the main worktree's hooks.json
    return base / {"codex": ".codex/hooks.json", "gemini": ".gemini/settings.json",
                   "copilot": ".github/hooks/tower.json", "cursor": ".cursor/hooks.json"}[kind]


def ours(kind: str, data: dict) -> dict[str, list[dict]]:
    """event -> Tower's entries (the handler dicts) in an agent's hook file."""
    out: dict[str, list[dict]] = {}
    for event, groups in data.get("hooks", {}).items():
        for g in groups:
            handlers = [g] if kind in ("copilot", "cursor") else g.get("hooks", [])
            for h in handlers:
                command = h.get("bash", h.get("command"))
                if f"hook {kind}" in command:
                    out.setdefault(event, []).append(h)
    return out


def without_ours(kind: str, data: dict) -> dict:
    data = copy.deepcopy(data)
    for event in list(data.get("hooks", {})):
        groups = data["hooks"][event]
        kept = [g for g in groups if not any(f"hook {kind}" in h.get("bash", h.get("command", ""))
                                             for h in ([g] if kind in ("copilot", "cursor") else g.get("hooks", [])))]
        if kept:
            data["hooks"][event] = kept
        else:
            del data["hooks"][event]
    return data


@pytest.mark.parametrize("kind", AGENTS)
def test_install_keeps_the_agents_file_is_idempotent_and_uninstall_removes_only_ours(project, kind):
    repo, wt, home = project
    path = file_of(kind, repo, wt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(EXISTING[kind], indent=4))
    os.chmod(path, 0o600)

    r = cli("--json", "hook", "install", kind, cwd=wt, home=home)
    assert r.code == 0, r.stderr
    assert r.data["changed"] is True and r.data["settings"] == str(path)
    data = json.loads(path.read_text())
    assert without_ours(kind, data) == EXISTING[kind]  # everything that was there, as it was
    assert set(ours(kind, data)) == set(hook_install.EVENTS[kind])
    assert all(len(entries) == 1 for entries in ours(kind, data).values())
    assert path.stat().st_mode & 0o777 == 0o600
    for entries in ours(kind, data).values():
        words = shlex.split(entries[0].get("bash", entries[0].get("command")))
        assert os.access(words[0], os.X_OK)  # the absolute path of this very Tower

    before = path.read_bytes()
    again = cli("--json", "hook", "install", kind, cwd=wt, home=home)
    assert again.code == 0 and again.data["changed"] is False
    assert path.read_bytes() == before

    gone = cli("--json", "hook", "uninstall", kind, cwd=wt, home=home)
    assert gone.code == 0 and gone.data["removed"] is True
    assert json.loads(path.read_text()) == EXISTING[kind]
    assert cli("--json", "hook", "uninstall", kind, cwd=wt, home=home).data["removed"] is False


@pytest.mark.parametrize("ask_timeout,expected", [(None, 600), (900, 960)])
@pytest.mark.parametrize("kind", AGENTS)
def test_the_timeout_written_fits_the_hooks_deadline(project, kind, ask_timeout, expected):
    repo, wt, home = project
    if ask_timeout:
        (repo / ".git" / "tower" / "policy.toml").write_text(f"[ask]\ntimeout = {ask_timeout}\n")
    r = cli("--json", "hook", "install", kind, cwd=wt, home=home)
    assert r.code == 0, r.stderr
    deadline = expected if kind in ("codex", "gemini") else 30  # Copilot, Cursor: their documented default
    assert r.data["deadline"] == deadline
    unit = 1000 if kind == "gemini" else 1
    for event, entries in ours(kind, json.loads(file_of(kind, repo, wt).read_text())).items():
        h = entries[0]
        timeout = h["timeoutSec"] if kind == "copilot" else h["timeout"]
        assert timeout == deadline * unit, (event, h)
        words = shlex.split(h.get("bash", h.get("command")))
        assert words[words.index("--deadline") + 1] == str(deadline)  # the hook knows when it is killed
        if kind == "copilot":
            assert words[words.index("--event") + 1] == event  # camelCase payloads do not name their event
        if kind == "cursor":
            assert h["failClosed"] is True


def test_codex_trust_records_keep_the_persons_config(project):
    repo, wt, home = project
    config = home / "config.toml"
    config.write_text(CODEX_CONFIG)
    r = cli("--json", "hook", "install", "codex", cwd=wt, home=home)
    assert r.code == 0, r.stderr
    assert (wt / ".codex").is_dir()  # without it Codex loads no project hooks in a linked worktree
    hooks_file = repo / ".codex" / "hooks.json"
    data = json.loads(hooks_file.read_text())
    text = config.read_text()
    assert text.startswith(CODEX_CONFIG.rstrip("\n"))  # the person's lines, comments included, first and intact
    assert f'[projects.{json.dumps(str(wt))}]\ntrust_level = "trusted"' in text
    records = hook_install.codex_trust_records(hooks_file, data)
    assert len(records) == r.data["trusted"] == len(hook_install.EVENTS["codex"])
    for key, digest in records.items():
        assert f'[hooks.state.{json.dumps(key)}]\ntrusted_hash = "{digest}"' in text
    assert hook_install.codex_stale(text, records) == []

    assert cli("hook", "install", "codex", cwd=wt, home=home).code == 0
    assert config.read_text() == text  # idempotent

    assert cli("hook", "uninstall", "codex", cwd=wt, home=home).code == 0
    left = config.read_text()
    assert "hook codex" not in left and not any(key in left for key in records)
    assert left.startswith(CODEX_CONFIG.rstrip("\n"))


def check(cwd: Path, home: Path) -> dict:
    r = cli("--json", "hook", "check", cwd=cwd, home=home)
    assert r.code == 0, r.stderr
    return r.data


def test_check_covers_every_installed_agent_and_names_a_broken_one(project):
    repo, wt, home = project
    data = check(wt, home)
    assert {name: a["installed"] for name, a in data["agents"].items()} == {
        "claude-code": False, "codex": False, "gemini": False, "copilot": False, "cursor": False}
    for kind in ("claude-code", *AGENTS):
        assert cli("hook", "install", kind, cwd=wt, home=home).code == 0
    data = check(wt, home)
    assert all(a["installed"] and a["problems"] == [] for a in data["agents"].values()), data["agents"]
    assert data["warnings"] == []
    human = cli("hook", "check", cwd=wt, home=home).stdout
    assert "hooks installed: claude-code, codex, gemini, copilot, cursor" in human

    # break each in its own way: every one lets calls through unseen
    codex_file = repo / ".codex" / "hooks.json"
    c = json.loads(codex_file.read_text())
    c["hooks"]["PreToolUse"][-1]["hooks"][0]["timeout"] = 30  # the trust hash covers the timeout
    codex_file.write_text(json.dumps(c))
    g_file = wt / ".gemini" / "settings.json"
    g = json.loads(g_file.read_text())
    del g["hooks"]["BeforeTool"]
    g_file.write_text(json.dumps(g))
    p_file = wt / ".github" / "hooks" / "tower.json"
    p_file.write_text(p_file.read_text().replace(shlex.split(
        json.loads(p_file.read_text())["hooks"]["preToolUse"][0]["bash"])[0], "/gone/bin/tower"))
    (wt / ".cursor" / "hooks.json").write_text("{not json")

    data = check(wt, home)
    problems = {name: " ".join(a["problems"]) for name, a in data["agents"].items()}
    assert "not trusted" in problems["codex"] and "shorter than the hook's --deadline" in problems["codex"]
    assert "no Tower entry for BeforeTool" in problems["gemini"]
    assert "/gone/bin/tower, which is not an executable file" in problems["copilot"]
    assert "cannot be read" in problems["cursor"]
    assert problems["claude-code"] == ""
    human = cli("hook", "check", cwd=wt, home=home).stdout
    for name in AGENTS:
        assert any(line.startswith(f"warning: {name} hook (") for line in human.splitlines()), (name, human)

    # a linked worktree without .codex/: Codex skips the main worktree's hooks there
    (wt / ".codex").rmdir()
    assert "has no .codex/ directory" in " ".join(check(wt, home)["agents"]["codex"]["problems"])


def test_install_refuses_a_file_it_cannot_read_and_leaves_it(project):
    repo, wt, home = project
    path = wt / ".gemini" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"hooks": [1]}')
    r = cli("hook", "install", "gemini", cwd=wt, home=home)
    assert r.code == 2 and "fix it first" in r.stderr and "Traceback" not in r.stderr
    assert path.read_text() == '{"hooks": [1]}'
