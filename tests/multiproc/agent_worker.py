"""A minimal agent for multi-process tests: claims tasks and contested files through the store.

    python agent_worker.py DB AGENT SHARED_PATHS(comma) [MAX_TASKS]

Waits for one line on stdin (the start signal), then loops: claim the next
task, claim the shared files (refusals are expected), claim its own file,
finish. Prints one JSON line per claimed task and a final summary line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.errors import NotFound, Refused  # noqa: E402
from store import Store  # noqa: E402


async def main(db: str, agent: str, shared: list[str], max_tasks: int) -> None:
    sys.stdin.readline()
    done = refused = 0
    latencies = []
    async with Store(db, actor=agent) as store:
        while done < max_tasks:
            start = time.perf_counter()
            try:
                lease = await store.claim_task(agent=agent, worktree=agent, ttl=120)
            except NotFound:
                break
            latencies.append(time.perf_counter() - start)
            got = []
            for path in shared:
                try:
                    got += await store.claim_files(lease.lease_id, [path], token=lease.token)
                except Refused:
                    refused += 1
            got += await store.claim_files(lease.lease_id, [f"own/{agent}/{lease.task_id}.py"], token=lease.token)
            print(json.dumps({"task": lease.task_id, "lease": lease.lease_id, "token": lease.token,
                              "files": got}), flush=True)
            await store.complete_task(lease.lease_id, token=lease.token, agent=agent)
            done += 1
    print(json.dumps({"agent": agent, "done": done, "refused": refused,
                      "max_claim_latency": max(latencies, default=0)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], [p for p in sys.argv[3].split(",") if p],
                     int(sys.argv[4]) if len(sys.argv) > 4 else 10**9))
