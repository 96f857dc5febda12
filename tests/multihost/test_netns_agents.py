"""Several hosts for real (issue 15 §5): PostgreSQL on one network namespace, `tower` agents
on two others over TCP, agents killed mid-command, a host partitioned and healed.

Shows: no task leased twice, no path claimed twice, the partitioned agent's lease is
reaped and its late `task done` refused with exit 4, the audit chain verifies. Each
host is a clone of the repository holding the imported audit key (`tower key import`),
its agents reach the database only at its namespace address, with libpq's timeouts
(connect_timeout, tcp_user_timeout, keepalives) bounding a cut link. The namespaces and
the server are removed, and every process ended by its pid, whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests import netns
from tests.conftest import ROOT, git, run_tower, tower_env
from tests.pgserver import PgServer, find_bindir

pytestmark = [pytest.mark.postgres, pytest.mark.netns, pytest.mark.slow]

# a cut link fails a statement within ~tcp_user_timeout, a connect within connect_timeout
LIBPQ_BOUNDS = {"connect_timeout": "3", "tcp_user_timeout": "1500", "keepalives_idle": "1",
                "keepalives_interval": "1", "keepalives_count": "2"}
TTL = 6  # seconds: the partitioned agent's lease expires while its host is cut off
KILLED_TTL = 3  # the killed agents' leases (if they got one before dying) run out soon
WORK_TTL = 120  # the others keep theirs for the whole test
COMMAND_BOUND = 40  # no `tower` command may take longer, whatever the network does


@pytest.fixture
def network():
    reason = netns.available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    if find_bindir() is None:
        pytest.skip("no PostgreSQL server binaries")
    with netns.Network(3) as net:
        yield net


class Agent:
    """`tower` commands on one host, in that host's clone, as one agent."""

    def __init__(self, host: netns.Host, root: Path, url: str, name: str) -> None:
        self.host, self.root, self.name = host, root, name
        self.env = tower_env({"TOWER_DB": url, "TOWER_AGENT": name, "TOWER_HOST": host.name})

    def argv(self, *args: str) -> list[str]:
        return [*self.host.prefix, sys.executable, "-m", "tui.cli", "--json", *args]

    def run(self, *args: str) -> tuple[int, dict, float]:
        started = time.monotonic()
        proc = subprocess.run(self.argv(*args), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_BOUND)
        elapsed = time.monotonic() - started
        assert "Traceback" not in proc.stderr, proc.stderr
        import json

        body = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, body, elapsed

    def ok(self, *args: str):
        code, body, _ = self.run(*args)
        assert code == 0 and body.get("ok"), (self.name, args, code, body)
        return body["data"]

    def popen(self, *args: str) -> subprocess.Popen:
        return self.host.popen(self.argv(*args)[len(self.host.prefix):], cwd=self.root, env=self.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def after_heal(agent: Agent, *args: str) -> tuple[int, dict]:
    """Right after a heal the first connect can fail at once (the ARP entry went FAILED during
    the cut: tests/pg/test_multihost.py); an agent's wrapper retries a store that is unusable."""
    for _ in range(5):
        code, body, _ = agent.run(*args)
        if code != 6:
            return code, body
    return code, body


def server_host() -> str:
    import socket

    return socket.gethostname()


def check_history(conn) -> dict:
    """The invariants, from the rows themselves."""
    leases = conn.execute("SELECT id, task_id, token, acquired_at, coalesce(ended_at, 'infinity'), status"
                          " FROM leases ORDER BY id").fetchall()
    by_task: dict[int, list] = {}
    for lease in leases:
        by_task.setdefault(lease[1], []).append(lease)
    for task, held in by_task.items():  # no task leased twice: its leases never overlap in time
        for earlier, later in zip(held, held[1:]):
            assert earlier[4] <= later[3], f"T{task} leased twice: L{earlier[0]} and L{later[0]}"
    tokens = [lease[2] for lease in leases]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens  # fencing tokens only grow
    claims = conn.execute("SELECT path, lease_id, claimed_at, coalesce(released_at, 'infinity') FROM claims"
                          " ORDER BY path, claimed_at").fetchall()
    by_path: dict[str, list] = {}
    for claim in claims:
        by_path.setdefault(claim[0], []).append(claim)
    for path, held in by_path.items():  # no path claimed twice: its claims never overlap in time
        for earlier, later in zip(held, held[1:]):
            assert earlier[3] <= later[2], f"{path} claimed twice: L{earlier[1]} and L{later[1]}"
    return {"leases": len(leases), "claims": len(claims)}


def test_agents_on_two_hosts_survive_kills_and_a_partition(network, repo, tmp_path):
    import psycopg

    h0, h1, h2 = network.hosts
    with PgServer(listen=h0.addr, wrap=h0.prefix) as server:
        server.create_database("tower")
        # the person's machine reaches the server over its Unix socket (a file: namespaces
        # do not separate it); the agents' hosts only over TCP, at h0's address
        local = server.socket_url("tower")
        tcp = server.url("tower", host=h0.addr) + "?" + urlencode(LIBPQ_BOUNDS)
        assert run_tower("init", "--db", local, cwd=repo).code == 0
        for n in range(1, 9):
            assert run_tower("task", "add", f"task {n}", "--scope", f"src/f{n}.py", cwd=repo).code == 0
        key = run_tower("key", "export", cwd=repo).stdout

        agents: dict[str, list[Agent]] = {}
        for host in (h1, h2):
            clone = tmp_path / host.name
            git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
            assert run_tower("key", "import", cwd=clone, input=key).code == 0
            agents[host.name] = [Agent(host, clone.resolve(), tcp, f"{host.name}-agent{i}") for i in range(4)]

        # every host registers its own clone: three `main`s at three places on three hosts
        agents["h1"][0].ok("worktree", "sync")
        listed = agents["h2"][0].ok("worktree", "sync")
        assert sorted((w["name"], w["host"]) for w in listed) == [
            ("main", server_host()), ("main-2", "h1"), ("main-3", "h2")]

        # -- agents killed mid-command: every host starts claims, half are SIGKILLed at once
        procs = [(a, a.popen("task", "claim", "--ttl", str(KILLED_TTL if i % 2 == 0 else WORK_TTL)))
                 for host in ("h1", "h2") for i, a in enumerate(agents[host])]
        for a, proc in procs[::2]:
            proc.kill()
        finished = []
        for a, proc in procs:
            out, err = proc.communicate(timeout=COMMAND_BOUND)
            assert "Traceback" not in err, err
            if proc.returncode == 0:
                import json

                finished.append((a, json.loads(out)["data"]))
        assert len(finished) >= 4, finished  # the ones not killed all got a task (8 tasks, 8 claims)
        for a, lease in finished:
            task = lease["task_id"][1:]
            a.ok("claim", lease["lease_id"], f"src/f{task}.py")
        leased = [lease["task_id"] for _, lease in finished]
        assert len(set(leased)) == len(leased), leased

        # -- a partition: h2's agent holds a lease and a claim, then loses its link
        cut_agent = agents["h2"][1]
        with psycopg.connect(server.dsn("tower"), autocommit=True) as conn:
            pending = conn.execute("SELECT id FROM tasks WHERE status = 'pending' ORDER BY id").fetchone()
        if pending is None:  # every task taken: finish one to free it
            a, lease = finished.pop()
            a.ok("task", "fail", lease["lease_id"], "--reason", "to free it")
            target = "T" + lease["task_id"][1:]
        else:
            target = f"T{pending[0]}"
        held = cut_agent.ok("task", "claim", "--task", target, "--ttl", str(TTL))
        contested = f"src/f{target[1:]}.py"
        cut_agent.ok("claim", held["lease_id"], contested)

        network.partition(h2)
        code, body, elapsed = cut_agent.run("lease", "heartbeat", held["lease_id"])
        assert code in (5, 6) and not body["ok"], body  # it cannot reach the store ...
        assert elapsed < 15, elapsed  # ... and says so in bounded time, not after TCP's hours
        print(f"partitioned heartbeat: exit {code} after {elapsed:.1f} s: {body['error']['message']}")

        # meanwhile on h1: the lease runs out (the server's clock), a reap ends it, another
        # agent takes the task and the contested path
        other = agents["h1"][3]
        deadline = time.monotonic() + TTL + 20
        while True:
            other.ok("reap")
            with psycopg.connect(server.dsn("tower"), autocommit=True) as conn:
                status = conn.execute("SELECT status FROM leases WHERE id = %s",
                                      (int(held["lease_id"][1:]),)).fetchone()[0]
            if status != "active":
                break
            assert time.monotonic() < deadline, "the partitioned agent's lease was never reaped"
            with psycopg.connect(server.dsn("tower"), autocommit=True) as conn:  # wait for its expiry
                conn.execute("SELECT pg_sleep(greatest(0, (SELECT expires_at FROM leases WHERE id = %s)"
                             " - extract(epoch FROM clock_timestamp())) + 0.05)",
                             (int(held["lease_id"][1:]),))
        assert status == "expired"
        taken = other.ok("task", "claim", "--task", target, "--ttl", "60")
        assert taken["token"] > held["token"]
        other.ok("claim", taken["lease_id"], contested)

        network.heal(h2)
        code, body = after_heal(cut_agent, "task", "done", held["lease_id"])
        assert code == 4 and body["error"]["code"] == "lease_not_active", body
        code, body = after_heal(cut_agent, "claim", held["lease_id"], "src/late.py")
        assert code == 4 and body["error"]["code"] == "lease_not_active", body
        other.ok("task", "done", taken["lease_id"])

        # the killed agents' leases run out too; then the history holds every invariant
        with psycopg.connect(server.dsn("tower"), autocommit=True) as conn:
            conn.execute("SELECT pg_sleep(greatest(0, coalesce((SELECT max(expires_at) FROM leases"
                         " WHERE status = 'active' AND ttl <= %s), 0) - extract(epoch FROM clock_timestamp()))"
                         " + 0.05)", (KILLED_TTL,))
        agents["h1"][0].ok("reap")
        with psycopg.connect(server.dsn("tower"), autocommit=True) as conn:
            counts = check_history(conn)
            active = conn.execute("SELECT count(*) FROM leases WHERE status = 'active' AND ttl <= %s",
                                  (KILLED_TTL,)).fetchone()[0]
        assert active == 0
        assert counts["leases"] >= len(finished) + 2
        verified = run_tower("--json", "audit", "verify", cwd=repo)
        assert verified.code == 0, verified.stdout
        assert agents["h2"][0].ok("audit", "verify")  # and from another host, over TCP
    # nothing of the test is left: the network's own exit checks its namespaces are gone
