"""What recording an agent's hook event costs (store/sessions.py, tui/services/agent_events.py).

Prints four tables:

1. One ``record_session_event`` on an open store (a real file, synchronous=FULL):
   a tool call that changes no state (the common case), the Post that closes
   it, and a change of state (with its ``agent.state`` audit event), p50/p95
   over RUNS events. Also ``session_event`` (the payload mapping) alone.
2. One event as a process would send it: start Python, import the mapping and
   the store, map a real PostToolUse payload, open the store, record, close;
   beside ``python -c pass``, interleaved.
3. What the command-line agents' sessions add to the lease verbs: a claim,
   heartbeat and done cycle with the session bookkeeping and with it
   switched off (``store.sessions.agent_seen`` a no-op), interleaved.
4. 16 processes sending events at 10/s in total, then 8 processes back to
   back: latency of each record, and events per second.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store import Store, sessions  # noqa: E402
from tui.services.agent_events import record, session_event  # noqa: E402

RUNS = 400
PROCESS_RUNS = 20
CYCLES = 150
FIXTURE = ROOT / "tests" / "agents" / "fixtures" / "claude" / "PostToolUse.Edit.json"
PRE = ROOT / "tests" / "agents" / "fixtures" / "claude" / "PreToolUse.Edit.json"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("TOWER_")}
ENV["PYTHONPATH"] = str(ROOT)

ONE_EVENT = r"""
import asyncio, json, sys
from tui.services.agent_events import record, session_event
from store import Store

async def main():
    ev = session_event("claude-code", json.loads(sys.stdin.read()))
    async with Store(sys.argv[1]) as store:
        await record(store, ev)

