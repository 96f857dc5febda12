"""Facts about the agents' hook machinery that an adapter or installer must respect (docs/agents.md).

Ways a hook silently does not run, and the agents' own permission paths a hook
can answer; each checked against the real binary.
"""

from __future__ import annotations

import sys

import pytest

from tests.agents import harness
from tests.agents.model_server import Text, ToolCall

pytestmark = pytest.mark.agents

NEEDS_PERMISSION = "python3 -c \"open('perm_probe','w')\""


def _recorder_command(log) -> str:
    return f"{sys.executable} {harness.RECORD_HOOK} {log}"


# -- Codex: when its project hooks run, and when they silently do not ---------------------------------------


def test_codex_skips_a_hook_whose_trust_hash_is_missing(codex_bin, sandbox, run_agent, tmp_path):
    log = tmp_path / "hooks.jsonl"
    harness.add_hook("codex", sandbox.hooks_root("codex"), "PreToolUse", _recorder_command(log))
    run, _ = run_agent("codex", codex_bin, [harness.shell_call("codex", "touch ran"), Text("ok")],
                       codex_trust_hooks=False)
    assert run.code == 0, run.describe()
    assert (sandbox.root / "ran").exists()
    assert harness.read_log(log) == []  # not a word about it
    # the same file, trusted by hash, runs
    run, _ = run_agent("codex", codex_bin, [harness.shell_call("codex", "touch ran2"), Text("ok")])
    assert [p["tool_input"]["command"] for p in harness.payloads(log, "PreToolUse")] == ["touch ran2"]


def test_codex_reads_hooks_from_the_main_worktree_only(codex_bin, sandbox, run_agent, tmp_path):
    log = tmp_path / "hooks.jsonl"
    harness.add_hook("codex", sandbox.repo, "PreToolUse", _recorder_command(log) + " main")
    harness.add_hook("codex", sandbox.root, "PreToolUse", _recorder_command(log) + " linked")
    run, _ = run_agent("codex", codex_bin, [harness.shell_call("codex", "true"), Text("ok")])
    assert run.code == 0, run.describe()
    entries = harness.read_log(log)
    assert [e["argv"][-1] for e in entries] == ["main"]
    assert entries[0]["payload"]["cwd"] == str(sandbox.root)  # the session is still the linked worktree's


def test_codex_needs_a_codex_dir_in_the_linked_worktree(codex_bin, sandbox, run_agent, tmp_path, monkeypatch):
    log = tmp_path / "hooks.jsonl"
    harness.add_hook("codex", sandbox.repo, "PreToolUse", _recorder_command(log))
    harness.codex_trust(sandbox)  # project and hook trusted ...
    (sandbox.root / ".codex").rmdir()  # ... but no .codex/ in the linked worktree
    monkeypatch.setattr(harness, "prepare_home", lambda *a, **k: None)
    run, _ = run_agent("codex", codex_bin, [harness.shell_call("codex", "true"), Text("ok")])
    assert run.code == 0, run.describe()
    assert harness.read_log(log) == []


def test_codex_runs_the_known_events_of_a_hooks_file_that_also_names_others(codex_bin, sandbox, run_agent,
                                                                             tmp_path):
    log = tmp_path / "hooks.jsonl"
    root = sandbox.hooks_root("codex")
    harness.add_hook("codex", root, "PreToolUse", _recorder_command(log))
    harness.add_hook("codex", root, "Notification", _recorder_command(log))  # Claude Code's, not Codex's
    harness.add_hook("codex", root, "SessionEnd", _recorder_command(log))
    run, _ = run_agent("codex", codex_bin, [harness.shell_call("codex", "touch ran"), Text("ok")])
    assert run.code == 0, run.describe()
    assert [p["hook_event_name"] for p in harness.payloads(log)] == ["PreToolUse"]


# -- the agents' own permission prompts, answered by a hook ------------------------------------


def _permission_answer(behavior: str) -> dict:
    decision = {"behavior": behavior}
    if behavior == "deny":
        decision["message"] = "MARK-person-said-no"
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}}


