"""Calls that are not one file and one id: a Codex patch over several files, Gemini calls with no call id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, run_tower, tower_env
from tests.hook.test_hook_claude_code import claim_task, claims

TOWER = [sys.executable, "-m", "tui.cli"]


@pytest.fixture
def project(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The main worktree holds src/app.py; the agent works in a linked worktree under its own lease."""
    assert run_tower("init", cwd=repo).code == 0
    wt = tmp_path / "wt-agent"
    git("worktree", "add", "-q", "-b", "agent", str(wt), cwd=repo)
    holder = claim_task(repo, "agent-main")
    assert run_tower("claim", holder, "src/app.py", cwd=repo, env={"TOWER_AGENT": "agent-main"}).code == 0
    claim_task(wt, "codex-a")
    return repo, wt.resolve()


def hook(kind: str, data: dict, cwd: Path, *args: str) -> dict:
    proc = subprocess.run([*TOWER, "hook", kind, *args], input=json.dumps(data).encode(), cwd=cwd,
                          env=tower_env(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def patch(wt: Path, body: str, call_id: str = "call_1") -> dict:
    return {"session_id": "s-1", "cwd": str(wt), "hook_event_name": "PreToolUse", "tool_name": "apply_patch",
            "tool_input": {"command": f"*** Begin Patch\n{body}*** End Patch\n"}, "tool_use_id": call_id}


def decision(out: dict) -> tuple[str, str]:
    o = out["hookSpecificOutput"]
    return o["permissionDecision"], o["permissionDecisionReason"]


def denied(repo: Path) -> list[dict]:
    r = run_tower("--json", "audit", "tail", "-n", "500", cwd=repo)
    return [e for e in r.data if e["event"] == "hook.denied"]


def test_a_patch_touching_a_held_file_is_denied_whole_and_claims_nothing(project):
    repo, wt = project
    before = claims(repo)
    body = ("*** Add File: docs/new.md\n+x\n*** Update File: src/app.py\n@@\n-print('hello')\n+print('x')\n"
            "*** Add File: src/free.py\n+y\n")
    d, reason = decision(hook("codex", patch(wt, body), wt))
    assert d == "deny"
    assert "src/app.py is claimed by" in reason and "agent-main in main" in reason, reason
    assert "nothing was claimed" in reason
    # all or nothing: the free files of the refused patch are not left claimed
    assert claims(repo) == before
    assert denied(repo)[-1]["details"]["tool"] == "apply_patch"


def test_a_patch_of_free_files_claims_them_all(project):
    repo, wt = project
    d, reason = decision(hook("codex", patch(wt, "*** Add File: a.txt\n+x\n*** Add File: lib/b.py\n+y\n"), wt))
    assert d == "allow", reason
    mine = {p for p, lease in claims(repo).items() if p != "src/app.py"}
    assert mine == {"a.txt", "lib/b.py"}
    # the same patch again (a retry) claims nothing new and is allowed
    assert decision(hook("codex", patch(wt, "*** Add File: a.txt\n+x\n*** Add File: lib/b.py\n+y\n"), wt))[0] \
        == "allow"


def test_a_patch_with_a_file_the_policy_asks_about_files_one_approval(project):
    repo, wt = project
    d, reason = decision(hook("codex", patch(wt, "*** Add File: .env\n+K=1\n*** Add File: c.txt\n+z\n"), wt,
                              "--deadline", "2"))
    assert d == "deny" and "nobody decided" in reason, reason  # Codex cannot ask: no decision within 1 s
    approvals = run_tower("--json", "approval", "list", cwd=repo).data
    assert len(approvals) == 1 and ".env" in approvals[0]["summary"], approvals


def test_gemini_calls_without_an_id_each_get_their_own_approval(project):
    """Gemini's BeforeTool has no call id: two identical calls are two approvals, never one reused."""
    repo, wt = project
    call = {"session_id": "g-1", "cwd": str(wt), "hook_event_name": "BeforeTool",
            "tool_name": "run_shell_command", "tool_input": {"command": "touch x", "description": "d"}}
    for _ in range(2):
        out = hook("gemini", call, wt, "--deadline", "2")
        assert out["decision"] == "deny" and "nobody decided" in out["reason"], out
    approvals = run_tower("--json", "approval", "list", cwd=repo).data
    assert [a["summary"] for a in approvals] == ["Bash: touch x", "Bash: touch x"]
    assert len({a["id"] for a in approvals}) == 2 and all(a["status"] == "expired" for a in approvals)


# the `tower` script's own entry (its fast path), as the agents run it
ENTRY = "import sys; sys.argv[0] = 'tower'; from tui.entry import main; main()"


def test_agents_racing_for_one_new_file_get_it_once(repo):
    """Six agents' hooks claim the same new file at the same moment, each in its own process on
    the inline store: exactly one is allowed, every other is denied naming that holder, and the
    store holds one claim and an audit chain that verifies."""
    from tests.hook.test_hook_claude_code import write

    assert run_tower("init", cwd=repo).code == 0
    agents = [f"agent-{i}" for i in range(6)]
    leases = {agent: claim_task(repo, agent) for agent in agents}
    procs = [subprocess.Popen([sys.executable, "-c", ENTRY, "hook", "claude-code"], cwd=repo,
                              env=tower_env({"TOWER_AGENT": agent}), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for agent in agents]
    try:
        data = json.dumps(write(repo / "src" / "contested.py", repo)).encode()
        for proc in procs:  # every interpreter is up before any reads its call
            proc.stdin.write(data)
        for proc in procs:
            proc.stdin.close()
        answers = {}
        for agent, proc in zip(agents, procs):
            out = proc.stdout.read()
            assert proc.wait(timeout=60) == 0, proc.stderr.read()
            answers[agent] = decision(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    winners = [agent for agent, (verdict, _) in answers.items() if verdict == "allow"]
    assert len(winners) == 1, answers
    holder = leases[winners[0]]
    for agent, (verdict, reason) in answers.items():
        if agent != winners[0]:
            assert verdict == "deny" and holder in reason, (agent, reason)
    assert claims(repo) == {"src/contested.py": holder}
    assert run_tower("audit", "verify", cwd=repo).code == 0
    assert len([e for e in denied(repo) if e["path"] == "src/contested.py"]) == len(agents) - 1
