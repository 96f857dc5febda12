"""Claim throughput, latency and fairness with 16 processes on one SQLite file.

Prints a table: Tower's claim verb beside plain sqlite3 running the same
claim transaction (the machine's limit), each process's share of the claims
(SQLite's lock is unfair: a starved agent is a bug), and the wall time of
`tower task claim` beside `python -c pass`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store import Store  # noqa: E402

PROCS = 16
TASKS = 1600
WORKER = Path(__file__).with_name("claim_worker.py")


async def make_store(db: Path, tasks: int) -> None:
    async with Store(db, create=True) as s:
        async with s.transaction() as tx:
            await tx.executemany(
                "INSERT INTO tasks (title, priority, created_at, updated_at) VALUES (?, ?, 0, 0)",
                [(f"task {i}", i % 5) for i in range(tasks)],
            )


def run_mode(mode: str, tmp: Path) -> dict:
    db = tmp / mode / "tower.db"
    asyncio.run(make_store(db, TASKS))
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), mode, str(db), f"agent-{i:02d}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for i in range(PROCS)
    ]
    for p in procs:  # every process has imported and opened its connection before the start
        assert p.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate()[0]) for p in procs]
    elapsed = time.perf_counter() - start
    lat = sorted(x for r in results for x in r["latencies"])
    shares = [len(r["latencies"]) for r in results]
    return {
        "mode": mode,
        "claims": len(lat),
        "per_s": len(lat) / elapsed,
        "p50": lat[len(lat) // 2] * 1000,
        "p99": lat[int(len(lat) * 0.99)] * 1000,
        "max": lat[-1] * 1000,
        "min_share": min(shares) / (TASKS / PROCS),
        "max_share": max(shares) / (TASKS / PROCS),
        "shares": shares,
    }


def wall(cmd: list[str], runs: int = 15, cwd: Path | None = None) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [run_mode("sqlite3", tmp), run_mode("store", tmp)]
        print(f"\n## Claims: {PROCS} processes, {TASKS} tasks, one SQLite file (WAL, synchronous=FULL)\n")
        print("| claimer | claims/s | p50 ms | p99 ms | max ms | min share | max share |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['mode']} | {r['per_s']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} "
                  f"| {r['min_share']:.2f} | {r['max_share']:.2f} |")
        print(f"\nper-process claims (store): {rows[1]['shares']}")
        print(f"per-process claims (sqlite3): {rows[0]['shares']}")

        db = tmp / "cli" / "tower.db"
        asyncio.run(make_store(db, 200))
        tower = [sys.executable, "-m", "tui.cli", "--db", str(db)]
        py = wall([sys.executable, "-c", "pass"])
        claim = wall([*tower, "task", "claim", "--agent", "bench"], cwd=ROOT)
        listing = wall([*tower, "task", "list"], cwd=ROOT)
        print("\n## Command start-up (median of 15 runs)\n")
        print("| command | ms |")
        print("|---|---:|")
        print(f"| python -c pass | {py:.0f} |")
        print(f"| tower task claim | {claim:.0f} |")
        print(f"| tower task list (200 tasks) | {listing:.0f} |")


if __name__ == "__main__":
    main()
