"""`tower worktree add`: refuse before git runs, and only worktrees of this repository.

Real git repositories and the real `tower` command (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git, run_tower

pytestmark = pytest.mark.slow


@pytest.fixture
def project(repo: Path) -> Path:
    r = run_tower("init", cwd=repo)
    assert r.code == 0, r.stderr
    return repo


def branches(repo: Path) -> set[str]:
    return set(git("branch", "--format=%(refname:short)", cwd=repo).split())


def git_worktrees(repo: Path) -> set[Path]:
    out = git("worktree", "list", "--porcelain", cwd=repo)
    return {Path(line.split(" ", 1)[1]).resolve() for line in out.splitlines() if line.startswith("worktree ")}


def registered(repo: Path) -> dict[str, dict]:
    return {w["name"]: w for w in run_tower("--json", "worktree", "list", cwd=repo).data}


def test_add_creates_registers_and_is_idempotent(project, tmp_path):
    target = tmp_path / "wt-a"
    r = run_tower("--json", "worktree", "add", "a", "--path", str(target), cwd=project)
    assert r.code == 0, r.stderr
    assert r.data["name"] == "a" and r.data["path"] == str(target.resolve()) and r.data["branch"] == "a"
    assert target.resolve() in git_worktrees(project) and "a" in branches(project)
    again = run_tower("--json", "worktree", "add", "a", "--path", str(target), cwd=project)
    assert again.code == 0 and again.data == r.data
    # a worktree git made on its own, of this repository, is registered as it is
    other = tmp_path / "wt-c"
    git("worktree", "add", "-q", str(other), "-b", "c", cwd=project)
    r = run_tower("--json", "worktree", "add", "c", "--path", str(other), cwd=project)
    assert r.code == 0 and r.data["branch"] == "c"


def test_a_path_registered_under_another_name_is_refused_before_git_runs(project, tmp_path):
    target = tmp_path / "wt-a"
    assert run_tower("worktree", "add", "a", "--path", str(target), cwd=project).code == 0
    # the folder goes away behind Tower's back (the registration stays)
    git("worktree", "remove", "--force", str(target), cwd=project)
    assert not target.exists()
    before = (branches(project), git_worktrees(project))
    r = run_tower("--json", "worktree", "add", "b", "--path", str(target), cwd=project)
    assert r.code == 4, r.stdout + r.stderr
    assert r.json["error"]["code"] == "worktree_exists"
    assert "already registered as worktree a" in r.json["error"]["message"]
    assert not target.exists()  # git did not create it ...
    assert (branches(project), git_worktrees(project)) == before  # ... nor branch b
    assert "b" not in registered(project)


def test_a_name_registered_at_another_path_is_refused_before_git_runs(project, tmp_path):
    assert run_tower("worktree", "add", "a", "--path", str(tmp_path / "wt-a"), cwd=project).code == 0
    before = (branches(project), git_worktrees(project))
    elsewhere = tmp_path / "wt-elsewhere"
    r = run_tower("worktree", "add", "a", "--path", str(elsewhere), "--branch", "fresh", cwd=project)
    assert r.code == 4
    assert r.stderr.startswith("tower: worktree a is already registered at") and len(r.stderr.splitlines()) == 1
    assert not elsewhere.exists()
    assert (branches(project), git_worktrees(project)) == before


def test_a_worktree_of_another_repository_is_refused(project, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    git("init", "-q", "-b", "main", cwd=other)
    (other / "x.txt").write_text("x\n")
    git("add", "-A", cwd=other)
    git("commit", "-q", "-m", "x", cwd=other)
    r = run_tower("--json", "worktree", "add", "evil", "--path", str(other), cwd=project)
    assert r.code == 2, r.stdout + r.stderr
    assert "another repository" in r.json["error"]["message"]
    human = run_tower("worktree", "add", "evil", "--path", str(other), cwd=project)
    assert human.code == 2 and len(human.stderr.splitlines()) == 1 and "Traceback" not in human.stderr
    # a linked worktree of that repository is another repository too
    linked = tmp_path / "other-wt"
    git("worktree", "add", "-q", str(linked), "-b", "side", cwd=other)
    assert run_tower("worktree", "add", "evil", "--path", str(linked), cwd=project).code == 2
    # and so is a plain folder inside this repository's worktree
    assert run_tower("worktree", "add", "evil", "--path", str(project / "src"), cwd=project).code == 2
    assert "evil" not in registered(project)
