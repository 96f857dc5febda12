"""Several hosts through PostgreSQL (issue 15 §6), beside one SQLite file.

1. Claims: 64 agent processes spread over 4 network namespaces ("hosts") claim
   tasks through the Postgres backend, the server on a fifth namespace (durable:
   on disk, fsync on), reached over TCP; the same 64 processes on one SQLite
   file (WAL, synchronous=FULL). Claims/s, p50/p99/max latency, each agent's
   share of the claims.
2. A commit on one host -> the control room's change feed on another: a store on
   host 1 adds tasks one at a time; `tower audit tail --follow --json` on host 2
   (the change signal every live view waits on: LISTEN/NOTIFY) prints each
   event; p50/p95/max from the commit's return to the line's arrival.

Needs root (network namespaces) and PostgreSQL server binaries; otherwise says
why and exits 0. ``--quick`` runs fewer tasks.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store import Store  # noqa: E402
from tests import netns  # noqa: E402
from tests.pgserver import PgServer, find_bindir  # noqa: E402

AGENT_HOSTS = 4
PROCS = 64
TASKS = 64 * 10
COMMITS = 200
WORKER = Path(__file__).with_name("claim_worker.py")
LIBPQ = "connect_timeout=5&tcp_user_timeout=5000&keepalives_idle=5&keepalives_interval=2&keepalives_count=3"


async def make_store(db: str | Path, tasks: int, key: Path | None = None) -> None:
    async with Store(db, create=True, key_path=key) as s:
        await s.start_log(actor="bench", details={})
        async with s.transaction() as tx:
            await tx.executemany(
                "INSERT INTO tasks (title, priority, created_at, updated_at) VALUES (?, ?, 0, 0)",
                [(f"task {i}", i % 5) for i in range(tasks)],
            )


def claim_run(db: str, prefixes: list[list[str]], env: dict, tasks: int) -> dict:
    procs = []
    for i in range(PROCS):
        prefix = prefixes[i % len(prefixes)]
        procs.append(subprocess.Popen([*prefix, sys.executable, str(WORKER), "store", db, f"agent-{i:02d}"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env))
    try:
        for p in procs:  # all imported, connected and waiting
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a worker did not start: {line!r}")
        start = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lat = sorted(x for r in results for x in r["latencies"])
    shares = [len(r["latencies"]) for r in results]
    fair = tasks / PROCS
    return {"claims": len(lat), "timeouts": sum(len(r["timeouts"]) for r in results), "per_s": len(lat) / elapsed, "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[int(len(lat) * 0.99)] * 1000, "max": lat[-1] * 1000,
            "min_share": min(shares) / fair, "max_share": max(shares) / fair, "shares": shares}


COMMITTER = """
import asyncio, json, sys, time
from pathlib import Path
from store import Store
async def main(url, key, n, gap):
    async with Store(url, actor="committer", key_path=Path(key)) as s:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(n):
            t0 = time.time()
            task = await s.add_task(f"commit {i}")
            print(json.dumps({"task": task.id, "t0": t0, "t1": time.time()}), flush=True)
            await asyncio.sleep(gap)
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def pump(pipe, q: queue.Queue) -> None:
    for line in pipe:
        q.put((time.time(), line))
    q.put((time.time(), None))


