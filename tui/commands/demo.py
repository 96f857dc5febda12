"""``tower demo``: a throw-away repository, simulated agents, and the control room on it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import click

from tui.clikit import emit, json_mode
from tui.services.demo import Agents, read_events, summarise, supervise, tally

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
        procs = Agents(base / "logs")
        procs.start(repo, speed, ttl)
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
            summary["agent_events"] = tally(read_events(base / "logs"))
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


def _human_summary(s: dict) -> str:
    tasks = ", ".join(f"{n} {k}" for k, n in sorted(s["tasks"].items()))
    conflicts = ", ".join(f"{c['kind']} on {c['path']}" for c in s["conflicts"]) or "none"
    return (f"tasks: {tasks}\nleases: {s['leases']['total']} taken, {s['leases']['expired']} expired "
            f"(reaped {', '.join(s['reaped']) or 'none'})\nconflicts: {conflicts}\n"
            f"audit: {s['audit']['events']} events, {'intact' if s['audit']['intact'] else 'DAMAGED'}, "
            f"head {s['audit']['head']}")
