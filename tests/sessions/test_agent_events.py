"""Every captured (and documented) hook payload of every agent, mapped to a session event.

The table below is written by hand from docs/agents.md and the payloads in
tests/agents/fixtures/; a fixture added there fails
``test_the_table_covers_every_fixture`` until its expectation is written here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.sessions.conftest import KIND, all_payload_files, event_of, payload
from tui.services.agent_events import (
    agent_process,
    approval_done_event,
    approval_wait_event,
    session_event,
)

PERM = "python3 -c \"open('perm_probe','w')\""
# (folder, file) -> (state, tool, target, tool_call, outcome, reason)
EXPECTED = {
    ("claude", "PermissionRequest.Bash.json"): ("waiting", "Bash", PERM, False, None, f"permission: Bash {PERM}"),
    ("claude", "PostToolUse.Bash.json"): ("working", "Bash", "echo tower-probe", True, "ok", None),
    ("claude", "PostToolUse.Edit.json"): ("working", "Edit", "README.md", True, "ok", None),
    ("claude", "PostToolUse.Read.json"): ("working", "Read", "README.md", True, "ok", None),
    ("claude", "PostToolUse.Write.json"): ("working", "Write", "notes.txt", True, "ok", None),
    ("claude", "PostToolUseFailure.Bash.json"): ("working", "Bash", "ls does-not-exist", True, "failed", None),
    ("claude", "PreToolUse.Bash.json"): ("working", "Bash", "echo tower-probe", True, None, None),
    ("claude", "PreToolUse.Edit.json"): ("working", "Edit", "README.md", True, None, None),
    ("claude", "PreToolUse.Read.json"): ("working", "Read", "README.md", True, None, None),
    ("claude", "PreToolUse.Write.json"): ("working", "Write", "notes.txt", True, None, None),
    ("claude", "SessionEnd.json"): ("ended", None, None, False, None, None),
    ("claude", "SessionStart.json"): ("idle", None, None, False, None, None),
    ("claude", "Stop.json"): ("idle", None, None, False, None, None),
    ("claude", "UserPromptSubmit.json"): ("working", None, None, False, None, None),
    ("codex", "PermissionRequest.Bash.json"): ("waiting", "Bash", PERM, False, None, f"permission: Bash {PERM}"),
    # Codex's PostToolUse carries no exit code for a shell command: done, outcome unknown
    ("codex", "PostToolUse.Bash.json"): ("working", "Bash", "echo tower-probe", True, "done", None),
    ("codex", "PostToolUse.apply_patch.json"): ("working", "apply_patch", "notes.txt", True, "ok", None),
    ("codex", "PreToolUse.Bash.json"): ("working", "Bash", "echo tower-probe", True, None, None),
    ("codex", "PreToolUse.apply_patch.json"): ("working", "apply_patch", "notes.txt", True, None, None),
    ("codex", "SessionStart.json"): ("idle", None, None, False, None, None),
    ("codex", "Stop.json"): ("idle", None, None, False, None, None),
    ("codex", "UserPromptSubmit.json"): ("working", None, None, False, None, None),
    ("gemini", "AfterAgent.json"): ("idle", None, None, False, None, None),
    ("gemini", "AfterModel.json"): (None, None, None, False, None, None),
    ("gemini", "AfterTool.replace.json"): ("working", "replace", "README.md", True, "ok", None),
    ("gemini", "AfterTool.run_shell_command.json"): ("working", "run_shell_command", "echo tower-probe", True, "ok",
                                                     None),
    ("gemini", "AfterTool.write_file.json"): ("working", "write_file", "notes.txt", True, "ok", None),
    ("gemini", "BeforeAgent.json"): ("working", None, None, False, None, None),
    ("gemini", "BeforeModel.json"): (None, None, None, False, None, None),
    ("gemini", "BeforeTool.replace.json"): ("working", "replace", "README.md", True, None, None),
    ("gemini", "BeforeTool.run_shell_command.json"): ("working", "run_shell_command", "echo tower-probe", True, None,
                                                      None),
    ("gemini", "BeforeTool.write_file.json"): ("working", "write_file", "notes.txt", True, None, None),
    ("gemini", "BeforeToolSelection.json"): (None, None, None, False, None, None),
    ("gemini", "Notification.ToolPermission.json"): (
        "waiting", None, None, False, None, "permission: Tool Confirm Write: perm_probe requires editing"),
    ("gemini", "PreCompress.json"): (None, None, None, False, None, None),
    ("gemini", "SessionEnd.json"): ("ended", None, None, False, None, None),
    ("gemini", "SessionStart.json"): ("idle", None, None, False, None, None),
    ("copilot", "PreToolUse.bash.json"): ("working", "bash", "git status", True, None, None),
    ("copilot", "agentStop.json"): ("idle", None, None, False, None, None),
    ("copilot", "notification.permission_prompt.json"): (
        "waiting", None, None, False, None, "permission: Copilot wants to run: rm -rf build"),
    ("copilot", "permissionRequest.bash.json"): ("waiting", "bash", "rm -rf build", False, None,
                                                 "permission: bash rm -rf build"),
    ("copilot", "postToolUse.bash.json"): ("working", "bash", "git status", True, "ok", None),
    ("copilot", "preToolUse.bash.json"): ("working", "bash", "git push --force origin main", True, None, None),
    ("copilot", "preToolUse.create.json"): ("working", "create", "src/new.py", True, None, None),
    ("copilot", "preToolUse.edit.json"): ("working", "edit", "src/app.py", True, None, None),
    ("copilot", "sessionEnd.json"): ("ended", None, None, False, None, None),
    ("copilot", "sessionStart.json"): ("idle", None, None, False, None, None),
    ("cursor", "afterFileEdit.json"): ("working", "edit", "src/app.py", True, "ok", None),
    # no exit code in afterShellExecution either
    ("cursor", "afterShellExecution.json"): ("working", "shell", "git status", True, "done", None),
    ("cursor", "beforeMCPExecution.json"): ("working", "mcp:database_query", "DELETE FROM users", True, None, None),
    ("cursor", "beforeReadFile.json"): ("working", "read", ".env", True, None, None),
    ("cursor", "beforeShellExecution.json"): ("working", "shell", "git push --force origin main", True, None, None),
    ("cursor", "preToolUse.Write.json"): ("working", "Write", "src/new.py", True, None, None),
    ("cursor", "stop.json"): ("idle", None, None, False, None, None),
}

SESSION_FIELDS = ("session_id", "sessionId", "conversation_id")


def test_the_table_covers_every_fixture():
    assert set(all_payload_files()) == set(EXPECTED)


@pytest.mark.parametrize(("folder", "name"), sorted(EXPECTED), ids=lambda v: v)
def test_fixture_payload_maps_to_its_session_event(folder, name):
    data = payload(folder, name)
    ev = session_event(KIND[folder], data, event=event_of(name))
    assert ev is not None
    state, tool, target, tool_call, outcome, reason = EXPECTED[(folder, name)]
    assert (ev.state, ev.tool, ev.target, ev.tool_call, ev.outcome, ev.reason) == (
        state, tool, target, tool_call, outcome, reason)
    assert ev.kind == KIND[folder]
    assert ev.session == next(data[k] for k in SESSION_FIELDS if k in data)
    assert ev.event == data.get("hook_event_name", event_of(name))
    assert ev.cwd == "/tmp/sandbox/wt-agent"
    assert ev.waiting_for is None and ev.ends_wait is None


def test_copilot_camel_case_payloads_take_the_event_from_the_adapter():
    data = payload("copilot", "agentStop.json")
    assert "hook_event_name" not in data
    assert session_event("copilot", data) is None  # nothing says which event it is
    assert session_event("copilot", data, event="agentStop").state == "idle"
    # a payload that names its event wins over the adapter's guess
    note = payload("copilot", "notification.permission_prompt.json")
    assert session_event("copilot", note, event="sessionStart").state == "waiting"


def test_copilot_tool_args_as_a_json_string():
    data = payload("copilot", "preToolUse.edit.json")
    data["toolArgs"] = '{"path": "/tmp/sandbox/wt-agent/src/app.py", "old_str": "a", "new_str": "b"}'
    ev = session_event("copilot", data, event="preToolUse")
    assert (ev.tool, ev.target) == ("edit", "src/app.py")


@pytest.mark.parametrize(("ntype", "state", "reason"), [
    ("permission_prompt", "waiting", "permission: Claude needs your permission to use Bash"),
    ("idle_prompt", "waiting", "input: Claude is waiting for your input"),
    ("elicitation_dialog", "waiting", "input: Claude is waiting for your input"),
    ("agent_needs_input", "waiting", "input: Claude is waiting for your input"),
    ("auth_success", None, None),
])
def test_claude_code_notifications(ntype, state, reason):
    """Claude Code sends Notification only interactively (docs): not in the headless fixtures."""
    message = ("Claude needs your permission to use Bash" if ntype == "permission_prompt"
               else "Claude is waiting for your input")
    base = payload("claude", "Stop.json")
    data = {k: base[k] for k in ("session_id", "transcript_path", "cwd")}
    data |= {"hook_event_name": "Notification", "message": message, "notification_type": ntype}
    ev = session_event("claude-code", data)
    assert (ev.state, ev.reason) == (state, reason)


def test_session_start_after_compaction_changes_nothing():
    data = payload("claude", "SessionStart.json") | {"source": "compact"}
    assert session_event("claude-code", data).state is None
    assert session_event("claude-code", data | {"source": "resume"}).state == "idle"


def test_interrupted_tool_call():
    data = payload("claude", "PostToolUseFailure.Bash.json") | {"is_interrupt": True}
    assert session_event("claude-code", data).outcome == "interrupted"


def test_codex_notify_turn_complete():
    """Codex's `notify` program gets {"type": "agent-turn-complete", "thread-id", ...} (docs)."""
    data = {"type": "agent-turn-complete", "thread-id": "01a20cb4-2b31-7693-98b7-a39ffbbc9e21",
            "turn-id": "t1", "cwd": "/tmp/sandbox/wt-agent", "input-messages": ["hi"],
            "last-assistant-message": "done"}
    ev = session_event("codex", data)
    assert (ev.session, ev.state) == ("01a20cb4-2b31-7693-98b7-a39ffbbc9e21", "idle")