@pytest.mark.parametrize("behavior", ["allow", "deny"])
def test_claude_permission_request_is_decided_by_the_hook(claude_bin, sandbox, run_agent, recorder, behavior):
    log = recorder("claude", [{"event": "PermissionRequest", "stdout": _permission_answer(behavior)}],
                   events=("PreToolUse", "PermissionRequest"))
    run, srv = run_agent("claude", claude_bin, [ToolCall("Bash", {"command": NEEDS_PERMISSION,
                                                                  "description": "needs a permission"}), Text("ok")])
    assert run.code == 0, run.describe()
    [req] = harness.payloads(log, "PermissionRequest")
    assert req["tool_name"] == "Bash" and req["tool_input"]["command"] == NEEDS_PERMISSION
    assert "tool_use_id" not in req  # the pre-tool payload has it; this one does not
    assert harness.payloads(log, "PreToolUse")[0]["tool_use_id"] == srv.call_id(0)
    result = srv.result_for(0)
    if behavior == "allow":
        assert (sandbox.root / "perm_probe").exists() and not result.is_error
    else:
        assert not (sandbox.root / "perm_probe").exists()
        assert result.is_error and "MARK-person-said-no" in result.output


@pytest.mark.parametrize("behavior", ["allow", "deny"])
def test_codex_permission_request_is_decided_by_the_hook(codex_bin, sandbox, run_agent, recorder, behavior):
    log = recorder("codex", [{"event": "PermissionRequest", "stdout": _permission_answer(behavior)}],
                   events=("PermissionRequest",))
    call = ToolCall("exec_command", {"cmd": NEEDS_PERMISSION, "sandbox_permissions": "require_escalated",
                                     "justification": "needs a permission"})
    run, srv = run_agent("codex", codex_bin, [call, Text("ok")], args=("--approve-for-me",))
    assert run.code == 0, run.describe()
    [req] = harness.payloads(log, "PermissionRequest")
    assert req["tool_input"] == {"command": NEEDS_PERMISSION, "description": "needs a permission"}
    if behavior == "allow":
        assert (sandbox.root / "perm_probe").exists()
    else:
        assert not (sandbox.root / "perm_probe").exists()
        assert "MARK-person-said-no" in srv.result_for(0).output


def test_codex_exec_without_approve_for_me_never_asks(codex_bin, sandbox, run_agent, recorder):
    log = recorder("codex", [{"event": "PermissionRequest", "stdout": _permission_answer("allow")}],
                   events=("PermissionRequest",))
    call = ToolCall("exec_command", {"cmd": NEEDS_PERMISSION, "sandbox_permissions": "require_escalated",
                                     "justification": "needs a permission"})
    run, srv = run_agent("codex", codex_bin, [call, Text("ok")])
    assert run.code == 0, run.describe()
    assert harness.payloads(log, "PermissionRequest") == []
    assert not (sandbox.root / "perm_probe").exists()
    assert "approval policy is Never" in srv.result_for(0).output


def test_gemini_ask_notifies_then_waits_for_a_confirmation(gemini_bin, sandbox, model_server, recorder):
    """Headless, "ask" never resolves: the run is cut once the Notification shows it waits."""
    srv = model_server([harness.write_call("gemini", sandbox.root, "asked.txt", "x"), Text("ok")])
    recorder("gemini", [{"event": "BeforeTool", "stdout": {"decision": "ask", "reason": "MARK-ask"}}],
             events=("BeforeTool", "Notification"), notify=srv.hook_event_url)
    harness.prepare_home("gemini", sandbox)
    proc = harness.subprocess.Popen(
        harness.agent_argv("gemini", gemini_bin, srv.url, "Do the task."), cwd=sandbox.root,
        env=harness.agent_env("gemini", sandbox, srv.url), stdin=harness.subprocess.DEVNULL,
        stdout=harness.subprocess.DEVNULL, stderr=harness.subprocess.DEVNULL, start_new_session=True)
    try:
        [notification] = srv.wait_for(lambda s: s.hook_payloads("Notification"), timeout=90)
        assert notification["notification_type"] == "ToolPermission"
        assert notification["details"]["filePath"] == str(sandbox.root / "asked.txt")
        assert proc.poll() is None  # still waiting for a person at a terminal that is not there
        assert srv.result_for(0) is None  # the model never heard back
        assert not (sandbox.root / "asked.txt").exists()
    finally:
        harness.os.killpg(proc.pid, harness.signal.SIGKILL)
        proc.wait()
