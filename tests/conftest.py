"""Shared fixtures: real store files, real git repositories, the real `tower` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from store import Store

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.pgfixtures"]  # pg_server, pg_database: PostgreSQL started by the tests

# git in tests must not depend on the machine's global config
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Tower Tests",
    "GIT_AUTHOR_EMAIL": "tests@tower.invalid",
    "GIT_COMMITTER_NAME": "Tower Tests",
    "GIT_COMMITTER_EMAIL": "tests@tower.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class Clock:
    """A clock the test moves by hand: leases expire when the test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which store the test runs on: "sqlite" unless its directory runs both
    (tests/pgfixtures.py, ``both_backends``)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def db_path(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path:
    """The store's path: a SQLite file, or (``backend`` postgres) a ``store.toml`` naming
    a fresh database, with the audit key beside it either way."""
    if backend == "postgres":
        from core.locate import write_pointer

        return write_pointer(tmp_path / "store", request.getfixturevalue("pg_database").url)
    return tmp_path / "store" / "tower.db"


@pytest.fixture
async def store(db_path: Path, clock: Clock, backend: str):
    # "sqlite-inline": the SQLite backend on a plain sqlite3 connection in this thread, as the
    # agents' hook opens it (store/backend/sqlite.py); its verbs complete inside an event loop too
    async with Store(db_path, create=True, clock=clock, actor="test", inline=backend == "sqlite-inline") as s:
        assert s.inline == (backend == "sqlite-inline")
        yield s


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def data(self):
        body = self.json
        assert body["ok"], body
        return body["data"]


def tower_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    env.update(GIT_ENV)
    env["PYTHONPATH"] = str(ROOT)
    if extra:
        env.update(extra)
    return env


def run_tower(*args: str, cwd: Path | None = None, env: dict | None = None, input: str | None = None,
              timeout: float = 60) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=cwd,
        env=tower_env(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def tower(db_path: Path):
    """Run `tower --db <db_path> ...` in a subprocess."""

    def call(*args: str, **kwargs) -> Result:
        return run_tower("--db", str(db_path), *args, **kwargs)

    return call


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=tower_env(), check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one commit and a small tree."""
    root = tmp_path / "repo"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "README.md").write_text("# demo\n")
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "init", cwd=root)
    return root.resolve()
