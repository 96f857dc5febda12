"""A write is never missed for good: `tower watch` killed right after writes, then restarted.

Real processes, real files, the store as the oracle. The kill lands at the
first moment the store shows any trace of the writes (a snapshot row, a
changed file, a conflict): the watcher is then between its first and its last
commit for the batch, the window in which a snapshot that already moved on
used to hide every write not yet flagged.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tower_env
from tests.watching.helpers import Env
from tests.watching.test_watch_cli import Lines

N_WRITES = 300


def _hangup_as_a_terminal_sends_it() -> None:
    # run under nohup (a CI runner, a soak loop), the test process ignores SIGHUP and its
    # children inherit that: the watcher then rightly keeps running through a hangup
    # (test_nohup_keeps_the_watcher_running_through_a_hangup), so these tests start it the
    # way a terminal would, with SIGHUP at its default
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _start_watch(env: Env) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "watch", "--json", "--rescan-interval", "60"],
        cwd=env.repo, env=tower_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_hangup_as_a_terminal_sends_it,
    )
    out = Lines(proc.stdout)
    out.next(lambda d: d["event"] == "watching", timeout=60)  # ready: snapshots stored, start-up diffs judged
    return proc, out


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()  # this process only, by its pid
        proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


def _read(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _trace(db: Path) -> int:
    """Any sign in the store that the watcher has begun storing the batch."""
    return _read(db, "SELECT (SELECT count(*) FROM snapshots WHERE worktree = 'wt-b' AND path LIKE 'work/%')"
                     " + (SELECT count(*) FROM changed_files WHERE worktree = 'wt-b')"
                     " + (SELECT count(*) FROM conflicts)")[0][0]


def _flagged(db: Path) -> set[str]:
    rows = _read(db, "SELECT path FROM conflicts WHERE status = 'open' AND kind = 'unleased_write'"
                     " AND worktree = 'wt-b'")
    return {r[0] for r in rows}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_writes_just_before_the_watcher_dies_are_flagged_after_a_restart(env: Env, sig: int) -> None:
    proc, out = _start_watch(env)
    try:
        written = {f"work/f{i:03d}.py" for i in range(N_WRITES)}
        for rel in sorted(written):  # wt-b holds no lease: each write is an unleased_write
            env.write("wt-b", rel, f"x = {rel!r}\n")
        deadline = time.monotonic() + 30
        while _trace(env.db) == 0:  # the oracle: the watcher's first commit about the writes
            assert time.monotonic() < deadline, "the watcher stored nothing about 300 writes in 30 s"
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        code = proc.wait(timeout=60)  # a clean stop judges the queued writes first
        if sig == signal.SIGHUP:  # a closed terminal stops it like SIGTERM: cleanly
            assert code == 0, proc.stderr.read()
            assert out.next(lambda d: d["event"] == "stopped")
            assert proc.stderr.read() == ""
    finally:
        _stop(proc)

    proc, out = _start_watch(env)
    try:
        assert _flagged(env.db) == written  # every write flagged once the restarted watcher is ready
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
    opened = _read(env.db, "SELECT count(*) FROM audit WHERE event = 'conflict.opened'")[0][0]
    assert opened == N_WRITES  # once each: the restart did not flag again what was already flagged


def test_nohup_keeps_the_watcher_running_through_a_hangup(env: Env) -> None:
    """SIGHUP ignored by the parent (`nohup tower watch`) stays ignored."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "watch", "--json"], cwd=env.repo, env=tower_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    try:
        out = Lines(proc.stdout)
        out.next(lambda d: d["event"] == "watching")
        proc.send_signal(signal.SIGHUP)
        env.write("wt-b", "after-hup.py", "x = 1\n")  # still watching: flagged
        out.next(lambda d: d["event"] == "conflict.opened" and d["conflict"]["path"] == "after-hup.py")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)


def test_a_closed_output_does_not_stop_or_break_the_watcher(env: Env) -> None:
    """`tower watch | head -1`: once nobody reads, the watcher still stores every conflict and
    still stops cleanly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "watch", "--json"], cwd=env.repo, env=tower_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = proc.stdout.readline()
        assert '"event": "watching"' in first, first
        proc.stdout.close()  # the reader is gone: the next line written gets EPIPE
        for i in range(3):
            env.write("wt-b", f"unread{i}.py", "x = 1\n")
        deadline = time.monotonic() + 30
        while _flagged(env.db) != {f"unread{i}.py" for i in range(3)}:
            assert time.monotonic() < deadline, _flagged(env.db)
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)  # the poll interval of a bounded wait on the store (the oracle)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
