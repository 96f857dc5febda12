"""Several hosts for real: PostgreSQL on one network namespace, clients on others, a partition.

Proves the harness the multi-host store tests build on (tests/netns.py): the
server is reached over TCP at its namespace's address only, a partitioned
host's connection fails within its timeouts while the other hosts carry on,
and after the link heals the host reconnects.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns
from tests.pgserver import PgServer, find_bindir

pytestmark = [pytest.mark.postgres, pytest.mark.netns]

CLIENT = Path(__file__).with_name("pg_client.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def network():
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    with netns.Network(3) as net:
        yield net


class Client:
    """pg_client.py running on a host; every answer is awaited with a bound."""

    def __init__(self, host: netns.Host, dsn: str) -> None:
        self.proc = host.popen(
            [sys.executable, str(CLIENT), dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )

    def do(self, op: str, sql: str | None = None, *, timeout: float = 30) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "sql": sql}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"client gave no answer to {op} within {timeout}s"
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


def psql(host: netns.Host, server: PgServer, sql: str) -> subprocess.CompletedProcess:
    dsn = server.dsn(host=server.listen, connect_timeout="3")
    return host.run([str(server.bindir / "psql"), dsn, "-X", "-A", "-t", "-c", sql], timeout=30)


def test_postgres_across_namespaces_survives_a_partition(network):
    if find_bindir() is None:
        pytest.skip("no PostgreSQL server binaries")
    h0, h1, h2 = network.hosts
    # nothing of the test network exists in the machine's own namespace
    assert network.subnet.network_address.exploded.rsplit(".", 1)[0] not in subprocess.run(
        ["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout

    with PgServer(listen=h0.addr, wrap=h0.prefix) as server:
        # the server runs on h0: its postmaster is in h0's namespace
        assert server.pid in netns._pids_in(h0.ns)
        for host in (h1, h2):
            out = psql(host, server, "SELECT host(inet_server_addr()) || ' ' || host(inet_client_addr())")
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == [h0.addr, host.addr]

        # a long-lived connection from h1, with libpq's own bounds on a dead link
        client = Client(h1, server.dsn(host=h0.addr, connect_timeout="3", tcp_user_timeout="1500",
                                       keepalives_idle="1", keepalives_interval="1", keepalives_count="2"))
        try:
            assert client.do("connect")["ok"]
            assert client.do("query", "SELECT host(inet_client_addr())")["rows"] == [[h1.addr]]

            network.partition(h1)
            assert not network.link_is_up(h1)
            cut = client.do("query", "SELECT 1")
            assert not cut["ok"] and cut["error"].startswith("OperationalError"), cut
            assert cut["elapsed"] < 15  # bounded by tcp_user_timeout/keepalives, not hung
            again = client.do("connect")
            assert not again["ok"] and again["error"].startswith("OperationalError"), again
            # the other hosts are not affected
            assert psql(h2, server, "SELECT 1").stdout.strip() == "1"

            network.heal(h1)
            assert network.link_is_up(h1)
            # h1's ARP entry for h0 failed during the cut: the first attempt after the heal
            # can get EHOSTUNREACH at once (libpq words it "server closed the connection
            # unexpectedly"); the next one re-resolves. A client must retry its connect.
            attempts = [client.do("connect")]
            while not attempts[-1]["ok"] and len(attempts) < 5:
                attempts.append(client.do("connect"))
            assert attempts[-1]["ok"], attempts
            assert client.do("query", "SELECT host(inet_client_addr())")["rows"] == [[h1.addr]]
        finally:
            client.close()


def test_the_network_is_gone_after_a_failure_inside_it():
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    net = netns.Network(2)
    with pytest.raises(RuntimeError, match="boom"):
        with net:
            sleeper = net.hosts[1].popen(["sleep", "300"])
            names = [h.ns for h in net.hosts] + [net.switch]
            assert set(names) <= set(netns.list_namespaces())
            raise RuntimeError("boom")
    assert sleeper.poll() is not None  # ended by its pid
    assert not set(names) & set(netns.list_namespaces())


def test_namespaces_of_a_dead_run_are_swept():
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is no longer anyone's (a killed test run)
    stale = f"{netns.PREFIX}{dead.pid}-abcd-h0"
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=20)
    try:
        assert stale in netns.sweep_stale()
        assert stale not in netns.list_namespaces()
    finally:
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True, timeout=20)


def test_a_host_cut_off_while_holding_the_write_gate_frees_it_after_its_idle_timeout(network):
    """Why the store sets idle_in_transaction_session_timeout (docs/postgres.md): the server
    cannot tell a partitioned client from a slow one, and would otherwise keep its session,
    and the gate, until TCP gives up (hours)."""
    if find_bindir() is None:
        pytest.skip("no PostgreSQL server binaries")
    import psycopg

    from tests.pg.pg_schema import migrate

    h0, h1, h2 = network.hosts
    with PgServer(listen=h0.addr, wrap=h0.prefix) as server:
        with psycopg.connect(server.dsn(), autocommit=True) as admin:  # the Unix socket works across namespaces
            migrate(admin)
        holder = Client(h1, server.dsn(host=h0.addr, connect_timeout="3",
                                       options="-c idle_in_transaction_session_timeout=2000"))
        try:
            assert holder.do("connect")["ok"]
            assert holder.do("query", "BEGIN")["ok"]
            assert holder.do("query", "SELECT tower_write_gate() > 0")["rows"] == [[True]]

            gate = "BEGIN; SET LOCAL lock_timeout = '{}'; SELECT tower_write_gate() > 0; COMMIT"
            blocked = psql(h2, server, gate.format("300ms"))
            assert blocked.returncode != 0 and "lock timeout" in blocked.stderr  # h1 holds it

            network.partition(h1)
            freed = psql(h2, server, gate.format("20s"))  # far longer than the idle timeout
            assert freed.returncode == 0, freed.stderr
            assert "idle-in-transaction timeout" in server.log_tail(60)
        finally:
            holder.close()
