"""The hook answers one well-formed decision and exits 0 on every input, whatever breaks inside.

Claude Code runs the tool call when its hook exits non-zero (other than 2),
prints nothing usable, or outlives its timeout. Each test here feeds the real
`tower hook claude-code` process something that used to crash it, hang it or
make it exit in a way Claude Code reads as "go ahead".
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.approvals.helpers import TOWER, Procs, read_line
from tests.conftest import run_tower, tower_env
from tests.hook.test_hook_claude_code import bash, claim_task, db_of, decision_of, payload, set_policy, write

pytestmark = pytest.mark.slow


@pytest.fixture
def procs():
    p = Procs()
    try:
        yield p
    finally:
        p.kill_all()


@pytest.fixture
def project(repo: Path) -> Path:
    assert run_tower("init", cwd=repo).code == 0
    return repo


def run_hook(data, cwd: Path, *args: str, env: dict | None = None, timeout: float = 60,
             stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return subprocess.run([*TOWER, "hook", "claude-code", *args], input=raw, cwd=cwd, env=tower_env(env),
                          stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)


def answered(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    assert proc.returncode == 0, proc.stderr
    # never a traceback; at most the one line saying a refusal could not be audited (a broken store)
    assert b"Traceback" not in proc.stderr and proc.stderr.count(b"\n") <= 1, proc.stderr
    assert not proc.stderr or proc.stderr.startswith(b"tower hook: could not audit the refusal"), proc.stderr
    return decision_of(proc.stdout)


# -- inputs that are not valid Unicode --------------------------------------------------


@pytest.mark.parametrize("policy", ['default = "deny"\n', 'default = "prompt"\n', None])
@pytest.mark.parametrize("where", ["command", "file_path", "cwd", "tool_name"])
def test_a_lone_surrogate_anywhere_is_denied_with_a_well_formed_answer(project, policy, where):
    """JSON allows "\\udcff"; UTF-8 does not. It used to crash the hook (exit 1, nothing on stdout)."""
    if policy is not None:
        set_policy(project, policy)
    if where == "command":
        data = bash("make \udcff", project)
    elif where == "file_path":
        data = write(project / "src" / "a\udcff.py", project)
    elif where == "cwd":
        data = bash("ls", project)
        data["cwd"] = str(project) + "/\udcff"
    else:
        data = payload("Bash\udcff", {"command": "ls"}, project)
    raw = json.dumps(data).encode()  # ensure_ascii: the surrogate travels as the escape \udcff
    assert b"\\udcff" in raw
    decision, reason = answered(run_hook(raw, project))
    assert decision == "deny"
    assert "lone surrogate" in reason and "\\udcff" in reason


# -- the process itself in trouble --------------------------------------------------------


@pytest.mark.parametrize("module", ["click", "sqlite3"])
def test_a_broken_install_still_denies(project, tmp_path, module):
    """An import that fails before the command line is even built (click), or halfway through a call
    (sqlite3, when a write needs the store), is a deny naming it, not a traceback."""
    claim_task(project, "agent-a")
    shadow = tmp_path / "shadow" / module
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(f"raise ImportError('{module} is broken in this test')\n")
    env = {"PYTHONPATH": f"{tmp_path / 'shadow'}:{tower_env()['PYTHONPATH']}"}
    decision, reason = answered(run_hook(write(project / "src" / "n.py", project), project, env=env))
    assert decision == "deny"
    assert "ImportError" in reason and f"{module} is broken" in reason


def test_a_bad_option_is_a_deny_not_a_usage_error(project):
    decision, reason = answered(run_hook(bash("ls", project), project, "--no-such-option"))
    assert decision == "deny" and "no-such-option" in reason


def test_stdout_that_cannot_take_the_answer_blocks_the_call(project):
    """Exit 2 is Claude Code's "block" (stderr is the reason); exit 0 with nothing would let the call run."""
    with open("/dev/full", "wb") as full:
        proc = run_hook(bash("ls", project), project, stdout=full)
    assert proc.returncode == 2
    assert b"could not write its decision" in proc.stderr and b"Traceback" not in proc.stderr


def _catches(pid: int, sig: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask & (1 << (sig - 1)))


def test_sigterm_before_the_decision_answers_deny(project, procs):
    """Claude Code may stop the hook while it still reads stdin: it must not die silently."""
    proc = procs.spawn("hook", "claude-code", cwd=project, stdin=True)  # stdin stays open: it reads forever
    deadline = time.monotonic() + 30
    while not _catches(proc.pid, signal.SIGTERM):  # readiness: the hook has its handler in place
        assert proc.poll() is None and time.monotonic() < deadline, "the hook never handles SIGTERM"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    decision, reason = decision_of(out)
    assert decision == "deny" and "SIGTERM" in reason


def test_stdin_that_never_ends_is_denied_at_the_deadline(project, procs):
    """The hook answers by itself before Claude Code's timeout, whatever it is stuck on."""
    t0 = time.monotonic()
    proc = procs.spawn("hook", "claude-code", "--deadline", "3", cwd=project, stdin=True)
    out = read_line(proc.stdout, timeout=30)  # stdin stays open: the hook never sees the end of its input
    proc.wait(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.read()
    decision, reason = decision_of(out)
    assert decision == "deny" and "ran out of time" in reason
    assert took < 3, took  # Claude Code would have killed it, and run the call, at 3 s


# the `tower` script's entry, reached only after a slow start (a loaded machine, a cold disk)
SLOW_START = "import sys, time; time.sleep(1.5); sys.argv[0] = 'tower'; from tui.entry import main; main()"


def test_the_deadline_counts_from_the_spawn_not_from_a_slow_start(project, procs):
    """The agent's timeout runs from when it spawned the hook: time the interpreter took to
    reach Tower's code is already spent, and the hook still answers before the agent gives up."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_START, "hook", "claude-code", "--deadline", "3"], cwd=project,
                            env=tower_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    procs.started.append(proc)
    out = read_line(proc.stdout, timeout=30)  # stdin stays open: only the deadline ends the wait
    took = time.monotonic() - t0
    decision, reason = decision_of(out)
    assert decision == "deny" and "ran out of time" in reason
    # counted from its own start it would answer 1.5 s late, at 4.2 s: after the agent ran the call
    assert took < 3.5, took


# -- a store someone else keeps locked -------------------------------------------------------

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(40)
"""


@pytest.fixture
def locked(project, procs):
    """A foreign process holding SQLite's write lock on the store for 40 s (killed at the end)."""

    def lock():
        proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db_of(project))], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.started.append(proc)
        assert read_line(proc.stdout).strip() == "locked"
        return proc

    return lock


@pytest.mark.parametrize("call", ["write", "ask"])
def test_the_hook_answers_within_its_deadline_while_the_store_is_locked(project, locked, call):
    claim_task(project, "agent-a")
    set_policy(project, 'default = "ask"\n[ask]\ntimeout = 60\n')
    data = write(project / "src" / "new.py", project) if call == "write" else bash("make deploy", project)
    locked()
    t0 = time.monotonic()
    decision, reason = answered(run_hook(data, project, "--deadline", "5", timeout=60))
    took = time.monotonic() - t0
    assert decision == "deny"
    assert "locked by another process" in reason, reason
    assert took < 5, took  # not the store's 30 s lock timeout: Claude Code runs the call at 5 s
    # nothing half-done: no claim, no approval
    with sqlite3.connect(db_of(project)) as conn:
        assert conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM approvals").fetchone()[0] == 0
