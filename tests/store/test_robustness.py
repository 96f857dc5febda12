"""Cancellation, empty files, lost keys, racing inits: the store never loses or hides data."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from core.errors import StoreUnusable
from store import Store
from tests.conftest import tower_env


@pytest.mark.sqlite_only
async def test_cancelling_a_verb_anywhere_never_leaves_the_write_lock_held(db_path):
    async with Store(db_path, create=True) as store, Store(db_path, lock_timeout=2) as other:
        for ticks in range(40):
            task = asyncio.create_task(store.add_task(f"t{ticks}"))
            for _ in range(ticks):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await store.backend.data_version()  # runs after anything the cancelled verb queued
            assert not store.backend.conn.in_transaction, f"left in a transaction after {ticks} ticks"
            await other.add_task("from another connection")  # would time out if the lock were held
        titles = [t.title for t in await other.list_tasks()]
        assert titles.count("from another connection") == 40
        # whatever was cancelled either committed whole, with its audit event, or not at all
        assert (await other.verify_audit()).ok
        assert (await other.audit_head())[0] == len(titles)


@pytest.mark.sqlite_only
async def test_an_empty_database_file_is_refused_not_rebuilt(db_path):
    async with Store(db_path, create=True) as s:
        await s.add_task("precious")
    db_path.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreUnusable) as exc:
        async with Store(db_path):
            pass
    assert exc.value.code == "store_empty" and "tower init" in exc.value.message
    assert db_path.read_bytes() == b""  # nothing was written over it


async def test_a_lost_key_is_never_silently_replaced(db_path):
    async with Store(db_path, create=True) as s:
        await s.add_task("signed with the first key")
    key = db_path.parent / "audit.key"
    original = key.read_bytes()
    key.unlink()
    for create in (False, True):  # neither a command nor `tower init` makes a new key
        with pytest.raises(StoreUnusable) as exc:
            async with Store(db_path, create=create):
                pass
        assert exc.value.code == "bad_key"
    assert not key.exists()
    key.write_bytes(original)
    key.chmod(0o600)
    async with Store(db_path) as s:
        assert (await s.verify_audit()).ok


async def test_store_in_an_impossible_place_is_unusable_not_a_crash(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnusable):
        async with Store(blocker / "tower.db", create=True):
            pass


@pytest.mark.slow
def test_parallel_inits_make_one_store_and_one_init_event(repo):
    procs = [subprocess.Popen([sys.executable, "-m", "tui.cli", "init", "--json"], cwd=repo, env=tower_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _, _ in results), results
    out = subprocess.run([sys.executable, "-m", "tui.cli", "audit", "tail", "-n", "100", "--json"], cwd=repo,
                         env=tower_env(), capture_output=True, text=True)
    import json

    events = [e["event"] for e in json.loads(out.stdout)["data"]]
    assert events.count("store.initialised") == 1
    assert events.count("worktree.added") == 1
