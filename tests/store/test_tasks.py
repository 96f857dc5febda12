"""Store verbs on tasks, leases and file claims, against a real SQLite file."""

from __future__ import annotations


import pytest

from core.errors import BadInput, NotFound, Refused
from tests.pgfixtures import RawDB


async def test_claims_follow_priority_then_age(store):
    low = await store.add_task("low", priority=0)
    high_old = await store.add_task("high old", priority=5)
    high_new = await store.add_task("high new", priority=5)
    order = [(await store.claim_task(agent="a")).task_id for _ in range(3)]
    assert order == [high_old.id, high_new.id, low.id]


async def test_dependencies_must_be_done(store):
    base = await store.add_task("base")
    dependent = await store.add_task("dependent", priority=10, depends_on=[base.id])
    first = await store.claim_task(agent="a")
    assert first.task_id == base.id  # the higher-priority task is blocked
    with pytest.raises(NotFound) as exc:
        await store.claim_task(agent="b")
    assert exc.value.code == "no_task"
    with pytest.raises(Refused) as blocked:
        await store.claim_task(agent="b", task_id=dependent.id)
    assert blocked.value.code == "task_blocked"
    await store.complete_task(first.lease_id)
    assert (await store.claim_task(agent="b")).task_id == dependent.id


async def test_unknown_dependency_is_not_found_and_adds_nothing(store):
    with pytest.raises(NotFound):
        await store.add_task("x", depends_on=[42])
    assert await store.list_tasks() == []