asyncio.run(main())
"""

SENDER = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[3])
from store import Store

async def main():
    db, session, rate, count = sys.argv[1], sys.argv[2], float(sys.argv[4]), int(sys.argv[5])
    lat = []
    async with Store(db, actor=session) as store:
        sys.stdin.readline()
        start = time.monotonic()
        for i in range(count):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await store.record_session_event("claude-code", session, "PostToolUse", state="working", tool="Bash",
                                             target=f"call {i}", tool_call=True)
            lat.append(time.perf_counter() - t0)
    print(json.dumps(lat))

asyncio.run(main())
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float], base: float | None = None) -> str:
    med = statistics.median(values)
    extra = f" {(med - base) * 1000:9.2f}" if base is not None else ""
    return f"{name:44} {med * 1000:9.2f} {pct(values, .95) * 1000:8.2f}{extra}"


async def in_process(db: Path) -> dict[str, list[float]]:
    pre = json.loads(PRE.read_text())
    post = json.loads(FIXTURE.read_text())
    out: dict[str, list[float]] = {"map one payload (session_event)": [],
                                   "tool call, no change of state (Pre)": [],
                                   "its Post (closes the call)": [],
                                   "change of state (audited)": []}
    async with Store(db, actor="bench") as s:
        await s.add_worktree("wt-agent", "/tmp/sandbox/wt-agent")
        await record(s, session_event("claude-code", pre))
        for i in range(RUNS):
            pre["tool_input"]["file_path"] = post["tool_input"]["file_path"] = f"/tmp/sandbox/wt-agent/f{i}.py"
            t0 = time.perf_counter()
            ev = session_event("claude-code", pre)
            out["map one payload (session_event)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await record(s, ev)
            out["tool call, no change of state (Pre)"].append(time.perf_counter() - t0)
            ev = session_event("claude-code", post)
            t0 = time.perf_counter()
            await record(s, ev)
            out["its Post (closes the call)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await s.record_session_event("claude-code", pre["session_id"], "Stop" if i % 2 else "UserPromptSubmit",
                                         state="idle" if i % 2 else "working")
            out["change of state (audited)"].append(time.perf_counter() - t0)
    return out


def per_process(db: Path) -> dict[str, list[float]]:
    payload = FIXTURE.read_bytes()
    rows: dict[str, list[float]] = {"python -c pass": [], "python: import the mapping and the store": [],
                                    "one event in its own process": []}
    subprocess.run([sys.executable, "-c", ONE_EVENT, str(db)], input=payload, env=ENV, check=True)  # warm-up
    for _ in range(PROCESS_RUNS):
        order = list(rows)
        random.shuffle(order)
        for name in order:
            if name == "python -c pass":
                args = [sys.executable, "-c", "pass"]
            elif name.startswith("python: import"):
                args = [sys.executable, "-c", "import asyncio, json; import tui.services.agent_events, store"]
            else:
                args = [sys.executable, "-c", ONE_EVENT, str(db)]
            t0 = time.perf_counter()
            subprocess.run(args, input=payload, env=ENV, check=True, capture_output=True)
            rows[name].append(time.perf_counter() - t0)
    return rows


async def lease_cycles(db: Path) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"with agent sessions": [], "without (agent_seen a no-op)": []}
    original = sessions.agent_seen

    async def nothing(store, tx, worktree, agent):
        return None

    async with Store(db, actor="bench") as s:
        async with s.transaction() as tx:
            await tx.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, 0, 0)",
                                     [(f"t{i}",) for i in range(2 * CYCLES + 2)])
        for _ in range(CYCLES):
            order = list(rows)
            random.shuffle(order)
            for name in order:
                sessions.agent_seen = original if name == "with agent sessions" else nothing
                t0 = time.perf_counter()
                lease = await s.claim_task(agent="agent-a", worktree="wt-a")
                await s.heartbeat(lease.lease_id)
                await s.complete_task(lease.lease_id)
                rows[name].append(time.perf_counter() - t0)
        sessions.agent_seen = original
    return rows


def concurrent(db: Path, procs: int, rate_total: float, per_proc: int) -> tuple[list[float], float]:
    rate = rate_total / procs if rate_total else 0.0
    senders = [subprocess.Popen([sys.executable, "-c", SENDER, str(db), f"agent-{i}", str(ROOT), str(rate),
                                 str(per_proc)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
               for i in range(procs)]
    time.sleep(1.0)  # let every process open its store before the start signal
    start = time.perf_counter()
    for p in senders:
        p.stdin.write("go\n")
        p.stdin.flush()
    lat = [x for p in senders for x in json.loads(p.communicate()[0])]
    return lat, len(lat) / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tower.db"
        asyncio.run(_create(db))

        rows = asyncio.run(in_process(db))
        print(f"one event on an open store ({RUNS} each; synchronous=FULL, a real file)")
        print(f"{'what':44} {'p50 ms':>9} {'p95 ms':>8}")
        for name, values in rows.items():
            print(row(name, values))

        rows = per_process(db)
        base = statistics.median(rows["python -c pass"])
        print()
        print(f"one event per process ({PROCESS_RUNS} runs each, interleaved)")
        print(f"{'what':44} {'p50 ms':>9} {'p95 ms':>8} {'- python':>9}")
        for name, values in rows.items():
            print(row(name, values, base))

        rows = asyncio.run(_cycles(Path(tmp) / "cycles.db"))
        base = statistics.median(rows["without (agent_seen a no-op)"])
        print()
        print(f"claim + heartbeat + done, {CYCLES} cycles each, interleaved (one process)")
        print(f"{'what':44} {'p50 ms':>9} {'p95 ms':>8} {'+ ms':>9}")
        for name, values in rows.items():
            print(row(name, values, base))

        print()
        print("several processes recording at once (each event: one transaction)")
        print(f"{'what':44} {'p50 ms':>9} {'p95 ms':>8} {'max ms':>8} {'events/s':>9}")
        for procs, rate, count in ((16, 10.0, 10), (8, 0.0, 150)):
            lat, per_s = concurrent(db, procs, rate, count)
            what = f"{procs} processes, {rate:g}/s in total" if rate else f"{procs} processes, back to back"
            print(f"{what:44} {pct(lat, .5) * 1000:9.2f} {pct(lat, .95) * 1000:8.2f} {max(lat) * 1000:8.2f}"
                  f" {per_s:9.0f}")


async def _create(db: Path) -> None:
    async with Store(db, create=True):
        pass


async def _cycles(db: Path) -> dict[str, list[float]]:
    await _create(db)
    return await lease_cycles(db)


if __name__ == "__main__":
    main()
