"""The Agents pane live: another process's session event -> the pane shows it.

    python tests/benchmarks/bench_tui_agents.py [--agents 16] [--rate 10] [--seconds 30]

A fresh store with one worktree and one active lease per agent. The control
room runs headless (160x48, then 80x24 with the Agents pane on screen) while
``--agents`` processes send Claude Code hook events (PreToolUse payloads,
mapped and recorded exactly as ``tower hook claude-code`` does) at ``--rate``
events per second in total, staggered. For each event: the time from its
COMMIT (the writer prints it once committed) to the Agents pane holding that
session's row with that event's target.

Aim (issue 13): p95 < 150 ms with 16 agents at 10 events/s in total.
Not collected by pytest (plain script).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def build(db: Path, agents: int) -> None:
    from store import Store

    async with Store(db, create=True, actor="person:bench") as s:
        for n in range(agents):
            await s.add_worktree(f"wt-{n}", f"/bench/wt-{n}")
            task = await s.add_task(f"task of agent {n}")
            await s.claim_task(agent=f"agent-{n}", worktree=f"wt-{n}", task_id=task.id, ttl=3600)


# -- child: one agent's hook events ---------------------------------------------------------


def child_agent(db: str, n: int, interval: float, count: int, offset: float) -> None:
    from store import Store
    from tui.services.agent_events import record, session_event

    async def main() -> None:
        async with Store(db, actor=f"agent-{n}") as s:
            print("ready", flush=True)
            start = float(sys.stdin.readline()) + offset  # every agent is started: the same clock for all
            for i in range(count):
                delay = start + i * interval - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                payload = {"session_id": f"bench-{n}", "transcript_path": "/dev/null", "cwd": f"/bench/wt-{n}",
                           "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": f"t{n}-{i}",
                           "tool_input": {"command": f"make step-{n}-{i}"}}
                ev = session_event("claude-code", payload)
                assert ev is not None
                await record(s, ev, agent=f"agent-{n}")
                print(f"{n} {i} {time.time():.6f}", flush=True)

    asyncio.run(main())


# -- the room -------------------------------------------------------------------------------


async def measure(db: Path, agents: int, rate: float, seconds: float, size: tuple[int, int]) -> dict:
    from tui.room.app import TowerApp

    app = TowerApp(db, watch=False, actor="person:bench", settings_path=None)
    app.animation_level = "none"
    shown: dict[tuple[int, int], float] = {}
    committed: dict[tuple[int, int], float] = {}
    original = TowerApp.on_sessions_changed

    def on_sessions_changed(self, message):
        original(self, message)
        now = time.time()
        pane = self.agents_pane
        for row in message.rows:
            target = row.last_target or ""
            if row.session.startswith("bench-") and target.startswith("make step-") and f"S{row.id}" in pane._shown:
                n, i = target[len("make step-"):].split("-")
                shown.setdefault((int(n), int(i)), now)

    TowerApp.on_sessions_changed = on_sessions_changed  # message dispatch looks the handler up on the class
    per_agent = max(int(rate * seconds / agents), 1)
    interval = agents / rate
    try:
        async with app.run_test(size=size) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 30)
            await pilot.press("6")
            await pilot.pause()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            procs = [await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child-agent", str(db), str(n), str(interval), str(per_agent),
                repr(n * interval / agents), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                cwd=ROOT, env=env)
                for n in range(agents)]
            for p in procs:
                assert p.stdout is not None and (await p.stdout.readline()).strip() == b"ready"
            start = f"{time.time() + 0.5:.6f}\n".encode()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(start)
                await p.stdin.drain()

            async def read(proc) -> None:
                assert proc.stdout is not None
                async for line in proc.stdout:
                    n, i, ts = line.split()
                    committed[(int(n), int(i))] = float(ts)

            await asyncio.gather(*(read(p) for p in procs))
            for p in procs:
                await p.wait()
            deadline = time.time() + 5
            while len(shown) < len(committed) and time.time() < deadline:
                await pilot.pause(0.01)
    finally:
        TowerApp.on_sessions_changed = original
    warm = {k for k in committed if k[1] == 0}  # each process's first event: its session is created
    keys = [k for k in committed if k not in warm]
    measured = [committed[k] for k in keys]
    latencies = [(shown[k] - committed[k]) * 1000 for k in keys if k in shown]
    return {"ms": latencies, "events": len(keys), "missing": len(keys) - len(latencies),
            "elapsed": max(measured) - min(measured) if measured else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second, all agents together")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    rows = []
    for size in ((160, 48), (80, 24)):
        with tempfile.TemporaryDirectory(prefix="tower-bench-agents-") as tmp:
            db = Path(tmp) / "tower.db"
            asyncio.run(build(db, args.agents))
            r = asyncio.run(measure(db, args.agents, args.rate, args.seconds, size))
        rate = r["events"] / r["elapsed"] if r["elapsed"] else float("nan")
        rows.append((f"session event -> Agents pane, p50 / p95 / max ({r['events']} events, {args.agents} agents, "
                     f"{rate:.1f}/s, {size[0]}x{size[1]})",
                     f"{pct(r['ms'], 50):.0f} / {pct(r['ms'], 95):.0f} / {max(r['ms'], default=float('nan')):.0f} ms",
                     "p95 < 150 ms"))
        if r["missing"]:
            rows.append(("  events never shown", str(r["missing"]), "0"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'result':<24}  aim")
    for name, value, aim in rows:
        print(f"{name:<{width}}  {value:<24}  {aim}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-agent":
        child_agent(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    else:
        main()
