"""Helpers for the control room's Pilot and snapshot tests.

Deterministic by construction: a frozen clock shared by the store that builds
the data and by the app, UTC local time, no animation, no cursor blink, a
fixed terminal size, fixed ids (every store is built from scratch by verbs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ["TZ"] = "UTC"
time.tzset()

from store import Store  # noqa: E402
from tui.room.app import TowerApp  # noqa: E402

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
SIZE = (160, 48)
ACTOR = "person:tester"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def toasts(app) -> list:
    """The notifications on screen now (title, message)."""
    return [(n.title, n.message) for n in app._notifications]


def make_app(db: Path, clock: Callable[[], float] = time.time, **kwargs) -> TowerApp:
    """The app on ``db``. Live tests keep the wall clock: the ``tower`` processes they
    start reap leases by the wall clock. Snapshots pass a frozen one."""
    app = TowerApp(db, clock=clock, watch=False, actor=ACTOR, **kwargs)
    app.animation_level = "none"
    app.cursor_blink = False
    return app


async def create_store(db: Path) -> None:
    async with Store(db, create=True):
        pass


async def seed_busy(db: Path, clock: Callable[[], float] = time.time) -> None:
    """A store with something in every pane: the main screenshot's data."""
    async with Store(db, create=True, actor="person:lead", clock=clock) as s:
        await s.add_worktree("wt-a", "/repo/wt-a", branch="agent-a")
        await s.add_worktree("wt-b", "/repo/wt-b", branch="agent-b")
        await s.add_worktree("wt-c", "/repo/wt-c", branch="agent-c")
        t1 = await s.add_task("Parse the config loader into typed settings", priority=5, scope=["src/config/**"],
                              description="Replace the dict-of-dicts with pydantic settings.")
        t2 = await s.add_task("Add retry with jitter to the HTTP client", priority=3, scope=["src/http/**"])
        t3 = await s.add_task("Write the migration for the audit index", priority=1, depends_on=[t1.id])
        await s.add_task("Document the CLI exit codes", priority=0, scope=["docs/**"])
        t5 = await s.add_task("Fix the flaky test in test_scheduler", priority=2, max_attempts=1)
        t6 = await s.add_task("Bump the pinned dependencies", priority=0)
        t7 = await s.add_task("Remove the deprecated v1 endpoints", priority=4)
        await s.add_task("Profile the cold start of `tower`", priority=1)
        c1 = await s.claim_task(agent="claude-a", worktree="wt-a", task_id=t1.id, ttl=900)
        await s.claim_files(c1.lease_id, ["src/config/loader.py", "src/config/schema.py"], agent="claude-a")
        c2 = await s.claim_task(agent="claude-b", worktree="wt-b", task_id=t2.id, ttl=60)
        await s.claim_files(c2.lease_id, ["src/http/client.py"], agent="claude-b")
        c5 = await s.claim_task(agent="codex-c", worktree="wt-c", task_id=t5.id, ttl=300)
        await s.fail_task(c5.lease_id, "pytest exited 1: 3 failures", agent="codex-c")
        c6 = await s.claim_task(agent="codex-c", worktree="wt-c", task_id=t6.id, ttl=300)
        await s.complete_task(c6.lease_id, agent="codex-c")
        c7 = await s.claim_task(agent="codex-c", worktree="wt-c", task_id=t7.id, ttl=1800)
        await s.claim_files(c7.lease_id, ["src/api/v1/routes.py"], agent="codex-c")
        await s.request_approval(kind="command", summary="rm -rf build/ && make release", lease_id=c1.lease_id,
                                 detail={"command": "rm -rf build/ && make release", "cwd": "/repo/wt-a"})
        await s.request_approval(kind="merge", summary="Merge agent-b into main", lease_id=c2.lease_id,
                                 detail={"branch": "agent-b", "commits": 4})
        a3 = await s.request_approval(kind="write", summary="Write .github/workflows/ci.yml",
                                      requested_by="claude-b", worktree="wt-b")
        await s.decide_approval(a3.id, approve=False, reason="CI is owned by the platform team", actor="person:lead")
        a4 = await s.request_approval(kind="command", summary="pip install -e .", requested_by="codex-c",
                                      worktree="wt-c")
        await s.decide_approval(a4.id, approve=True, actor="person:lead")
        await s.record_conflict(kind="claimed_by_other", path="src/config/loader.py", worktree="wt-b",
                                other_worktree="wt-a", lease_id=c2.lease_id, other_lease_id=c1.lease_id,
                                task_id=t2.id, message="wt-b wrote src/config/loader.py, claimed by L1 in wt-a")
        await s.record_conflict(kind="out_of_scope", path="README.md", worktree="wt-c", lease_id=c7.lease_id,
                                task_id=t7.id, message="outside the scope of T7")
        del t3


