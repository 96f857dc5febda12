"""A real PostgreSQL server for the tests, started and stopped by the tests themselves.

    with PgServer() as server:            # initdb into a temp dir, start, wait until ready
        server.create_database("t1")
        dsn = server.dsn("t1")            # Unix socket; server.dsn("t1", tcp=True) for TCP

One server per test session (see ``pg_server`` in tests/pgfixtures.py); each
test gets a fresh database copied from a template, which takes milliseconds
where an initdb takes most of a second.

PostgreSQL refuses to run as root (initdb and postgres both check), and the
tests do run as root here: the server then runs as an unprivileged user
(``postgres`` from the Debian package, else ``nobody``; ``TOWER_PG_USER``
overrides) switched to with ``setpriv``, which execs in place, so the pid we
hold is the postmaster's own and stopping it never needs a broad kill.

Readiness is the server's own word: its log goes to a pipe that a thread
drains, and ``start()`` waits for "database system is ready to accept
connections" (lc_messages is forced to C so the line is never translated),
or for the process to exit, which is reported with the log's tail.

Durability is off by default (``fsync``, ``synchronous_commit``,
``full_page_writes``, and the cluster lives in /dev/shm): the suite tests
Tower's transactions, not the disk, and a crash of the test server loses
nothing we keep. Benchmarks that claim figures for a real deployment pass
``durable=True`` (on disk, fsync on).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = "tower_template"  # what each test database is copied from (tests/pgfixtures.py)
READY_LINE = "database system is ready to accept connections"
DEFAULT_PORT = 5432
SUPERUSER = "postgres"


class PgServerError(RuntimeError):
    """The server could not be set up, started or stopped; the message carries the log's tail."""


def find_bindir() -> Path | None:
    """Where initdb/postgres/psql live: ``TOWER_PG_BIN``, else the newest
    /usr/lib/postgresql/*/bin (Debian's layout), else the directory of ``pg_ctl`` on PATH."""
    explicit = os.environ.get("TOWER_PG_BIN")
    if explicit:
        return Path(explicit) if (Path(explicit) / "postgres").exists() else None
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and (Path(pg_ctl).parent / "postgres").exists():
        return Path(pg_ctl).parent
    return None


def server_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("TOWER_PG_USER")
    for name in ([wanted] if wanted else ["postgres", "nobody"]):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PgServerError(
        f"running as root and no unprivileged account to run PostgreSQL as (tried {wanted or 'postgres, nobody'})"
    )


def _default_base_dir(durable: bool) -> str | None:
    """Where the cluster lives: ``TOWER_PG_TMP``, else memory (/dev/shm) unless the server
    must be durable: every test's CREATE DATABASE checkpoints, which a busy disk makes
    slow (docs/postgres.md, "Tests")."""
    explicit = os.environ.get("TOWER_PG_TMP")
    if explicit:
        return explicit
    if not durable and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return None


DIR_PREFIX = "tower-pg-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(base_dir: str | None) -> list[Path]:
    """Remove clusters left by test runs that were killed (their creator's pid is gone and
    their postmaster with it): in /dev/shm they would hold memory until the machine restarts."""
    swept = []
    for path in Path(base_dir or tempfile.gettempdir()).glob(f"{DIR_PREFIX}*-*"):
        creator = path.name[len(DIR_PREFIX):].split("-", 1)[0]
        if not creator.isdigit() or _alive(int(creator)):
            continue
        pidfile = path / "data" / "postmaster.pid"
        try:
            postmaster = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            postmaster = None
        if postmaster is not None and _alive(postmaster):
            continue  # its server still runs (the death signal did not reach it): leave it be
        shutil.rmtree(path, ignore_errors=True)
        swept.append(path)
    return swept


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgDatabase:
    """One database of a server, named uniquely (``fresh_database``)."""

    def __init__(self, server: PgServer, name: str) -> None:
        self.server = server
        self.name = name

    @property
    def dsn(self) -> str:
        """Over the Unix socket."""
        return self.server.dsn(self.name)

    @property
    def url(self) -> str:
        """``postgresql://`` over the Unix socket (no password: local connections are trusted),
        what ``TOWER_DB`` or ``store.toml`` holds."""
        return self.server.socket_url(self.name)

    def tcp_dsn(self, **params: str) -> str:
        return self.server.dsn(self.name, tcp=True, **params)

    def psql(self, sql: str) -> str:
        return self.server.psql(sql, dbname=self.name)

    def drop(self) -> None:
        self.server.drop_database(self.name)


