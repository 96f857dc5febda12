"""Opening the store: pragmas, migrations, and refusing unusable files without touching them."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from core.errors import NotFound, StoreUnusable
from store import Store
from store.schema import SCHEMA_VERSION


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.sqlite_only
async def test_created_store_uses_wal_full_sync_and_schema_version(db_path):
    async with Store(db_path, create=True) as s:
        conn = s.backend.conn
        assert (await (await conn.execute("PRAGMA journal_mode")).fetchone())[0] == "wal"
        assert (await (await conn.execute("PRAGMA synchronous")).fetchone())[0] == 2  # FULL
        assert (await (await conn.execute("PRAGMA foreign_keys")).fetchone())[0] == 1
        assert (await (await conn.execute("PRAGMA user_version")).fetchone())[0] == SCHEMA_VERSION
    key = db_path.parent / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600


async def test_missing_store_says_run_init(tmp_path):
    with pytest.raises(NotFound) as exc:
        async with Store(tmp_path / "nope" / "tower.db"):
            pass
    assert exc.value.code == "not_initialised" and "tower init" in exc.value.message
    assert not (tmp_path / "nope").exists()


@pytest.mark.sqlite_only
async def test_corrupt_database_is_unusable_and_untouched(db_path):
    async with Store(db_path, create=True) as s:
        await s.add_task("keep me")
    data = bytearray(db_path.read_bytes())
    data[:100] = os.urandom(100)  # destroy the header
    db_path.write_bytes(bytes(data))
    before = digest(db_path)
    with pytest.raises(StoreUnusable):
        async with Store(db_path) as s:
            await s.list_tasks()
    assert digest(db_path) == before


async def test_unreadable_or_bad_key_is_unusable(db_path):
    async with Store(db_path, create=True) as s:
        await s.add_task("t")
    key = db_path.parent / "audit.key"
    key.write_text("not hex\n")
    with pytest.raises(StoreUnusable):
        async with Store(db_path):
            pass
    key.unlink()
    with pytest.raises(StoreUnusable):
        async with Store(db_path):
            pass


@pytest.mark.sqlite_only
async def test_newer_schema_is_refused(db_path):
    async with Store(db_path, create=True):
        pass
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreUnusable) as exc:
        async with Store(db_path):
            pass
    assert "newer" in exc.value.message


async def test_reopening_keeps_data_and_does_not_remigrate(db_path):
    async with Store(db_path, create=True) as s:
        await s.add_task("t")
    async with Store(db_path) as s:
        assert [t.title for t in await s.list_tasks()] == ["t"]
        assert (await s.audit_head())[0] == 1


async def test_wait_for_change_sees_another_connections_commit(db_path):
    async with Store(db_path, create=True) as watcher, Store(db_path) as writer:
        version = await watcher.change_signal()
        with pytest.raises(TimeoutError):
            await watcher.wait_for_change(version, timeout=0.1)
        await writer.add_task("t")
        assert await watcher.wait_for_change(version, timeout=5) != version


async def test_wait_for_change_sees_this_connections_own_write(db_path):
    """data_version ignores a connection's own commits; the change signal must not."""
    async with Store(db_path, create=True) as store:
        signal = await store.change_signal()
        with pytest.raises(TimeoutError):
            await store.wait_for_change(signal, timeout=0.1)
        await store.add_task("mine")
        assert await store.wait_for_change(signal, timeout=1) != signal
        assert await store.wait_for_change(None, timeout=0) is not None  # None: answers at once
