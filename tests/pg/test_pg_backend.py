"""What only the PostgreSQL backend has to show: how it is selected and recorded, the
write gate and its timeout, the change signal (LISTEN/NOTIFY), the audit head row, the
key fingerprint, connection failures, and verbs rerun after a serialization failure.
The verbs themselves run on both backends in tests/store and tests/cli."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import psycopg
import pytest

from core import audit as chain
from core.errors import BadInput, NotFound, StoreUnusable, TimedOut
from store import Store
from store.db import iso_ts
from core.locate import read_pointer, write_pointer
from tests.conftest import ROOT, git, run_tower
from tests.pgserver import SUPERUSER, free_port

pytestmark = pytest.mark.postgres

GATE = "SELECT pg_advisory_xact_lock(5495117, 1)"


@pytest.fixture
def pg_store_path(tmp_path, pg_database):
    return write_pointer(tmp_path / "store", pg_database.url)


@pytest.fixture
async def pg_store(pg_store_path):
    async with Store(pg_store_path, create=True, actor="test") as s:
        yield s


# -- selecting the backend -------------------------------------------------------------


def test_init_db_url_is_recorded_for_every_worktree_and_command(repo, tmp_path, pg_database):
    first = run_tower("init", "--db", pg_database.url, "--json", cwd=repo)
    assert first.code == 0, first
    assert first.data["created"] is True and first.data["db"].startswith("postgresql://postgres@/")
    pointer = repo / ".git" / "tower" / "store.toml"
    assert read_pointer(pointer) == pg_database.url
    assert not (repo / ".git" / "tower" / "tower.db").exists()
    assert (repo / ".git" / "tower" / "audit.key").exists()
    # another worktree of the repository, no --db, no TOWER_DB: the same database
    git("worktree", "add", "-q", str(tmp_path / "wt-b"), "-b", "b", cwd=repo)
    added = run_tower("task", "add", "from b", "--json", cwd=tmp_path / "wt-b")
    assert added.code == 0, added
    assert psycopg.connect(pg_database.url).execute("SELECT title FROM tasks").fetchall() == [("from b",)]
    claim = run_tower("task", "claim", "--agent", "a", "--json", cwd=repo)
    assert claim.code == 0 and claim.data["token"] == 1
    verified = run_tower("audit", "verify", "--json", cwd=repo)
    assert verified.code == 0, verified
    # running it again changes nothing
    again = run_tower("init", "--db", pg_database.url, "--json", cwd=repo)
    assert again.code == 0 and again.data["created"] is False


def test_a_url_with_a_password_is_not_recorded(repo, pg_server, pg_database):
    url = pg_server.url(pg_database.name)  # TCP with the password
    result = run_tower("init", "--db", url, "--json", cwd=repo)
    assert result.code == 2 and result.json["error"]["code"] == "password_in_url"
    assert pg_server.password not in result.stdout + result.stderr
    assert not (repo / ".git" / "tower" / "store.toml").exists()
    # in TOWER_DB (not recorded anywhere) it works
    ok = run_tower("init", "--json", cwd=repo, env={"TOWER_DB": url})
    assert ok.code == 0, ok
    assert pg_server.password not in ok.stdout
    listed = run_tower("task", "add", "x", "--json", cwd=repo, env={"TOWER_DB": url})
    assert listed.code == 0, listed
    assert not (repo / ".git" / "tower" / "store.toml").exists()


def test_a_repository_with_a_sqlite_store_is_not_repointed(repo, pg_database):
    assert run_tower("init", cwd=repo).code == 0
    result = run_tower("init", "--db", pg_database.url, "--json", cwd=repo)
    assert result.code == 4 and result.json["error"]["code"] == "store_exists"
    assert not (repo / ".git" / "tower" / "store.toml").exists()


def test_an_unreachable_server_is_exit_6_in_one_line_without_the_password(repo):
    url = f"postgresql://tower:s3cret-pw@127.0.0.1:{free_port()}/tower?connect_timeout=3"
    result = run_tower("task", "list", "--json", cwd=repo, env={"TOWER_DB": url})
    assert result.code == 6, result
    assert result.json["error"]["code"] == "store_unusable"
    assert "s3cret-pw" not in result.stdout + result.stderr
    human = run_tower("task", "list", cwd=repo, env={"TOWER_DB": url})
    assert human.code == 6 and len(human.stderr.strip().splitlines()) == 1 and "Traceback" not in human.stderr
    assert "s3cret-pw" not in human.stderr and "tower:***" not in human.stderr


def test_an_empty_database_needs_tower_init(repo, pg_empty_database):
    result = run_tower("task", "list", "--json", cwd=repo, env={"TOWER_DB": pg_empty_database.url})
    assert result.code == 3 and result.json["error"]["code"] == "not_initialised"
    assert pg_empty_database.psql("SELECT to_regclass('tasks') IS NULL") == "t"  # nothing was created


def test_the_sqlite_path_imports_no_driver(tmp_path):
    db = tmp_path / "tower.db"
    assert run_tower("--db", str(db), "init").code == 0
    code = ("import sys\n"
            f"sys.argv = ['tower', '--db', {str(db)!r}, 'task', 'add', 't']\n"
            "from tui.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool', 'tomllib')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


# -- the write gate ----------------------------------------------------------------------


def test_a_write_waits_for_the_gate_then_is_exit_5_and_reads_still_answer(pg_store_path, pg_database):
    assert run_tower("--db", str(pg_store_path), "init").code == 0
    assert run_tower("--db", str(pg_store_path), "task", "add", "t").code == 0
    with psycopg.connect(pg_database.url) as holder:  # not autocommit: the lock lasts until rollback
        holder.execute(GATE)
        started = time.monotonic()
        result = run_tower("--db", str(pg_store_path), "task", "add", "u", "--json",
                           env={"TOWER_LOCK_TIMEOUT": "0.5"})
        waited = time.monotonic() - started
        assert result.code == 5 and result.json["error"]["code"] == "locked", result
        assert waited < 10
        listed = run_tower("--db", str(pg_store_path), "task", "list", "--json")
        assert listed.code == 0 and [t["title"] for t in listed.data] == ["t"]
        holder.rollback()
    assert run_tower("--db", str(pg_store_path), "task", "add", "u").code == 0


async def test_the_gate_serialises_writers_and_wait_false_does_not_wait(pg_store, pg_database):
    with psycopg.connect(pg_database.url) as holder:
        holder.execute(GATE)
        with pytest.raises(TimedOut):
            await pg_store.reap(wait=False)
        holder.rollback()
    assert await pg_store.reap(wait=False) == []


# -- the change signal ------------------------------------------------------------------


async def test_the_change_signal_is_a_notification_not_a_poll(pg_store, pg_database):
    signal = await pg_store.change_signal()
    with pytest.raises(TimeoutError):
        await pg_store.wait_for_change(signal, timeout=0.3)
    # a rolled-back write notifies nobody
    with psycopg.connect(pg_database.url) as other:
        other.execute("INSERT INTO tasks (title, created_at, updated_at) VALUES ('x', 0, 0)")
        other.rollback()
    with pytest.raises(TimeoutError):
        await pg_store.wait_for_change(signal, timeout=0.3)
    waiter = asyncio.create_task(pg_store.wait_for_change(signal, timeout=30, interval=60))
    result = await asyncio.to_thread(run_tower, "--db", str(pg_store.path), "task", "add", "t")
    assert result.code == 0
    # woken by the other process's commit, although the poll interval is a minute
    assert await waiter != signal
    # its own commits move the signal too (the control room writes and watches on one store)
    mine = await pg_store.change_signal()
    await pg_store.add_task("mine")
    assert await pg_store.wait_for_change(mine, timeout=30) != mine


async def test_approval_wait_is_released_by_a_decision_in_another_process(pg_store):
    approval = await pg_store.request_approval(kind="command", summary="rm -rf build", requested_by="agent-a")
    waiting = asyncio.create_task(pg_store.wait_for_decision(approval.id, timeout=60, interval=60))
    result = await asyncio.to_thread(run_tower, "--db", str(pg_store.path), "approval", "approve",
                                     f"A{approval.id}", "--json")
    assert result.code == 0, result
    decided = await waiting
    assert decided.status == "approved" and decided.decided_by.startswith("person")


# -- the audit chain on a shared database ---------------------------------------------------


def _signed(key: bytes, seq: int, prev: str, event: str) -> tuple:
    entry = {"seq": seq, "ts": iso_ts(time.time()), "actor": "intruder", "event": event, "task_id": None,
             "lease_id": None, "approval_id": None, "worktree": None, "path": None, "details": {},
             "prev_hash": prev}
    entry_hash = chain.compute_hash(entry)
    return (seq, entry["ts"], "intruder", event, "{}", prev, entry_hash, chain.sign(key, entry_hash))


_INSERT = ("INSERT INTO audit (seq, ts, actor, event, details, prev_hash, entry_hash, signature)"
           " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")


async def test_an_append_that_does_not_extend_the_head_is_refused(pg_store, pg_database):
    await pg_store.add_task("t")
    seq, head = await pg_store.audit_head()
    key = chain.load_key(pg_store.key_path)
    with psycopg.connect(pg_database.url, autocommit=True) as raw:
        with pytest.raises(psycopg.errors.SerializationFailure):
            raw.execute(_INSERT, _signed(key, seq, "0" * 64, "fork"))  # a second event at the same seq
        with pytest.raises(psycopg.errors.SerializationFailure):
            raw.execute(_INSERT, _signed(key, seq + 1, "0" * 64, "fork"))  # linked to another event
    assert (await pg_store.verify_audit()).ok


async def test_a_verb_whose_append_lost_the_race_runs_again(pg_store, pg_database):
    """A writer that skips the gate moves the head while a verb is at its append: the trigger
    refuses the verb's event (serialization failure), and the store runs the verb again."""
    await pg_store.add_task("first")
    seq, head = await pg_store.audit_head()
    key = chain.load_key(pg_store.key_path)
    with psycopg.connect(pg_database.url) as intruder:
        intruder.execute(_INSERT, _signed(key, seq + 1, head, "outside.append"))  # holds the head row
        verb = asyncio.create_task(pg_store.add_task("second"))
        with psycopg.connect(pg_database.url, autocommit=True) as watch:
            while not watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'").fetchone()[0]:
                await asyncio.sleep(0.01)  # readiness: the verb's append waits for the head row
        intruder.commit()
    task = await verb
    assert task.title == "second"
    events = [e.event for e in await pg_store.audit_tail(3)]
    assert events[-2:] == ["outside.append", "task.added"]
    assert [t.title for t in await pg_store.list_tasks()] == ["first", "second"]  # added once
    assert (await pg_store.verify_audit()).ok


