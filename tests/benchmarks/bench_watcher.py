"""Benchmark the store-backed watcher (a plain script, not collected by pytest).

    python tests/benchmarks/bench_watcher.py [--worktrees 8] [--files 5000] [--writes 100] [--idle 20]

Builds WORKTREES directories of FILES small source files each (50 files per
folder, mtimes an hour back as in a real checkout), registers them as
worktrees of a fresh store, and measures:

- initial snapshot: ``core.watcher.scan`` of every worktree plus storing it
  (``store.apply_watch_batch``), as the service does on first start;
- service start-up, cold (no stored snapshot: scan + store + watches) and warm
  (stored snapshots: a reconciliation against them + watches), from ``run()``
  to ``wait_ready()``;
- a reconciliation pass over all the unchanged files (``rescan_now``);
- write-to-conflict latency, p50/p95 over WRITES writes: ``tower watch`` runs
  as its own process; this script writes a file that another worktree's lease
  has claimed and polls a second connection to the store (every 1 ms) until
  the ``claimed_by_other`` row is committed;
- CPU use while idle: the ``tower watch`` process's CPU time (``/proc``) over
  IDLE seconds of no writes, divided by the wall time. With the default 10 s
  rescan interval this includes the periodic reconciliation passes; the
  table also shows the figure between passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.ignore import IgnoreRules  # noqa: E402
from core.watcher import SnapshotUpdate, scan  # noqa: E402
from store import Store  # noqa: E402
from core.watcher import DEFAULT_RESCAN_INTERVAL
from tui.services.watch import WatchService  # noqa: E402

PER_DIR = 50
BODY = ("def f(x):\n    return x * 2  # padding to a typical source-file size\n" * 24).encode()


def build(base: Path, worktrees: int, files: int) -> dict[str, Path]:
    past = time.time() - 3600
    roots: dict[str, Path] = {}
    for w in range(worktrees):
        root = base / f"wt-{w}"
        for f in range(files):
            path = root / "src" / f"mod{f // PER_DIR}" / f"file{f % PER_DIR}.py"
            if f % PER_DIR == 0:
                path.parent.mkdir(parents=True)
            path.write_bytes(BODY + str(f).encode())
            os.utime(path, (past, past))
        (root / ".gitignore").write_text("*.log\nbuild/\n")
        os.utime(root / ".gitignore", (past, past))
        roots[f"wt-{w}"] = root.resolve()
    return roots


def target(i: int) -> str:
    """The i-th claimed path (spread over the folders)."""
    f = (i * 37) % 5000
    return f"src/mod{f // PER_DIR}/file{f % PER_DIR}.py"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def in_process(db: Path, roots: dict[str, Path], rows: list) -> None:
    async with Store(db) as store:
        # initial snapshot, as the service takes and stores it on first start
        t0 = time.perf_counter()
        snaps = {wt: await asyncio.to_thread(scan, root, IgnoreRules(root)) for wt, root in roots.items()}
        t_scan = time.perf_counter() - t0
        await store.apply_watch_batch([SnapshotUpdate(wt, True, s, []) for wt, s in snaps.items()], [])
        t_all = time.perf_counter() - t0
        n = sum(len(s) for s in snaps.values())
        rows.append(("initial snapshot, scan only", f"{t_scan:.2f} s", f"{n:,} files"))
        rows.append(("initial snapshot incl. storing it", f"{t_all:.2f} s", f"{len(roots)} worktrees"))

        # cold start: no stored snapshot
        async with store.transaction() as tx:
            await tx.execute("DELETE FROM snapshots")
        for label in ("cold", "warm"):
            service = WatchService(store)
            t0 = time.perf_counter()
            task = asyncio.create_task(service.run())
            await service.wait_ready()
            t_ready = time.perf_counter() - t0
            note = ("scan + store + watches" if label == "cold"
                    else "reconcile with the stored snapshot + watches")
            rows.append((f"service start-up, {label}", f"{t_ready:.2f} s", f"{note}; {service.status}"))
            if label == "cold":
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    found = await service.rescan_now()
                    times.append(time.perf_counter() - t0)
                    assert not found, found[:3]
                rows.append(("reconciliation pass, unchanged files", f"{statistics.median(times):.3f} s",
                             f"median of 5 (min {min(times):.3f}, max {max(times):.3f}); {n:,} files"))
            service.stop()
            await task


async def prepare_claims(db: Path, writes: int, worktrees: int) -> None:
    async with Store(db) as store:
        holder = await store.add_task("holder", scope=["src/"])
        lease = await store.claim_task(agent="holder", worktree="wt-0", task_id=holder.id, ttl=3600)
        await store.claim_files(lease.lease_id, [target(i) for i in range(writes)])
        for w in range(1, worktrees):  # writers hold leases without a scope: only claimed_by_other
            t = await store.add_task(f"writer {w}")
            await store.claim_task(agent=f"writer-{w}", worktree=f"wt-{w}", task_id=t.id, ttl=3600)


def measure_live(db: Path, roots: dict[str, Path], writes: int, idle: float, rescan: float, rows: list) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", str(db), "watch", "--json",
                             "--rescan-interval", str(rescan)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    ready = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            data = json.loads(line)["data"]
            lines.append(data)
            if data["event"] == "watching":
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        t0 = time.perf_counter()
        if not ready.wait(120):
            raise SystemExit(f"tower watch did not get ready: {proc.stderr.read() if proc.poll() is not None else ''}")
        rows.append(("`tower watch` start-up (process)", f"{time.perf_counter() - t0:.2f} s",
                     "spawn to the `watching` line, warm"))
        observer = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        latencies: list[float] = []
        n_wt = len(roots)
        for i in range(writes):
            wt = f"wt-{1 + i % (n_wt - 1)}"
            rel = target(i)
            path = roots[wt] / rel
            start = time.perf_counter()
            path.write_bytes(BODY + f"# edit {i}\n".encode())
            deadline = start + 10
            while True:
                row = observer.execute(
                    "SELECT 1 FROM conflicts WHERE kind = 'claimed_by_other' AND path = ? AND worktree = ?",
                    (rel, wt),
                ).fetchone()
                if row:
                    latencies.append(time.perf_counter() - start)
                    break
                if time.perf_counter() > deadline:
                    raise SystemExit(f"no conflict for {wt}:{rel} within 10 s")
                time.sleep(0.001)
        observer.close()
        rows.append(("write → conflict stored, p50", f"{pct(latencies, 0.5) * 1000:.0f} ms",
                     f"{writes} writes, each to a path claimed by wt-0"))
        rows.append(("write → conflict stored, p95", f"{pct(latencies, 0.95) * 1000:.0f} ms",
                     f"max {max(latencies) * 1000:.0f} ms"))

        time.sleep(2.0)  # let the last batch and its re-checks settle
        # idle: the whole window (periodic rescans included), then the quietest 2 s slice
        c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
        slices = []
        while time.perf_counter() - w0 < idle:
            s0, sw = cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(2.0)
            slices.append((cpu_seconds(proc.pid) - s0) / (time.perf_counter() - sw))
        c1, w1 = cpu_seconds(proc.pid), time.perf_counter()
        rows.append(("CPU while idle, incl. periodic rescans", f"{(c1 - c0) / (w1 - w0) * 100:.1f} %",
                     f"{w1 - w0:.0f} s window, rescan every {rescan:g} s"))
        rows.append(("CPU while idle, between rescans", f"{min(slices) * 100:.1f} %",
                     "quietest 2 s slice (/proc counts 10 ms ticks: 0.0 means under 0.5 %)"))
        opened = sum(1 for d in lines if d["event"] == "conflict.opened")
        if opened != writes:
            rows.append(("(check) conflicts opened", str(opened), f"expected {writes}"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code != 0:
            print(proc.stderr.read(), file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worktrees", type=int, default=8)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--writes", type=int, default=100)
    ap.add_argument("--idle", type=float, default=40.0)
    ap.add_argument("--rescan-interval", type=float, default=DEFAULT_RESCAN_INTERVAL,
                    help=f"for `tower watch` (default: Tower's, {DEFAULT_RESCAN_INTERVAL:g} s)")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tower-bench-watch-") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        roots = build(base, args.worktrees, args.files)
        print(f"built {args.worktrees} x {args.files} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        db = base / "store" / "tower.db"

        async def setup() -> None:
            async with Store(db, create=True) as store:
                for wt, root in roots.items():
                    await store.add_worktree(wt, str(root))

        asyncio.run(setup())
        asyncio.run(in_process(db, roots, rows))
        asyncio.run(prepare_claims(db, args.writes, args.worktrees))
        measure_live(db, roots, args.writes, args.idle, args.rescan_interval, rows)

    print(f"\nwatcher: {args.worktrees} worktrees x {args.files:,} files, {os.cpu_count()} CPUs\n")
    print("| measure | result | notes |")
    print("| --- | --- | --- |")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    main()
