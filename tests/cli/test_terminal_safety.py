"""Agent-controlled text never reaches the person's terminal raw (issue 9, point 13).

A store full of hostile text (titles, agent and worktree names, paths,
summaries, reasons, details, branch names, conflict messages) is walked with
every human-readable command, and errors that echo input. No output may carry
a control character (C0 but the newlines between lines, DEL, C1), an ESC or a
bidirectional override; a newline in a title must not forge a row. ``--json``
stays exact.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
import subprocess
import sys
from pathlib import Path

import click
import pytest

from store import Store
from tests.conftest import git, tower_env
from tui.cli import cli

# clear screen, set the window title (OSC 0), write the clipboard (OSC 52), a carriage
# return and a newline that start a forged row, a C1 CSI, DEL, a right-to-left override
HOSTILE = ("evil\x1b[2J\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\r\nT99   pending   p0   forged"
           "\x9b1m\x7f\u202egnp.exe")
FORGED = re.compile(r"^\s*T99\b", re.MULTILINE)
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# commands whose output is not for a person's terminal (an agent's hook format) or
# that open the control room; `watch` runs until stopped (its one-shot form is walked)
NOT_HUMAN = {("demo",), ("watch",), ("serve",), ("hook", "claude-code")}
HUMAN_HOOK_COMMANDS = {"install", "uninstall", "check"}


def tower_bytes(*args: str, cwd: Path, env: dict | None = None) -> tuple[int, bytes, bytes]:
    proc = subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, env=tower_env(env),
                          capture_output=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def tower_json(*args: str, cwd: Path, env: dict | None = None):
    code, out, err = tower_bytes(*args, "--json", cwd=cwd, env=env)
    body = json.loads(out)
    assert code == 0 and body["ok"], (args, out, err)
    return body["data"]


def assert_safe(args: tuple[str, ...], stream: str, raw: bytes) -> None:
    text = raw.decode("utf-8")  # strict: a lone surrogate or stray byte would fail here
    bad = UNSAFE.search(text)
    assert bad is None, f"`tower {' '.join(args)}` wrote {bad.group()!r} to {stream}: {text!r}"
    assert not FORGED.search(text), f"`tower {' '.join(args)}` printed a forged row on {stream}: {text!r}"


def leaf_commands() -> set[tuple[str, ...]]:
    ctx = click.Context(cli)
    leaves = set()
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            leaves |= {(name, sub) for sub in command.list_commands(ctx)}
        else:
            leaves.add((name,))
    return leaves


@pytest.fixture(scope="module")
def hostile_template(tmp_path_factory) -> Path:
    """A repository whose store holds hostile text in every field an agent can fill (built once)."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "src" / "app.py").write_text("print('hello')\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "init", cwd=repo)
    repo = repo.resolve()

    def ok(*args: str, env: dict | None = None):
        return tower_json(*args, cwd=repo, env=env)

    ok("init")
    ok("task", "add", HOSTILE, "--description", f"first line\n{HOSTILE}", "--scope", "src/**",
       "--scope", f"docs/{HOSTILE}")
    ok("task", "add", "plain")
    as_agent = {"TOWER_AGENT": HOSTILE}
    first = ok("task", "claim", "--task", "T1", "--worktree", HOSTILE, env=as_agent)["lease_id"]
    assert first == "L1"
    ok("approval", "request", "--kind", "command", "--summary", HOSTILE, "--detail",
       json.dumps({"cmd": HOSTILE, HOSTILE: [HOSTILE]}), "--lease", "L1", env=as_agent)
    ok("approval", "request", "--kind", "custom", "--summary", HOSTILE, "--key", HOSTILE, env=as_agent)
    ok("approval", "reject", "A2", "--reason", HOSTILE)
    ok("task", "fail", "L1", "--reason", HOSTILE, env=as_agent)
    ok("task", "claim", "--task", "T1", env=as_agent)  # L2, in the main worktree
    ok("claim", "L2", f"src/{HOSTILE}.py", env=as_agent)
    ok("task", "claim", "--task", "T2", "--agent", "other")  # L3

    async def watcher_and_registry() -> None:
        async with Store(repo / ".git" / "tower" / "tower.db", actor="watcher") as s:
            await s.record_conflict(kind="claimed_by_other", path=f"src/{HOSTILE}.py", worktree=HOSTILE,
                                    other_worktree=HOSTILE, lease_id=2, message=HOSTILE)
            await s.add_worktree(HOSTILE, str(tmp_path / "gone" / HOSTILE), branch=HOSTILE, agent=HOSTILE,
                                 actor=HOSTILE)

    asyncio.run(watcher_and_registry())
    return repo


