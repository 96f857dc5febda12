"""Several real processes on one real SQLite file: the lease and claim rules hold under contention.

The audit log is appended in the same transaction as each change, so its seq
order is the commit order: replaying it shows what every agent held at every
moment, whatever the processes printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from store import Store
from tests.conftest import run_tower, tower_env

WORKER = Path(__file__).with_name("agent_worker.py")
AGENTS = 8
TASKS = 96
SHARED = ["shared/config.py", "shared/models.py", "shared/api.py"]


def start_agents(db: Path, count: int, shared: list[str]) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(db), f"agent-{i}", ",".join(shared)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tower_env(),
        )
        for i in range(count)
    ]
    for proc in procs:  # all started: release them together
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[list[dict]]:
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            outputs.append([json.loads(line) for line in out.splitlines()])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


async def replay(db: Path) -> tuple[list[int], dict[str, int]]:
    """Walk the audit log in commit order, asserting exclusivity at every step."""
    task_holder: dict[int, int] = {}
    path_holder: dict[str, int] = {}
    lease_task: dict[int, int] = {}
    tokens: list[int] = []
    per_agent: dict[str, int] = {}
    async with Store(db) as store:
        events = await store.audit_after(0, limit=1_000_000)
        assert (await store.verify_audit()).ok
    for e in events:
        if e.event == "task.claimed":
            assert e.task_id not in task_holder, f"task T{e.task_id} leased twice (seq {e.seq})"
            task_holder[e.task_id] = e.lease_id
            lease_task[e.lease_id] = e.task_id
            tokens.append(e.details["token"])
            per_agent[e.actor] = per_agent.get(e.actor, 0) + 1
        elif e.event == "files.claimed":
            for path in e.details["paths"]:
                assert path not in path_holder, f"{path} claimed twice (seq {e.seq})"
                path_holder[path] = e.lease_id
        elif e.event in ("task.done", "task.failed", "lease.expired", "lease.released"):
            task_holder.pop(lease_task[e.lease_id], None)
            for path in e.details.get("released", []):
                assert path_holder.pop(path) == e.lease_id
    return tokens, per_agent


@pytest.mark.slow
async def test_eight_agents_never_share_a_task_or_a_file(db_path):
    async with Store(db_path, create=True) as store:
        for i in range(TASKS):
            await store.add_task(f"task {i}", priority=i % 3)
    outputs = finish(start_agents(db_path, AGENTS, SHARED))

    tokens, per_agent = await replay(db_path)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens) == TASKS
    summaries = [out[-1] for out in outputs]
    assert sum(s["done"] for s in summaries) == TASKS
    fair = TASKS / AGENTS
    assert all(s["done"] >= fair / 4 for s in summaries), summaries  # nobody starved
    assert sorted(per_agent) == sorted(f"agent-{i}" for i in range(AGENTS))
    # every claimed task was reported by exactly one process
    reported = [line["task"] for out in outputs for line in out[:-1]]
    assert sorted(reported) == list(range(1, TASKS + 1))
    # the shared files were really contested, and someone always won them
    assert sum(s["refused"] for s in summaries) > 0
    async with Store(db_path) as store:
        assert {t.status for t in await store.list_tasks()} == {"done"}
        assert await store.active_claims() == []


@pytest.mark.slow
def test_expired_holder_cannot_complete_or_claim_after_takeover(tower):
    tower("init")
    tower("task", "add", "contested")
    old = tower("task", "claim", "--agent", "slow", "--json").data
    assert tower("claim", old["lease_id"], "src/a.py", "--agent", "slow").code == 0
    # only now let the lease run out (1 s, the shortest): --ttl 1 at claim time expired it
    # before the file claim whenever starting `tower` took longer than that (a loaded machine)
    beat = tower("lease", "heartbeat", old["lease_id"], "--ttl", "1", "--agent", "slow", "--json").data
    expires = datetime.fromisoformat(beat["expires_at"]).timestamp()
    while time.time() <= expires:  # wait out the lease (time passing is the behaviour under test)
        time.sleep(expires - time.time() + 0.001)
    new = tower("task", "claim", "--agent", "fast", "--json").data
    assert new["task_id"] == old["task_id"] and new["token"] > old["token"]
    for args in (["task", "done", old["lease_id"]], ["claim", old["lease_id"], "src/b.py"],
                 ["lease", "heartbeat", old["lease_id"]],
                 ["task", "fail", old["lease_id"], "--reason", "late"]):
        result = tower(*args, "--agent", "slow", "--json")
        assert result.code == 4 and result.json["error"]["code"] == "lease_not_active", args
    # the old holder's file claim went with its lease
    assert tower("claim", new["lease_id"], "src/a.py", "--agent", "fast").code == 0
    assert tower("task", "done", new["lease_id"], "--agent", "fast").code == 0
    events = [e["event"] for e in tower("audit", "tail", "-n", "50", "--json").data]
    assert "lease.expired" in events and events[-1] == "task.done"


@pytest.mark.slow
def test_cli_agents_in_parallel_get_distinct_tasks(tmp_path):
    db = tmp_path / "tower.db"
    assert run_tower("--db", str(db), "init").code == 0
    for i in range(8):
        run_tower("--db", str(db), "task", "add", f"t{i}")
    procs = [
        subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", str(db), "task", "claim", "--agent", f"a{i}",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tower_env())
        for i in range(8)
    ]
    answers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        answers.append(json.loads(out))
    tasks = [a["data"]["task_id"] for a in answers]
    assert sorted(tasks) == sorted(f"T{i}" for i in range(1, 9))
