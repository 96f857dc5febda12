"""`tower agent list` and `tower agent show`, run as real processes on a real store."""

from __future__ import annotations

import re
import time

import pytest

from store import Store

CONTRACT = ("id", "kind", "session", "agent", "worktree", "lease_id", "state", "last_tool", "last_event_at",
            "waiting_for")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Past:
    """A clock some seconds behind the real one: events recorded with it look old to `tower`."""

    def __init__(self, behind: float) -> None:
        self.behind = behind

    def __call__(self) -> float:
        return time.time() - self.behind


@pytest.fixture
async def seeded(db_path):
    """One session in each state, written by the store with the real clock (and one from 400 s ago)."""
    async with Store(db_path, create=True, actor="test") as s:
        await s.add_task("stuck task")
        await s.add_task("approval task")
        await s.record_session_event("codex", "perm-1", "PermissionRequest", state="waiting", tool="Bash",
                                     target="rm -rf build", waiting_reason="permission: Bash rm -rf build")
        await s.record_session_event("claude-code", "work-1", "PreToolUse", state="working", tool="Edit",
                                     target="src/app.py", tool_call=True, agent="alice", worktree="wt-a")
        await s.record_session_event("gemini", "gone-1", "SessionEnd", state="ended")
        await s.record_session_event("claude-code", "idle-1", "Stop", state="idle")
        lease = await s.claim_task(agent="carol", worktree="wt-c", ttl=3600)
        a = await s.request_approval(kind="command", summary="deploy", lease_id=lease.lease_id)
        await s.record_session_event("claude-code", "tower-wait", "tower.approval_wait", state="waiting",
                                     waiting_for=a.id, waiting_reason="Tower approval A1: deploy",
                                     worktree="wt-c", agent="carol")
    async with Store(db_path, actor="test", clock=Past(400)) as s:
        await s.claim_task(agent="stuck", worktree="wt-s", ttl=3600)
    return db_path


def test_list_json_shape_and_order(tower, seeded):
    r = tower("agent", "list", "--json")
    assert r.code == 0, r.stderr
    items = r.data
    assert [(i["session"], i["state"]) for i in items] == [
        ("perm-1", "waiting"), ("tower-wait", "waiting"), ("stuck", "stalled"), ("work-1", "working"),
        ("idle-1", "idle")]
    for item in items:
        assert set(CONTRACT) <= set(item)
        assert re.fullmatch(r"S\d+", item["id"])
        assert item["lease_id"] is None or re.fullmatch(r"L\d+", item["lease_id"])
        assert item["waiting_for"] is None or re.fullmatch(r"A\d+", item["waiting_for"])
        assert ISO.match(item["last_event_at"])
    by = {i["session"]: i for i in items}
    assert by["tower-wait"]["waiting_for"] == "A1" and by["tower-wait"]["lease_id"] == "L1"
    assert by["perm-1"]["waiting_for"] is None and by["perm-1"]["kind"] == "codex"
    assert (by["stuck"]["kind"], by["stuck"]["lease_id"], by["stuck"]["last_tool"]) == ("cli", "L2", "tower")
    assert (by["work-1"]["agent"], by["work-1"]["worktree"], by["work-1"]["last_tool"]) == ("alice", "wt-a", "Edit")

    everything = tower("agent", "list", "--all", "--json").data
    ended = [(i["session"], i["state"]) for i in everything][-2:]
    # carol claimed from a shell before its hooks spoke: that stand-in ended when tower-wait took the lease
    assert sorted(ended) == [("carol", "ended"), ("gone-1", "ended")]


def test_listing_writes_stalled_down_once(tower, seeded):
    assert tower("agent", "list").code == 0
    assert tower("agent", "list").code == 0
    events = tower("audit", "tail", "-n", "50", "--json").data
    stalled = [e for e in events if e["event"] == "agent.state" and e["details"]["to"] == "stalled"]
    assert len(stalled) == 1 and stalled[0]["details"]["agent_session"] == "stuck"


