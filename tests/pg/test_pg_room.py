"""The control room on a Postgres store (pooled connections, LISTEN/NOTIFY): other processes'
writes appear without a key press, and a person's approval releases an agent waiting in
another process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from store import Store
from core.locate import write_pointer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))

from tui_helpers import ACTOR, SIZE, make_app, ready, run_cli, wait_for  # noqa: E402

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_db(tmp_path, pg_database, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return write_pointer(tmp_path / "store", pg_database.url)


async def test_the_room_sees_other_processes_and_its_approval_releases_a_waiting_agent(pg_db):
    async with Store(pg_db, create=True):
        pass
    app = make_app(pg_db)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await run_cli(pg_db, "task", "add", "Write the parser")
        await wait_for(pilot, lambda: "T1" in app.queue_pane.shown_keys, what="T1 in the queue")
        lease = (await run_cli(pg_db, "task", "claim", "--ttl", "600"))["data"]["lease_id"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
        env.update(PYTHONPATH=str(ROOT), TOWER_AGENT="agent-x")
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui.cli", "--db", str(pg_db), "--json", "approval", "request", "--kind",
            "command", "--summary", "rm -rf dist", "--lease", lease, "--wait", "--timeout", "60",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=str(pg_db.parent))
        try:
            await wait_for(pilot, lambda: "A1" in app.approvals_pane.shown_keys, what="A1 in the approvals")
            await pilot.press("3", "a")
            out, err = await asyncio.wait_for(agent.communicate(), 30)
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
        assert agent.returncode == 0, err.decode()
        answer = json.loads(out)["data"]
        assert answer["status"] == "approved" and answer["decided_by"] == ACTOR
        await wait_for(pilot, lambda: app.approvals_pane.records["A1"].status == "approved")
