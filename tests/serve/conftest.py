"""Fixtures for `tower serve`: a real server process on a real store, and headless Chromium.

The server is the real command (`python -m tui.cli --db DB serve --port 0`),
its printed URL the readiness signal; it and its control rooms end by pid.
The browser is Debian's Chromium driven over the DevTools protocol
(tests/serve/cdp.py). Without Chromium the browser tests skip, except where
``CI`` is set (.ci/run installs it): there its absence fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from store import Store
from tests.conftest import ROOT, tower_env
from tests.serve import cdp

PERSON = "serve-person"  # the login of whoever starts `tower serve` in these tests
TITLE = "Rotate signing key"


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    log: list[str] = field(default_factory=list)  # stderr lines: the access log and warnings
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _drain: asyncio.Task | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    @property
    def cookie_name(self) -> str:
        return f"tower_serve_{self.port}"

    async def wait_log(self, pattern: str, timeout: float = 20) -> str:
        """Wait for a stderr line matching ``pattern`` (checked as each line arrives)."""
        regex = re.compile(pattern)

        async def find() -> str:
            while True:
                for line in self.log:
                    if regex.search(line):
                        return line
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no log line matching {pattern!r}; log:\n" + "\n".join(self.log)) from None

    def children(self) -> list[int]:
        """The server's child processes: one control room per open session."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    async def stop(self) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._drain, 5)
        return self.proc.returncode


def serve_env(extra: dict | None = None) -> dict:
    env = tower_env(extra)
    env.pop("COLUMNS", None)  # the served app takes its size from the browser
    env.pop("LINES", None)
    env["LOGNAME"] = env["USER"] = PERSON
    return env


async def start_server(db: Path, *args: str, env: dict | None = None, timeout: float = 30) -> Server:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "--db", str(db), "serve", "--port", "0", "--no-watch", *args,
        cwd=ROOT, env=env or serve_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if line.startswith("{"):  # --json: one object, once listening
        body = json.loads(line)
        assert body["ok"] and body["data"]["person"] == f"person:{PERSON}", body
        line = body["data"]["url"]
    m = re.search(r"https?://\S+", line)
    if not m:
        err = (await proc.stderr.read()).decode()
        await proc.wait()
        raise AssertionError(f"tower serve printed no URL (exit {proc.returncode}): {line!r} {err}")
    server = Server(proc, m.group(0))

    async def drain() -> None:
        async for raw in proc.stderr:
            server.log.append(raw.decode("utf-8", "replace").rstrip("\n"))
            server._changed.set()
        server._changed.set()

    server._drain = asyncio.create_task(drain())
    return server


@pytest.fixture
async def serve_db(tmp_path: Path) -> Path:
    """A store with one task and nothing else."""
    db = tmp_path / "store" / "tower.db"
    async with Store(db, create=True, actor="person:test") as store:
        await store.add_task(TITLE)
    return db


@pytest.fixture
async def server(serve_db: Path):
    srv = await start_server(serve_db)
    try:
        yield srv
    finally:
        await srv.stop()


def _chromium() -> None:
    if not cdp.available():
        why = f"{cdp.CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {why}")
        pytest.skip(why)


@pytest.fixture
async def browser(tmp_path: Path):
    _chromium()
    b = cdp.Browser(tmp_path / "chromium-profile")
    try:
        await b.start()
        yield b
    finally:
        await b.close()
