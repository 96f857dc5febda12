"""`tower watch` as a subprocess: one JSON line per event, clean stop on SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_tower, tower_env
from tests.watching.helpers import Env


class Lines:
    """Read a pipe in a thread; ``next(until, timeout)`` waits (bounded) for a matching line."""

    def __init__(self, pipe) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe) -> None:
        for line in pipe:
            self.q.put(line)
        self.q.put(None)

    def next(self, until, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no matching line within {timeout:g}s; got {self.seen}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"output ended; got {self.seen}")
            self.seen.append(line)
            body = json.loads(line)
            assert body["ok"] is True, body
            if until(body["data"]):
                return body["data"]


def test_tower_watch_json_prints_a_line_per_conflict_and_stops_on_sigterm(env: Env) -> None:
    env.tower("task", "add", "fix the app", "--scope", "src/")
    env.tower("task", "claim", cwd=env.wt["wt-a"])
    env.tower("claim", "L1", "src/app.py", cwd=env.wt["wt-a"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "watch", "--json", "--rescan-interval", "1"],
        cwd=env.repo, env=tower_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = Lines(proc.stdout)
        ready = out.next(lambda d: d["event"] == "watching")
        assert ready["worktrees"] == ["main", "wt-a", "wt-b"] and ready["status"] in ("watching", "polling")
        (env.wt["wt-b"] / "src" / "app.py").write_text("print('from wt-b')\n")
        opened = out.next(lambda d: d["event"] == "conflict.opened" and d["conflict"]["kind"] == "claimed_by_other")
        c = opened["conflict"]
        assert (c["id"], c["path"], c["worktree"], c["other_worktree"], c["other_lease_id"]) == (
            "C1", "src/app.py", "wt-b", "wt-a", "L1")
        assert "wt-a" in c["message"] and "wt-b" in c["message"] and "L1" in c["message"]

        env.tower("release", "L1", "src/app.py", cwd=env.wt["wt-a"])
        resolved = out.next(lambda d: d["event"] == "conflict.resolved" and d["conflict"]["id"] == "C1")
        assert resolved["reason"] == "L1 no longer claims src/app.py"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        stopped = out.next(lambda d: d["event"] == "stopped")
        assert stopped["opened"] >= 1 and stopped["resolved"] >= 1
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()  # this process only, by its pid
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_tower_watch_human_lines_and_ctrl_c(env: Env) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--db", str(env.db), "watch"],
        cwd=ROOT, env=tower_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("watching 3 worktrees (main, wt-a, wt-b) with "), first
        (env.wt["wt-a"] / "README.md").write_text("edited\n")
        line = proc.stdout.readline()
        assert line.split()[:5] == ["C1", "opened", "unleased_write", "README.md", "wt-a:"], line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read().strip() == "stopped (1 opened, 0 resolved)"
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_tower_watch_without_a_store_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "tower.db"
    r = run_tower("--db", str(missing), "watch")
    assert r.code == 3 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "tower init" in r.stderr
    r = run_tower("--db", str(missing), "watch", "--json")
    assert r.code == 3 and r.json["error"]["code"] == "not_initialised"


def test_rebaseline_makes_the_current_content_the_baseline(env: Env) -> None:
    import asyncio

    from store import Store

    async def seed() -> None:
        async with Store(env.db) as s:
            await s.apply_watch_batch([], [_Change("wt-a", "README.md", "old", "new"),
                                           _Change("wt-a", "src/app.py", "a", "b")])

    asyncio.run(seed())
    r = run_tower("--db", str(env.db), "watch", "--rebaseline", "wt-a", "--json")
    assert r.code == 0, r.stderr
    assert r.data == {"rebaselined": {"wt-a": ["README.md", "src/app.py"]}}
    r = run_tower("--db", str(env.db), "watch", "--rebaseline", "nope")
    assert r.code == 3 and "no worktree nope" in r.stderr


class _Change:
    def __init__(self, wt: str, path: str, old: str | None, new: str | None) -> None:
        self.worktree, self.path = wt, path
        self.old = (1, 1, old) if old is not None else None
        self.new = (1, 1, new) if new is not None else None