async def test_verify_names_an_edited_row_and_a_cut_tail(pg_store, pg_database):
    for title in "abcd":
        await pg_store.add_task(title)
    with psycopg.connect(pg_database.url, autocommit=True) as raw:
        raw.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    result = await pg_store.verify_audit()
    assert not result.ok and result.finding.seq == 3
    with psycopg.connect(pg_database.url, autocommit=True) as raw:
        raw.execute("UPDATE audit SET actor = 'test' WHERE seq = 3")
        assert (await pg_store.verify_audit()).ok
        raw.execute("DELETE FROM audit WHERE seq >= 4")  # the head row still says 5
    cut = await pg_store.verify_audit()
    assert not cut.ok and "deleted" in cut.finding.message


# -- the audit key ----------------------------------------------------------------------------


async def test_another_key_is_refused_before_it_signs_anything(pg_store, pg_store_path, tmp_path):
    await pg_store.add_task("t")
    other_key = tmp_path / "other.key"
    chain.create_key(other_key)
    with pytest.raises(StoreUnusable) as refused:
        async with Store(pg_store_path, key_path=other_key):
            pass
    assert refused.value.code == "bad_key"
    # a second host running `tower init` without the key does not make a new one
    second = tmp_path / "host-b" / "audit.key"
    with pytest.raises(StoreUnusable) as missing:
        async with Store(pg_store_path, key_path=second, create=True):
            pass
    assert missing.value.code == "bad_key" and not second.exists()
    # with a copy of the key it joins
    second.parent.mkdir()
    second.write_bytes(pg_store.key_path.read_bytes())
    second.chmod(0o600)
    async with Store(pg_store_path, key_path=second) as host_b:
        await host_b.add_task("from b")
    assert (await pg_store.verify_audit()).ok


