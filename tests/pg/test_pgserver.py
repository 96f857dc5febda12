"""The test PostgreSQL server: who runs it, how we know it is ready, how it stops."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from tests.pgserver import TEMPLATE, PgServer, PgServerError, fresh_database, sweep_stale

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait for any process (not only a child) to exit, on a pidfd: no polling loop."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def test_server_is_the_postmaster_runs_unprivileged_and_answers(pg_server):
    pid = pg_server.pid
    # the pid we hold is the postmaster itself (setpriv execs in place), so stop() kills nothing else
    assert int((pg_server.data_dir / "postmaster.pid").read_text().split()[0]) == pid
    if os.geteuid() == 0:
        assert _uid_of(pid) != 0
    assert pg_server.psql("SELECT current_setting('server_version_num')::int / 10000") == "15"
    assert pg_server.ready_after is not None


def test_tcp_needs_the_password(pg_server):
    with psycopg.connect(pg_server.dsn(tcp=True), connect_timeout=5) as conn:
        assert conn.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith("127.0.0.1")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.dsn(tcp=True, password="wrong"), connect_timeout=5)


def test_each_test_database_is_a_fresh_copy_of_the_template(pg_server, pg_database):
    pg_server.psql("CREATE TABLE IF NOT EXISTS from_template (x int)", dbname=TEMPLATE)
    other = fresh_database(pg_server, TEMPLATE)
    try:
        other.psql("CREATE TABLE scribble (x int); INSERT INTO scribble VALUES (1)")
        assert other.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'from_template'") == "1"
        third = fresh_database(pg_server, TEMPLATE)
        try:
            # what one test writes is not in the next test's database
            assert third.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'scribble'") == "0"
        finally:
            pg_server.drop_database(third.name)
    finally:
        pg_server.drop_database(other.name)
        pg_server.psql("DROP TABLE from_template", dbname=TEMPLATE)
    with psycopg.connect(pg_database.dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == pg_database.name


def test_dropping_a_database_disconnects_a_leftover_connection(pg_server):
    db = fresh_database(pg_server)
    conn = psycopg.connect(db.dsn)
    try:
        pg_server.drop_database(db.name)  # WITH (FORCE): a test that forgot to close cannot block cleanup
        assert pg_server.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{db.name}'") == "0"
    finally:
        conn.close()


def test_a_server_that_cannot_start_says_why_and_leaves_nothing(tmp_path):
    server = PgServer(settings={"shared_buffers": "lots"})
    with pytest.raises(PgServerError, match="shared_buffers"):
        with server:
            pass
    assert server.proc is None and server.dir is None


def test_stop_ends_the_server_and_removes_its_directory():
    with PgServer() as server:
        pid, directory = server.pid, server.dir
        assert server.psql("SELECT 1") == "1"
    assert _wait_gone(pid, 0)  # stop() waited for it
    assert not directory.exists()


def test_a_killed_test_run_takes_its_server_with_it(tmp_path):
    """pytest killed with SIGKILL runs no teardown: the parent-death signal stops the server."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from tests.pgserver import PgServer
        server = PgServer()
        server.start()
        print(server.pid, server.dir, flush=True)
        sys.stdin.read()  # until the test kills us
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
        assert line, "the child did not start a server"
        pid, directory = int(line[0]), Path(line[1])
        assert not _wait_gone(pid, 0)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert _wait_gone(pid, 30), "the server outlived the process that started it"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stdin.close()
    # the dead parent could not remove its cluster; the next server sweeps it
    assert directory.exists()
    assert directory in sweep_stale(str(directory.parent))
    assert not directory.exists()