def test_codex_patch_with_several_files_and_a_shell_argv():
    data = payload("codex", "PreToolUse.apply_patch.json")
    data["tool_input"] = {"command": "*** Begin Patch\n*** Update File: a.py\n@@\n-x\n+y\n*** Delete File: b.py\n"
                                     "*** Update File: c.py\n*** Move to: d.py\n*** End Patch\n"}
    assert session_event("codex", data).target == "a.py, b.py, c.py, d.py"
    shell = payload("codex", "PreToolUse.Bash.json")
    shell["tool_input"] = {"command": ["bash", "-lc", "make   test\nmake lint"]}
    assert session_event("codex", shell).target == "make test make lint"
    post = payload("codex", "PostToolUse.apply_patch.json") | {"tool_response": "Exit code: 1\nOutput:\nbad patch"}
    assert session_event("codex", post).outcome == "failed"


def test_cursor_tab_events_are_not_the_agent():
    data = payload("cursor", "afterFileEdit.json") | {"hook_event_name": "afterTabFileEdit"}
    assert session_event("cursor", data) is None


def test_unknown_events_are_signs_of_life():
    data = payload("claude", "Stop.json") | {"hook_event_name": "SomethingNew"}
    ev = session_event("claude-code", data)
    assert ev.event == "SomethingNew" and ev.state is None and not ev.tool_call


