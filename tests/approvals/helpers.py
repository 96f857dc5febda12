"""Real processes for the approval and hook tests: spawn, read a line, finish, wait on the store.

Nothing here sleeps to wait for a result: lines are awaited with select() on
the child's pipe, exits with communicate(timeout), and store changes with the
store's own change signal (PRAGMA data_version).
"""

from __future__ import annotations

import asyncio
import json
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from store import Store
from tests.conftest import tower_env

TOWER = [sys.executable, "-m", "tui.cli"]


class Procs:
    """Children started by a test; every one is killed by its pid when the test ends."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def spawn(self, *args: str, cwd: Path, env: dict | None = None, stdin: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen(
            [*TOWER, *args],
            cwd=cwd,
            env=tower_env(env),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            _detach_stdin(proc)
            try:
                proc.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass


def read_line(stream, timeout: float = 30) -> str:
    """The next line the child writes on ``stream``; fails after ``timeout`` seconds."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"no line within {timeout}s")
        return stream.readline()
    finally:
        sel.close()


def _detach_stdin(proc: subprocess.Popen) -> None:
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # communicate() would flush a closed pipe


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    _detach_stdin(proc)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


async def _until(db: Path, probe: Callable, timeout: float):
    deadline = time.monotonic() + timeout
    async with Store(db) as s:
        while True:
            version = await s.change_signal()
            result = await probe(s)
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"store did not reach the expected state within {timeout}s")
            try:
                await s.wait_for_change(version, timeout=left)
            except TimeoutError:
                pass


def wait_for_store(db: Path, probe: Callable, timeout: float = 30):
    """Block until ``await probe(store)`` is truthy (re-checked on every commit); return it."""
    return asyncio.run(_until(db, probe, timeout))


def pending_approval(db: Path, timeout: float = 30):
    """Wait until some approval is pending; return it."""

    async def probe(s):
        items = await s.list_approvals("pending")
        return items[0] if items else None

    return wait_for_store(db, probe, timeout)


def audit_events(db: Path) -> list[dict]:
    async def read():
        async with Store(db) as s:
            return [e.to_json() for e in await s.audit_tail(100000)]

    return asyncio.run(read())


def one_json(stdout: str) -> dict:
    """stdout must be exactly one JSON object (the --json contract)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])
