"""The control room under load: start-up, memory, live latency, key response.

    python tests/benchmarks/bench_tui.py [--events 1000000] [--tasks 10000] [--rebuild]

1. Builds (once, cached under the temp dir) a store with ``--events`` audit
   events and ``--tasks`` tasks, inserted straight with sqlite3 as valid
   signed chain rows (core.audit) -- the app must not care how they got there.
2. Start-up and memory: a fresh process opens the app (headless, 160x48) and
   reports when every pane is loaded and painted, then its RSS after also
   scrolling the audit pane to the oldest events and back.
3. Live latency: on a copy of that store, the app runs headless while another
   process adds tasks at ``--rate`` per second; for each of ``--samples``
   commits, the time from the writer's COMMIT to the row being in the Queue
   table and the event being in the audit tail. Meanwhile a key (j/k) is
   pressed every 100 ms and timed until the screen shows the cursor moved.
4. The same at 80x24 (the compact layout, one pane at a time), keys only.

Aim (issues 4 and 10): p95 commit-to-widget < 150 ms, key press -> screen
p95 < 150 ms at both sizes, start < 1.5 s, memory < 200 MB.
Not collected by pytest (plain script).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIZE = (160, 48)
CACHE = Path(tempfile.gettempdir()) / "tower-bench-tui"


# -- building the big store ---------------------------------------------------------


def build_store(db: Path, events: int, tasks: int) -> None:
    """``tasks`` tasks (mostly done, some pending / failed / leased) and ``events``
    audit events, inserted directly: a valid, signed chain."""
    from core import audit as chain
    from store import Store
    from store.db import iso_ts

    async def create() -> None:
        async with Store(db, create=True):
            pass

    asyncio.run(create())
    key = chain.load_key(db.parent / "audit.key")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    now = time.time()
    start = now - 30 * 86400
    rng = random.Random(7)
    leased = set(range(tasks - 40, tasks - 20))
    pending = set(range(tasks - 700, tasks - 40))
    failed = set(range(tasks - 20, tasks))
    task_rows = []
    for i in range(1, tasks + 1):
        status = ("leased" if i in leased else "pending" if i in pending else "failed" if i in failed
                  else "cancelled" if i % 97 == 0 else "done")
        created = start + i * 10
        task_rows.append((i, f"Task {i}: {rng.choice(['refactor', 'fix', 'document', 'test', 'port'])} "
                             f"{rng.choice(['the parser', 'the HTTP client', 'auth', 'the CLI', 'billing'])}",
                          rng.randint(0, 5), status, 1 if status != "pending" else 0, created, created + 5))
    conn.executemany(
        "INSERT INTO tasks (id, title, priority, status, attempts, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
        task_rows,
    )
    lease_rows = [(n + 1, t, f"agent-{n % 8}", f"wt-{n % 8}", n + 1, 900.0, now, now, now + 900)
                  for n, t in enumerate(sorted(leased))]
    conn.executemany(
        "INSERT INTO leases (id, task_id, agent, worktree, token, ttl, acquired_at, heartbeat_at, expires_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)", lease_rows)
    conn.executemany(
        "INSERT INTO claims (lease_id, path, worktree, claimed_at) VALUES (?,?,?,?)",
        [(lease[0], f"src/module_{lease[0]}/file_{k}.py", lease[3], now) for lease in lease_rows for k in range(3)],
    )
    kinds = ["task.added", "task.claimed", "files.claimed", "lease.heartbeat", "lease.heartbeat",
             "lease.heartbeat", "task.done", "approval.requested", "approval.approved"]
    prev = chain.GENESIS_HASH
    batch = []
    for seq in range(1, events + 1):
        kind = kinds[seq % len(kinds)]
        task_id = (seq % tasks) + 1
        entry = {
            "seq": seq, "ts": iso_ts(start + seq * 2.5), "actor": f"agent-{seq % 8}", "event": kind,
            "task_id": task_id, "lease_id": (seq % 20) + 1 if kind != "task.added" else None,
            "approval_id": None, "worktree": f"wt-{seq % 8}",
            "path": f"src/module_{seq % 50}/file.py" if kind == "files.claimed" else None,
            "details": {"ttl": 900} if kind == "lease.heartbeat" else {"title": f"Task {task_id}"}
            if kind == "task.added" else {},
            "prev_hash": prev,
        }
        entry_hash = chain.compute_hash(entry)
        batch.append((seq, entry["ts"], entry["actor"], kind, entry["task_id"], entry["lease_id"], None,
                      entry["worktree"], entry["path"],
                      json.dumps(entry["details"], sort_keys=True, separators=(",", ":")), prev, entry_hash,
                      chain.sign(key, entry_hash)))
        prev = entry_hash
        if len(batch) >= 20000:
            conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    if batch:
        conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def cached_store(events: int, tasks: int, rebuild: bool) -> Path:
    folder = CACHE / f"e{events}-t{tasks}"
    db = folder / "tower.db"
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        print(f"building a store with {events:,} audit events and {tasks:,} tasks…", flush=True)
        build_store(db, events, tasks)
        (folder / "done").write_text("ok")
        print(f"  built in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)", flush=True)
    return db


def copy_store(db: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("tower.db", "audit.key"):
        shutil.copy2(db.parent / name, dest / name)
    os.chmod(dest / "audit.key", 0o600)
    return dest / "tower.db"


def rss_kb() -> tuple[int, int]:
    status = Path("/proc/self/status").read_text()
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(values["VmRSS"].split()[0]), int(values["VmHWM"].split()[0])


# -- child: start-up and memory ----------------------------------------------------------


def child_startup(db: str) -> None:
    spawned = float(os.environ["BENCH_SPAWNED"])
    from tui.room.app import TowerApp

    imported = time.time()

    async def main() -> dict:
        app = TowerApp(db, watch=False, actor="person:bench", settings_path=None)
        app.animation_level = "none"
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 30)
            while app.audit_tail.head != app.counts.audit_seq or not app.queue_pane.loaded:
                await pilot.pause(0.005)
            await pilot.pause()
            painted = time.time()
            rss_loaded = rss_kb()[0]
            tail = app.audit_tail
            await pilot.press("5", "home")
            while tail._events.get(1) is None:
                await pilot.pause(0.005)
            for _ in range(30):
                await pilot.press("pagedown")
            await pilot.press("end")
            await pilot.pause()
            rss, hwm = rss_kb()
            return {"imported": imported - spawned, "painted": painted - spawned, "rss_loaded_kb": rss_loaded,
                    "rss_kb": rss, "hwm_kb": hwm, "queue_rows": len(app.queue_pane.shown_keys),
                    "events": tail.head}

    print(json.dumps(asyncio.run(main())))


def measure_startup(db: Path, runs: int) -> list[dict]:
    results = []
    for _ in range(runs):
        env = {**os.environ, "BENCH_SPAWNED": repr(time.time()), "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, __file__, "--child-startup", str(db)], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- child: the writer -------------------------------------------------------------------


def child_writer(db: str, rate: float, count: int) -> None:
    from store import Store

    async def main() -> None:
        async with Store(db, actor="bench-writer") as s:
            start = time.perf_counter()
            for i in range(count):
                await s.add_task(f"bench {i}", priority=100 + i)  # each one next in line: shown
                print(f"{i} {time.time():.6f}", flush=True)
                delay = start + (i + 1) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

    asyncio.run(main())


# -- live latency and keys -----------------------------------------------------------------


async def measure_live(db: Path, rate: float, samples: int, size: tuple[int, int] = SIZE,
                       min_keys: int = 60) -> dict:
    from textual import events

    from tui.room.app import TowerApp

    app = TowerApp(db, watch=False, actor="person:bench", settings_path=None)
    app.animation_level = "none"
    in_queue: dict[int, float] = {}
    in_tail: dict[int, float] = {}
    committed: dict[int, float] = {}

    original_tasks = TowerApp.on_tasks_changed
    original_audit = TowerApp.on_audit_appended

    def on_tasks_changed(self, message):
        original_tasks(self, message)
        now = time.time()
        shown = self.queue_pane._shown
        for row in message.rows:
            if row.title.startswith("bench ") and f"T{row.id}" in shown:
                in_queue.setdefault(int(row.title.split()[1]), now)

    def on_audit_appended(self, message):
        original_audit(self, message)
        now = time.time()
        for event in message.events:
            title = (event.details or {}).get("title", "")
            if event.event == "task.added" and title.startswith("bench "):
                in_tail.setdefault(int(title.split()[1]), now)

    TowerApp.on_tasks_changed = on_tasks_changed  # message dispatch looks the handler up on the class
    TowerApp.on_audit_appended = on_audit_appended

    displays: list[tuple[float, int]] = []  # (when, the Queue's cursor row on that frame)
    key_times: list[float] = []
    try:
        async with app.run_test(size=size) as pilot:
            original_display = app._display
            table = app.queue_pane.table

            def display(*args, **kwargs):
                displays.append((time.perf_counter(), table.cursor_row))
                return original_display(*args, **kwargs)

            app._display = display  # type: ignore[method-assign]
            await asyncio.wait_for(app.loaded.wait(), 30)
            await pilot.pause()
            await pilot.press("1")
            count = samples + int(rate)  # a second of warm-up before the measured ones
            writer = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child-writer", str(db), str(rate), str(count),
                stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})

            async def read_commits() -> None:
                assert writer.stdout is not None
                async for line in writer.stdout:
                    i, ts = line.split()
                    committed[int(i)] = float(ts)

            reader = asyncio.create_task(read_commits())
            keys = "jjjjjkkkkk"
            k = 0
            # keys go on until enough were timed, also after the writer is done (then the
            # screen is idle between keys: both cases count)
            while ((writer.returncode is None and len(committed) < count) or len(key_times) < min_keys) \
                    and k < 4 * min_keys + count:
                await asyncio.sleep(0.1)
                key = keys[k % len(keys)]
                k += 1
                expected = table.cursor_row + (1 if key == "j" else -1)
                before = len(displays)
                t0 = time.perf_counter()
                # as the terminal driver delivers a key: no waiting for the app to go idle
                app.post_message(events.Key(key, key))
                deadline = t0 + 2.0
                while time.perf_counter() < deadline:
                    shown = [when for when, row in displays[before:] if row == expected]
                    if shown:
                        key_times.append(shown[0] - t0)
                        break
                    await asyncio.sleep(0.001)
            await writer.wait()
            await reader
            deadline = time.time() + 5
            while (len(in_queue) < count or len(in_tail) < count) and time.time() < deadline:
                await pilot.pause(0.01)
    finally:
        TowerApp.on_tasks_changed = original_tasks
        TowerApp.on_audit_appended = original_audit
    measured = sorted(i for i in committed if i >= int(rate))[:samples]
    queue_ms = [(in_queue[i] - committed[i]) * 1000 for i in measured if i in in_queue]
    tail_ms = [(in_tail[i] - committed[i]) * 1000 for i in measured if i in in_tail]
    return {"queue_ms": queue_ms, "tail_ms": tail_ms, "key_ms": [t * 1000 for t in key_times],
            "missing": samples - len(queue_ms)}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()

    db = cached_store(args.events, args.tasks, args.rebuild)
    starts = measure_startup(db, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        live = asyncio.run(measure_live(copy_store(db, Path(tmp) / "live"), args.rate, args.samples))
    with tempfile.TemporaryDirectory() as tmp:
        small = asyncio.run(measure_live(copy_store(db, Path(tmp) / "small"), args.rate, max(args.samples // 2, 20),
                                         size=(80, 24)))

    rows = [
        ("store", f"{args.events:,} audit events, {args.tasks:,} tasks", ""),
        ("start-up to first full paint (median of %d)" % args.runs,
         f"{statistics.median(s['painted'] for s in starts) * 1000:.0f} ms",
         "< 1500 ms"),
        ("  of which importing the app", f"{statistics.median(s['imported'] for s in starts) * 1000:.0f} ms", ""),
        ("RSS after load", f"{statistics.median(s['rss_loaded_kb'] for s in starts) / 1024:.0f} MB", ""),
        ("RSS after scrolling the audit to seq 1 and back",
         f"{statistics.median(s['rss_kb'] for s in starts) / 1024:.0f} MB (peak "
         f"{max(s['hwm_kb'] for s in starts) / 1024:.0f} MB)", "< 200 MB"),
        (f"commit -> Queue row, p50 / p95 ({len(live['queue_ms'])} events at {args.rate:g}/s)",
         f"{pct(live['queue_ms'], 50):.0f} / {pct(live['queue_ms'], 95):.0f} ms", "p95 < 150 ms"),
        ("commit -> audit tail line, p50 / p95",
         f"{pct(live['tail_ms'], 50):.0f} / {pct(live['tail_ms'], 95):.0f} ms", ""),
        (f"key press -> screen update, p50 / p95 ({len(live['key_ms'])} keys, 160x48)",
         f"{pct(live['key_ms'], 50):.1f} / {pct(live['key_ms'], 95):.1f} ms", "p95 < 150 ms"),
        (f"key press -> screen update, p50 / p95 ({len(small['key_ms'])} keys, 80x24 compact)",
         f"{pct(small['key_ms'], 50):.1f} / {pct(small['key_ms'], 95):.1f} ms", "p95 < 150 ms"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'result':<32}  aim")
    for name, value, aim in rows:
        print(f"{name:<{width}}  {value:<32}  {aim}")
    if live["missing"]:
        print(f"\n{live['missing']} events never reached the Queue table")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-startup":
        child_startup(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-writer":
        child_writer(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