def commit_to_room(writer: netns.Host, reader: netns.Host, url: str, key: Path, repo: Path, env: dict,
                   commits: int) -> dict:
    follow = reader.popen([sys.executable, "-m", "tui.cli", "--db", url, "--json", "audit", "tail", "-n", "0",
                           "--follow"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    commit = writer.popen([sys.executable, "-c", COMMITTER, url, str(key), str(commits), "0.02"], cwd=ROOT,
                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if follow.stderr.readline().split()[:2] != ["following", "from"]:  # its readiness line
            raise RuntimeError("audit tail --follow did not start")
        seen: queue.Queue = queue.Queue()
        threading.Thread(target=pump, args=(follow.stdout, seen), daemon=True).start()
        if commit.stdout.readline().strip() != "ready":
            raise RuntimeError("the committer did not start")
        commit.stdin.write("go\n")
        commit.stdin.flush()
        done = {}
        for line in commit.stdout:
            row = json.loads(line)
            done[row["task"]] = row
        arrived = {}
        deadline = time.time() + 30
        while len(arrived) < commits and time.time() < deadline:
            at, line = seen.get(timeout=30)
            if line is None:
                break
            event = json.loads(line)["data"]
            if event["event"] == "task.added":
                arrived[int(event["task_id"][1:])] = at
    finally:
        for p in (commit, follow):
            if p.poll() is None:
                p.kill()
            p.wait()
    lat = sorted((arrived[t] - row["t1"]) * 1000 for t, row in done.items() if t in arrived)
    whole = sorted((arrived[t] - row["t0"]) * 1000 for t, row in done.items() if t in arrived)
    return {"n": len(lat), "missing": len(done) - len(lat), "p50": lat[len(lat) // 2],
            "p95": lat[int(len(lat) * 0.95)], "max": lat[-1], "whole_p95": whole[int(len(whole) * 0.95)]}


def main() -> int:
    quick = "--quick" in sys.argv
    tasks = TASKS // 2 if quick else TASKS
    commits = COMMITS // 4 if quick else COMMITS
    reason = netns.available() or (None if find_bindir() else "no PostgreSQL server binaries")
    if reason:
        print(f"skipped: {reason}")
        return 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory(prefix="tower-bench-pg-") as d:
        tmp = Path(d)
        sqlite_db = tmp / "sqlite" / "tower.db"
        asyncio.run(make_store(sqlite_db, tasks))
        lite = claim_run(str(sqlite_db), [[]], env, tasks)

        with netns.Network(1 + AGENT_HOSTS) as net:
            server_host, *hosts = net.hosts
            with PgServer(listen=server_host.addr, wrap=server_host.prefix, durable=True) as server:
                server.create_database("bench")
                key = tmp / "keys" / "audit.key"
                key.parent.mkdir()
                asyncio.run(make_store(server.socket_url("bench"), tasks, key))
                url = server.url("bench", host=server_host.addr) + "?" + LIBPQ
                pg = claim_run(url, [h.prefix for h in hosts], {**env, "TOWER_BENCH_KEY": str(key)}, tasks)

                repo = tmp / "repo"
                repo.mkdir()
                subprocess.run(["git", "init", "-q", str(repo)], check=True)
                (repo / ".git" / "tower").mkdir()
                os.link(key, repo / ".git" / "tower" / "audit.key")
                room = commit_to_room(hosts[0], hosts[1], url, key, repo, env, commits)

    print(f"\n## Claims: {PROCS} processes, {tasks} tasks\n")
    print("| store | where the agents are | claims/s | p50 ms | p99 ms | max ms | min share | max share"
          " | gave up (30 s lock wait) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, where, r in (("SQLite (WAL, synchronous=FULL)", "one host", lite),
                           ("PostgreSQL 15 (fsync on), TCP", f"{AGENT_HOSTS} namespaces", pg)):
        print(f"| {name} | {where} | {r['per_s']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.0f} "
              f"| {r['min_share']:.2f} | {r['max_share']:.2f} | {r['timeouts']} |")
    print(f"\nper-agent claims (postgres): {pg['shares']}")
    print(f"per-agent claims (sqlite): {lite['shares']}")
    print(f"\n## A commit on host 1 -> `audit tail --follow` on host 2 ({room['n']} commits,"
          f" {room['missing']} not seen)\n")
    print("| from | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|")
    print(f"| the commit's return | {room['p50']:.1f} | {room['p95']:.1f} | {room['max']:.1f} |")
    print(f"| the verb's start (p95) | | {room['whole_p95']:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