def fresh_database(server: PgServer, template: str | None = None) -> PgDatabase:
    """A new database (a copy of ``template`` if given) under a name no other test uses."""
    name = f"t_{os.getpid()}_{secrets.token_hex(4)}"
    server.create_database(name, template=template)
    return PgDatabase(server, name)


class PgServer:
    """One PostgreSQL cluster in a temporary directory.

    ``listen``: TCP addresses to listen on (``None``: Unix socket only; the
    socket is always there). ``wrap``: a command prefix that runs the server
    somewhere else, for example ``["ip", "netns", "exec", NS]``; it must exec
    the rest in place (``ip netns exec`` and ``setpriv`` do) so the pid stays
    the postmaster's.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        listen: str | None = None,
        port: int | None = None,
        durable: bool = False,
        wrap: Sequence[str] = (),
        settings: dict[str, str] | None = None,
        base_dir: Path | str | None = None,
    ) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PgServerError("no PostgreSQL server binaries found (set TOWER_PG_BIN)")
        self.bindir = Path(found)
        self.listen = listen
        self.port = port if port is not None else (free_port(listen) if listen in ("127.0.0.1", "localhost") else DEFAULT_PORT)
        self.durable = durable
        self.wrap = list(wrap)
        self.settings = dict(settings or {})
        self.base_dir = base_dir if base_dir is not None else _default_base_dir(durable)
        self.password = secrets.token_hex(16)
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.ready_after: float | None = None  # seconds from exec to the ready line
        self._log_tail: deque[str] = deque(maxlen=60)
        self._ready = threading.Event()
        self._saw_ready = False
        self._drain: threading.Thread | None = None
        self._user = server_user()

    # -- paths and addresses -------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None, "server not set up"
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.dir is not None, "server not set up"
        return self.dir / "sock"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def dsn(self, dbname: str = "postgres", *, tcp: bool = False, host: str | None = None, **params: str) -> str:
        """A libpq connection string: over the Unix socket, or TCP (with the password) to
        ``host`` (default: the listen address)."""
        if tcp or host:
            target = host or self.listen
            if not target:
                raise PgServerError("this server listens on no TCP address")
            parts = {"host": target, "port": str(self.port), "user": SUPERUSER, "password": self.password,
                     "dbname": dbname}
        else:
            parts = {"host": str(self.socket_dir), "port": str(self.port), "user": SUPERUSER, "dbname": dbname}
        parts.update(params)
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items())

    def socket_url(self, dbname: str = "postgres") -> str:
        from urllib.parse import quote

        return f"postgresql://{SUPERUSER}@/{quote(dbname)}?host={quote(str(self.socket_dir))}&port={self.port}"

    def url(self, dbname: str = "postgres", *, host: str | None = None) -> str:
        """``postgresql://`` form over TCP, what a user puts in TOWER_DB."""
        target = host or self.listen
        if not target:
            raise PgServerError("this server listens on no TCP address")
        return f"postgresql://{SUPERUSER}:{self.password}@{target}:{self.port}/{dbname}"

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> PgServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _as_server_user(self, *, server: bool = False) -> list[str]:
        """setpriv: switch to the server's account (when root), and for the server itself
        ask for SIGINT (fast shutdown) when we die, so a killed test run leaves no server
        behind. setpriv sets the death signal after the uid change (which would clear it)
        and execs in place. The signal follows the *thread* that started the server: start
        it from a thread that lives as long as the server should (the main thread)."""
        prefix = ["setpriv"]
        if self._user is not None:
            prefix += [f"--reuid={self._user.pw_uid}", f"--regid={self._user.pw_gid}", "--clear-groups"]
        if server:
            prefix += ["--pdeathsig", "INT"]
        if len(prefix) == 1:
            return []
        if shutil.which("setpriv") is None:
            if self._user is not None:
                raise PgServerError("setpriv (util-linux) is needed to run PostgreSQL as another user")
            return []
        return [*prefix, "--"]

    def _run(self, argv: list[str], *, timeout: float = 120) -> str:
        proc = subprocess.run(
            [*self.wrap, *self._as_server_user(), *argv], capture_output=True, text=True, timeout=timeout,
            env=_clean_env(),
        )
        if proc.returncode != 0:
            raise PgServerError(f"{Path(argv[0]).name} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def init(self) -> None:
        """initdb into a new temporary directory owned by the server's account."""
        sweep_stale(self.base_dir)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=self.base_dir))
        self.socket_dir.mkdir()
        if self._user is not None:
            for path in (self.dir, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        pwfile.chmod(0o600)
        try:
            self._run([
                str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                *([] if self.durable else ["--no-sync"]),
            ])
        finally:
            pwfile.unlink()
        # initdb's host lines cover loopback only; agents on other hosts connect over TCP with the password
        with open(self.data_dir / "pg_hba.conf", "a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")

    def start(self, timeout: float = 60) -> None:
        """Start the server (initdb first if needed) and return once it accepts connections."""
        if self.dir is None:
            self.init()
        conf = {
            "listen_addresses": self.listen or "",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "lc_messages": "C",  # the ready line is matched in English
            "logging_collector": "off",  # the log goes to our pipe
            "max_connections": "200",  # the benchmark runs 64 agents, each with a connection or two
            "shared_buffers": "32MB",
        }
        if not self.durable:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in conf.items():
            argv += ["-c", f"{key}={value}"]
        self.log_path = self.dir / "server.log"
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.wrap, *self._as_server_user(server=True), *argv],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=_clean_env(), start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not the server's
        )
        self._drain = threading.Thread(target=self._drain_log, name=f"pg-log-{self.proc.pid}", daemon=True)
        self._drain.start()
        if not self._ready.wait(timeout):
            raise PgServerError(f"PostgreSQL not ready after {timeout:g}s:\n{self.log_tail()}")
        if not self._saw_ready:  # the log ended first: the server is exiting
            try:
                code = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                code = None
            raise PgServerError(f"PostgreSQL exited ({code}) while starting:\n{self.log_tail()}")
        self.ready_after = time.monotonic() - started

    def _drain_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self.log_path is not None
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self._log_tail.append(line)
                if READY_LINE in line:
                    self._saw_ready = True
                    self._ready.set()
        self._ready.set()  # EOF: the server is gone; start() reports it

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(list(self._log_tail)[-n:])

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit), by the postmaster's pid;
        SIGQUIT, then SIGKILL, if it does not go in time. Removes the directory."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
                    try:
                        os.kill(proc.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            if proc is not None:
                if proc.stdout is not None:
                    proc.stdout.close()
                if self._drain is not None:
                    self._drain.join(5)
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    # -- administration (psql: no driver needed) ----------------------------------

    def psql(self, sql: str, *, dbname: str = "postgres", timeout: float = 60) -> str:
        """Run ``sql`` through psql on the Unix socket; returns unaligned, tuples-only output."""
        proc = subprocess.run(
            [str(self.bindir / "psql"), self.dsn(dbname), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-c", sql],
            capture_output=True, text=True, timeout=timeout, env=_clean_env(),
        )
        if proc.returncode != 0:
            raise PgServerError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.strip()

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """``CREATE DATABASE name`` (copying ``template`` if given; nobody may be connected to it)."""
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if template:
            # FILE_COPY copies the template's files at once instead of WAL-logging every block:
            # several times faster for a small database, and durability is off in the tests anyway
            sql += f" TEMPLATE {quote_ident(template)} STRATEGY = {'WAL_LOG' if self.durable else 'FILE_COPY'}"
        self.psql(sql)

    def drop_database(self, name: str) -> None:
        """Drop it, disconnecting whoever is still connected (a test's leftover connection)."""
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


_CONNINFO_PLAIN = re.compile(r"[A-Za-z0-9_./:@-]+")


def _conninfo_value(value: str) -> str:
    if _CONNINFO_PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _clean_env() -> dict[str, str]:
    """The environment without libpq's PG* variables (a developer's PGHOST must not redirect the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env