@pytest.fixture
def hostile_repo(hostile_template: Path, tmp_path: Path) -> Path:
    """A copy of the hostile repository for one test (the walk changes its store)."""
    copy = tmp_path / "repo"
    shutil.copytree(hostile_template, copy, symlinks=True)
    return copy.resolve()


def test_no_human_output_passes_control_characters(hostile_repo):
    repo = hostile_repo
    reads: list[tuple[str, ...]] = [
        ("task", "list"), ("task", "list", "--status", "leased"), ("task", "show", "T1"),
        ("lease", "list", "--all"), ("lease", "show", "L1"), ("lease", "show", "L2"),
        ("approval", "list"), ("approval", "show", "A1"), ("approval", "show", "A2"),
        ("approval", "wait", "A2"),  # rejected: exit 4, the reason in the message
        ("conflict", "list", "--all"), ("worktree", "list"),
        ("audit", "tail", "-n", "1000"), ("audit", "head"), ("audit", "verify"),
        ("hook", "check", "--tool", "Bash", "--command", HOSTILE, "--path", HOSTILE),
        # errors that echo what they were given
        ("task", "show", HOSTILE), ("task", "list", "--status", HOSTILE), (HOSTILE,), ("task", HOSTILE),
        ("claim", "L2", f"/elsewhere/{HOSTILE}"), ("approval", "request", "--kind", HOSTILE, "--summary", "s"),
        ("watch", "--rebaseline", HOSTILE),
        ("guard", "check"), ("guard", "check", "--staged"),
        ("agent", "list", "--all"), ("agent", "show", "S1"), ("agent", "show", HOSTILE),
        ("key", "id"), ("key", "export", "--out", f"/nonexistent/{HOSTILE}"),
    ]
    writes: list[tuple[str, ...]] = [  # in this order: each may use what the one before made
        ("init",),
        ("task", "add", HOSTILE), ("task", "claim", "--task", "T3", "--agent", HOSTILE),
        ("task", "fail", "L4", "--reason", HOSTILE, "--agent", HOSTILE),
        ("task", "cancel", "T3"), ("task", "retry", "T3"),
        ("lease", "heartbeat", "L2", "--agent", HOSTILE),
        ("claim", "L2", f"src/{HOSTILE}-2.py", "--agent", HOSTILE),
        ("release", "L2", f"src/{HOSTILE}-2.py", "--agent", HOSTILE),
        ("lease", "release", "L3"), ("reap",),
        ("approval", "request", "--kind", "custom", "--summary", HOSTILE, "--detail", json.dumps({"x": HOSTILE})),
        ("approval", "approve", "A3", "--reason", HOSTILE),
        ("approval", "reject", "A1", "--reason", HOSTILE),
        ("conflict", "ack", "C1"), ("conflict", "list", "--all"),
        ("worktree", "sync"), ("worktree", "add", HOSTILE),
        ("hook", "install", "claude-code"), ("hook", "uninstall", "claude-code"),
        ("guard", "install"), ("guard", "uninstall"),
        ("mcp", "install", "claude-code", "--agent", HOSTILE), ("mcp", "uninstall", "claude-code"),
        ("task", "done", "L2"), ("audit", "tail", "-n", "1000"),
        ("key", "import", "--file", HOSTILE), ("key", "export"),
    ]

    def check(args: tuple[str, ...]) -> None:
        code, out, err = tower_bytes(*args, cwd=repo)
        assert "Traceback" not in err.decode("utf-8", "replace"), (args, err)
        assert_safe(args, "stdout", out)
        assert_safe(args, "stderr", err)

    with ThreadPoolExecutor(max_workers=4) as pool:  # reads only: they may run side by side
        list(pool.map(check, reads))
    for args in writes:
        check(args)
    walk = reads + writes
    # the hostile text did reach the outputs, escaped: the walk is not vacuous
    code, out, _ = tower_bytes("task", "list", cwd=repo)
    assert code == 0 and "evil\\e[2J\\e]0;pwned\\x07" in out.decode()

    walked = {a[:2] if a[0] in {"task", "lease", "approval", "conflict", "worktree", "audit", "hook", "guard", "mcp", "agent", "key"} else a[:1]
              for a in walk}
    expected = {leaf for leaf in leaf_commands() if leaf not in NOT_HUMAN
                and not (leaf[0] == "hook" and leaf[1] not in HUMAN_HOOK_COMMANDS)}
    missing = expected - walked
    assert not missing, f"add {sorted(missing)} to this walk: every human-readable output is checked here"


