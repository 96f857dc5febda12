"""A store shared by several hosts: a worktree is (host, path), and a watcher per host.

Two "hosts" here are two clones of one repository, each with its own git directory,
whose `tower` processes carry different ``TOWER_HOST`` names and share one store (a
SQLite file, or a real PostgreSQL database). tests/pg/test_hosts_netns.py runs the
same over real network namespaces.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from store import Store
from tests.conftest import git, run_tower, tower_env
from tests.pgfixtures import both_backends
from tests.watching.test_watch_cli import Lines


def pytest_generate_tests(metafunc):
    both_backends(metafunc)


async def test_two_hosts_may_have_a_worktree_at_the_same_path(db_path):
    async with Store(db_path, create=True, actor="test") as a, Store(db_path, actor="test") as b:
        a.host_override, b.host_override = "host-a", "host-b"
        wa = await a.add_worktree("main", "/srv/repo", branch="main", rename_if_taken=True)
        wb = await b.add_worktree("main", "/srv/repo", branch="main", rename_if_taken=True)
        assert (wa.name, wa.host) == ("main", "host-a")
        assert (wb.name, wb.host) == ("main-2", "host-b")  # names stay unique: claims name worktrees
        # each host resolves a path to its own worktree only
        assert await a.worktree_rows() == [("main", "/srv/repo", True)]
        assert await b.worktree_rows() == [("main-2", "/srv/repo", True)]
        assert [w.name for w in await a.list_worktrees()] == ["main", "main-2"]
        # registering again is the same worktree, not a third
        assert (await b.add_worktree("main", "/srv/repo", rename_if_taken=True)).name == "main-2"
        # a name another host holds is not taken over
        with pytest.raises(Exception, match="registered on host host-a"):
            await b.add_worktree("main", "/srv/other")


def first_of(outs: list[Lines], until, timeout: float = 15.0) -> dict:
    """The first line matching ``until`` from any of several processes' outputs."""
    import json
    import queue
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for out in outs:
            try:
                line = out.q.get(timeout=0.05)
            except queue.Empty:
                continue
            assert line is not None, f"a watcher stopped; got {[o.seen for o in outs]}"
            out.seen.append(line)
            data = json.loads(line)["data"]
            if until(data):
                return data
    pytest.fail(f"no matching line within {timeout:g}s; got {[o.seen for o in outs]}")


def _host(root: Path, name: str, db: Path):
    env = {"TOWER_HOST": name}

    def tower(*args: str, **kwargs):
        result = run_tower("--db", str(db), *args, cwd=root, env=env, **kwargs)
        assert result.code == 0, (args, result.stdout, result.stderr)
        return result

    def watch() -> tuple[subprocess.Popen, Lines]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "--db", str(db), "watch", "--json", "--rescan-interval", "1"],
            cwd=root, env=tower_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, Lines(proc.stdout)

    return tower, watch


def test_a_claim_on_one_host_and_a_write_on_another_is_a_conflict(repo, tmp_path, db_path):
    host_a = repo
    host_b = tmp_path / "host-b"
    git("clone", "-q", str(repo), str(host_b), cwd=tmp_path)
    a, watch_a = _host(host_a, "host-a", db_path)
    b, watch_b = _host(host_b.resolve(), "host-b", db_path)
    a("init")
    b("worktree", "sync")  # B's main is another directory on another host: main-2
    listed = {w["name"]: w for w in a("--json", "worktree", "list").json["data"]}
    assert {n: (w["host"], w["path"]) for n, w in listed.items()} == {
        "main": ("host-a", str(host_a)), "main-2": ("host-b", str(host_b.resolve()))}

    a("task", "add", "fix the app", "--scope", "src/")
    assert a("--json", "task", "claim", "--agent", "agent-a").json["data"]["lease_id"] == "L1"
    a("claim", "L1", "src/app.py", "--agent", "agent-a")

    watchers, outs = [], []
    try:
        for watch, mine in ((watch_a, ["main"]), (watch_b, ["main-2"])):
            proc, out = watch()
            watchers.append(proc)
            outs.append(out)
            ready = out.next(lambda d: d["event"] == "watching")
            # each host watches its own worktrees, and both run (one watcher per host, not per store)
            assert ready["worktrees"] == mine and ready["status"] in ("watching", "polling"), ready
        out_b = out

        (host_b / "src" / "app.py").write_text("print('from host b')\n")
        opened = out_b.next(lambda d: d["event"] == "conflict.opened" and d["conflict"]["kind"] == "claimed_by_other")
        c = opened["conflict"]
        assert (c["kind"], c["path"], c["worktree"], c["other_worktree"], c["other_lease_id"]) == (
            "claimed_by_other", "src/app.py", "main-2", "main", "L1"), c

        a("release", "L1", "src/app.py", "--agent", "agent-a")  # on host A
        # either host's watcher closes it: each re-checks the open conflicts against the shared
        # store, and whichever notices the release first resolves it (once)
        resolved = first_of(outs, lambda d: d["event"] == "conflict.resolved" and d["conflict"]["id"] == c["id"])
        assert resolved["reason"] == "L1 no longer claims src/app.py"
        listed = a("--json", "conflict", "list", "--all").json["data"]
        # B wrote without a lease of its own, which stays flagged (docs/watcher.md)
        assert sorted((x["kind"], x["worktree"], x["status"]) for x in listed) == [
            ("claimed_by_other", "main-2", "resolved"), ("unleased_write", "main-2", "open")]
    finally:
        for proc in watchers:
            proc.send_signal(signal.SIGTERM)
        for proc in watchers:
            try:
                assert proc.wait(timeout=15) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
                proc.stdout.close()
                proc.stderr.close()
