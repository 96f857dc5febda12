"""`tower mcp`: start-up and the cost of one tool call, over raw JSON-RPC on the server's pipes.

Prints one table: the time from starting `tower mcp` to its `initialize`
answer (the MCP SDK's import is most of it; agents wait for this once per
session), to its first tool result (opening the store), and the round trip
of a `status` and a `heartbeat` call on a running server (median and p95 over
CALLS calls), beside `python -c pass` and the command line's own
`tower lease heartbeat`, a process per call.
"""

from __future__ import annotations

import asyncio
import json
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

STARTS = 7
CALLS = 100
PY = sys.executable
TOWER = [PY, "-m", "tui.cli"]
SCRIPT = Path(PY).parent / "tower"
if SCRIPT.exists():
    TOWER = [str(SCRIPT)]

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("TOWER_")}
ENV["PYTHONPATH"] = str(ROOT)
ENV["TOWER_AGENT"] = "bench"


class Server:
    def __init__(self, db: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen([*TOWER, "--db", str(db), "mcp"], cwd=cwd, env=ENV, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            answer = json.loads(self.proc.stdout.readline())
            if answer.get("id") == self.next_id:
                return answer

    def notify(self, method: str) -> None:
        self.proc.stdin.write((json.dumps({"jsonrpc": "2.0", "method": method}) + "\n").encode())
        self.proc.stdin.flush()

    def initialize(self) -> None:
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "1"}})
        self.notify("notifications/initialized")

    def tool(self, name: str, arguments: dict) -> dict:
        answer = self.request("tools/call", {"name": name, "arguments": arguments})
        assert not answer["result"].get("isError"), answer
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


async def seed(db: Path) -> None:
    async with Store(db, create=True, actor="bench") as s:
        for i in range(20):
            await s.add_task(f"task {i}")
        lease = await s.claim_task(agent="bench", ttl=3600)
        await s.claim_files(lease.lease_id, [f"src/f{i}.py" for i in range(5)], agent="bench")


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        db = tmp / "tower.db"
        asyncio.run(seed(db))
        warm = Server(db, tmp)
        warm.initialize()
        warm.tool("status", {})
        warm.close()

        to_init, to_tool, passes = [], [], []
        for _ in range(STARTS):
            t = time.perf_counter()
            subprocess.run([PY, "-c", "pass"], env=ENV)
            passes.append(time.perf_counter() - t)
            t = time.perf_counter()
            server = Server(db, tmp)
            server.initialize()
            to_init.append(time.perf_counter() - t)
            server.tool("status", {})
            to_tool.append(time.perf_counter() - t)
            server.close()

        server = Server(db, tmp)
        server.initialize()
        status, beat = [], []
        for _ in range(CALLS):
            t = time.perf_counter()
            server.tool("status", {})
            status.append(time.perf_counter() - t)
            t = time.perf_counter()
            server.tool("heartbeat", {"lease_id": "L1"})
            beat.append(time.perf_counter() - t)
        server.close()

        cli = []
        for _ in range(15):
            t = time.perf_counter()
            subprocess.run([*TOWER, "--db", str(db), "lease", "heartbeat", "L1"], cwd=tmp, env=ENV,
                           capture_output=True, check=True)
            cli.append(time.perf_counter() - t)

        print(f"\n## tower mcp: start-up ({STARTS} starts) and tool calls ({CALLS} calls each)\n")
        print("| what | median ms | p95 ms |")
        print("|---|---:|---:|")
        print(f"| python -c pass | {statistics.median(passes) * 1000:.0f} | {pct(passes, 0.95):.0f} |")
        print(f"| start to initialize answered | {statistics.median(to_init) * 1000:.0f} | {pct(to_init, 0.95):.0f} |")
        print(f"| start to first tool result | {statistics.median(to_tool) * 1000:.0f} | {pct(to_tool, 0.95):.0f} |")
        print(f"| status call (running server) | {statistics.median(status) * 1000:.1f} | {pct(status, 0.95):.1f} |")
        print(f"| heartbeat call (running server, one write) | {statistics.median(beat) * 1000:.1f} "
              f"| {pct(beat, 0.95):.1f} |")
        print(f"| tower lease heartbeat (a process per call) | {statistics.median(cli) * 1000:.0f} "
              f"| {pct(cli, 0.95):.0f} |")


if __name__ == "__main__":
    main()