@pytest.mark.parametrize("data", [
    {}, {"hook_event_name": "Stop"}, {"session_id": "", "hook_event_name": "Stop"},
    {"session_id": 42, "hook_event_name": "Stop"}, {"session_id": "s"}, [1, 2],
])
def test_payloads_without_a_session_or_event_map_to_none(data):
    assert session_event("claude-code", data) is None


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        session_event("claude", {"session_id": "s", "hook_event_name": "Stop"})


def test_long_and_multiline_targets_are_folded_and_cut():
    data = payload("claude", "PreToolUse.Bash.json")
    data["tool_input"] = {"command": "echo a\n\n  echo b " + "x" * 1000}
    target = session_event("claude-code", data).target
    assert target.startswith("echo a echo b xxx") and len(target) == 300 and target.endswith("…")


def test_tower_approval_wait_and_its_end():
    wait = approval_wait_event("claude-code", "s1", 3, "rm -rf build")
    assert (wait.state, wait.waiting_for, wait.reason) == ("waiting", 3, "Tower approval A3: rm -rf build")
    done = approval_done_event("claude-code", "s1", 3, "approved")
    assert (done.state, done.ends_wait, done.event) == ("working", 3, "tower.approval_approved")


def test_claude_pid_comes_from_its_environment():
    pid, start = agent_process("claude-code", {"CLAUDE_PID": str(os.getpid())})
    assert pid == os.getpid() and start is not None
    assert agent_process("cursor", {}) == (None, None)
    assert agent_process("cli", {}) == (None, None)


AGENT = """
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME: what /proc calls us
subprocess.run(["/bin/sh", "-c", f"{sys.executable} {sys.argv[2]}; true"], check=True)
print(os.getpid())
"""
HOOK = """
import sys
sys.path.insert(0, {root!r})
from tui.services.agent_events import agent_process
open({out!r}, "w").write(repr([agent_process(k, {{}}) for k in ("codex", "gemini")]))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
@pytest.mark.parametrize("name", ["codex", "helper"])
def test_agent_pid_is_the_parent_past_shells_and_only_under_the_agents_name(tmp_path, name):
    """A real process tree: an agent process runs its hook through `sh -c`."""
    out = tmp_path / "out"
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK.format(root=str(ROOT), out=str(out)))
    proc = subprocess.run([sys.executable, "-c", AGENT, name, str(hook)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    agent_pid = int(proc.stdout)
    codex, gemini = eval(out.read_text())  # noqa: S307 - our own repr of ints and Nones
    if name == "codex":
        assert codex[0] == agent_pid and codex[1] is not None
    else:  # a parent that is not called codex: no pid rather than a wrong one
        assert codex == (None, None)
    assert gemini == (None, None)


def test_the_mapping_loads_no_heavy_module():
    code = ("import sys, json\n"
            "from tui.services import agent_events\n"
            "ev = agent_events.session_event('claude-code', {'session_id': 's', 'hook_event_name': 'Stop'})\n"
            "print(json.dumps(sorted(m for m in ('click', 'textual', 'pydantic', 'aiosqlite', 'asyncio')"
            " if m in sys.modules)))\n")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", (out.stdout, time.perf_counter() - start)