def test_json_output_stays_exact(hostile_repo):
    repo = hostile_repo
    task = tower_json("task", "show", "T1", cwd=repo)
    assert task["title"] == HOSTILE and task["description"] == f"first line\n{HOSTILE}"
    assert task["scope"] == ["src/**", f"docs/{HOSTILE}"] and task["last_error"] == HOSTILE
    lease = tower_json("lease", "show", "L1", cwd=repo)
    assert lease["agent"] == HOSTILE and lease["worktree"] == HOSTILE
    assert tower_json("lease", "show", "L2", cwd=repo)["claims"] == [f"src/{HOSTILE}.py"]
    approval = tower_json("approval", "show", "A1", cwd=repo)
    assert approval["summary"] == HOSTILE and approval["detail"] == {"cmd": HOSTILE, HOSTILE: [HOSTILE]}
    assert tower_json("approval", "show", "A2", cwd=repo)["reason"] == HOSTILE
    conflict = tower_json("conflict", "list", cwd=repo)[0]
    assert conflict["message"] == HOSTILE and conflict["worktree"] == HOSTILE
    worktree = next(w for w in tower_json("worktree", "list", cwd=repo) if w["name"] == HOSTILE)
    assert worktree["branch"] == HOSTILE and worktree["agent"] == HOSTILE
    events = tower_json("audit", "tail", "-n", "1000", cwd=repo)
    assert any(e["details"].get("title") == HOSTILE for e in events)


def test_a_newline_in_a_title_cannot_forge_a_row(hostile_repo):
    code, out, _ = tower_bytes("task", "list", cwd=hostile_repo)
    lines = out.decode().splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == ["T1", "T2"]
    code, out, _ = tower_bytes("approval", "list", cwd=hostile_repo)
    assert code == 0 and sorted(line.split()[0] for line in out.decode().splitlines()) == ["A1", "A2"]


def test_tower_watch_prints_hostile_file_names_escaped(repo):
    """`tower watch` (and its -v log) names files an agent wrote: the name is agent-controlled."""
    import queue
    import signal
    import threading

    assert tower_bytes("init", cwd=repo)[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "watch", "-v", "--rescan-interval", "1"], cwd=repo,
                            env=tower_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[bytes | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[bytes] = []

    def wait_for(prefix: bytes) -> None:
        while True:
            line = lines.get(timeout=30)
            assert line is not None, f"tower watch ended; it printed {seen}"
            seen.append(line)
            if line.startswith(prefix):
                return

    try:
        wait_for(b"watching ")
        (repo / HOSTILE.replace("/", "_")).write_text("written by an agent with no lease\n")
        wait_for(b"C1 ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    while (line := lines.get(timeout=30)) is not None:
        seen.append(line)
    assert_safe(("watch",), "stdout", b"".join(seen))
    assert_safe(("watch", "-v"), "stderr", proc.stderr.read())
    assert b"evil\\e[2J" in b"".join(seen)
