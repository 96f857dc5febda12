"""One agent's claim on each backend: the verb inside a process, and `tower task claim`.

Prints a table: ``claim_task`` latency (p50/p95 over many claims, one process,
one connection) and the wall time of a whole `tower task claim --json`
process (p50 of several), on SQLite and on PostgreSQL 15 started here (tests/pgserver.py,
durable: fsync on, on disk) over its Unix socket and over TCP loopback.
The many-agent and many-host figures are bench_claims.py's and the namespace benchmark's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store import Store  # noqa: E402
from core.locate import write_pointer  # noqa: E402
from tests.pgserver import PgServer, fresh_database  # noqa: E402

CLAIMS = 300
CLI_RUNS = 15


async def verb_latencies(db: Path) -> list[float]:
    async with Store(db, create=True, actor="bench") as store:
        for i in range(CLAIMS + CLI_RUNS + 1):
            await store.add_task(f"t{i}")
        times = []
        for _ in range(CLAIMS):
            start = time.perf_counter()
            await store.claim_task(agent="bench", ttl=600)
            times.append(time.perf_counter() - start)
        return times


def cli_latencies(db: Path, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(CLI_RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tui.cli", "--db", str(db), "task", "claim", "--agent", "cli",
                        "--json"], cwd=ROOT, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def row(name: str, verb: list[float], cli: list[float]) -> str:
    return (f"| {name} | {pct(verb, 0.5):.2f} | {pct(verb, 0.95):.2f} | {statistics.median(cli) * 1000:.0f} |")


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOWER_", "PG"))}
    env["PYTHONPATH"] = str(ROOT)
    print("| store | claim_task p50 ms | p95 ms | `tower task claim` p50 ms |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        db = Path(tmp) / "sqlite" / "tower.db"
        verb = asyncio.run(verb_latencies(db))
        print(row("SQLite (WAL, synchronous=FULL)", verb, cli_latencies(db, env)), flush=True)
        with PgServer(listen="127.0.0.1", durable=True) as server:
            # the password where libpq looks for it, never in the recorded URL
            pgpass = Path(tmp) / "pgpass"
            pgpass.write_text(f"127.0.0.1:{server.port}:*:postgres:{server.password}\n")
            pgpass.chmod(0o600)
            os.environ["PGPASSFILE"] = env["PGPASSFILE"] = str(pgpass)
            for name, tcp in (("PostgreSQL 15, Unix socket", False), ("PostgreSQL 15, TCP loopback", True)):
                database = fresh_database(server)
                url = f"postgresql://postgres@127.0.0.1:{server.port}/{database.name}" if tcp else database.url
                target = write_pointer(Path(tmp) / name, url)
                verb = asyncio.run(verb_latencies(target))
                print(row(name, verb, cli_latencies(target, env)), flush=True)


if __name__ == "__main__":
    main()
