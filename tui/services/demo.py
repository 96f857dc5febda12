"""The demo's moving parts: simulated agent processes, the headless stand-in for a person, the summary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol


class Demo(Protocol):
    worktrees: dict[str, Path]


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

    def __init__(self, logs: Path) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = logs

    def start(self, demo: Demo, speed: float, ttl: float) -> None:
        """Start one agent per worktree. Each is recorded as soon as it runs, so a signal that
        lands half-way (the command's guard turns it into KeyboardInterrupt here), or a failed
        start, still lets ``stop`` end the ones already started."""
        logs = self.logs
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("TOWER_DB", "TOWER_AGENT", "TOWER_WORKTREE")}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for (name, path), role in zip(demo.worktrees.items(), agent_roles(len(demo.worktrees))):
            with (logs / f"{name}.log").open("w") as out:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "tui.demo.agent", name, str(path), "--speed", str(speed),
                     "--role", role, "--ttl", str(ttl)],
                    cwd=path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )

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
        from tui.services.watch import WatchService

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


def tally(events: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    return counts
