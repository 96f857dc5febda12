"""`tower mcp` against the MCP SDK's stdio client: two agents in two worktrees of a real repository.

Every tool goes through the same store verb as the command line: same rules,
same audit events, same error codes and messages (with the exit code).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_tower, tower_env
from tests.mcp.helpers import mcp_session, server_command

pytestmark = pytest.mark.slow

TOOLS = {"status", "claim_task", "heartbeat", "claim_files", "release_files", "finish_task", "fail_task",
         "request_approval", "approval_status"}


@pytest.fixture
def shop(repo: Path, tmp_path: Path):
    """main and wt-b; T1 'cart' (src/**, priority 5) and T2 'discounts' (src/**)."""
    assert run_tower("init", cwd=repo).code == 0
    wt = tmp_path / "wt-b"
    assert run_tower("worktree", "add", "wt-b", "--path", str(wt), cwd=repo).code == 0
    assert run_tower("task", "add", "cart", "--scope", "src/**", "--priority", "5", cwd=repo).code == 0
    assert run_tower("task", "add", "discounts", "--scope", "src/**", cwd=repo).code == 0
    return repo, wt.resolve()


def audit(cwd: Path) -> list[dict]:
    return run_tower("--json", "audit", "tail", "-n", "200", cwd=cwd).data


async def test_the_tools_are_the_agent_verbs_and_none_decides_an_approval(shop):
    main, _ = shop
    async with mcp_session(main, agent="alice") as alice:
        listed = (await alice.session.list_tools()).tools
    assert {t.name for t in listed} == TOOLS
    assert not any(word in t.name for t in listed for word in ("approve", "reject", "decide"))
    for t in listed:
        assert t.input_schema["type"] == "object" and t.input_schema["additionalProperties"] is False
        assert t.description


async def test_two_agents_work_the_loop_with_the_command_lines_rules_and_audit_events(shop):
    main, wt = shop
    async with mcp_session(main, agent="alice") as alice, mcp_session(wt, agent="bob") as bob:
        a = await alice.data("claim_task", {"ttl": 600})
        assert (a["lease_id"], a["token"], a["task_id"], a["title"], a["scope"]) == ("L1", 1, "T1", "cart", ["src/**"])
        b = await bob.data("claim_task")
        assert (b["lease_id"], b["task_id"]) == ("L2", "T2")

        got = await alice.data("claim_files", {"lease_id": "L1", "paths": ["src/cart.py", str(main / "src" / "app.py")]})
        assert got == {"lease_id": "L1", "paths": ["src/cart.py", "src/app.py"], "new": ["src/app.py", "src/cart.py"]}

        # bob wants alice's file: the same refusal as `tower claim`, word for word, with exit code 4
        err = await bob.error("claim_files", {"lease_id": "L2", "paths": ["src/cart.py"], "token": 2})
        cli = run_tower("--json", "claim", "L2", "src/cart.py", cwd=wt, env={"TOWER_AGENT": "bob"})
        assert cli.code == 4 == err["exit_code"]
        assert {k: err[k] for k in ("code", "message", "data")} == cli.json["error"]
        assert err["code"] == "claim_conflict" and err["message"] == "src/cart.py is claimed by L1 (alice in main, task T1)"

        assert (await bob.data("claim_files", {"lease_id": "L2", "paths": ["src/discounts.py"]}))["new"] == \
            ["src/discounts.py"]
        beat = await alice.data("heartbeat", {"lease_id": "L1", "ttl": 900, "token": 1})
        assert beat["id"] == "L1" and beat["ttl"] == 900 and beat["claims"] == ["src/app.py", "src/cart.py"]
        assert (await alice.data("release_files", {"lease_id": "L1", "paths": ["src/app.py"]}))["released"] == \
            ["src/app.py"]

        mine = await bob.data("status")
        assert mine["agent"] == "bob" and mine["worktree"] == "wt-b" and mine["worktree_path"] == str(wt)
        assert [(x["lease_id"], x["claims"], x["scope"]) for x in mine["leases"]] == \
            [("L2", ["src/discounts.py"], ["src/**"])]
        assert mine["queue"] == {"pending": 0, "eligible": 0}

        failed = await bob.data("fail_task", {"lease_id": "L2", "reason": "tests red"})
        assert failed["status"] == "failed" and failed["task_status"] == "pending"
        done = await alice.data("finish_task", {"lease_id": "L1", "token": 1})
        assert done["status"] == "completed"
        assert (await bob.data("status"))["queue"] == {"pending": 1, "eligible": 1}

    events = [(e["event"], e["actor"], e["worktree"], e["lease_id"]) for e in audit(main)]
    assert events[-8:] == [
        ("task.claimed", "alice", "main", "L1"),
        ("task.claimed", "bob", "wt-b", "L2"),
        ("files.claimed", "alice", "main", "L1"),
        ("files.claimed", "bob", "wt-b", "L2"),
        ("lease.heartbeat", "alice", "main", "L1"),
        ("files.released", "alice", "main", "L1"),
        ("task.failed", "bob", "wt-b", "L2"),
        ("task.done", "alice", "main", "L1"),
    ]
    assert run_tower("audit", "verify", cwd=main).code == 0
    tasks = {t["id"]: t["status"] for t in run_tower("--json", "task", "list", cwd=main).data}
    assert tasks == {"T1": "done", "T2": "pending"}


async def test_errors_carry_the_command_lines_code_message_and_exit_code(shop):
    main, wt = shop
    async with mcp_session(main, agent="alice") as alice, mcp_session(wt, agent="bob") as bob:
        await alice.data("claim_task")
        cases = [
            (bob, "heartbeat", {"lease_id": "L1"}, 4, "foreign_lease"),  # alice's lease
            (alice, "heartbeat", {"lease_id": "L1", "token": 7}, 4, "stale_token"),
            (alice, "heartbeat", {"lease_id": "L99"}, 3, "lease_not_found"),
            (alice, "heartbeat", {"lease_id": "T1"}, 2, "bad_input"),
            (alice, "heartbeat", {"lease_id": "L1", "ttl": 0.5}, 2, "bad_input"),
            (alice, "heartbeat", {"lease_id": "L1", "bogus": 1}, 2, "bad_input"),
            (alice, "heartbeat", {}, 2, "bad_input"),
            (alice, "claim_files", {"lease_id": "L1", "paths": ["../outside.txt"]}, 2, "bad_path"),
            (alice, "claim_files", {"lease_id": "L1", "paths": ["src"]}, 2, "bad_path"),  # a directory
            (alice, "claim_files", {"lease_id": "L1", "paths": ["README.md"]}, 4, "out_of_scope"),
            (alice, "approval_status", {"approval_id": "A9"}, 3, "approval_not_found"),
            (alice, "request_approval", {"kind": "nuke", "summary": "x"}, 2, "bad_input"),
            (alice, "request_approval", {"kind": "command", "summary": "   "}, 2, "bad_input"),
            (alice, "request_approval", {"kind": "command", "summary": "x", "wait_seconds": 31}, 2, "bad_input"),
            (alice, "request_approval", {"kind": "command", "summary": "deep",
                                         "detail": json.loads("{\"a\":" * 40 + "1" + "}" * 40)}, 2, "bad_input"),
            (alice, "fail_task", {"lease_id": "L1", "reason": ""}, 2, "bad_input"),
            (bob, "claim_task", {"task_id": "T1"}, 4, "task_not_pending"),
            (alice, "no_such_tool", {}, 2, "unknown_tool"),
        ]
        for agent, tool, args, exit_code, code in cases:
            err = await agent.error(tool, args)
            assert (err["exit_code"], err["code"]) == (exit_code, code), (tool, args, err)
            assert err["message"] and "\n" not in err["message"]
        await bob.data("claim_task")
        assert (await bob.error("claim_task"))["code"] == "no_task"

    # the same refusals from the command line have the same codes and messages
    cli = run_tower("--json", "lease", "heartbeat", "L1", cwd=wt, env={"TOWER_AGENT": "bob"})
    async with mcp_session(wt, agent="bob") as bob:
        err = await bob.error("heartbeat", {"lease_id": "L1"})
    assert cli.code == err["exit_code"] and cli.json["error"] == {k: err[k] for k in ("code", "message")}


async def test_a_missing_or_broken_store_is_each_calls_error_not_a_dead_server(repo, tmp_path):
    async with mcp_session(repo, agent="alice") as alice:
        err = await alice.error("status")
        assert (err["exit_code"], err["code"]) == (3, "not_initialised")
        assert run_tower("init", cwd=repo).code == 0  # the next call finds the store
        assert (await alice.data("status"))["worktree"] == "main"
    db = repo / ".git" / "tower" / "tower.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"garbage" * 1000)
    async with mcp_session(repo, agent="alice") as alice:
        err = await alice.error("status")
        assert err["exit_code"] == 6


async def test_identity_comes_from_the_environment_and_the_working_directory(shop):
    main, wt = shop
    (wt / "src" / "deep").mkdir()
    async with mcp_session(wt / "src" / "deep") as anonymous:  # no TOWER_AGENT, started below the root
        me = await anonymous.data("status")
        assert (me["agent"], me["worktree"]) == ("agent@wt-b", "wt-b")
        claim = await anonymous.data("claim_task")
        # a relative path is relative to where the server runs, as for the command line
        got = await anonymous.data("claim_files", {"lease_id": claim["lease_id"], "paths": ["x.py"]})
        assert got["paths"] == ["src/deep/x.py"]
    async with mcp_session(main, agent="carol", env={"TOWER_WORKTREE": "wt-b"}) as carol:
        me = await carol.data("status")
        assert (me["agent"], me["worktree"]) == ("carol", "wt-b")
    lease = run_tower("--json", "lease", "show", "L1", cwd=main).data
    assert (lease["agent"], lease["worktree"]) == ("agent@wt-b", "wt-b")


async def test_request_approval_answers_pending_at_once_and_a_persons_decision_reaches_the_poll(shop):
    main, wt = shop
    async with mcp_session(wt, agent="bob", serve_args=("--approval-wait", "0.2")) as bob:
        lease = await bob.data("claim_task")
        pending = await bob.data("request_approval", {"kind": "command", "summary": "rm -rf build",
                                                      "detail": {"command": "rm -rf build"},
                                                      "lease_id": lease["lease_id"]})
        assert (pending["id"], pending["status"], pending["requested_by"]) == ("A1", "pending", "bob")
        assert (pending["lease_id"], pending["task_id"], pending["worktree"]) == ("L1", "T1", "wt-b")
        # nobody decided within the wait: still pending afterwards (never expired by a poll)
        assert (await bob.data("approval_status", {"approval_id": "A1", "wait_seconds": 0.3}))["status"] == "pending"
        assert run_tower("--json", "approval", "show", "A1", cwd=main).data["status"] == "pending"

        # bob polls with a wait while a person approves from another process
        poll = asyncio.ensure_future(bob.data("approval_status", {"approval_id": "A1", "wait_seconds": 25}))
        person = await asyncio.to_thread(run_tower, "approval", "approve", "A1", "--reason", "ok", cwd=main)
        assert person.code == 0, person.stderr
        decided = await poll
        assert (decided["status"], decided["reason"]) == ("approved", "ok")
        assert decided["decided_by"].startswith("person:")

        second = await bob.data("request_approval", {"kind": "command", "summary": "force push", "wait_seconds": 0})
        assert second["status"] == "pending"
        person = await asyncio.to_thread(run_tower, "approval", "reject", "A2", "--reason", "never force push",
                                         cwd=main)
        assert person.code == 0
        rejected = await bob.data("approval_status", {"approval_id": "A2"})
        assert (rejected["status"], rejected["reason"]) == ("rejected", "never force push")
        # a key returns the same request
        again = await bob.data("request_approval", {"kind": "command", "summary": "deploy", "key": "k1",
                                                    "wait_seconds": 0})
        assert (await bob.data("request_approval", {"kind": "command", "summary": "deploy", "key": "k1",
                                                    "wait_seconds": 0}))["id"] == again["id"]
        # a key never answers for a different request: approved A1's decision cannot be borrowed
        assert run_tower("approval", "approve", again["id"], cwd=main).code == 0
        err = await bob.error("request_approval", {"kind": "command", "summary": "DROP DATABASE prod",
                                                   "key": "k1", "wait_seconds": 0})
        assert (err["exit_code"], err["code"]) == (4, "key_reused")
    events = [(e["event"], e["actor"], e["approval_id"]) for e in audit(main) if e["event"].startswith("approval.")]
    assert events[:4] == [("approval.requested", "bob", "A1"), ("approval.approved", events[1][1], "A1"),
                          ("approval.requested", "bob", "A2"), ("approval.rejected", events[3][1], "A2")]
    assert events[1][1].startswith("person:")


async def test_request_approval_waits_for_a_quick_decision(shop):
    main, wt = shop
    async with mcp_session(wt, agent="bob") as bob:
        call = asyncio.ensure_future(bob.data("request_approval", {"kind": "custom", "summary": "ship it",
                                                                   "wait_seconds": 25}))
        # the person decides as soon as the request exists
        while True:
            listed = await asyncio.to_thread(run_tower, "--json", "approval", "list", "--status", "pending", cwd=main)
            if listed.data:
                break
            await asyncio.to_thread(run_tower, "--json", "audit", "tail", "-n", "1", cwd=main)
        assert (await asyncio.to_thread(run_tower, "approval", "approve", "A1", cwd=main)).code == 0
        assert (await call)["status"] == "approved"


def test_the_server_speaks_the_protocol_versions_agents_use(shop):
    """Codex offers 2025-06-18, Gemini CLI 2025-06-18, Claude Code 2025-11-25; older clients 2024-11-05.
    One server per version, started together."""
    main, _ = shop
    command, argv = server_command()
    versions = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    procs = [subprocess.Popen([command, *argv], cwd=main, env=tower_env({"TOWER_AGENT": "alice"}),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
             for _ in versions]
    try:
        for proc, version in zip(procs, versions):
            hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                     "params": {"protocolVersion": version, "capabilities": {},
                                "clientInfo": {"name": "test", "version": "1"}}}
            proc.stdin.write((json.dumps(hello) + "\n").encode())
            proc.stdin.flush()
        for proc, version in zip(procs, versions):
            answer = json.loads(proc.stdout.readline())
            assert answer["result"]["protocolVersion"] == version
            assert answer["result"]["serverInfo"]["name"] == "tower"
            assert "tools" in answer["result"]["capabilities"]
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=30)
            proc.stdout.close()


def test_a_lone_surrogate_never_reaches_the_store(shop):
    """A lone surrogate is valid JSON (\\udcff). The SDK cannot decode such a message and drops it
    (no answer: the agent's call times out); the server stays up and nothing is stored."""
    main, _ = shop
    command, argv = server_command()
    proc = subprocess.Popen([command, *argv], cwd=main, env=tower_env({"TOWER_AGENT": "alice"}),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
        ):
            proc.stdin.write((json.dumps(line) + "\n").encode())
        proc.stdin.write(b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "request_approval",'
                         b' "arguments": {"kind": "command", "summary": "bad \\udcff text"}}}\n')
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                      "params": {"name": "status", "arguments": {}}}) + "\n").encode())
        proc.stdin.flush()
        answers = {}
        while 3 not in answers:
            message = json.loads(proc.stdout.readline())
            answers[message.get("id")] = message
        assert answers[3]["result"]["isError"] is False and 2 not in answers
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)
        proc.stdout.close()
    assert run_tower("--json", "approval", "list", cwd=main).data == []


async def test_tower_checks_text_itself_whatever_the_transport_lets_through(shop):
    """The tools' own check, called in-process on the real store: exit 2, nothing stored."""
    from tui.services.mcp_server import Identity, TowerTools

    main, _ = shop
    tools = TowerTools(Identity(db=main / ".git" / "tower" / "tower.db", agent="alice", cwd=main))
    try:
        for args in ({"kind": "command", "summary": "bad \udcff text"},
                     {"kind": "command", "summary": "x", "key": "k\udcff"},
                     {"kind": "command", "summary": "x" * (64 * 1024 + 1)},
                     {"kind": "command", "summary": "nul \0 byte"}):
            ok, body = await tools.call("request_approval", args)
            assert not ok and body["error"]["exit_code"] == 2, body
        ok, body = await tools.call("claim_files", {"lease_id": "L1", "paths": ["a\udcff.py"]})
        assert not ok and body["error"]["exit_code"] == 2
    finally:
        await tools.close()
    assert run_tower("--json", "approval", "list", cwd=main).data == []


@pytest.mark.parametrize("argv", [["task", "list"], ["guard", "check"], ["mcp", "install", "--help"]])
def test_other_commands_never_import_the_mcp_sdk(argv, repo):
    code = (
        "import sys\n"
        f"sys.argv = ['tower', *{argv!r}]\n"
        "from tui.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'starlette', 'uvicorn'))\n"
        "print('LOADED ' + ' '.join(bad[:5]) if bad else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, env=tower_env(), capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "CLEAN", out.stdout + out.stderr
    assert ROOT