# -- input the database cannot hold ---------------------------------------------------------


async def test_a_nul_character_is_bad_input_and_changes_nothing(pg_store):
    before = await pg_store.audit_head()
    with pytest.raises(BadInput) as refused:
        await pg_store.add_task("a\x00b")
    assert refused.value.code == "bad_text"
    assert await pg_store.audit_head() == before and await pg_store.list_tasks() == []


async def test_a_url_store_outside_any_repository_has_no_key(tmp_path, pg_database, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound):
        async with Store(pg_database.url):
            pass


# -- many processes at once ----------------------------------------------------------------------


def test_agents_in_parallel_processes_keep_every_rule(pg_store_path, pg_database):
    """Four agent processes claim, claim files and finish at once: tokens strictly increase,
    no path is held twice, every task is done once, and the chain verifies."""
    assert run_tower("--db", str(pg_store_path), "init").code == 0
    for i in range(12):
        assert run_tower("--db", str(pg_store_path), "task", "add", f"t{i}").code == 0
    worker = ROOT / "tests" / "multiproc" / "agent_worker.py"
    procs = [subprocess.Popen([sys.executable, str(worker), str(pg_store_path), f"agent-{n}",
                               "shared/a.py,shared/b.py", "3"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
             for n in range(4)]
    try:
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), outs
    with psycopg.connect(pg_database.url) as raw:
        tokens = [r[0] for r in raw.execute("SELECT token FROM leases ORDER BY id")]
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
        assert raw.execute("SELECT count(*) FROM tasks WHERE status = 'done'").fetchone()[0] == 12
        # a path is held by one lease at a time: no two claims of a path overlap in time
        assert raw.execute(
            "SELECT count(*) FROM claims a JOIN claims b ON a.path = b.path AND a.id < b.id"
            " AND b.claimed_at < coalesce(a.released_at, 'infinity')").fetchone()[0] == 0
        assert raw.execute("SELECT count(*) FROM claims WHERE path LIKE 'shared/%'").fetchone()[0] >= 2
    verified = run_tower("--db", str(pg_store_path), "audit", "verify", "--json")
    assert verified.code == 0, verified
    assert json.loads(verified.stdout)["data"]["ok"] is True


async def test_a_pooled_store_reads_while_its_own_write_waits_for_the_gate(pg_store_path, pg_database):
    """The control room (pool=True) keeps answering while one of its writes queues behind
    another host's transaction; a one-shot command's single connection would wait."""
    async with Store(pg_store_path, create=True, actor="room", pool=True) as room:
        await room.add_task("t")
        with psycopg.connect(pg_database.url) as other_host:
            other_host.execute(GATE)
            write = asyncio.create_task(room.add_task("queued"))
            with psycopg.connect(pg_database.url, autocommit=True) as watch:
                while not watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted"
                                        " AND locktype = 'advisory'").fetchone()[0]:
                    await asyncio.sleep(0.01)  # readiness: the room's write waits for the gate
            assert [t.title for t in await asyncio.wait_for(room.list_tasks(), 10)] == ["t"]
            assert not write.done()
            other_host.rollback()
        assert (await write).title == "queued"