async def seed_audit(db: Path, n: int, clock: Callable[[], float] = time.time) -> None:
    """``n`` audit events (task additions) through the store: a real chain."""
    async with Store(db, create=True, actor="bot", clock=clock) as s:
        for i in range(n):
            await s.add_task(f"generated task {i + 1}")


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds (bounded; never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await pilot.pause(0.02)


async def ready(pilot) -> None:
    app = pilot.app
    await asyncio.wait_for(app.loaded.wait(), 10)
    await wait_for(pilot, lambda: app.queue_pane.loaded and app.audit_tail.head == (app.counts.audit_seq if app.counts else -1),
                   what="first load")
    await pilot.pause()


async def run_cli(db: Path, *args: str, cwd: Path | None = None, agent: str | None = "agent-x") -> dict:
    """Run the real ``tower`` command line in a separate process (as an agent would;
    ``agent=None``: as a person in another shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if agent is not None:
        env["TOWER_AGENT"] = agent
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "--db", str(db), "--json", *args,
        cwd=str(cwd or db.parent), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await proc.communicate()
    assert out, err.decode()
    return json.loads(out)


async def python(code: str, *, cwd: Path) -> None:
    """Run a snippet in a separate Python process (writes the CLI has no verb for)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=str(cwd), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


def screen_text(app) -> str:
    """What the terminal shows, as plain text."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens,
                                                       simplify=True))
    return console.export_text(styles=False)


def aiosqlite_threads() -> list[threading.Thread]:
    """The live connection threads of aiosqlite (non-daemon: one left open hangs the exit)."""
    return [t for t in threading.enumerate() if t.is_alive() and "_connection_worker_thread" in t.name]


def threads_ended(before: set[threading.Thread], timeout: float = 10.0) -> bool:
    """Whether every aiosqlite thread started since ``before`` ends within ``timeout``:
    a closed connection's thread finishes its queue and returns (joined, not polled)."""
    deadline = time.monotonic() + timeout
    for thread in set(aiosqlite_threads()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    return set(aiosqlite_threads()) <= before


async def palette_offers(pilot, text: str, timeout: float = 10.0) -> None:
    """Wait until the command palette's search has run and its highlighted command
    mentions ``text`` (the search is asynchronous: Enter before it ends picks another)."""
    from textual.command import CommandList

    def highlighted() -> str:
        try:
            commands = pilot.app.screen.query_one(CommandList)
        except Exception:
            return ""
        option = commands.highlighted_option
        return str(option.prompt) if option is not None else ""

    await wait_for(pilot, lambda: text.lower() in highlighted().lower(), timeout, what=f"the palette offering {text!r}")


class AgentWriter:
    """A separate process writing to the store as agents and their hooks do (agent_writer.py):
    ``await w.hook("claude-code", payload, worktree="wt-a")`` returns once committed."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> AgentWriter:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("agent_writer.py")), str(self.db),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, cwd=str(self.db.parent))
        assert (await self._answer()) == {"ready": True}
        return self

    async def __aexit__(self, *exc) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def _answer(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line, "the writer process ended"
        return json.loads(line)

    async def send(self, command: dict):
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        answer = await self._answer()
        assert answer["ok"], answer
        return answer["data"]

    async def hook(self, kind: str, payload: dict, **kwargs):
        return await self.send({"hook": kind, "payload": payload, **kwargs})

    async def verb(self, name: str, **args):
        return await self.send({"verb": name, "args": args})


def claude(event: str, session: str = "sess-a", **fields) -> dict:
    """A Claude Code hook payload with the documented fields."""
    return {"session_id": session, "transcript_path": f"/tmp/{session}.jsonl", "cwd": "/repo/wt-a",
            "hook_event_name": event, **fields}


async def seed_agents(db: Path, clock: Callable[[], float] = time.time) -> None:
    """``seed_busy`` plus agent sessions in every state (at ``clock() + 30``, the snapshots'
    time): two waiting on Tower approvals (the command-line agents of L1 and L2), one at its
    own prompt, one stalled (a live lease, no event for 430 s), one working, one idle, ended ones."""
    await seed_busy(db, clock=clock)
    now = clock()
    async with Store(db, actor="person:lead", clock=lambda: now - 400) as s:
        await s.add_worktree("wt-d", "/repo/wt-d", branch="agent-d")
        t = await s.add_task("Port the billing job to the new scheduler", priority=2, scope=["src/billing/**"])
        await s.claim_task(agent="gemini-d", worktree="wt-d", task_id=t.id, ttl=3600)
        await s.record_session_event("gemini", "5d1c9e0a-gem", "BeforeTool", state="working", tool="run_shell_command",
                                     target="pytest tests/billing -x", tool_call=True, worktree="wt-d")
    async with Store(db, actor="person:lead", clock=lambda: now - 120) as s:
        await s.record_session_event("claude-code", "9f0b7c1e-dead", "SessionStart", state="idle", agent="claude-f")
        await s.record_session_event("claude-code", "9f0b7c1e-dead", "SessionEnd", state="ended")
    async with Store(db, actor="person:lead", clock=lambda: now - 20) as s:
        await s.record_session_event("codex", "019a5e7f-codex", "PermissionRequest", state="waiting", tool="shell",
                                     target="git push --force origin main", agent="codex-e",
                                     waiting_reason="permission: shell git push --force origin main")
        await s.record_session_event("claude-code", "3c2b1a09-idle", "Stop", state="idle", tool="Edit",
                                     target="docs/cli.md", agent="claude-g")
    async with Store(db, actor="person:lead", clock=lambda: now + 10) as s:
        await s.record_session_event("claude-code", "a41e6b2c-work", "PreToolUse", state="working", tool="Bash",
                                     target="pytest -x tests/test_config.py", tool_call=True, worktree="wt-a",
                                     agent="claude-a")
