"""core.conflict_rules: which conflicts a change opens, and when a cause is gone (pure)."""

from __future__ import annotations

from types import SimpleNamespace

from core.conflict_rules import ClaimView, FileChange, LeaseView, World, cause_gone, conflicts_for

A = LeaseView(1, "agent-a", "wt-a", 10, "Fix the parser", ("src/",))
B = LeaseView(2, "agent-b", "wt-b", 20, "Write docs", ("docs/**", "*.md"))
FREE = LeaseView(3, "agent-c", "wt-c", 30, "Anything", ())


def world(*changed: FileChange, leases=(A, B, FREE), claims=(), worktrees=("main", "wt-a", "wt-b", "wt-c")) -> World:
    return World(
        leases={x.id: x for x in leases},
        claims={c.path: c for c in claims},
        changed=changed,
        worktrees=frozenset(worktrees) if worktrees is not None else None,
    )


def fc(wt: str, path: str, episode: int, new: str | None = "new", base: str | None = "old") -> FileChange:
    return FileChange(wt, path, episode, base, new)


def kinds(specs) -> set[tuple]:
    return {(s.kind, s.worktree, s.other_worktree) for s in specs}


def test_a_path_at_its_baseline_opens_nothing() -> None:
    assert conflicts_for("wt-b", "src/x.py", world(claims=[ClaimView("src/x.py", 1, 7)])) == []


def test_claimed_by_other_names_holder_and_writer() -> None:
    w = world(fc("wt-b", "src/x.py", 5), claims=[ClaimView("src/x.py", 1, 7)])
    specs = conflicts_for("wt-b", "src/x.py", w)
    assert kinds(specs) == {("claimed_by_other", "wt-b", "wt-a"), ("out_of_scope", "wt-b", None)}
    (c,) = [s for s in specs if s.kind == "claimed_by_other"]
    assert (c.lease_id, c.other_lease_id, c.task_id, c.episode) == (2, 1, 20, "5:7")
    assert c.message == ('wt-b wrote src/x.py, claimed by L1 (agent-a in wt-a, task T10 "Fix the parser"); '
                         'wt-b holds L2 (agent-b, task T20 "Write docs")')
    assert c.detail["holder"]["lease"] == "L1" and c.detail["change"] == "modified"


def test_own_claim_and_own_worktree_are_not_conflicts() -> None:
    w = world(fc("wt-a", "src/x.py", 5), claims=[ClaimView("src/x.py", 1, 7)])
    assert conflicts_for("wt-a", "src/x.py", w) == []
    # a claim by a lease held in the same worktree (another agent there) is not "another worktree"
    other_here = LeaseView(4, "agent-d", "wt-a", 40, "", ("src/",))
    w = world(fc("wt-a", "src/x.py", 5), leases=(A, other_here), claims=[ClaimView("src/x.py", 4, 8)])
    assert conflicts_for("wt-a", "src/x.py", w) == []


def test_unleased_write_and_deletion_wording() -> None:
    (c,) = conflicts_for("main", "README.md", world(fc("main", "README.md", 3, new=None)))
    assert c.kind == "unleased_write" and c.message == "main deleted README.md with no active lease in main"
    (c,) = conflicts_for("main", "new.txt", world(fc("main", "new.txt", 4, base=None)))
    assert c.message.startswith("main created new.txt") and c.detail["change"] == "added"


def test_scope_rules() -> None:
    assert conflicts_for("wt-a", "src/deep/x.py", world(fc("wt-a", "src/deep/x.py", 1))) == []
    (c,) = conflicts_for("wt-a", "README.md", world(fc("wt-a", "README.md", 1)))
    assert c.kind == "out_of_scope" and (c.lease_id, c.task_id) == (1, 10)
    assert c.message == "wt-a wrote README.md, outside the scope of task T10 (src/) of L1 (agent-a)"
    assert conflicts_for("wt-b", "notes/x.md", world(fc("wt-b", "notes/x.md", 1))) == []  # *.md at any depth
    assert conflicts_for("wt-c", "anything/at/all", world(fc("wt-c", "anything/at/all", 1))) == []  # empty scope
    # two leases in one worktree: in scope if either covers it; one unrestricted lease covers everything
    both = LeaseView(5, "agent-e", "wt-a", 50, "", ("docs/",))
    assert conflicts_for("wt-a", "docs/x", world(fc("wt-a", "docs/x", 1), leases=(A, both))) == []
    (c,) = conflicts_for("wt-a", "Makefile", world(fc("wt-a", "Makefile", 1), leases=(A, both)))
    assert c.kind == "out_of_scope" and "L1" in c.message and "L5" in c.message