async def test_tokens_strictly_increase(store):
    for i in range(5):
        await store.add_task(f"t{i}")
    tokens = [(await store.claim_task(agent="a")).token for _ in range(5)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 5


async def test_expired_lease_is_reaped_and_refused(store, clock):
    await store.add_task("t", max_attempts=3)
    old = await store.claim_task(agent="a", ttl=10)
    await store.claim_files(old.lease_id, ["src/a.py"])
    clock.advance(11)
    new = await store.claim_task(agent="b", ttl=10)  # reaps the old lease first
    assert new.task_id == old.task_id and new.token > old.token
    for call in (store.complete_task, store.heartbeat):
        with pytest.raises(Refused) as exc:
            await call(old.lease_id)
        assert exc.value.code == "lease_not_active"
    with pytest.raises(Refused):
        await store.claim_files(old.lease_id, ["src/b.py"])
    # the old holder's claim was released, so the new holder can take the file
    assert await store.claim_files(new.lease_id, ["src/a.py"]) == ["src/a.py"]
    lease = await store.get_lease(old.lease_id)
    assert lease.status == "expired" and lease.claims == ()


async def test_refusal_after_reap_keeps_the_reap(store, clock):
    await store.add_task("t")
    lease = await store.claim_task(agent="a", ttl=5)
    clock.advance(6)
    with pytest.raises(Refused):
        await store.complete_task(lease.lease_id)
    assert (await store.get_lease(lease.lease_id)).status == "expired"
    assert (await store.get_task(lease.task_id)).status == "pending"


async def test_max_attempts_fails_the_task(store, clock):
    task = await store.add_task("flaky", max_attempts=2)
    a = await store.claim_task(agent="a", ttl=5)
    await store.fail_task(a.lease_id, "boom")
    assert (await store.get_task(task.id)).status == "pending"
    await store.claim_task(agent="a", ttl=5)
    clock.advance(6)
    await store.reap()
    done = await store.get_task(task.id)
    assert done.status == "failed" and done.attempts == 2
    assert "expired" in done.last_error
    retried = await store.retry_task(task.id)
    assert retried.status == "pending" and retried.attempts == 0


async def test_heartbeat_extends_expiry(store, clock):
    await store.add_task("t")
    lease = await store.claim_task(agent="a", ttl=10)
    clock.advance(8)
    beat = await store.heartbeat(lease.lease_id, ttl=30)
    clock.advance(20)
    assert await store.reap() == []
    assert beat.expires_at > lease.expires_at
    assert (await store.get_lease(lease.lease_id)).status == "active"


async def test_stale_token_and_foreign_agent_refused(store):
    await store.add_task("t")
    lease = await store.claim_task(agent="a")
    with pytest.raises(Refused) as stale:
        await store.complete_task(lease.lease_id, token=lease.token + 1)
    assert stale.value.code == "stale_token"
    with pytest.raises(Refused) as foreign:
        await store.heartbeat(lease.lease_id, agent="b")
    assert foreign.value.code == "foreign_lease"
    await store.complete_task(lease.lease_id, token=lease.token, agent="a")


async def test_file_claims_are_exclusive_and_all_or_nothing(store):
    await store.add_task("a")
    await store.add_task("b")
    la = await store.claim_task(agent="a", worktree="wt-a")
    lb = await store.claim_task(agent="b", worktree="wt-b")
    assert await store.claim_files(la.lease_id, ["src/x.py", "src/y.py"]) == ["src/x.py", "src/y.py"]
    assert await store.claim_files(la.lease_id, ["src/x.py"]) == []  # idempotent
    with pytest.raises(Refused) as exc:
        await store.claim_files(lb.lease_id, ["src/z.py", "src/y.py"])
    assert exc.value.code == "claim_conflict"
    assert "L1" in exc.value.message and "wt-a" in exc.value.message and "T1" in exc.value.message
    assert (await store.get_lease(lb.lease_id)).claims == ()  # z.py was not claimed either
    await store.release_files(la.lease_id, ["src/y.py"])
    assert await store.claim_files(lb.lease_id, ["src/z.py", "src/y.py"]) == ["src/y.py", "src/z.py"]


async def test_unique_index_backs_the_claim_rule(store, db_path):
    await store.add_task("a")
    await store.add_task("b")
    la = await store.claim_task(agent="a")
    lb = await store.claim_task(agent="b")
    await store.claim_files(la.lease_id, ["f"])
    with RawDB(db_path) as raw:
        with pytest.raises(raw.IntegrityError):
            raw.execute("INSERT INTO claims (lease_id, path, claimed_at) VALUES (?, 'f', 0)", (lb.lease_id,))
        with pytest.raises(raw.IntegrityError):
            raw.execute("INSERT INTO leases (task_id, agent, token, ttl, acquired_at, heartbeat_at, expires_at)"
                        " VALUES (1, 'x', 99, 1, 0, 0, 1e12)")


async def test_scope_limits_claims(store):
    await store.add_task("docs", scope=["docs/**", "*.md"])
    lease = await store.claim_task(agent="a")
    assert await store.claim_files(lease.lease_id, ["docs/a/b.txt", "README.md"])
    with pytest.raises(Refused) as exc:
        await store.claim_files(lease.lease_id, ["src/app.py"])
    assert exc.value.code == "out_of_scope"


async def test_bad_scope_glob_is_bad_input(store):
    with pytest.raises(BadInput):
        await store.add_task("x", scope=["../outside/**"])


async def test_cancel_releases_the_lease_and_claims(store):
    task = await store.add_task("t")
    lease = await store.claim_task(agent="a")
    await store.claim_files(lease.lease_id, ["f"])
    cancelled = await store.cancel_task(task.id)
    assert cancelled.status == "cancelled"
    assert (await store.get_lease(lease.lease_id)).status == "released"
    assert await store.active_claims() == []
    assert (await store.cancel_task(task.id)).status == "cancelled"  # twice: no-op
    with pytest.raises(Refused):
        await store.complete_task(lease.lease_id)


async def test_release_lease_does_not_burn_an_attempt(store):
    task = await store.add_task("t", max_attempts=1)
    lease = await store.claim_task(agent="a")
    await store.release_lease(lease.lease_id)
    again = await store.get_task(task.id)
    assert again.status == "pending" and again.attempts == 0


async def test_done_task_cannot_be_retried_or_cancelled(store):
    task = await store.add_task("t")
    lease = await store.claim_task(agent="a")
    await store.complete_task(lease.lease_id)
    with pytest.raises(Refused):
        await store.retry_task(task.id)
    with pytest.raises(Refused):
        await store.cancel_task(task.id)


async def test_worktrees_register_once(store):
    await store.add_worktree("wt-a", "/tmp/a", branch="a")
    await store.add_worktree("wt-a", "/tmp/a", branch="a")
    with pytest.raises(Refused):
        await store.add_worktree("wt-b", "/tmp/a")
    events = [e.event for e in await store.audit_tail(50)]
    assert events.count("worktree.added") == 1
    await store.remove_worktree("wt-a")
    assert [w.active for w in await store.list_worktrees()] == [False]


async def test_pending_approvals_die_with_their_lease(store, clock):
    """Nobody may approve a step for a holder that is gone: the task may be someone else's now."""
    for i in range(3):
        await store.add_task(f"t{i}")
    expiring = await store.claim_task(agent="a", ttl=5)
    failing = await store.claim_task(agent="b", ttl=60)
    cancelled = await store.claim_task(agent="c", ttl=60)
    asks = {}
    for name, lease in (("expiring", expiring), ("failing", failing), ("cancelled", cancelled)):
        asks[name] = await store.request_approval(kind="merge", summary=name, lease_id=lease.lease_id)
    free = await store.request_approval(kind="custom", summary="no lease")

    await store.fail_task(failing.lease_id, "gave up")
    await store.cancel_task(cancelled.task_id)
    clock.advance(6)  # the first lease is past its expiry, not yet reaped
    with pytest.raises(Refused) as exc:
        await store.decide_approval(asks["expiring"].id, approve=True, actor="person:p")
    assert exc.value.code == "approval_closed"
    for name in asks:
        a = await store.get_approval(asks[name].id)
        assert a.status == "cancelled" and a.decided_by == "tower", name
    assert "expired" in (await store.get_approval(asks["expiring"].id)).reason
    assert (await store.decide_approval(free.id, approve=True, actor="person:p")).status == "approved"
    cancelled_events = [e for e in await store.audit_tail(100) if e.event == "approval.cancelled"]
    assert sorted(e.approval_id for e in cancelled_events) == sorted(a.id for a in asks.values())
    assert (await store.verify_audit()).ok


async def test_a_request_cannot_borrow_another_agents_lease(store):
    await store.add_task("t")
    lease = await store.claim_task(agent="alice")
    with pytest.raises(Refused) as exc:
        await store.request_approval(kind="merge", summary="x", lease_id=lease.lease_id, requested_by="bob")
    assert exc.value.code == "foreign_lease"
    own = await store.request_approval(kind="merge", summary="x", lease_id=lease.lease_id, requested_by="alice")
    assert own.task_id == lease.task_id


async def test_a_claim_covers_everything_below_it(store):
    await store.add_task("a")
    await store.add_task("b")
    la = await store.claim_task(agent="a", worktree="wt-a")
    lb = await store.claim_task(agent="b", worktree="wt-b")
    await store.claim_files(la.lease_id, ["src"])
    with pytest.raises(Refused) as below:
        await store.claim_files(lb.lease_id, ["src/f2.py"])
    assert below.value.code == "claim_conflict" and "src/f2.py overlaps src" in below.value.message
    await store.release_files(la.lease_id)
    await store.claim_files(la.lease_id, ["src/deep/x.py"])
    with pytest.raises(Refused):
        await store.claim_files(lb.lease_id, ["src"])  # an ancestor of a held path
    assert await store.claim_files(lb.lease_id, ["srcs/x.py", "src2"]) == ["src2", "srcs/x.py"]  # not prefixes
    assert await store.claim_files(la.lease_id, ["src/deep/x.py", "src/deep/y.py"]) == ["src/deep/y.py"]


async def test_claim_answer_is_the_documented_json(store, clock):
    """What `tower task claim --json` prints as data (DESIGN.md): ids prefixed, times ISO-8601 UTC."""
    await store.add_task("t", scope=["src/**"])
    row = await store.claim_task(agent="a", ttl=90)
    assert row.to_json() == {"lease_id": "L1", "token": 1, "task_id": "T1", "title": "t", "scope": ["src/**"],
                             "expires_at": "2027-01-15T08:01:30.000Z"}


async def test_lease_answers_are_the_documented_json(store, clock):
    """heartbeat / done / fail / release answer the lease as `tower lease show --json` prints it."""
    await store.add_task("t", scope=["src/**"])
    claim = await store.claim_task(agent="a", worktree="wt", ttl=90)
    await store.claim_files(claim.lease_id, ["src/a.py"])
    clock.advance(10)
    beat = await store.heartbeat(claim.lease_id)
    assert beat.claims == ("src/a.py",) and beat.ended_at is None
    assert beat.to_json() == {
        "id": "L1", "task_id": "T1", "task_title": "t", "agent": "a", "worktree": "wt", "token": 1,
        "status": "active", "ttl": 90.0, "acquired_at": "2027-01-15T08:00:00.000Z",
        "heartbeat_at": "2027-01-15T08:00:10.000Z", "expires_at": "2027-01-15T08:01:40.000Z", "ended_at": None,
        "claims": ["src/a.py"]}
    done = await store.complete_task(claim.lease_id)
    assert done.to_json() == (await store.get_lease(done.id)).to_json()
    assert done.to_json() | {"status": "active", "ended_at": None, "claims": ["src/a.py"]} == beat.to_json()
    assert done.status == "completed" and done.ended_at == clock.now
