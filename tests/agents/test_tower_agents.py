"""Tower's own hook, installed by `tower hook install <agent>`, under each real agent binary.

For Claude Code, Codex CLI and Gemini CLI alike, in a real repository with the
agent in a linked worktree and the scripted model server playing its calls:

- a write to a file another worktree holds is blocked, and the model reads the
  holder in the reason (asserted on what the agent sends back to the model);
- a free file is claimed for the session's lease and written;
- a force-push is denied by the policy, with the rule's reason;
- a command the policy asks about waits inside the hook until a person decides
  with `tower approval approve|reject` from another process, and that decision
  reaches the agent (approved: it ran; rejected: the model reads the reason);
- nothing of the repository changes when a call is blocked (git status, HEAD,
  the remote's refs), and every refusal is audited as ``hook.denied``.

Codex's PreToolUse enforces only "deny": Tower holds the call inside the hook
(the installed timeout fits the wait), so an approval still reaches it as
allow or deny. Its PermissionRequest (Codex's own prompt) is answered by a
Tower approval too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agents import harness
from tests.agents.model_server import Text, ToolCall
from tests.approvals.helpers import wait_for_store
from tests.conftest import Result, tower_env

pytestmark = pytest.mark.agents

TOWER_SCRIPT = Path(sys.executable).parent / "tower"
INSTALL_NAME = {"claude": "claude-code", "codex": "codex", "gemini": "gemini"}
WAIT = 90  # seconds any one awaited event may take on a loaded 2-core machine


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


def audit(cwd: Path, event: str) -> list[dict]:
    r = tower("--json", "audit", "tail", "-n", "1000", cwd=cwd)
    assert r.code == 0, r.stderr
    return [e for e in r.data if e["event"] == event]


def db_of(sandbox: harness.Sandbox) -> Path:
    return sandbox.repo / ".git" / "tower" / "tower.db"


def snapshot(sandbox: harness.Sandbox) -> dict:
    """What a blocked call must not change: HEAD, the index, tracked files' hashes, the remote's refs."""
    root = sandbox.root
    return {
        "head": harness.git("rev-parse", "HEAD", cwd=root).strip(),
        "index": harness.git("ls-files", "--stage", cwd=root),
        "tracked": harness.git("hash-object", *harness.git("ls-files", cwd=root).split(), cwd=root),
        "remote": harness.git("for-each-ref", cwd=sandbox.base / "origin.git"),
        "branches": harness.git("for-each-ref", "refs/heads", cwd=sandbox.repo),
    }


@pytest.fixture
def project(sandbox: harness.Sandbox):
    """Tower initialised in the repository; a bare remote 'origin' both worktrees push to."""
    harness.git("init", "-q", "--bare", str(sandbox.base / "origin.git"), cwd=sandbox.base)
    harness.git("remote", "add", "origin", str(sandbox.base / "origin.git"), cwd=sandbox.repo)
    harness.git("push", "-q", "origin", "main", "agent", cwd=sandbox.repo)
    assert tower("init", cwd=sandbox.repo).code == 0
    return sandbox


def install(kind: str, sandbox: harness.Sandbox) -> dict:
    """`tower hook install <agent>` in the agent's worktree, as a person would run it (CODEX_HOME: the run's)."""
    r = tower("--json", "hook", "install", INSTALL_NAME[kind], cwd=sandbox.root,
              env={"CODEX_HOME": str(sandbox.codex_home), "HOME": str(sandbox.home)})
    assert r.code == 0, r.stderr
    return r.data


def start(kind: str, binary: Path, sandbox: harness.Sandbox, srv, **kwargs):
    # codex_config=False: Codex runs on the trust records `tower hook install codex` wrote, not the harness's
    return harness.start_agent(kind, binary, sandbox, srv.url, codex_config=False, **kwargs)


def edit_app(kind: str, root: Path) -> list[ToolCall]:
    """Change src/app.py: Claude Code edits a file only after reading it in the session."""
    calls = [ToolCall("Read", {"file_path": str(root / "src" / "app.py")})] if kind == "claude" else []
    return calls + [harness.edit_call(kind, root, "src/app.py", "print('hello')", "print('mine')")]


def test_held_file_blocked_free_file_claimed_force_push_denied(agent, project, model_server):
    kind, binary = agent
    sb = project
    repo, wt = sb.repo, sb.root
    holder = claim_task(repo, "agent-main", "the main worktree's task")
    assert tower("claim", holder, "src/app.py", cwd=repo, env={"TOWER_AGENT": "agent-main"}).code == 0
    mine = claim_task(wt, f"{kind}-a", "the agent's task")
    installed = install(kind, sb)
    assert Path(installed["settings"]).exists()

    calls = edit_app(kind, wt)
    blocked_at = len(calls) - 1
    calls += [harness.write_call(kind, wt, "src/new.py", "x = 1\n"),
              harness.shell_call(kind, "git push --force origin HEAD:main")]
    before = snapshot(sb)
    srv = model_server([*calls, Text("finished")])
    started = time.monotonic()
    proc, argv = start(kind, binary, sb, srv)
    run = harness.finish(kind, proc, argv, started, timeout=180)
    assert run.code == 0, run.describe()

    blocked = srv.result_for(blocked_at)
    assert blocked is not None, srv.tool_results()
    assert f"src/app.py is claimed by {holder} (agent-main in main" in blocked.output, blocked.output
    assert (wt / "src" / "app.py").read_text() == "print('hello')\n"

    written = srv.result_for(blocked_at + 1)
    assert written is not None and "claimed" not in written.output and "Tower" not in written.output, written
    assert (wt / "src" / "new.py").read_text() == "x = 1\n"
    assert claims(repo) == {"src/app.py": holder, "src/new.py": mine}

    pushed = srv.result_for(blocked_at + 2)
    assert pushed is not None and "force-pushing rewrites shared history" in pushed.output, pushed

    if kind == "claude":  # Claude Code marks a blocked call as an error result
        assert blocked.is_error and pushed.is_error and not written.is_error
    # the blocked calls changed nothing: the only change is the file that was claimed and written
    assert sb.status().splitlines() == ["?? src/new.py"]
    assert snapshot(sb) == before

    denied = audit(repo, "hook.denied")
    assert [(d["details"]["agent"], d["path"] or d["details"].get("command")) for d in denied] == [
        (INSTALL_NAME[kind], "src/app.py"), (INSTALL_NAME[kind], "git push --force origin HEAD:main")], denied


def pending(sandbox: harness.Sandbox, seen: set[int]):
    """Wait (on the store's change signal) for a pending approval not in ``seen``; return it."""

    async def probe(s):
        fresh = [a for a in await s.list_approvals("pending") if a.id not in seen]
        return fresh[0] if fresh else None

    return wait_for_store(db_of(sandbox), probe, timeout=WAIT)


def test_a_risky_command_waits_for_the_person_whose_decision_reaches_the_agent(agent, project, model_server):
    kind, binary = agent
    sb = project
    claim_task(sb.root, f"{kind}-a", "the agent's task")
    install(kind, sb)
    # no policy rule allows `touch`: the default asks a person
    srv = model_server([harness.shell_call(kind, "touch approved.txt"),
                        harness.shell_call(kind, "touch rejected.txt"), Text("finished")])
    before = snapshot(sb)
    started = time.monotonic()
    proc, argv = start(kind, binary, sb, srv)
    try:
        first = pending(sb, set())
        assert first.summary == "Bash: touch approved.txt", first
        # the agent is held: the model has heard nothing and nothing ran
        assert srv.result_for(0) is None and not (sb.root / "approved.txt").exists()
        assert proc.poll() is None
        ok = tower("--json", "approval", "approve", f"A{first.id}", "-r", "go ahead", cwd=sb.repo)
        assert ok.code == 0, ok.stderr

        second = pending(sb, {first.id})
        assert second.summary == "Bash: touch rejected.txt", second
        no = tower("--json", "approval", "reject", f"A{second.id}", "-r", "MARK-not-now", cwd=sb.repo)
        assert no.code == 0, no.stderr
    except BaseException:
        harness.kill(proc)
        raise
    finally:
        run = harness.finish(kind, proc, argv, started, timeout=WAIT)
    assert run.code == 0, run.describe()

    assert (sb.root / "approved.txt").exists()
    approved = srv.result_for(0)
    assert approved is not None and "Tower" not in approved.output, approved
    rejected = srv.result_for(1)
    assert rejected is not None and f"A{second.id} rejected by" in rejected.output \
        and "MARK-not-now" in rejected.output, rejected
    assert not (sb.root / "rejected.txt").exists()
    assert sb.status().splitlines() == ["?? approved.txt"]
    assert snapshot(sb) == before
    assert [d["details"].get("command") for d in audit(sb.repo, "hook.denied")] == ["touch rejected.txt"]


def test_codex_permission_request_is_a_tower_approval(codex_bin, project, model_server):
    """Codex's own prompt (PermissionRequest, `--approve-for-me`) goes to the person through Tower."""
    sb = project
    claim_task(sb.root, "codex-a", "the agent's task")
    install("codex", sb)
    # the policy allows `ls` at PreToolUse; Codex still asks to run it outside its sandbox
    command = "ls -a"
    call = ToolCall("exec_command", {"cmd": command, "sandbox_permissions": "require_escalated",
                                     "justification": "needs a permission"})
    srv = model_server([call, Text("finished")])
    started = time.monotonic()
    proc, argv = start("codex", codex_bin, sb, srv, args=("--approve-for-me",))
    try:
        asked = pending(sb, set())
        assert asked.summary == f"Bash: {command}", asked
        assert "codex asks permission" in json.dumps(asked.detail)
        assert srv.result_for(0) is None and proc.poll() is None
        assert tower("approval", "reject", f"A{asked.id}", "-r", "MARK-no-escalation", cwd=sb.repo).code == 0
    except BaseException:
        harness.kill(proc)
        raise
    finally:
        run = harness.finish("codex", proc, argv, started, timeout=WAIT)
    assert run.code == 0, run.describe()
    result = srv.result_for(0)
    assert result is not None and "MARK-no-escalation" in result.output, srv.tool_results()
    assert ".codex" not in result.output  # ls never ran


def test_the_installed_hook_command_is_what_the_agent_runs(agent, project, model_server, tmp_path):
    """The installed entry, not a hand-written one: the agent's own payload reached `tower hook <agent>`."""
    kind, binary = agent
    sb = project
    data = install(kind, sb)
    text = Path(data["settings"]).read_text()
    assert f"hook {INSTALL_NAME[kind]}" in text
    if kind == "codex":
        config = (sb.codex_home / "config.toml").read_text()
        assert data["trusted"] >= 1 and "trusted_hash" in config
    # no lease in the worktree: a write is denied, saying to claim a task first
    srv = model_server([harness.write_call(kind, sb.root, "notes.txt", "x\n"), Text("finished")])
    started = time.monotonic()
    proc, argv = start(kind, binary, sb, srv)
    run = harness.finish(kind, proc, argv, started, timeout=180)
    assert run.code == 0, run.describe()
    result = srv.result_for(0)
    assert result is not None and "no active lease for this session" in result.output, srv.tool_results()
    assert not (sb.root / "notes.txt").exists()


def test_codex_patch_over_a_held_and_a_free_file_is_refused_whole(codex_bin, project, model_server):
    """All or nothing: the free file is neither written nor left claimed, and the model reads the holder."""
    sb = project
    holder = claim_task(sb.repo, "agent-main", "the main worktree's task")
    assert tower("claim", holder, "src/app.py", cwd=sb.repo, env={"TOWER_AGENT": "agent-main"}).code == 0
    claim_task(sb.root, "codex-a", "the agent's task")
    install("codex", sb)
    body = "*** Add File: src/free.py\n+x = 1\n*** Update File: src/app.py\n@@\n-print('hello')\n+print('mine')\n"
    srv = model_server([ToolCall("apply_patch", f"*** Begin Patch\n{body}*** End Patch\n"), Text("finished")])
    before = snapshot(sb)
    started = time.monotonic()
    proc, argv = start("codex", codex_bin, sb, srv)
    run = harness.finish("codex", proc, argv, started, timeout=180)
    assert run.code == 0, run.describe()
    result = srv.result_for(0)
    assert result is not None and f"src/app.py is claimed by {holder} (agent-main in main" in result.output, \
        srv.tool_results()
    assert "nothing was claimed" in result.output
    assert claims(sb.repo) == {"src/app.py": holder}
    assert not (sb.root / "src" / "free.py").exists()
    assert sb.status() == "" and snapshot(sb) == before
