"""`tower guard`: real `git commit` and `git push` in two worktrees with Tower's hooks installed.

Real repositories, the real `tower` command, real git running the hooks.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, run_tower, tower_env

pytestmark = pytest.mark.slow

TOWER_SCRIPT = Path(sys.executable).parent / "tower"


def tower(*args: str, cwd: Path, env: dict | None = None):
    """The real console script when there is one (install records the path of what runs it)."""
    if TOWER_SCRIPT.exists():
        proc = subprocess.run([str(TOWER_SCRIPT), *args], cwd=cwd, env=tower_env(env), capture_output=True,
                              text=True, timeout=60)
        from tests.conftest import Result

        return Result(proc.returncode, proc.stdout, proc.stderr)
    return run_tower(*args, cwd=cwd, env=env)


def commit(cwd: Path, message: str, *, agent: str | None = None, extra: list[str] = ()) -> subprocess.CompletedProcess:
    env = tower_env({"TOWER_AGENT": agent} if agent else None)
    return subprocess.run(["git", "commit", "-q", *extra, "-m", message], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def head(cwd: Path) -> str:
    return git("rev-parse", "HEAD", cwd=cwd).strip()


def audit(cwd: Path, event: str) -> list[dict]:
    events = tower("--json", "audit", "tail", "-n", "100", cwd=cwd).data
    return [e for e in events if e["event"] == event]


def with_store(db: Path, body):
    """Run ``body(store)`` on the real store in-process (set-up without a subprocess per step)."""
    from store import Store

    async def main():
        async with Store(db, actor="test") as s:
            return await body(s)

    return asyncio.run(main())


@pytest.fixture
def shop(repo: Path, tmp_path: Path):
    """main (alice, task T1 scope src/**, holds src/app.py) and wt-b (bob, task T2 scope src/**)."""
    assert tower("init", cwd=repo).code == 0
    wt = tmp_path / "wt-b"
    assert tower("worktree", "add", "wt-b", "--path", str(wt), cwd=repo).code == 0

    async def setup(s):
        await s.add_task("cart", scope=["src/**"])
        await s.add_task("discounts", scope=["src/**"])
        await s.claim_task(agent="alice", worktree="main")
        await s.claim_files(1, ["src/app.py"], agent="alice")
        await s.claim_task(agent="bob", worktree="wt-b")

    with_store(repo / ".git" / "tower" / "tower.db", setup)
    r = tower("--json", "guard", "install", cwd=repo)
    assert r.code == 0, r.stderr
    return repo, wt.resolve()


def test_a_commit_touching_another_worktrees_claim_is_refused_naming_file_holder_and_task(shop):
    main, wt = shop
    before = head(wt)
    (wt / "src" / "app.py").write_text("print('bob was here')\n")
    git("add", "-A", cwd=wt)
    r = commit(wt, "bob edits alice's file", agent="bob")
    assert r.returncode != 0
    assert "src/app.py is claimed by L1 (alice in main, task T1 cart)" in r.stderr
    assert head(wt) == before  # nothing committed
    [event] = audit(main, "guard.refused")
    assert event["actor"] == "bob" and event["worktree"] == "wt-b" and event["path"] == "src/app.py"
    assert event["details"]["hook"] == "pre-commit"
    assert event["details"]["refusals"][0] == {"path": "src/app.py", "reason": "claimed_by_other",
                                               "claim": "src/app.py", "lease_id": "L1", "agent": "alice",
                                               "worktree": "main", "task_id": "T1"}
    # the log stays intact with the new event in it
    assert tower("audit", "verify", cwd=main).code == 0


def test_commit_all_is_checked_through_gits_own_index(shop):
    """`git commit -a` stages into a temporary index (GIT_INDEX_FILE) that the hook must read."""
    main, wt = shop
    (wt / "src" / "app.py").write_text("unstaged until commit -a\n")
    r = commit(wt, "commit -a", agent="bob", extra=["-a"])
    assert r.returncode != 0 and "src/app.py is claimed by L1" in r.stderr


def test_check_answers_exit_4_with_the_refusals_as_json(shop):
    main, wt = shop
    (wt / "src" / "app.py").write_text("x\n")
    git("add", "-A", cwd=wt)
    r = tower("--json", "guard", "check", "--staged", cwd=wt, env={"TOWER_AGENT": "bob"})
    assert r.code == 4
    body = json.loads(r.stdout)
    assert body["ok"] is False and body["error"]["code"] == "guard_refused"
    assert body["error"]["data"]["refusals"][0]["lease_id"] == "L1"


def test_a_commit_of_free_and_own_files_in_scope_goes_through(shop):
    main, wt = shop
    assert tower("claim", "L2", "src/discounts.py", cwd=wt, env={"TOWER_AGENT": "bob"}).code == 0
    (wt / "src" / "discounts.py").write_text("RATE = 0.1\n")
    (wt / "src" / "free.py").write_text("pass\n")
    git("add", "-A", cwd=wt)
    r = commit(wt, "bob's own work", agent="bob")
    assert r.returncode == 0, r.stderr
    assert git("show", "--name-only", "--format=", "HEAD", cwd=wt).split() == ["src/discounts.py", "src/free.py"]
    assert audit(main, "guard.refused") == []


def test_a_file_outside_the_committing_leases_scope_is_refused(shop):
    main, wt = shop
    (wt / "README.md").write_text("# bob rewrote the readme\n")
    git("add", "-A", cwd=wt)
    r = commit(wt, "out of scope", agent="bob")
    assert r.returncode != 0
    assert "README.md is outside the scope of task T2 (src/**)" in r.stderr
    [event] = audit(main, "guard.refused")
    assert event["details"]["refusals"][0]["reason"] == "out_of_scope"


def test_once_the_holder_finishes_the_same_commit_goes_through(shop):
    main, wt = shop
    (wt / "src" / "app.py").write_text("print('later')\n")
    git("add", "-A", cwd=wt)
    assert commit(wt, "too early", agent="bob").returncode != 0
    assert tower("task", "done", "L1", cwd=main, env={"TOWER_AGENT": "alice"}).code == 0
    r = commit(wt, "after alice finished", agent="bob")
    assert r.returncode == 0, r.stderr


def test_a_claim_on_a_folder_covers_the_files_below_it(shop):
    main, wt = shop
    # the store's claim covers what is below it; the command line refuses to claim an existing
    # directory, so a folder that does not exist yet is claimed
    assert tower("claim", "L1", "src/payments", cwd=main, env={"TOWER_AGENT": "alice"}).code == 0
    (wt / "src" / "payments").mkdir()
    (wt / "src" / "payments" / "card.py").write_text("pass\n")
    git("add", "-A", cwd=wt)
    r = commit(wt, "into alice's folder", agent="bob")
    assert r.returncode != 0 and "src/payments/card.py is claimed by L1" in r.stderr


def test_install_is_idempotent_and_chains_an_existing_hook_which_still_runs_and_can_still_block(repo, tmp_path):
    assert tower("init", cwd=repo).code == 0
    hooks = repo / ".git" / "hooks"
    marker = tmp_path / "chained-ran"
    original = f"#!/bin/sh\necho ran >> {marker}\n[ -e {tmp_path / 'block'} ] && exit 3\nexit 0\n"
    (hooks / "pre-commit").write_text(original)
    (hooks / "pre-commit").chmod(0o755)
    first = tower("--json", "guard", "install", cwd=repo).data
    assert first["changed"] == ["pre-commit", "pre-push"] and first["chained"] == ["pre-commit"]
    installed = (hooks / "pre-commit").read_text()
    again = tower("--json", "guard", "install", cwd=repo).data
    assert again["changed"] == [] and (hooks / "pre-commit").read_text() == installed
    assert (hooks / "pre-commit.tower-chained").read_text() == original

    (repo / "a.txt").write_text("a\n")
    git("add", "a.txt", cwd=repo)
    assert commit(repo, "chained hook runs").returncode == 0
    assert marker.read_text() == "ran\n"
    (tmp_path / "block").write_text("")
    (repo / "b.txt").write_text("b\n")
    git("add", "b.txt", cwd=repo)
    assert commit(repo, "chained hook blocks").returncode != 0
    assert marker.read_text() == "ran\nran\n"

    gone = tower("--json", "guard", "uninstall", cwd=repo).data
    assert gone["removed"] == ["pre-commit", "pre-push"] and gone["restored"] == ["pre-commit"]
    assert (hooks / "pre-commit").read_text() == original and os.access(hooks / "pre-commit", os.X_OK)
    assert not (hooks / "pre-commit.tower-chained").exists() and not (hooks / "pre-push").exists()


def test_core_hooks_path_is_honoured_for_every_worktree(shop, tmp_path):
    main, wt = shop
    tower("guard", "uninstall", cwd=main)
    shared = tmp_path / "shared-hooks"
    git("config", "core.hooksPath", str(shared), cwd=main)
    r = tower("--json", "guard", "install", cwd=wt)  # from the other worktree: same shared hooks
    assert r.code == 0 and Path(r.data["hooks_dir"]) == shared.resolve()
    assert (shared / "pre-commit").exists() and not (main / ".git" / "hooks" / "pre-commit").exists()
    (wt / "src" / "app.py").write_text("x\n")
    git("add", "-A", cwd=wt)
    r = commit(wt, "through hooksPath", agent="bob")
    assert r.returncode != 0 and "claimed by L1" in r.stderr


def test_without_a_store_the_commit_proceeds_after_a_one_line_warning(shop):
    main, wt = shop
    store = main / ".git" / "tower"
    store.rename(main / ".git" / "tower-away")
    (wt / "src" / "app.py").write_text("x\n")
    git("add", "-A", cwd=wt)
    r = commit(wt, "no store", agent="bob")
    assert r.returncode == 0, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("tower guard: no Tower store at") and "not checked" in line


def test_a_corrupt_store_refuses_with_the_reason_and_names_no_verify(shop):
    main, wt = shop
    db = main / ".git" / "tower" / "tower.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    (wt / "src" / "free.py").write_text("x\n")
    git("add", "-A", cwd=wt)
    before = head(wt)
    r = commit(wt, "corrupt store", agent="bob")
    assert r.returncode != 0 and head(wt) == before
    assert "unusable" in r.stderr and "--no-verify" in r.stderr
    # the person's escape hatch
    assert commit(wt, "person overrides", extra=["--no-verify"]).returncode == 0


def test_a_person_committing_without_a_lease_is_only_held_to_claims(shop):
    main, wt = shop
    assert tower("task", "done", "L2", cwd=wt, env={"TOWER_AGENT": "bob"}).code == 0
    (wt / "README.md").write_text("# docs by a person\n")
    git("add", "-A", cwd=wt)
    assert commit(wt, "no lease, no scope").returncode == 0
    (wt / "src" / "app.py").write_text("x\n")
    git("add", "-A", cwd=wt)
    assert commit(wt, "still alice's").returncode != 0


@pytest.fixture
def remote(shop, tmp_path):
    main, wt = shop
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    git("remote", "add", "origin", str(bare), cwd=main)
    # main holds alice's lease: a push from it is an agent's until she is done
    assert push(main, "main", agent=None).returncode != 0
    assert tower("task", "done", "L1", cwd=main, env={"TOWER_AGENT": "alice"}).code == 0
    r = subprocess.run(["git", "push", "-q", "origin", "main", "wt-b"], cwd=main, env=tower_env(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # a person's push: not restricted
    return bare


def push(cwd: Path, *args: str, agent: str | None = "bob") -> subprocess.CompletedProcess:
    env = tower_env({"TOWER_AGENT": agent} if agent else None)
    return subprocess.run(["git", "push", "-q", "origin", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_an_agent_may_push_its_branch_but_not_force_delete_or_touch_a_protected_branch(shop, remote):
    main, wt = shop
    (wt / "src" / "d.py").write_text("d\n")
    git("add", "-A", cwd=wt)
    assert commit(wt, "work", agent="bob").returncode == 0
    assert push(wt, "wt-b").returncode == 0

    r = push(wt, "HEAD:main")
    assert r.returncode != 0 and "main is a protected branch" in r.stderr
    git("commit", "-q", "--amend", "-m", "rewritten", "--no-verify", cwd=wt)
    r = push(wt, "--force", "wt-b")
    assert r.returncode != 0 and "not a fast-forward" in r.stderr
    r = push(wt, "--delete", "wt-b")
    assert r.returncode != 0 and "deleting wt-b" in r.stderr
    reasons = [e["details"]["refusals"][0]["reason"] for e in audit(main, "guard.refused")]
    assert reasons == ["protected", "protected", "force", "delete"]  # the first: alice's, in the fixture


def test_a_person_may_push_to_a_protected_branch(shop, remote):
    main, wt = shop
    (main / "NOTES.md").write_text("n\n")
    git("add", "-A", cwd=main)
    assert commit(main, "person's commit").returncode == 0
    assert push(main, "main", agent=None).returncode == 0
