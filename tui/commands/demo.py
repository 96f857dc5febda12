"""``tower demo``: a throw-away repository, simulated agents, and the control room on it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from tui.clikit import emit, json_mode

SUPERVISOR_RULES = [
    # what the simulated person in --headless mode answers (first match wins)
    ("rm -rf", False, "not in the release checkout: clean build/ only"),
    ("", True, None),
]


def agent_roles(count: int) -> list[str]:
    """agent-1 works normally, agent-2 trespasses on claimed files, agent-3 crashes mid-task,
    agent-4 stalls once (see tui/demo/agent.py)."""
    roles = ["normal", "overlap", "crash", "stall"]
    return [roles[i] if i < len(roles) else "normal" for i in range(count)]


class Agents:
    """The simulated agents' processes: each in its own session, so stopping one stops its children."""

    def __init__(self, demo, speed: float, ttl: float, logs: Path) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("TOWER_DB", "TOWER_AGENT", "TOWER_WORKTREE")}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for (name, path), role in zip(demo.worktrees.items(), agent_roles(len(demo.worktrees))):
            out = (logs / f"{name}.log").open("w")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "tui.demo.agent", name, str(path), "--speed", str(speed),
                 "--role", role, "--ttl", str(ttl)],
                cwd=path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
            out.close()

    def stop(self, grace: float = 5.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()



def read_events(logs: Path) -> list[dict]:
    """What the agents said they did (one JSON object per line of their logs)."""
    out = []
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"agent": log.stem, "event": "output", "text": line})
    return out


async def supervise(db: Path, until: float, watch_paths: dict[str, Path]) -> bool:
    """The headless stand-in for a person: decides approvals, runs the watcher, reaps.

    Returns False when SIGTERM or SIGHUP asked it to stop: the signal only sets
    a flag, so every connection is closed the ordinary way (an exception raised
    mid-close would leave aiosqlite's non-daemon thread holding the process).
    """
    from store import Store

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)
    async with Store(db, actor="person:demo") as store:
        from tui.watching import WatchService

        watcher = WatchService(store)
        watch_task = asyncio.create_task(watcher.run())
        try:
            seen = None
            while not stopping.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    seen = await store.wait_for_change(seen, timeout=min(left, 0.25))
                except TimeoutError:
                    continue
                for a in await store.list_approvals("pending"):
                    command = a.detail.get("command", a.summary)
                    for pattern, approve, reason in SUPERVISOR_RULES:
                        if pattern in command:
                            await store.decide_approval(a.id, approve=approve, reason=reason, actor="person:demo")
                            break
                await store.reap_if_due()
                tasks = await store.list_tasks()
                if tasks and all(t.status in ("done", "failed", "cancelled") for t in tasks):
                    break
        finally:
            watcher.stop()
            await asyncio.gather(watch_task, return_exceptions=True)
    return not stopping.is_set()


async def summarise(db: Path) -> dict:
    from store import Store

    async with Store(db) as store:
        await store.reap_if_due()
        tasks = await store.list_tasks()
        leases = await store.list_leases(all=True)
        events = await store.audit_after(0, limit=1_000_000)
        conflicts = await store.list_conflicts(None)
        approvals = await store.list_approvals()
        verify = await store.verify_audit()
    by_status: dict[str, int] = {}
    for t in tasks:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    return {
        "tasks": by_status,
        "leases": {"total": len(leases), "active": sum(lease.status == "active" for lease in leases),
                   "expired": sum(lease.status == "expired" for lease in leases),
                   "overdue": sum(lease.status == "active" and lease.expires_at <= time.time()
                                  for lease in leases)},
        "reaped": sorted({f"L{e.lease_id}" for e in events if e.event == "lease.expired"}),
        "conflicts": [{"id": f"C{c.id}", "kind": c.kind, "path": c.path, "worktree": c.worktree,
                       "other_worktree": c.other_worktree, "status": c.status} for c in conflicts],
        "approvals": {a.status: sum(x.status == a.status for x in approvals) for a in approvals},
        "audit": {"events": len(events), "intact": verify.ok, "head": verify.head},
    }


@click.command()
@click.option("--agents", "-n", type=click.IntRange(2, 8), default=4, show_default=True,
              help="How many simulated agents (one worktree each).")
@click.option("--speed", type=click.FloatRange(0.1, 20), default=1.0, show_default=True,
              help="Make the agents work faster (2 = twice as fast).")
@click.option("--keep", is_flag=True, help="Keep the temporary repository when done.")
@click.option("--headless", is_flag=True, help="No control room: run the agents, a simulated person and "
                                                "the watcher, then print a summary.")
@click.option("--duration", type=float, default=60.0, show_default=True,
              help="--headless: stop after this many seconds (or when every task is finished).")
@click.option("--json", "json_output", is_flag=True, help="--headless: print the summary as JSON.")
@click.pass_context
def demo(ctx, agents, speed, keep, headless, duration, json_output) -> None:
    """A live demo: temp repo, simulated agents, and the control room on it."""
    from tui.demo import seed

    if not headless:
        from tui.cli import require_terminal

        require_terminal()  # before the repository and the agents: nothing to clean up
    if json_output:
        ctx.find_root().meta["tower.json_output"] = True
    base = Path(tempfile.mkdtemp(prefix="tower-demo-"))
    procs = None
    # a closed terminal (SIGHUP) or a kill (SIGTERM) must still stop the agents and clean
    # up; while the headless supervisor runs, its event loop turns them into a clean stop
    _guard_signals()
    try:
        if not json_mode():
            click.echo(f"setting up a demo repository in {base} …", err=True)
        repo = seed.create(base, agents)
        ttl = max(4.0, 15.0 / speed)
        # a demo lasts minutes: its agents stall (and the room says so) within one
        os.environ.setdefault("TOWER_STALL_AFTER", str(max(10.0, 30.0 / speed)))
        procs = Agents(repo, speed, ttl, base / "logs")
        if headless:
            until = time.monotonic() + duration
            finished = asyncio.run(supervise(repo.db, until, repo.worktrees))
            _guard_signals()  # closing the loop reset them to their defaults
            if not finished:
                raise click.exceptions.Exit(143)  # stopped by a signal: clean up, no summary
            procs.stop()
            procs = None
            summary = asyncio.run(summarise(repo.db))
            summary["repository"] = str(repo.root) if keep else None
            summary["agent_events"] = _tally(read_events(base / "logs"))
            emit(summary, lambda: _human_summary(summary))
        else:
            from tui.room.app import run_app

            code = run_app(repo.db, watch=True)
            if code:
                raise click.exceptions.Exit(code)
    finally:
        if procs is not None:
            procs.stop()
        if keep:
            if not json_mode():
                click.echo(f"kept the demo repository: {base / 'shop'}", err=True)
        else:
            shutil.rmtree(base, ignore_errors=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _guard_signals() -> None:
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, _interrupt)


def _tally(events: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    return counts


def _human_summary(s: dict) -> str:
    tasks = ", ".join(f"{n} {k}" for k, n in sorted(s["tasks"].items()))
    conflicts = ", ".join(f"{c['kind']} on {c['path']}" for c in s["conflicts"]) or "none"
    return (f"tasks: {tasks}\nleases: {s['leases']['total']} taken, {s['leases']['expired']} expired "
            f"(reaped {', '.join(s['reaped']) or 'none'})\nconflicts: {conflicts}\n"
            f"audit: {s['audit']['events']} events, {'intact' if s['audit']['intact'] else 'DAMAGED'}, "
            f"head {s['audit']['head']}")
