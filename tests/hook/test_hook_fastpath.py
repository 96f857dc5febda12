"""The `tower` script's hook path (tui/entry.py): no click, no CLI modules, the same answers.

Every agent runs `tower hook <agent>` on every tool call; the script reads the
hook's command line by hand so that a call loads neither click nor the
command modules (and a call the policy decides alone, not asyncio or the store).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_tower, tower_env
from tests.hook.test_hook_claude_code import bash, claim_task, write
from tui.entry import hook_args

ROOT = Path(__file__).resolve().parents[2]

# runs the script's entry with these arguments; prints the modules loaded when the hook exits
SPY = """
import os, sys
real_exit = os._exit
def spy(code):
    sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
    sys.stderr.flush()
    real_exit(code)
os._exit = spy
sys.argv = ["tower", *sys.argv[1:]]
from tui.entry import main
main()
"""


@pytest.mark.parametrize("argv,expected", [
    (["hook", "claude-code"], ("claude-code", {})),
    (["hook", "claude-code", "--deadline", "600"], ("claude-code", {"deadline": "600"})),
    (["--db", "/x/t.db", "hook", "codex", "--deadline=960"], ("codex", {"db": "/x/t.db", "deadline": "960"})),
    (["hook", "copilot", "--event", "preToolUse", "--db", "d", "--deadline", "30", "--json"],
     ("copilot", {"event": "preToolUse", "db": "d", "deadline": "30"})),
    (["--agent", "a1", "--worktree", "w", "hook", "gemini"], ("gemini", {"agent": "a1", "worktree": "w"})),
])
def test_the_installed_command_lines_take_the_fast_path(argv, expected):
    assert hook_args(argv) == expected


@pytest.mark.parametrize("argv", [
    ["hook", "claude-code", "--help"], ["hook", "claude-code", "--event", "x"], ["hook", "codex", "--bogus"],
    ["hook", "codex", "--deadline"], ["--deadline", "5", "hook", "codex"], ["hook", "nope"], ["task", "list"],
    ["hook", "install", "codex"],
])
def test_anything_else_goes_through_click(argv):
    assert hook_args(argv) is None


@pytest.fixture
def project(repo: Path) -> Path:
    assert run_tower("init", cwd=repo).code == 0
    # the first call validates the policy (pydantic) and caches it beside the file, as on any machine
    assert run_tower("hook", "check", cwd=repo).code == 0
    assert run_tower("hook", "claude-code", cwd=repo, input=json.dumps(bash("ls", repo))).code == 0
    return repo


def spy(repo: Path, args: list[str], data: dict, env: dict | None = None) -> tuple[dict, set[str]]:
    proc = subprocess.run([sys.executable, "-c", SPY, *args], input=json.dumps(data).encode(), cwd=repo,
                          env=tower_env(env), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("MODULES ")]
    assert lines, proc.stderr
    return json.loads(proc.stdout), set(lines[-1].split()[1:])


HEAVY = {"click", "textual", "pydantic", "tui.cli", "tui.clikit", "tui.commands", "tui.commands.hook",
         "tui.commands.approvals"}


def test_an_allowed_command_loads_no_cli_and_no_store(project):
    out, modules = spy(project, ["hook", "claude-code", "--deadline", "600"], bash("git status", project))
    assert out["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert modules & (HEAVY | {"asyncio", "store", "sqlite3", "aiosqlite"}) == set()


# stdlib modules the agents' path does without (core/records.py, docs/DECISIONS.md)
SLOW_STDLIB = {"dataclasses", "inspect", "typing"}


def test_an_allowed_command_loads_neither_dataclasses_nor_inspect(project):
    out, modules = spy(project, ["hook", "claude-code"], bash("git status", project))
    assert out["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert modules & SLOW_STDLIB == set()


def test_the_core_modules_a_hook_call_loads_import_neither_dataclasses_nor_typing(project):
    """Every core module (and the adapters) that a Bash call or a claiming write loaded, imported
    alone in a fresh interpreter: none of them brings dataclasses, inspect or typing along."""
    claim_task(project, "agent-a")
    _, wrote = spy(project, ["hook", "claude-code"], write(project / "src" / "other.py", project))
    _, ran = spy(project, ["hook", "claude-code"], bash("git status", project))
    ours = sorted(m for m in wrote | ran if m.startswith("core.") or m == "tui.services.hook_adapters")
    assert {"core.models", "core.shell", "core.policy", "core.audit"} <= set(ours)
    code = f"import sys, {', '.join(ours)}\nprint(sorted({SLOW_STDLIB!r} & set(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_a_write_that_claims_loads_the_store_but_no_cli(project):
    lease = claim_task(project, "agent-a")
    out, modules = spy(project, ["hook", "claude-code"], write(project / "src" / "new.py", project))
    assert out["hookSpecificOutput"]["permissionDecision"] == "allow", out
    assert lease in out["hookSpecificOutput"]["permissionDecisionReason"]
    assert "store" in modules and modules & HEAVY == set()
    # a claim never waits for a person: the store is driven inline, without an event loop, and
    # the store's modules build no class through dataclasses or typing either
    assert modules & (SLOW_STDLIB | {"asyncio", "aiosqlite"}) == set()


def test_a_denied_write_is_audited_without_an_event_loop(project):
    holder = claim_task(project, "agent-a")
    assert run_tower("claim", holder, "src/held.py", cwd=project).code == 0
    claim_task(project, "agent-b")
    out, modules = spy(project, ["hook", "claude-code"], write(project / "src" / "held.py", project),
                       env={"TOWER_AGENT": "agent-b"})
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny", out
    assert modules & {"asyncio", "aiosqlite"} == set()
    events = run_tower("--json", "audit", "tail", "-n", "5", cwd=project).json["data"]
    denied = [e for e in events if e["event"] == "hook.denied"]
    assert [(e["path"], e["actor"]) for e in denied] == [("src/held.py", "agent-b")], events


@pytest.mark.parametrize("kind,data,field", [
    ("codex", {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "git push -f"}},
     ("hookSpecificOutput", "permissionDecision")),
    ("gemini", {"hook_event_name": "BeforeTool", "tool_name": "run_shell_command",
                "tool_input": {"command": "git push -f"}}, ("decision",)),
])
def test_other_agents_answer_in_their_format_on_the_fast_path(project, kind, data, field):
    out, modules = spy(project, ["hook", kind, "--deadline", "600"], {**data, "session_id": "s", "cwd": str(project)})
    for key in field:
        out = out[key]
    assert out == "deny"
    assert modules & HEAVY == set()


def test_a_malformed_hook_line_still_denies_through_click(project):
    proc = subprocess.run([sys.executable, "-c", SPY, "hook", "codex", "--bogus"], input=b"{}", cwd=project,
                          env=tower_env(), capture_output=True, timeout=60)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_news_is_recorded_without_typing_or_an_event_loop(project):
    """An event that decides nothing (Gemini's AfterTool, on every tool call) is answered at once
    and stored through the inline store: no typing, dataclasses, inspect or asyncio either."""
    data = {"session_id": "news-1", "cwd": str(project), "hook_event_name": "AfterTool",
            "tool_name": "run_shell_command", "tool_input": {"command": "git status"},
            "tool_response": {"llmContent": "ok"}, "timestamp": "2026-11-24T00:00:00Z"}
    out, modules = spy(project, ["hook", "gemini"], data)
    assert out == {}
    assert modules & (SLOW_STDLIB | {"asyncio", "aiosqlite"}) == set()
    sessions = run_tower("--json", "agent", "list", "--all", cwd=project).data
    assert [(s["kind"], s["last_event"]) for s in sessions] == [("gemini", "AfterTool")], sessions
