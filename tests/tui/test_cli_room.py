"""The door to the control room on the command line: no terminal, typos, bare groups."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_tower, tower_env

NEEDS_A_TERMINAL = "tower: the control room needs a terminal; see `tower --help`"


def tower_without_a_terminal(*args: str, cwd, timeout: float = 20, stdin=subprocess.DEVNULL):
    """As an agent's shell tool runs it: stdin and stdout are pipes, not a terminal."""
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, env=tower_env(), stdin=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_tower_without_a_terminal_says_so_and_exits_2(repo):
    assert run_tower("init", cwd=repo).code == 0
    result = tower_without_a_terminal(cwd=repo)  # used to draw to stderr and wait forever
    assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", NEEDS_A_TERMINAL)


def test_tower_without_a_terminal_in_json_mode(repo):
    result = tower_without_a_terminal("--json", cwd=repo)
    assert result.returncode == 2
    assert '"code": "no_terminal"' in result.stdout


def test_tower_demo_without_a_terminal_starts_nothing(tmp_path):
    env = tower_env({"TMPDIR": str(tmp_path)})
    result = subprocess.run([sys.executable, "-m", "tui.cli", "demo"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr.strip()) == (2, NEEDS_A_TERMINAL)
    assert not list(tmp_path.glob("tower-demo-*"))  # no repository made, no agent started


def test_a_mistyped_command_gets_a_suggestion(tmp_path):
    result = run_tower("taks", "list", cwd=tmp_path)
    assert result.code == 2
    assert "No such command 'taks'. Did you mean 'task'?" in result.stderr
    assert "Did you mean 'approval'" in run_tower("aproval", cwd=tmp_path).stderr
    assert "Did you mean" not in run_tower("zzzz", cwd=tmp_path).stderr


def test_a_bare_group_prints_its_help(tmp_path):
    result = run_tower("task", cwd=tmp_path)
    assert result.code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Usage: tower task")
    assert any(line.strip().startswith("claim ") for line in lines)  # one command a line, not folded
    assert len(lines) > 8
