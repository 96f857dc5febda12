"""The store side of the watcher: baselines (changed_files), batches, one open conflict per key."""

from __future__ import annotations

from types import SimpleNamespace

from core.conflict_rules import ConflictSpec
from store import Store


def change(wt: str, path: str, old: str | None, new: str | None):
    fp = lambda h: None if h is None else (len(h), 1, h)  # noqa: E731
    return SimpleNamespace(worktree=wt, path=path, old=fp(old), new=fp(new))


def update(wt: str, files: dict[str, str], *, replace: bool = False, deletes=()):
    return SimpleNamespace(worktree=wt, replace=replace, upserts={p: (len(h), 1, h) for p, h in files.items()},
                           deletes=list(deletes))


async def rows(store: Store, wt: str = "wt-a") -> dict[str, tuple]:
    return {fc.path: (fc.episode, fc.base_hash, fc.hash) for fc in await store.list_changed_files(wt)}


async def test_baseline_is_the_first_known_content_and_a_revert_ends_the_episode(store: Store) -> None:
    await store.apply_watch_batch([update("wt-a", {"a": "A0", "b": "B0"}, replace=True)], [])
    assert await store.load_snapshot("wt-a") == {"a": (2, 1, "A0"), "b": (2, 1, "B0")}
    assert await rows(store) == {}

    await store.apply_watch_batch([update("wt-a", {"a": "A1"})], [change("wt-a", "a", "A0", "A1")])
    ((ep1, base, cur),) = (await rows(store)).values()
    assert (base, cur) == ("A0", "A1")
    await store.apply_watch_batch([], [change("wt-a", "a", "A1", "A2")])  # the baseline does not move
    assert (await rows(store))["a"] == (ep1, "A0", "A2")
    await store.apply_watch_batch([], [change("wt-a", "a", "A2", "A0")])  # reverted
    assert await rows(store) == {}
    # changed, reverted and changed again within one batch: a new episode
    await store.apply_watch_batch([], [change("wt-a", "a", "A0", "A3"), change("wt-a", "a", "A3", "A0"),
                                       change("wt-a", "a", "A0", "A4")])
    ep2 = (await rows(store))["a"][0]
    assert ep2 > ep1 and (await rows(store))["a"][1:] == ("A0", "A4")

    # created then deleted: back to "absent"; deleted then re-created identical: back too
    await store.apply_watch_batch([], [change("wt-a", "new", None, "N")])
    assert (await rows(store))["new"][1:] == (None, "N")
    await store.apply_watch_batch([update("wt-a", {}, deletes=["new", "b"])],
                                  [change("wt-a", "new", "N", None), change("wt-a", "b", "B0", None)])
    assert set(await rows(store)) == {"a", "b"} and (await rows(store))["b"][1:] == ("B0", None)
    await store.apply_watch_batch([], [change("wt-a", "b", None, "B0")])
    assert set(await rows(store)) == {"a"}


async def test_a_fresh_snapshot_rechecks_the_worktree_rows(store: Store) -> None:
    await store.apply_watch_batch([], [change("wt-a", "a", "A0", "A1"), change("wt-a", "b", "B0", "B1"),
                                       change("wt-a", "c", None, "C1")])
    await store.apply_watch_batch([update("wt-a", {"a": "A0", "b": "B2"}, replace=True)], [])
    assert {p: r[1:] for p, r in (await rows(store)).items()} == {"b": ("B0", "B2")}  # a reverted, c gone


async def test_one_open_conflict_per_key_and_per_pair(store: Store) -> None:
    spec = ConflictSpec(kind="concurrent_edit", path="x", worktree="wt-a", other_worktree="wt-b",
                        message="m", episode="1+2")
    mirror = ConflictSpec(kind="concurrent_edit", path="x", worktree="wt-b", other_worktree="wt-a",
                          message="m", episode="1+2")
    (c, new), (c2, new2), (c3, new3) = await store.record_conflicts([spec, mirror, spec])
    assert new and not new2 and not new3 and c.id == c2.id == c3.id
    assert c.detail["episode"] == "1+2"
    # acked: quiet for the same episode, in either orientation; a new episode opens a new one
    await store.ack_conflict(c.id)
    ((again, new),) = await store.record_conflicts([mirror])
    assert not new and again.id == c.id and again.status == "acked"
    ((fresh, new),) = await store.record_conflicts([ConflictSpec(**{**spec.__dict__, "episode": "1+3"})])
    assert new and fresh.id != c.id
    # the single-conflict verb still works as before (no episode: acked ones do not count)
    other, new = await store.record_conflict(kind="unleased_write", path="y", worktree="wt-a")
    assert new and (await store.record_conflict(kind="unleased_write", path="y", worktree="wt-a"))[1] is False
    opened = [e for e in await store.audit_after(0, limit=100) if e.event == "conflict.opened"]
    assert len(opened) == 3


async def test_watch_world_skips_expired_leases_and_their_claims(store: Store, clock) -> None:
    t = await store.add_task("t", scope=["src/"])
    got = await store.claim_task(agent="a", worktree="wt-a", task_id=t.id, ttl=60)
    await store.claim_files(got.lease_id, ["src/x.py"])
    await store.add_worktree("wt-a", "/nowhere/wt-a")
    world = await store.watch_world(["src/x.py"])
    assert list(world.leases) == [got.lease_id] and world.claims["src/x.py"].lease_id == got.lease_id
    assert world.leases[got.lease_id].scope == ("src/**",) and world.worktrees == frozenset({"wt-a"})
    clock.advance(61)  # expired, not reaped yet: already dead for the watcher
    world = await store.watch_world(["src/x.py"])
    assert world.leases == {} and world.claims == {}
