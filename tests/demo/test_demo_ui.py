"""The README's main command, for real: `tower demo` and `tower` in a pseudo-terminal.

The control room must draw, answer `q`, and leave nothing behind (agents
stopped, temporary repository removed).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_tower, tower_env


class Terminal:
    """A child process on a pseudo-terminal, read without blocking."""

    def __init__(self, argv: list[str], cwd: Path, env: dict) -> None:
        master, slave = pty.openpty()
        os.set_blocking(master, False)
        env = {**env, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.screen = b""

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0 and self.proc.poll() is None, self.screen[-2000:].decode(errors="replace")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    pass

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def quit(self, timeout: float = 60) -> int:
        """``q``; while approvals wait the room asks first ("quit anyway?"): enter says yes."""
        self.press("q")
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if b"quit anyway?" in self.screen:
                self.press("\r")
                break
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    break
        return self.close()

    def close(self, timeout: float = 30) -> int:
        try:
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                ready, _, _ = select.select([self.master], [], [], 0.2)  # keep draining the terminal
                if ready:
                    try:
                        self.screen += os.read(self.master, 65536)
                    except OSError:
                        pass
            try:
                self.screen += os.read(self.master, 65536)  # what it wrote on the way out
            except OSError:
                pass
            return self.proc.wait(timeout=1)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            os.close(self.master)


def demo_agents(tmp_path: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"tui.demo.agent .*{tmp_path}"], capture_output=True, text=True)
    return out.stdout.split()


@pytest.mark.slow
def test_tower_demo_opens_the_control_room_and_quits_cleanly(tmp_path):
    term = Terminal([sys.executable, "-m", "tui.cli", "demo", "--speed", "4"], tmp_path,
                    tower_env({"TMPDIR": str(tmp_path)}))
    try:
        term.wait_for("Queue")
        term.wait_for("Fix rounding")  # the seeded queue is on screen
        assert len(demo_agents(tmp_path)) >= 2
        assert term.quit() == 0
    finally:
        for pid in demo_agents(tmp_path):
            os.kill(int(pid), signal.SIGKILL)
    assert demo_agents(tmp_path) == []
    assert not list(tmp_path.glob("tower-demo-*"))


@pytest.mark.slow
def test_tower_without_arguments_is_the_control_room(repo):
    assert run_tower("init", cwd=repo).code == 0
    assert run_tower("task", "add", "Visible in the room", cwd=repo).code == 0
    term = Terminal([sys.executable, "-m", "tui.cli", "--no-watch"], repo, tower_env())
    term.wait_for("Visible in the room")
    term.press("q")
    assert term.close() == 0


@pytest.mark.slow
def test_no_color_runs_the_demo_and_the_room(tmp_path, repo):
    """NO_COLOR=1 used to crash both (Textual's monochrome filter) and exit 0."""
    term = Terminal([sys.executable, "-m", "tui.cli", "demo", "--speed", "4"], tmp_path,
                    tower_env({"TMPDIR": str(tmp_path), "NO_COLOR": "1"}))
    try:
        term.wait_for("Fix rounding")
        term.press("3")
        term.wait_for("Approvals")
        assert b"Traceback" not in term.screen
        assert term.quit() == 0
    finally:
        for pid in demo_agents(tmp_path):
            os.kill(int(pid), signal.SIGKILL)
    assert run_tower("init", cwd=repo).code == 0
    assert run_tower("task", "add", "Seen without colour", cwd=repo).code == 0
    term = Terminal([sys.executable, "-m", "tui.cli", "--no-watch"], repo, tower_env({"NO_COLOR": "1"}))
    term.wait_for("Seen without colour")
    term.press("?")
    term.wait_for("this help")
    term.screen = b""
    term.press("q")  # closes the help
    term.wait_for("Filter")  # the main screen's footer again
    term.press("q")
    assert term.close() == 0


@pytest.mark.slow
def test_a_crash_in_the_room_is_never_exit_0(repo):
    assert run_tower("init", cwd=repo).code == 0
    crash = (
        "import sys; from tui.room.app import TowerApp\n"
        "def boom(self): raise RuntimeError('injected fault')\n"
        "TowerApp.action_help = boom\n"
        "from tui.cli import main; main(sys.argv[1:])\n"
    )
    term = Terminal([sys.executable, "-c", crash, "--no-watch"], repo, tower_env())
    term.wait_for("Queue")
    term.press("?")
    code = term.close()
    assert code == 1
    assert b"the control room stopped on an internal error" in term.screen


@pytest.mark.slow
def test_the_demo_shows_agents_in_every_state(tmp_path):
    """Its agents send Gemini CLI's hook events: working, waiting (on a Tower approval and at
    their own prompt), idle between tasks, one stalls (its lease alive, no tool call), one ends."""
    term = Terminal([sys.executable, "-m", "tui.cli", "demo", "--speed", "4"], tmp_path,
                    tower_env({"TMPDIR": str(tmp_path)}))
    try:
        term.wait_for("Fix rounding")
        term.press("6")
        for label in ("▶ working", "● WAITING", "◦ idle", "· ended", "⚠ STALLED"):
            term.wait_for(label, timeout=120)
        assert term.quit() == 0
    finally:
        for pid in demo_agents(tmp_path):
            os.kill(int(pid), signal.SIGKILL)
    assert demo_agents(tmp_path) == []
