"""One benchmark process: claim tasks until the queue is empty, timing each claim.

    python claim_worker.py store|sqlite3 DB AGENT

``store`` uses Tower's own verb (claim_task: reap check, eligibility query,
lease insert, task update, signed audit append, BEGIN IMMEDIATE with our
back-off). ``sqlite3`` runs the same claim transaction with the plain
sqlite3 module and SQLite's own busy handler: the machine's limit.
DB may be a ``postgresql://`` URL (``TOWER_BENCH_KEY`` names the audit key).
Prints ``ready`` once its store is open, waits for a line on stdin to start,
then prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


TIMEOUTS: list[float] = []  # claims that gave up on the lock (exit 5 for a `tower` command)


async def with_store(db: str, agent: str) -> list[float]:
    from core.errors import NotFound, TimedOut
    from store import Store

    latencies = []
    key = os.environ.get("TOWER_BENCH_KEY")
    async with Store(db, actor=agent, key_path=Path(key) if key else None) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        while True:
            start = time.perf_counter()
            try:
                await store.claim_task(agent=agent, worktree=agent, ttl=3600)
            except NotFound:
                break
            except TimedOut:
                TIMEOUTS.append(time.perf_counter() - start)
                continue
            latencies.append(time.perf_counter() - start)
    return latencies


def with_sqlite3(db: str, agent: str) -> list[float]:
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous = FULL")
    print("ready", flush=True)
    sys.stdin.readline()
    latencies = []
    while True:
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT id FROM tasks t WHERE status = 'pending' ORDER BY priority DESC, id LIMIT 1"
        ).fetchone()
        if row is None:
            conn.execute("COMMIT")
            break
        now = time.time()
        conn.execute(
            "INSERT INTO leases (task_id, agent, worktree, token, ttl, acquired_at, heartbeat_at, expires_at)"
            " VALUES (?, ?, ?, (SELECT ifnull(max(token), 0) + 1 FROM leases), 3600, ?, ?, ?)",
            (row[0], agent, agent, now, now, now + 3600),
        )
        conn.execute("UPDATE tasks SET status = 'leased', attempts = attempts + 1 WHERE id = ?", (row[0],))
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - start)
    conn.close()
    return latencies


if __name__ == "__main__":
    mode, db, agent = sys.argv[1:4]
    lat = asyncio.run(with_store(db, agent)) if mode == "store" else with_sqlite3(db, agent)
    print(json.dumps({"agent": agent, "latencies": lat, "timeouts": TIMEOUTS}))
