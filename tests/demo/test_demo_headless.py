"""`tower demo --headless`: the whole system end to end, with real agent processes.

Simulated agents (separate processes, public command line only) claim, heartbeat,
claim files, edit real files in their worktrees, ask for approvals, crash and
trespass; the watcher and a simulated person run alongside.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_tower


@pytest.mark.slow
def test_headless_demo_runs_the_whole_story(tmp_path):
    result = run_tower("demo", "--headless", "--agents", "4", "--speed", "4", "--duration", "150", "--json",
                       cwd=tmp_path, env={"TMPDIR": str(tmp_path)}, timeout=240)
    assert result.code == 0, result.stderr
    summary = result.data
    # every task ended up done, failed or back in the queue; none is stuck as leased
    assert set(summary["tasks"]) <= {"done", "failed", "pending"}
    assert summary["tasks"].get("done", 0) >= 5
    # no lease outlived its TTL, and the crashed agent's lease was reaped
    assert summary["leases"]["overdue"] == 0
    assert summary["reaped"], summary
    assert summary["agent_events"].get("crashing") == 1
    # the trespassing agent was caught by the watcher
    kinds = {c["kind"] for c in summary["conflicts"]}
    assert "claimed_by_other" in kinds, summary["conflicts"]
    # the simulated person decided approvals both ways
    assert summary["approvals"].get("approved", 0) >= 1 and summary["approvals"].get("rejected", 0) >= 1
    assert summary["audit"]["intact"] and summary["audit"]["events"] > 50
    # the temporary repository was removed (no --keep)
    assert summary["repository"] is None
    assert not list(tmp_path.glob("tower-demo-*"))  # mkdtemp honours TMPDIR


@pytest.mark.slow
def test_demo_keep_leaves_the_repository(tmp_path):
    result = run_tower("demo", "--headless", "--agents", "2", "--speed", "10", "--duration", "3", "--keep",
                       "--json", cwd=tmp_path, env={"TMPDIR": str(tmp_path)}, timeout=120)
    assert result.code == 0, result.stderr
    kept = result.data["repository"]
    assert kept and (tmp_path / kept.split("/")[-2] / "shop" / ".git" / "tower" / "tower.db").exists()


@pytest.mark.slow
def test_killed_demo_stops_its_agents_and_cleans_up(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import tower_env

    demo = subprocess.Popen([sys.executable, "-m", "tui.cli", "demo", "--headless", "--duration", "120"],
                            cwd=tmp_path, env=tower_env({"TMPDIR": str(tmp_path)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def agents() -> list[str]:
        out = subprocess.run(["pgrep", "-f", f"tui.demo.agent .*{tmp_path}"], capture_output=True, text=True)
        return out.stdout.split()

    try:
        deadline = time.monotonic() + 60
        while len(agents()) < 2 and time.monotonic() < deadline:  # wait for the agents to be up
            time.sleep(0.2)
        assert len(agents()) >= 2
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
        assert agents() == []
        assert not list(tmp_path.glob("tower-demo-*"))
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in agents():
            os.kill(int(pid), signal.SIGKILL)


def test_agents_started_before_a_failed_start_can_be_stopped(tmp_path):
    """A start that fails halfway (here a missing worktree; in the field SIGTERM or SIGHUP while the
    agents start, under load) leaves the agents already started where ``stop`` finds them: they
    live in sessions of their own, out of reach of the terminal's signals."""
    import subprocess

    from tui.demo import seed
    from tui.services.demo import Agents

    repo = seed.create(tmp_path / "demo", 2)
    first = next(iter(repo.worktrees))
    repo.worktrees = {first: repo.worktrees[first], "ghost": tmp_path / "no-such-worktree"}
    agents = Agents(tmp_path / "logs")
    try:
        with pytest.raises(FileNotFoundError):
            agents.start(repo, speed=1.0, ttl=30.0)
        assert list(agents.procs) == [first]
    finally:
        agents.stop()
    out = subprocess.run(["pgrep", "-f", f"tui.demo.agent {first} .*{tmp_path}"], capture_output=True, text=True)
    assert out.stdout.split() == []
