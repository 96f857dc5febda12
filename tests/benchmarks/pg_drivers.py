"""psycopg 3 against asyncpg for Tower's agents' path (docs/postgres.md, "The driver").

    .venv/bin/python tests/benchmarks/pg_drivers.py [--python PY] [--runs N]

Each sample is a fresh process, as every `tower` command is: import the driver,
connect over TCP (SCRAM), run a claim-shaped transaction (7 statements with
parameters plus BEGIN/COMMIT), exit. Run once straight to the server and once
through a relay that delays every chunk by 1 ms each way (a 2 ms round trip:
this kernel has no netem). asyncpg is measured only if ``--python`` can import
it (it is not a Tower dependency). Import cost comes from ``-X importtime``
(cumulative, on top of asyncio, which the store imports anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SCHEMA = """
CREATE TABLE tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status text,
                    priority int DEFAULT 0, attempts int DEFAULT 0);
CREATE TABLE leases (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, task_id bigint, agent text,
                     token bigint UNIQUE);
CREATE TABLE worktrees (name text PRIMARY KEY, last_seen float8);
CREATE TABLE audit (seq bigint PRIMARY KEY, event text, entry_hash text);
CREATE TABLE audit_head (id int PRIMARY KEY, seq bigint, entry_hash text);
INSERT INTO audit_head VALUES (1, 0, 'g');
INSERT INTO tasks (status) SELECT 'pending' FROM generate_series(1, 5000);
"""

# {} are the placeholders, filled per driver; the ones marked None take the head's seq + 1
STATEMENTS = [
    ("SELECT id FROM tasks WHERE status = 'pending' ORDER BY priority DESC, id LIMIT 1", ()),
    ("INSERT INTO leases (task_id, agent, token) VALUES ({}, {}, (SELECT coalesce(max(token), 0) + 1 FROM leases))"
     " RETURNING id, token", ("task", "agent")),
    ("UPDATE tasks SET status = 'leased', attempts = attempts + 1 WHERE id = {}", ("task",)),
    ("UPDATE worktrees SET last_seen = {} WHERE name = {}", (1.0, "wt")),
    ("SELECT seq, entry_hash FROM audit_head WHERE id = 1 FOR UPDATE", ()),
    ("INSERT INTO audit (seq, event, entry_hash) VALUES ({}, {}, {})", ("seq", "task.claimed", "h")),
    ("UPDATE audit_head SET seq = {}, entry_hash = {} WHERE id = 1", ("seq", "h")),
]


def _args(values, state):
    return tuple(state.get(v, v) if isinstance(v, str) else v for v in values)


async def _client(driver: str, dsn: str, url: str, started: float) -> dict:
    state: dict = {"agent": "agent-1"}
    if driver == "asyncpg":
        import asyncpg

        imported = time.perf_counter()
        conn = await asyncpg.connect(url)
        connected = time.perf_counter()
        async with conn.transaction():
            for sql, values in STATEMENTS:
                args = _args(values, state)
                rows = await conn.fetch(sql.format(*(f"${i + 1}" for i in range(len(args)))), *args)
                _remember(sql, rows, state)
        done = time.perf_counter()
        await conn.close()
    else:
        import psycopg

        imported = time.perf_counter()
        conn = await psycopg.AsyncConnection.connect(dsn)
        connected = time.perf_counter()
        async with conn.transaction():
            for sql, values in STATEMENTS:
                args = _args(values, state)
                cur = await conn.execute(sql.format(*(["%s"] * len(args))), args)
                _remember(sql, await cur.fetchall() if cur.description else [], state)
        done = time.perf_counter()
        await conn.close()
    return {"import": imported - started, "connect": connected - imported, "transaction": done - connected}


def _remember(sql: str, rows, state: dict) -> None:
    if sql.startswith("SELECT id FROM tasks"):
        state["task"] = rows[0][0]
    elif sql.startswith("SELECT seq"):
        state["seq"] = rows[0][0] + 1


async def _relay(listen_port: int, target_port: int, delay: float) -> None:
    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def import_cost(python: str, module: str, runs: int) -> float | None:
    samples = []
    for _ in range(runs):
        err = subprocess.run([python, "-X", "importtime", "-c", f"import asyncio; import {module}"],
                             capture_output=True, text=True).stderr
        if "ModuleNotFoundError" in err:
            return None
        total = 0
        for line in err.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].rstrip() == f" {module}":
                total = int(parts[1])
        samples.append(total / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=sys.executable, help="interpreter with the drivers installed")
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()

    from tests.pgserver import PgServer, free_port

    drivers = [d for d in ("psycopg", "asyncpg")
               if subprocess.run([opts.python, "-c", f"import {d}"], capture_output=True).returncode == 0]
    for driver in drivers:
        print(f"import {driver} (on top of asyncio): median {import_cost(opts.python, driver, opts.runs):.1f} ms")
    with PgServer(listen="127.0.0.1") as server:
        server.psql(SCHEMA)
        for rtt in (0.0, 0.002):
            port, relay = server.port, None
            if rtt:
                port = free_port()
                relay = subprocess.Popen([opts.python, __file__, "--relay", str(port), str(server.port), str(rtt / 2)],
                                         stdout=subprocess.PIPE, text=True)
                assert relay.stdout.readline().strip() == "ready"
            try:
                dsn = f"host=127.0.0.1 port={port} user=postgres password={server.password} dbname=postgres"
                url = f"postgresql://postgres:{server.password}@127.0.0.1:{port}/postgres"
                for driver in drivers:
                    samples = []
                    for _ in range(opts.runs):
                        out = subprocess.run([opts.python, __file__, "--client", driver, dsn, url],
                                             capture_output=True, text=True, check=True)
                        samples.append(json.loads(out.stdout))
                    med = {k: statistics.median(s[k] for s in samples) * 1000 for k in samples[0]}
                    print(f"round trip {rtt * 1000:.0f} ms  {driver:8s} "
                          + "  ".join(f"{k} {v:5.1f} ms" for k, v in med.items()))
            finally:
                if relay is not None:
                    relay.kill()
                    relay.wait()
                    relay.stdout.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        t0 = time.perf_counter()
        print(json.dumps(asyncio.run(_client(sys.argv[2], sys.argv[3], sys.argv[4], t0))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--relay":
        asyncio.run(_relay(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
    else:
        main()
