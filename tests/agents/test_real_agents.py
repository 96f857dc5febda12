"""The harness against the real binaries, and each agent's hook semantics as the binaries apply them.

What docs/agents.md states as verified is asserted here, so an agent release
that changes it fails these tests instead of silently changing what Tower can
enforce.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents import harness, scenarios
from tests.agents.model_server import Text

pytestmark = pytest.mark.agents

FIXTURES = Path(__file__).resolve().parent / "fixtures"

PRE = {"claude": "PreToolUse", "codex": "PreToolUse", "gemini": "BeforeTool"}
POST = {"claude": "PostToolUse", "codex": "PostToolUse", "gemini": "AfterTool"}
END = {"claude": "Stop", "codex": "Stop", "gemini": "AfterAgent"}
SHELL_TOOL = {"claude": "Bash", "codex": "Bash", "gemini": "run_shell_command"}
SHELL_KEY = {"claude": "command", "codex": "command", "gemini": "command"}


def test_shell_call_reaches_the_hook_and_its_result_reaches_the_model(agent, sandbox, run_agent, recorder):
    kind, binary = agent
    log = recorder(kind)
    command = "printf 'tower-probe-%s\\n' 42"  # the shell, not the model, makes 42 (Gemini refuses $(...))
    run, srv = run_agent(kind, binary, [harness.shell_call(kind, command), Text("finished")])
    assert run.code == 0, run.describe()

    pre = harness.payloads(log, PRE[kind])
    assert len(pre) == 1, harness.read_log(log)
    call = pre[0]
    assert call["tool_name"] == SHELL_TOOL[kind]
    assert call["tool_input"][SHELL_KEY[kind]] == command
    assert Path(call["cwd"]).resolve() == sandbox.root  # the linked worktree, for every agent
    assert call["session_id"]
    if kind != "gemini":  # Gemini's BeforeTool carries no call id
        assert call["tool_use_id"] == srv.call_id(0)
    post = harness.payloads(log, POST[kind])
    assert [p["tool_name"] for p in post] == [SHELL_TOOL[kind]]
    assert "tower-probe-42" in json.dumps(post[0]["tool_response"])
    assert [p["session_id"] for p in harness.payloads(log, END[kind])] == [call["session_id"]]
    assert [p["source"] for p in harness.payloads(log, "SessionStart")] == ["startup"]

    result = srv.result_for(0)
    assert result is not None and "tower-probe-42" in result.output, srv.tool_results()

    # the payload the adapters are built from has not drifted from the stored fixture
    fixture = json.loads((FIXTURES / kind / f"{PRE[kind]}.{SHELL_TOOL[kind]}.json").read_text())
    assert set(call) == set(fixture), f"{kind} {PRE[kind]} fields changed: {sorted(set(call) ^ set(fixture))}"


# What each hook answer does to a PreToolUse/BeforeTool call, per binary:
# "block" = the call does not run and the model reads the case's reason;
# "run" = the call runs (for a failure case: the agent fails open).
EXPECTED = {
    "claude": {"empty": "run", "allow_json": "run", "deny_json": "block", "ask_json": "block", "exit2": "block",
               "exit1": "run", "timeout": "run", "garbage": "run", "block_legacy": "block", "deny_write": "block"},
    "codex": {"empty": "run", "allow_json": "run", "deny_json": "block", "ask_json": "run", "exit2": "block",
              "exit1": "run", "timeout": "run", "garbage": "run", "block_legacy": "block", "deny_write": "block"},
    "gemini": {"empty": "run", "allow_json": "run", "deny_json": "block", "exit2": "block",
               "exit1": "run", "timeout": "run", "garbage": "run", "deny_write": "block"},
}


def test_decision_formats_and_fail_open_cases(agent, tmp_path):
    kind, binary = agent
    m = scenarios.decision_matrix(kind, binary, tmp_path / "matrix")
    assert m.run.code == 0, m.run.describe()
    seen = {}
    for case, r in m.results.items():
        if r.ran and not r.reason_seen and r.told is not None:
            seen[case] = "run"
        elif not r.ran and r.reason_seen:
            seen[case] = "block"
        else:
            seen[case] = f"odd: ran={r.ran} told={r.told!r}"
    assert seen == EXPECTED[kind]
    if kind == "claude":  # Claude Code marks a blocked call as an error result
        assert all(m.results[c].is_error for c, v in EXPECTED[kind].items() if v == "block")
