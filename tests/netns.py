"""Several hosts on one machine: network namespaces on a private switch, for multi-host tests.

    with Network(3) as net:
        h0, h1, h2 = net.hosts
        server = PgServer(listen=h0.addr, wrap=h0.prefix)   # Postgres on "host 0"
        h1.run(["psql", f"host={h0.addr} ..."])             # a client on "host 1", over TCP
        net.partition(h1)                                   # pull h1's cable
        net.heal(h1)

Layout: every host is a namespace with one interface, ``eth0``, holding one
address of a private /24; its peer is a port of a bridge that lives in a
namespace of its own (the switch). Nothing is created in the machine's own
namespace: no interface, no address, no route, so no packet of a test can
leave these namespaces and no other process on the machine sees them. Every
name carries the creating pid and a random tag, so concurrent runs never
collide, and namespaces left by a run that died (its pid gone) are swept by
the next one.

A partition takes the host's switch port down: the host's ``eth0`` loses its
carrier and packets are dropped silently, as with a pulled cable or a dead
link between two sites (the host's own interface and routes stay, so its
programs see timeouts, not "network unreachable").

Needs root (CI runs as root) and iproute2; ``available()`` says whether it can
run here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

PREFIX = "tw"
DEFAULT_SUBNET = "10.213.7.0/24"
_NAME = re.compile(rf"^{PREFIX}(\d+)-([0-9a-f]{{4}})-(\w+)$")
COMMAND_TIMEOUT = 20.0


class NetnsError(RuntimeError):
    pass


def available() -> str | None:
    """None if namespaces can be built here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def list_namespaces() -> list[str]:
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pids_in(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_delete(ns: str) -> None:
    """End every process inside our own namespace (by pid), then delete it.

    A namespace is only freed once its last process is gone, and a process
    left inside would keep the switch's veth pairs alive with it.
    """
    for pid in _pids_in(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _ip("netns", "delete", ns, check=False)


def sweep_stale() -> list[str]:
    """Delete namespaces of ours whose creating process is gone (a run killed before cleanup)."""
    swept = []
    for ns in list_namespaces():
        m = _NAME.match(ns)
        if m and not _alive(int(m.group(1))):
            _kill_and_delete(ns)
            swept.append(ns)
    return swept


@dataclass
class Host:
    name: str  # h0, h1 ...
    ns: str  # the namespace's full name
    addr: str  # its address on the switch
    port: str  # its port on the switch (in the switch's namespace)
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)

    @property
    def prefix(self) -> list[str]:
        """Prepend to a command to run it on this host (``ip netns exec`` execs in place,
        so a Popen's pid is the program's own)."""
        return ["ip", "netns", "exec", self.ns]

    def run(self, argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run([*self.prefix, *argv], timeout=timeout, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a program on this host; it is ended (by its pid) when the network goes down."""
        proc = subprocess.Popen([*self.prefix, *argv], **kwargs)
        self._procs.append(proc)
        return proc


class Network:
    """``hosts`` namespaces on one switch (see the module's docstring)."""

    def __init__(self, hosts: int = 3, *, subnet: str = DEFAULT_SUBNET) -> None:
        if hosts < 1:
            raise ValueError("a network needs at least one host")
        net = ipaddress.ip_network(subnet)
        if not net.is_private:
            raise ValueError(f"{subnet} is not a private range")
        if hosts > net.num_addresses - 2:
            raise ValueError(f"{subnet} has no room for {hosts} hosts")
        self.tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        self.subnet = net
        self.switch = f"{self.tag}-sw"
        addrs = list(net.hosts())
        self.hosts = [
            Host(name=f"h{i}", ns=f"{self.tag}-h{i}", addr=str(addrs[i]), port=f"p{i}") for i in range(hosts)
        ]
        self._created: list[str] = []

    def __enter__(self) -> Network:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.down()

    def up(self) -> None:
        reason = available()
        if reason:
            raise NetnsError(reason)
        sweep_stale()
        sw = self.switch
        self._add_ns(sw)
        _ip("-n", sw, "link", "set", "lo", "up")
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for host in self.hosts:
            self._add_ns(host.ns)
            # created straight inside the two namespaces: the machine's own namespace never holds it
            _ip("-n", sw, "link", "add", host.port, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
            _ip("-n", sw, "link", "set", host.port, "master", "br0", "up")
            _ip("-n", host.ns, "addr", "add", f"{host.addr}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", host.ns, "link", "set", "eth0", "up")
            _ip("-n", host.ns, "link", "set", "lo", "up")

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)

    def partition(self, host: Host) -> None:
        """Cut ``host`` off: its switch port goes down, its packets are dropped silently."""
        _ip("-n", self.switch, "link", "set", host.port, "down")

    def heal(self, host: Host) -> None:
        _ip("-n", self.switch, "link", "set", host.port, "up")

    def link_is_up(self, host: Host) -> bool:
        out = _ip("-n", host.ns, "-o", "link", "show", "eth0").stdout
        return "LOWER_UP" in out and "NO-CARRIER" not in out

    def down(self) -> None:
        """End the hosts' programs (by pid), then delete every namespace; safe to call twice."""
        for host in self.hosts:
            for proc in host._procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in host._procs:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            host._procs.clear()
        created, self._created = self._created, []
        for ns in reversed(created):  # hosts first, the switch last
            _kill_and_delete(ns)
        left = set(created) & set(list_namespaces())
        if left:
            raise NetnsError(f"namespaces still there after cleanup: {', '.join(sorted(left))}")