def test_list_human_output(tower, seeded):
    r = tower("agent", "list")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("S1 ") and "waiting" in lines[0] and "waits at its own prompt: permission: Bash" \
        in lines[0]
    assert "waits for A1: deploy" in lines[1] and "carol @ wt-c" in lines[1] and "L1" in lines[1]
    assert "stalled" in lines[2] and re.search(r"no event for [67]m", lines[2]) and "last: tower task claim L2" in lines[2]
    assert "alice @ wt-a" in lines[3] and "last Edit: src/app.py" in lines[3]


def test_agent_text_never_reaches_the_terminal_raw(tower, db_path):
    import asyncio

    async def seed():
        async with Store(db_path, create=True) as s:
            await s.record_session_event("claude-code", "x\x1b[2J", "PreToolUse\x07", state="working",
                                         tool="Bash\x1b]0;owned\x07", target="echo hi\nS9 forged line",
                                         agent="evil\u202e", tool_call=True)

    asyncio.run(seed())
    for args in (("agent", "list"), ("agent", "show", "S1")):
        r = tower(*args)
        assert r.code == 0, r.stderr
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", r.stdout), r.stdout
        assert "forged line" in r.stdout and "\nS9" not in r.stdout
    assert len(tower("agent", "list").stdout.splitlines()) == 1
    raw = tower("agent", "list", "--json").data[0]
    assert raw["last_tool"] == "Bash\x1b]0;owned\x07" and raw["agent"] == "evil\u202e"  # --json is exact


def test_show(tower, seeded):
    r = tower("agent", "show", "S7", "--json")  # the stalled command-line agent
    assert r.code == 0, r.stderr
    data = r.data
    assert set(data) == {"session", "tool_calls", "lease", "claims", "approvals", "audit"}
    assert data["session"]["id"] == "S7" and data["session"]["state"] == "stalled"
    assert data["lease"]["id"] == "L2" and data["lease"]["task_id"] == "T2"
    assert [c["target"] for c in data["tool_calls"]] == ["task claim L2"]
    assert [e["event"] for e in data["audit"]][:2] == ["task.added", "task.claimed"]

    wait = tower("agent", "show", "S6", "--json").data
    assert [a["id"] for a in wait["approvals"]] == ["A1"] and wait["session"]["waiting_for"] == "A1"

    human = tower("agent", "show", "S2")
    assert human.code == 0
    assert "S2 claude-code session work-1  (alice @ wt-a)" in human.stdout
    assert "src/app.py" in human.stdout and "recent tool calls (1" in human.stdout


@pytest.mark.parametrize(("arg", "code", "error"), [("S99", 3, "session_not_found"), ("X1", 2, "bad_input"),
                                                    ("S", 2, "bad_input"), ("L1", 2, "bad_input")])
def test_show_exit_codes(tower, seeded, arg, code, error):
    r = tower("agent", "show", arg, "--json")
    assert r.code == code
    assert r.json["ok"] is False and r.json["error"]["code"] == error


def test_bad_threshold_is_a_usage_error(tower, seeded):
    r = tower("agent", "list", "--json", env={"TOWER_STALL_AFTER": "five minutes"})
    assert r.code == 2 and "TOWER_STALL_AFTER" in r.json["error"]["message"]


def test_thresholds_from_the_environment(tower, seeded):
    data = tower("agent", "list", "--json", env={"TOWER_STALL_AFTER": "3600"}).data
    assert {i["session"]: i["state"] for i in data}["stuck"] == "working"


def test_empty_and_uninitialised(tower, db_path, tmp_path):
    missing = tower("agent", "list", "--json")
    assert missing.code == 3
    assert tower("init").code == 0
    r = tower("agent", "list")
    assert (r.code, r.stdout.strip()) == (0, "no live agent sessions (--all shows ended ones)")
    assert tower("agent", "list", "--json").data == []


def test_listing_agents_loads_neither_textual_nor_pydantic(seeded):
    """`tower agent list` and `show` are commands a person or a script runs often: kept light."""
    import subprocess
    import sys

    from tests.conftest import ROOT, tower_env

    for argv in (["agent", "list", "--all"], ["agent", "show", "S7"]):
        code = (
            "import sys\n"
            f"sys.argv = ['tower', '--db', {str(seeded)!r}, *{argv!r}]\n"
            "from tui.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('textual', 'pydantic') if m in sys.modules))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             env=tower_env())
        assert out.stdout.strip().splitlines()[-1] == "[]", (argv, out.stdout, out.stderr)
