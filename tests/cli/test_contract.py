"""The command-line contract of DESIGN.md: --json shape, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.conftest import git, run_tower


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) <= 1


def test_json_shapes(tower):
    assert tower("init", "--json").code == 0
    added = tower("task", "add", "Write parser", "--priority", "2", "--scope", "src/**", "--json")
    assert added.code == 0 and added.data["id"] == "T1" and added.data["status"] == "pending"
    listed = tower("task", "list", "--json").data
    assert isinstance(listed, list) and listed[0]["id"] == "T1" and listed[0]["scope"] == ["src/**"]
    claim = tower("task", "claim", "--agent", "a1", "--json").data
    assert set(claim) >= {"lease_id", "token", "task_id", "expires_at"}
    assert claim["lease_id"] == "L1" and claim["token"] == 1 and claim["task_id"] == "T1"
    leases = tower("lease", "list", "--json").data
    assert leases[0]["id"] == "L1" and leases[0]["status"] == "active"


def test_human_output_is_one_short_line(tower):
    tower("init")
    out = tower("task", "add", "Write parser")
    assert out.code == 0 and out.stdout.strip() == "T1 added: Write parser (priority 0)"


def test_no_task_is_exit_3_no_task(tower):
    tower("init")
    result = tower("task", "claim", "--json")
    assert result.code == 3 and result.json["error"]["code"] == "no_task"


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["task", "show", "T9"], 3, "task_not_found"),
        (["task", "done", "L9"], 3, "lease_not_found"),
        (["approval", "approve", "A9"], 3, "approval_not_found"),
        (["conflict", "ack", "C9"], 3, "conflict_not_found"),
        (["task", "show", "L1"], 2, "bad_input"),
        (["task", "add", "x", "--priority", "high"], 2, "usage"),
        (["task", "add", "x", "--priority", "99999999999999999999999"], 2, "usage"),
        (["audit", "tail", "-n", "99999999999999999999"], 2, "usage"),
        (["task", "done", "L1", "--token", "99999999999999999999999"], 2, "usage"),
        (["task", "list", "--bogus"], 2, "usage"),
        (["task", "add", "x", "--depends-on", "T7"], 3, "task_not_found"),
        (["lease", "heartbeat", "L1", "--ttl", "0"], 2, "bad_input"),
        (["approval", "request", "--kind", "command", "--summary", "s", "--detail", "{nope"], 2, "bad_input"),
    ],
)
def test_error_exit_codes(tower, args, code, error):
    tower("init")
    result = tower(*args, "--json")
    assert result.code == code, result
    assert result.json == {"ok": False, "error": result.json["error"]}
    assert result.json["error"]["code"] == error
    no_traceback(result)
    human = tower(*args)
    assert human.code == code and human.stdout == ""
    assert human.stderr.startswith("tower: ") or human.stderr.startswith("Usage") or "Error" in human.stderr
    no_traceback(human)


def test_refusals_are_exit_4(tower):
    tower("init")
    tower("task", "add", "a")
    tower("task", "add", "b")
    la = tower("task", "claim", "--agent", "a", "--json").data["lease_id"]
    lb = tower("task", "claim", "--agent", "b", "--json").data["lease_id"]
    assert tower("claim", la, "src/x.py").code == 0
    taken = tower("claim", lb, "src/x.py", "--json")
    assert taken.code == 4 and taken.json["error"]["code"] == "claim_conflict"
    assert "L1" in taken.json["error"]["message"]
    assert tower("task", "done", la).code == 0
    stale = tower("task", "done", la, "--json")
    assert stale.code == 4 and stale.json["error"]["code"] == "lease_not_active"
    assert tower("task", "done", lb, "--token", "99").code == 4
    req = tower("approval", "request", "--kind", "command", "--summary", "rm", "--agent", "agent-c", "--json").data["id"]
    assert tower("approval", "reject", req, "--reason", "no").code == 0
    opposite = tower("approval", "approve", req, "--json")
    assert opposite.code == 4 and opposite.json["error"]["code"] == "already_decided"
    assert tower("approval", "reject", req, "--reason", "no").code == 0  # same decision: no-op


def test_missing_store_says_run_init(tower, db_path, backend):
    result = tower("task", "list", "--json")
    assert result.code == 3 and result.json["error"]["code"] == "not_initialised"
    assert "tower init" in result.json["error"]["message"]
    # SQLite: no file was made; Postgres: the database (named by store.toml) got no key
    assert not (db_path.exists() if backend == "sqlite" else (db_path.parent / "audit.key").exists())


def test_outside_any_repo_without_db(tmp_path):
    result = run_tower("task", "list", cwd=tmp_path)
    assert result.code == 3 and "tower init" in result.stderr
    no_traceback(result)


def test_corrupt_database_is_exit_6_and_untouched(tower, db_path):
    tower("init")
    tower("task", "add", "keep")
    db_path.write_bytes(os.urandom(4096))
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    for args in (["task", "list"], ["task", "add", "x"], ["audit", "verify"]):
        result = tower(*args, "--json")
        assert result.code == 6, result
        assert result.json["error"]["code"] == "store_unusable"
        no_traceback(result)
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


def test_unreadable_key_is_exit_6(tower, db_path):
    tower("init")
    key = db_path.parent / "audit.key"
    key.chmod(0o644)
    result = tower("task", "add", "x", "--json")
    assert result.code == 6 and "chmod 600" in result.json["error"]["message"]
    key.chmod(0o600)
    assert tower("task", "list", "--json").data == []  # nothing was added meanwhile


def test_paths_outside_the_repo_are_exit_2(repo):
    run_tower("init", cwd=repo)
    run_tower("task", "add", "t", cwd=repo)
    lease = run_tower("task", "claim", "--json", cwd=repo).data["lease_id"]
    for bad in ("../elsewhere.py", "/etc/passwd", ".git/config"):
        result = run_tower("claim", lease, bad, "--json", cwd=repo)
        assert result.code == 2, (bad, result)
        assert result.json["error"]["code"] == "bad_path"
    (repo / "link").symlink_to("/tmp")
    assert run_tower("claim", lease, "link/x.py", cwd=repo).code == 2
    ok = run_tower("claim", lease, "app.py", "--json", cwd=repo / "src")  # relative to cwd
    assert ok.data["paths"] == ["src/app.py"]


def test_two_worktrees_two_agents(repo, tmp_path):
    """The 'done when' walk-through: two shells in two worktrees of one repository."""
    assert run_tower("init", cwd=repo).code == 0
    wt = run_tower("worktree", "add", "wt-b", "--json", cwd=repo)
    assert wt.code == 0, wt
    other = tmp_path / "repo-wt-b"
    assert (other / "src" / "app.py").exists()
    # the store is found from the other worktree, through the git common dir
    assert run_tower("task", "add", "parser", "--scope", "src/**", cwd=other).code == 0
    assert run_tower("task", "add", "docs", "--scope", "*.md", cwd=repo).code == 0
    a = run_tower("task", "claim", "--agent", "alice", "--json", cwd=repo).data
    b = run_tower("task", "claim", "--agent", "bob", "--json", cwd=other).data
    assert a["task_id"] != b["task_id"]
    assert run_tower("lease", "heartbeat", a["lease_id"], "--agent", "alice", cwd=repo).code == 0
    assert run_tower("claim", a["lease_id"], "src/app.py", "--agent", "alice", cwd=repo).code == 0
    assert run_tower("claim", b["lease_id"], "README.md", "--agent", "bob", cwd=other).code == 0
    leases = {x["agent"]: x for x in run_tower("lease", "list", "--json", cwd=repo).data}
    assert leases["alice"]["worktree"] == "main" and leases["bob"]["worktree"] == "wt-b"
    assert leases["alice"]["claims"] == ["src/app.py"]
    assert run_tower("task", "done", a["lease_id"], "--agent", "alice", cwd=repo).code == 0
    assert run_tower("task", "fail", b["lease_id"], "--reason", "tests red", "--agent", "bob", cwd=other).code == 0
    verify = run_tower("audit", "verify", "--json", cwd=other)
    assert verify.code == 0 and verify.data["ok"]
    names = [w["name"] for w in run_tower("worktree", "list", "--json", cwd=repo).data]
    assert names == ["main", "wt-b"]
    assert (repo / ".git" / "tower" / "tower.db").exists()
    assert "tower" not in git("status", "--porcelain", cwd=repo)


def test_claiming_a_directory_is_bad_input(repo):
    run_tower("init", cwd=repo)
    run_tower("task", "add", "t", cwd=repo)
    lease = run_tower("task", "claim", "--json", cwd=repo).data["lease_id"]
    result = run_tower("claim", lease, "src", "--json", cwd=repo)
    assert result.code == 2 and "directory" in result.json["error"]["message"]


class Follower:
    """`tower audit tail --follow --json` in a subprocess, read line by line in threads."""

    def __init__(self, db_path, *args: str) -> None:
        import queue
        import subprocess
        import sys
        import threading

        from tests.conftest import tower_env

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "--db", str(db_path), "audit", "tail", *args, "--follow", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tower_env(),
        )
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        for pipe, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(pipe, q), daemon=True).start()

    @staticmethod
    def _pump(pipe, q) -> None:
        for line in pipe:
            q.put(line)
        q.put(None)

    @staticmethod
    def _next(q, what: str, timeout: float) -> str:
        import queue

        try:
            line = q.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no {what} within {timeout:g} s")
        assert line is not None, f"the follower ended before its {what}"
        return line

    def ready(self, timeout: float = 30) -> int:
        """Wait for the readiness line; returns N of "following from seq N"."""
        line = self._next(self.err, "readiness line", timeout)
        assert line.startswith("following from seq "), line
        return int(line.split()[-1])

    def event(self, timeout: float = 30) -> dict:
        body = json.loads(self._next(self.out, "event", timeout))
        assert body["ok"], body
        return body["data"]

    def close(self) -> None:
        self.proc.kill()  # this process only, by its pid
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_audit_tail_follow_prints_other_processes_events(tower, db_path):
    tower("init")
    head = tower("audit", "head", "--json").data["seq"]
    follower = Follower(db_path, "-n", "0")
    try:
        assert follower.ready() == head  # every event after it is printed
        assert tower("task", "add", "seen live").code == 0
        event = follower.event()
        assert event["seq"] == head + 1 and event["event"] == "task.added"
        assert event["details"]["title"] == "seen live"
    finally:
        follower.close()


def test_audit_tail_follow_prints_a_backlog_at_once(tower, db_path):
    """1,500 events in one commit: all printed on that one change, not 1,000 now and the rest
    at the next commit (which may never come)."""
    import asyncio

    from core.conflict_rules import ConflictSpec
    from store import Store

    tower("init")
    head = tower("audit", "head", "--json").data["seq"]
    follower = Follower(db_path, "-n", "1")
    try:
        assert follower.ready() == head
        assert follower.event()["seq"] == head  # the tail: -n 1

        async def burst() -> None:
            async with Store(db_path, actor="burst") as s:
                await s.record_conflicts([ConflictSpec("unleased_write", f"f{i}.py", "wt") for i in range(1500)])

        asyncio.run(burst())
        assert [follower.event()["seq"] for _ in range(1500)] == list(range(head + 1, head + 1501))
    finally:
        follower.close()


async def test_audit_follow_misses_nothing_committed_between_its_reads(db_path):
    """Another process commits right after each of the follower's reads (the worst moments):
    from its first line on, the follower prints every event, in order, once."""
    import asyncio

    from store import Store
    from tui.services.audit import follow_log

    async with Store(db_path, create=True, actor="other") as other:
        for i in range(3):
            await other.add_task(f"before {i}")

        class Racing(Store):
            """A real store on which another connection commits after each read, a few times."""

            left = 8

            async def _race(self) -> None:
                if Racing.left > 0:
                    Racing.left -= 1
                    await other.add_task(f"raced {Racing.left}")

            async def change_signal(self):
                signal = await super().change_signal()
                await self._race()
                return signal

            async def audit_head(self):
                head = await super().audit_head()
                await self._race()
                return head

            async def audit_tail(self, *args, **kwargs):
                events = await super().audit_tail(*args, **kwargs)
                await self._race()
                return events

            async def audit_after(self, *args, **kwargs):
                events = await super().audit_after(*args, **kwargs)
                await self._race()
                return events

        shown: list[int] = []
        ready: list[int] = []
        progress = asyncio.Event()

        def show(e) -> None:
            shown.append(e.seq)
            progress.set()

        async with Racing(db_path, actor="follower") as store:
            task = asyncio.create_task(follow_log(store, 1, show, ready.append, interval=0.01))
            try:
                while True:
                    progress.clear()
                    head = (await other.audit_head())[0]
                    if not Racing.left and shown and shown[-1] >= head:
                        break
                    assert not task.done(), task
                    await asyncio.wait_for(progress.wait(), 15)  # the follower printed something
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        head = (await other.audit_head())[0]
        assert ready and shown[0] == ready[0]  # -n 1: the tail is the head it announced
        assert shown == list(range(shown[0], head + 1))