def test_audit_head_and_verify_head_on_postgres(pg_store_path):
    def tower(*args):
        return run_tower("--db", str(pg_store_path), *args)

    assert tower("init").code == 0
    assert tower("task", "add", "t").code == 0
    seq, digest = tower("audit", "head", "--json").data["head"].split(":")
    assert tower("task", "add", "u").code == 0
    ok = tower("audit", "verify", "--head", f"{seq}:{digest}", "--json")
    assert ok.code == 0, ok
    wrong = tower("audit", "verify", "--head", f"{seq}:{'0' * 64}", "--json")
    assert wrong.code == 6, wrong


def test_the_hook_finds_a_recorded_postgres_store(repo, pg_database):
    """An agent's hook in a repository whose store is Postgres answers from the database
    (the worktree is registered there, no lease holds the path), not 'no Tower store'."""
    assert run_tower("init", "--db", pg_database.url, cwd=repo).code == 0
    payload = {"session_id": "s-pg-1", "cwd": str(repo), "hook_event_name": "PreToolUse", "tool_name": "Write",
               "tool_input": {"file_path": str(repo / "src" / "new.py"), "content": "x"}, "tool_use_id": "t1"}
    result = run_tower("hook", "claude-code", cwd=repo, input=json.dumps(payload))
    assert result.code == 0, result
    decision = json.loads(result.stdout)["hookSpecificOutput"]
    # the worktree `tower init` registered in the database, and no lease there
    assert decision["permissionDecision"] == "deny", decision
    assert "no active lease for this session in worktree main" in decision["permissionDecisionReason"]


async def test_a_connection_lost_between_verbs_is_replaced(pg_store, pg_database):
    await pg_store.add_task("before")
    with psycopg.connect(pg_database.url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'tower test'"
        ).fetchall()
    assert killed and all(r[0] for r in killed)
    task = await pg_store.add_task("after")  # the lost connection is noticed, replaced, the verb rerun
    assert task.title == "after"
    assert [t.title for t in await pg_store.list_tasks()] == ["before", "after"]
    assert (await pg_store.verify_audit()).ok
