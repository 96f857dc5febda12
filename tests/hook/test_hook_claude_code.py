"""`tower hook claude-code` fed documented PreToolUse payloads, in real git worktrees on a real store."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from core.policy import DEFAULT_POLICY
from tests.approvals.helpers import TOWER, Procs, finish, pending_approval
from tests.conftest import git, run_tower, tower_env

pytestmark = pytest.mark.slow

SESSION = "8f3a2c1e-5b7d-4e9a-a1c3-2d4f6b8e0a12"


@pytest.fixture
def procs():
    p = Procs()
    try:
        yield p
    finally:
        p.kill_all()


@pytest.fixture
def project(repo: Path, tmp_path: Path):
    """The repo (worktree `main`) plus a second worktree `wt-b`, with a Tower store."""
    wt_b = tmp_path / "wt-b"
    git("worktree", "add", "-q", str(wt_b), "-b", "b", cwd=repo)
    r = run_tower("init", cwd=repo)
    assert r.code == 0, r.stderr
    return repo, wt_b.resolve()


def db_of(repo: Path) -> Path:
    return repo / ".git" / "tower" / "tower.db"


def set_policy(repo: Path, text: str) -> None:
    (repo / ".git" / "tower" / "policy.toml").write_text(text)


def payload(tool: str, tool_input: dict, cwd: Path, *, tool_use_id: str | None = None) -> dict:
    """A PreToolUse object with every documented field."""
    return {
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/demo/{SESSION}.jsonl",
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": tool_use_id or f"toolu_{uuid.uuid4().hex[:24]}",
    }


def write(path: Path, cwd: Path, **kw) -> dict:
    return payload("Write", {"file_path": str(path), "content": "x = 1\n"}, cwd, **kw)


def edit(path: Path, cwd: Path, **kw) -> dict:
    return payload("Edit", {"file_path": str(path), "old_string": "hello", "new_string": "bye",
                            "replace_all": False}, cwd, **kw)


def bash(command: str, cwd: Path, **kw) -> dict:
    return payload("Bash", {"command": command, "description": "run it", "timeout": 120000}, cwd, **kw)


def decision_of(stdout: str | bytes) -> tuple[str, str]:
    """Validate stdout against the documented PreToolUse output and return (decision, reason)."""
    text = stdout.decode() if isinstance(stdout, bytes) else stdout
    assert text.endswith("\n") and text.count("\n") == 1, text
    body = json.loads(text)
    assert set(body) == {"hookSpecificOutput"}, body
    out = body["hookSpecificOutput"]
    assert set(out) == {"hookEventName", "permissionDecision", "permissionDecisionReason"}, out
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] in ("allow", "deny", "ask")
    assert isinstance(out["permissionDecisionReason"], str) and out["permissionDecisionReason"].strip()
    return out["permissionDecision"], out["permissionDecisionReason"]


def hook(data, cwd: Path, env: dict | None = None, timeout: float = 60) -> tuple[str, str]:
    raw = data if isinstance(data, bytes) else (data if isinstance(data, str) else json.dumps(data)).encode()
    proc = subprocess.run([*TOWER, "hook", "claude-code"], input=raw, cwd=cwd, env=tower_env(env),
                          capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    # never a traceback; at most the one line saying a refusal could not be audited (an unusable store)
    assert b"Traceback" not in proc.stderr and proc.stderr.count(b"\n") <= 1, proc.stderr
    assert not proc.stderr or proc.stderr.startswith(b"tower hook: could not audit the refusal"), proc.stderr
    return decision_of(proc.stdout)


def claim_task(cwd: Path, agent: str, *scope: str) -> str:
    title = f"task for {agent} {uuid.uuid4().hex[:4]}"
    args = ["task", "add", title] + [a for g in scope for a in ("--scope", g)]
    assert run_tower(*args, cwd=cwd).code == 0
    r = run_tower("--json", "task", "claim", cwd=cwd, env={"TOWER_AGENT": agent})
    assert r.code == 0, r.stderr
    return r.data["lease_id"]


def claims(repo: Path) -> dict[str, str]:
    leases = run_tower("--json", "lease", "list", cwd=repo).data
    return {path: lease["id"] for lease in leases for path in lease["claims"]}


# -- policy-only calls ---------------------------------------------------------------


def test_bash_read_only_is_allowed_and_destructive_denied(project):
    repo, _ = project
    assert hook(bash("git status", repo), repo)[0] == "allow"
    decision, reason = hook(bash("rm -rf / --no-preserve-root", repo), repo)
    assert decision == "deny" and "rule 1" in reason
    decision, reason = hook(bash("git push --force origin main", repo), repo)
    assert decision == "deny" and "force" in reason
    assert hook(payload("Read", {"file_path": str(repo / "README.md")}, repo), repo)[0] == "allow"
    assert hook(payload("ExitPlanMode", {"plan": "do it"}, repo), repo)[0] == "ask"  # Claude Code's own prompt


@pytest.mark.parametrize("raw, words", [
    (b"", "empty"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON list"),
    (b'{"tool_input": {}}', "tool_name"),
    (b'{"tool_name": "Bash", "tool_input": "ls"}', "tool_input"),
    (b"\xff\xfe{", "UTF-8"),
    (b'{"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {}}', "PreToolUse only"),
])
def test_malformed_input_is_denied_with_a_reason(project, raw, words):
    repo, _ = project
    decision, reason = hook(raw, repo)
    assert decision == "deny"
    assert words in reason


def test_no_store_and_no_repository(repo, tmp_path):
    decision, reason = hook(bash("ls", repo), repo)  # a repository without `tower init`
    assert decision == "deny" and "tower init" in reason
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    decision, reason = hook(bash("ls", elsewhere), elsewhere)
    assert decision == "deny" and "not inside a git repository" in reason


def test_bad_policy_denies_naming_the_line(project):
    repo, _ = project
    set_policy(repo, 'default = "allow"\n\n[[rule]]\ntool = "Bash"\ndecision = "sure"\n')
    decision, reason = hook(bash("ls", repo), repo)
    assert decision == "deny"
    assert "line 5" in reason and "rule[1].decision" in reason


def test_unusable_store_is_denied(project):
    repo, _ = project
    db_of(repo).write_bytes(b"this is not a database" * 100)
    for db_file in db_of(repo).parent.glob("tower.db-*"):
        db_file.unlink()
    claim = write(repo / "src" / "new.py", repo)
    decision, reason = hook(claim, repo)
    assert decision == "deny" and "unusable" in reason


# -- writes and claims ----------------------------------------------------------------


def test_write_without_a_lease_is_denied(project):
    repo, _ = project
    decision, reason = hook(write(repo / "src" / "new.py", repo), repo)
    assert decision == "deny"
    assert "tower task claim" in reason and "worktree main" in reason
    assert claims(repo) == {}


def test_write_without_a_lease_allowed_by_policy(project):
    repo, _ = project
    set_policy(repo, DEFAULT_POLICY.replace('without_lease = "deny"', 'without_lease = "allow"'))
    assert hook(write(repo / "src" / "new.py", repo), repo)[0] == "allow"


def test_write_and_edit_claim_for_the_worktree_lease(project):
    repo, _ = project
    lease = claim_task(repo, "agent-a")
    decision, reason = hook(write(repo / "src" / "new.py", repo), repo)
    assert decision == "allow", reason
    assert f"claimed for {lease}" in reason
    assert hook(edit(repo / "src" / "app.py", repo), repo)[0] == "allow"
    assert hook(edit(repo / "src" / "app.py", repo), repo)[0] == "allow"  # already held: no second claim
    notebook = payload("NotebookEdit", {"notebook_path": str(repo / "nb" / "a.ipynb"), "new_source": "1"}, repo)
    assert hook(notebook, repo)[0] == "allow"
    relative = payload("MultiEdit", {"file_path": "docs/guide.md", "edits": []}, repo / "src")
    assert hook(relative, repo)[0] == "allow"
    assert claims(repo) == {"src/new.py": lease, "src/app.py": lease, "nb/a.ipynb": lease,
                            "src/docs/guide.md": lease}
    events = [e["event"] for e in run_tower("--json", "audit", "tail", "-n", "50", cwd=repo).data]
    assert events.count("files.claimed") == 4


def test_path_held_by_another_worktree_is_denied_naming_the_holder(project):
    repo, wt_b = project
    lease_a = claim_task(repo, "agent-a")
    assert hook(edit(repo / "src" / "app.py", repo), repo)[0] == "allow"
    lease_b = claim_task(wt_b, "agent-b")
    decision, reason = hook(edit(wt_b / "src" / "app.py", wt_b), wt_b)
    assert decision == "deny"
    assert f"src/app.py is claimed by {lease_a} (agent-a in main, task T1)" in reason
    assert claims(repo) == {"src/app.py": lease_a}
    # other files are fine for b
    assert hook(write(wt_b / "src" / "b.py", wt_b), wt_b)[0] == "allow"
    assert claims(repo)["src/b.py"] == lease_b


@pytest.mark.parametrize("target", ["/etc/hosts", "../outside.txt", ".git/config"])
def test_paths_outside_the_repository_are_denied(project, target):
    repo, _ = project
    claim_task(repo, "agent-a")
    decision, reason = hook(write(Path(target) if target.startswith("/") else Path(target), repo), repo)
    assert decision == "deny"
    assert "outside the repository" in reason or "inside .git" in reason


def test_out_of_scope_write_is_denied(project):
    repo, _ = project
    claim_task(repo, "agent-a", "docs/**")
    decision, reason = hook(write(repo / "src" / "x.py", repo), repo)
    assert decision == "deny" and "outside the scope" in reason
    assert hook(write(repo / "docs" / "x.md", repo), repo)[0] == "allow"


def test_choosing_among_several_leases_in_one_worktree(project):
    repo, _ = project
    la = claim_task(repo, "agent-a", "src/**")
    lb = claim_task(repo, "agent-b", "docs/**")
    # the task scopes tell them apart
    assert hook(write(repo / "src" / "a.py", repo), repo)[0] == "allow"
    assert hook(write(repo / "docs" / "b.md", repo), repo)[0] == "allow"
    assert claims(repo) == {"src/a.py": la, "docs/b.md": lb}
    # nothing tells them apart: the agent must say
    decision, reason = hook(write(repo / "README.md", repo), repo)
    assert decision == "deny" and "several active leases" in reason and "TOWER_LEASE" in reason
    assert hook(write(repo / "src" / "c.py", repo), repo, env={"TOWER_AGENT": "agent-a"})[0] == "allow"
    assert hook(write(repo / "docs" / "c.md", repo), repo, env={"TOWER_LEASE": lb})[0] == "allow"
    assert claims(repo)["docs/c.md"] == lb
    # an agent's lease does not write into another's scope
    decision, reason = hook(write(repo / "docs" / "d.md", repo), repo, env={"TOWER_AGENT": "agent-a"})
    assert decision == "deny" and "outside the scope" in reason


def test_an_ended_lease_cannot_claim(project):
    repo, _ = project
    lease = claim_task(repo, "agent-a")
    assert run_tower("task", "done", lease, cwd=repo).code == 0
    decision, reason = hook(write(repo / "x.py", repo), repo, env={"TOWER_LEASE": lease})
    assert decision == "deny" and f"TOWER_LEASE={lease} is not an active lease" in reason
    decision, reason = hook(write(repo / "x.py", repo), repo)
    assert decision == "deny" and "tower task claim" in reason


def test_secret_files_ask_after_the_claim(project, procs):
    repo, _ = project
    lease = claim_task(repo, "agent-a")
    proc = procs.spawn("hook", "claude-code", cwd=repo, stdin=True)
    proc.stdin.write(json.dumps(write(repo / ".env", repo)))
    proc.stdin.close()
    a = pending_approval(db_of(repo))
    assert (a.kind, a.summary, a.detail["path"], a.lease_id) == ("write", "Write .env", ".env", int(lease[1:]))
    assert claims(repo) == {".env": lease}
    assert run_tower("approval", "reject", f"A{a.id}", "--reason", "no secrets", cwd=repo).code == 0
    code, out, err = finish(proc)
    assert code == 0 and err == ""
    decision, reason = decision_of(out)
    assert decision == "deny" and "no secrets" in reason


# -- asking a person ------------------------------------------------------------------

ASK_POLICY = 'default = "ask"\n[ask]\ntimeout = {timeout}\non_timeout = "{on_timeout}"\n'


def start_hook(procs: Procs, data: dict, cwd: Path, env: dict | None = None):
    proc = procs.spawn("hook", "claude-code", cwd=cwd, env=env, stdin=True)
    proc.stdin.write(json.dumps(data))
    proc.stdin.close()
    return proc


def test_ask_is_decided_by_another_process_while_the_hook_waits(project, procs):
    repo, _ = project
    set_policy(repo, ASK_POLICY.format(timeout=60, on_timeout="deny"))
    call = bash("npm install left-pad", repo, tool_use_id="toolu_01ABC")
    proc = start_hook(procs, call, repo, env={"TOWER_AGENT": "agent-a"})
    a = pending_approval(db_of(repo))
    assert (a.kind, a.key, a.requested_by) == ("command", "toolu_01ABC", "agent-a")
    assert a.summary == "Bash: npm install left-pad"
    assert a.detail["command"] == "npm install left-pad"
    assert a.detail["session_id"] == SESSION and a.detail["tool_use_id"] == "toolu_01ABC"
    assert "default" in a.detail["policy"]
    r = run_tower("approval", "approve", f"A{a.id}", "--reason", "fine", cwd=repo, env={"TOWER_AGENT": "alice"})
    assert r.code == 0
    code, out, err = finish(proc)
    assert code == 0 and err == ""
    decision, reason = decision_of(out)
    assert decision == "allow"
    assert reason == f"Tower: A{a.id} approved by alice: fine"
    # Claude Code running the hook again for the same tool call gets the same answer at once
    assert hook(call, repo, env={"TOWER_AGENT": "agent-a"}) == (decision, reason)
    assert len(run_tower("--json", "approval", "list", cwd=repo).data) == 1


def test_ask_rejected(project, procs):
    repo, _ = project
    set_policy(repo, ASK_POLICY.format(timeout=60, on_timeout="deny"))
    proc = start_hook(procs, bash("make deploy", repo), repo)
    a = pending_approval(db_of(repo))
    assert a.requested_by == f"claude-code:{SESSION[:8]}"
    assert run_tower("approval", "reject", f"A{a.id}", "--reason", "not today", cwd=repo).code == 0
    code, out, _ = finish(proc)
    decision, reason = decision_of(out)
    assert decision == "deny" and "rejected" in reason and "not today" in reason


@pytest.mark.parametrize("on_timeout, expected", [("deny", "deny"), ("ask", "ask")])
def test_ask_times_out_before_claude_codes_own_timeout(project, on_timeout, expected):
    repo, _ = project
    set_policy(repo, ASK_POLICY.format(timeout=1, on_timeout=on_timeout))
    decision, reason = hook(bash("make deploy", repo, tool_use_id="toolu_late"), repo)
    assert decision == expected
    assert "nobody decided" in reason
    listed = run_tower("--json", "approval", "list", cwd=repo).data
    assert [(x["status"], x["key"]) for x in listed] == [("expired", "toolu_late")]
    late = run_tower("--json", "approval", "approve", listed[0]["id"], cwd=repo)
    assert late.code == 4 and late.json["error"]["code"] == "approval_closed"


def test_sigterm_while_waiting_cancels_and_still_answers(project, procs):
    repo, _ = project
    set_policy(repo, ASK_POLICY.format(timeout=60, on_timeout="deny"))
    proc = start_hook(procs, bash("make deploy", repo), repo)
    a = pending_approval(db_of(repo))
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 0 and err == ""
    decision, reason = decision_of(out)
    assert decision == "deny" and "SIGTERM" in reason
    shown = run_tower("--json", "approval", "show", f"A{a.id}", cwd=repo).data
    assert shown["status"] == "cancelled"


def test_hook_writes_nothing_for_allowed_reads(project):
    """A policy-only call does not write to the store: no audit event, no approval."""
    repo, _ = project
    before = run_tower("--json", "audit", "head", cwd=repo).stdout
    for _ in range(3):
        assert hook(bash("ls", repo), repo)[0] == "allow"
    assert run_tower("--json", "audit", "head", cwd=repo).stdout == before


def test_non_ascii_paths_under_the_c_locale(project):
    repo, _ = project
    lease = claim_task(repo, "agent-a")
    decision, reason = hook(write(repo / "docs" / "café.md", repo), repo, env={"LC_ALL": "C", "LANG": "C"})
    assert decision == "allow" and "docs/café.md" in reason
    assert claims(repo) == {"docs/café.md": lease}