def test_concurrent_edit_needs_different_content_in_a_registered_worktree() -> None:
    w = world(fc("wt-a", "src/x.py", 1, new="h1"), fc("wt-c", "src/x.py", 2, new="h2"))
    (c,) = conflicts_for("wt-a", "src/x.py", w)
    assert (c.kind, c.other_worktree, c.lease_id, c.other_lease_id, c.episode) == ("concurrent_edit", "wt-c", 1, 3, "1+2")
    # the mirror image carries the same episode (one conflict per pair, see the store)
    (m,) = conflicts_for("wt-c", "src/x.py", w)
    assert m.episode == c.episode
    same = world(fc("wt-a", "src/x.py", 1, new="h"), fc("wt-c", "src/x.py", 2, new="h"))
    assert conflicts_for("wt-a", "src/x.py", same) == []
    gone = world(fc("wt-a", "src/x.py", 1, new="h1"), fc("old", "src/x.py", 2, new="h2"))
    assert conflicts_for("wt-a", "src/x.py", gone) == []


def _conflict(kind: str, path: str, wt: str, other: str | None = None, other_lease: int | None = None):
    return SimpleNamespace(kind=kind, path=path, worktree=wt, other_worktree=other, other_lease_id=other_lease)


def test_cause_gone() -> None:
    claimed = _conflict("claimed_by_other", "src/x.py", "wt-b", "wt-a", 1)
    held = [ClaimView("src/x.py", 1, 7)]
    assert cause_gone(claimed, world(fc("wt-b", "src/x.py", 5), claims=held)) is None
    assert cause_gone(claimed, world(fc("wt-b", "src/x.py", 5))) == "L1 no longer claims src/x.py"
    assert cause_gone(claimed, world(fc("wt-b", "src/x.py", 5), claims=[ClaimView("src/x.py", 2, 9)])) == (
        "L1 no longer claims src/x.py")
    assert cause_gone(claimed, world(claims=held)) == "src/x.py in wt-b is back to its baseline"

    scope = _conflict("out_of_scope", "README.md", "wt-a")
    # the lease ending does not close it: the stray change is still there
    assert cause_gone(scope, world(fc("wt-a", "README.md", 1), leases=())) is None
    assert cause_gone(scope, world()) == "README.md in wt-a is back to its baseline"
    assert cause_gone(scope, world(fc("wt-a", "README.md", 1), worktrees=("main",))) == (
        "worktree wt-a is no longer registered")

    edit = _conflict("concurrent_edit", "src/x.py", "wt-a", "wt-c")
    both = [fc("wt-a", "src/x.py", 1, new="h1"), fc("wt-c", "src/x.py", 2, new="h2")]
    assert cause_gone(edit, world(*both)) is None
    assert cause_gone(edit, world(both[0])) == "src/x.py in wt-c is back to its baseline"
    assert cause_gone(edit, world(both[1])) == "src/x.py in wt-a is back to its baseline"
    assert cause_gone(edit, world(both[0], fc("wt-c", "src/x.py", 2, new="h1"))) == (
        "wt-a and wt-c now hold the same content for src/x.py")
    assert cause_gone(edit, world(*both, worktrees=("wt-a",))) == "worktree wt-c is no longer registered"


def test_a_lease_that_ended_a_moment_ago_still_covers_its_write() -> None:
    """The write is judged after it happened; the agent may have finished meanwhile."""
    done = LeaseView(5, "agent-e", "wt-e", 50, "Docs", ("docs/**",))
    wts = ("wt-e",)
    just_ended = World(changed=[fc("wt-e", "docs/a.md", 1)], worktrees=frozenset(wts), recent=[done])
    assert conflicts_for("wt-e", "docs/a.md", just_ended) == []
    (c,) = conflicts_for("wt-e", "src/x.py", World(changed=[fc("wt-e", "src/x.py", 2)],
                                                   worktrees=frozenset(wts), recent=[done]))
    assert c.kind == "out_of_scope"
    (c,) = conflicts_for("wt-e", "docs/a.md", World(changed=[fc("wt-e", "docs/a.md", 3)],
                                                    worktrees=frozenset(wts)))
    assert c.kind == "unleased_write"
