"""WatchService end to end: real git worktrees, real writes, the real watcher, a real store file."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from store import Store
from tests.conftest import git
from tests.watching.helpers import Env, closed, keyed, open_conflict, running_service, wait_until
from tui.services.watch import WatchService


async def lease(store: Store, worktree: str, scope: list[str], claim: tuple[str, ...] = ()) -> int:
    task = await store.add_task(f"work in {worktree}", scope=scope)
    got = await store.claim_task(agent=f"agent-{worktree}", worktree=worktree, task_id=task.id)
    if claim:
        await store.claim_files(got.lease_id, list(claim))
    return got.lease_id


async def audit_events(store: Store, name: str) -> list:
    return [e for e in await store.audit_after(0, limit=100_000) if e.event == name]


async def changed_paths(store: Store, worktree: str) -> set[str]:
    return {fc.path for fc in await store.list_changed_files(worktree)}


async def test_claimed_by_other_names_both_worktrees_and_closes_when_the_claim_is_released(
    env: Env, agents: Store
) -> None:
    la = await lease(agents, "wt-a", ["src/"], claim=("src/app.py",))
    lb = await lease(agents, "wt-b", ["src/", "README.md"])
    async with running_service(env.db) as run:
        env.write("wt-b", "src/app.py", "print('b')\n")
        c = await open_conflict(agents, "claimed_by_other", "src/app.py", "wt-b")
        assert (c.other_worktree, c.other_lease_id, c.lease_id) == ("wt-a", la, lb)
        for name in ("wt-a", "wt-b", f"L{la}", f"L{lb}", "agent-wt-a", "agent-wt-b"):
            assert name in c.message, (name, c.message)
        assert c.detail["holder"]["lease"] == f"L{la}" and c.detail["change"] == "modified"
        # wt-b's own lease covers src/, and nobody else changed the file: nothing else
        assert keyed(await agents.list_conflicts("open")) == {("claimed_by_other", "src/app.py", "wt-b", "wt-a")}
        (opened,) = await audit_events(agents, "conflict.opened")
        assert opened.details["conflict"] == f"C{c.id}" and opened.worktree == "wt-b"

        # repeated writes keep one open conflict; README.md (in wt-b's scope) marks "all processed"
        for i in range(4):
            env.write("wt-b", "src/app.py", f"print({i})\n")
        env.write("wt-b", "README.md", "marker\n")
        await wait_until(lambda: _has(agents, "wt-b", "README.md"), "the marker to be stored")
        assert [x.id for x in await agents.list_conflicts(None)] == [c.id]

        await agents.release_files(la, ["src/app.py"])
        done = await closed(agents, c.id)
        assert done.status == "resolved" and done.closed_by == "watcher"
        (resolved,) = await audit_events(agents, "conflict.resolved")
        assert resolved.details["conflict"] == f"C{c.id}"
        assert f"L{la} no longer claims src/app.py" in resolved.details["reason"]
        await wait_until(lambda: _event(run, "resolved", c.id), "the resolved callback")
        assert [(e.action, e.conflict.id) for e in run.events] == [("opened", c.id), ("resolved", c.id)]


async def _has(store: Store, worktree: str, path: str) -> bool:
    return path in await changed_paths(store, worktree)


async def _event(run, action: str, conflict_id: int) -> bool:
    return any(e.action == action and e.conflict.id == conflict_id for e in run.events)


async def test_a_touch_or_an_identical_rewrite_is_not_a_write(env: Env, agents: Store) -> None:
    async with running_service(env.db) as run:
        os.utime(env.wt["wt-a"] / "src" / "app.py")
        os.utime(env.wt["wt-b"] / "README.md", (1_000_000_000, 1_000_000_000))
        env.write("wt-a", "README.md", env.read("wt-a", "README.md"))
        env.write("main", "docs/guide.md", env.read("main", "docs/guide.md"))
        env.write("wt-b", "notes.txt", "the marker\n")  # written last: everything above is processed
        await open_conflict(agents, "unleased_write", "notes.txt", "wt-b")
        assert keyed(await agents.list_conflicts(None)) == {("unleased_write", "notes.txt", "wt-b", None)}
        await run.service.rescan_now()  # the reconciliation pass agrees: a touch is not a write
        assert len(await agents.list_conflicts(None)) == 1
        assert await changed_paths(agents, "wt-a") == set()


async def test_out_of_scope_writes_are_flagged_and_closed_by_a_revert(env: Env, agents: Store) -> None:
    la = await lease(agents, "wt-a", ["src/"])
    original = env.read("wt-a", "README.md")
    async with running_service(env.db):
        env.write("wt-a", "README.md", "# rewritten\n")
        env.write("wt-a", "docs/new.md", "a new page\n")
        env.write("wt-a", "src/ok.py", "inside the scope\n")
        c1 = await open_conflict(agents, "out_of_scope", "README.md", "wt-a")
        c2 = await open_conflict(agents, "out_of_scope", "docs/new.md", "wt-a")
        assert c1.lease_id == la and c1.task_id is not None
        assert "src/**" in c1.message and f"L{la}" in c1.message and "wt-a" in c1.message
        await wait_until(lambda: _has(agents, "wt-a", "src/ok.py"), "src/ok.py stored")
        assert {c.path for c in await agents.list_conflicts("open")} == {"README.md", "docs/new.md"}

        env.write("wt-a", "README.md", original)  # back to the baseline
        (env.wt["wt-a"] / "docs" / "new.md").unlink()  # deleted, and it had no baseline
        for c in (c1, c2):
            assert (await closed(agents, c.id)).status == "resolved"
        reasons = {e.details["conflict"]: e.details["reason"] for e in await audit_events(agents, "conflict.resolved")}
        assert reasons == {f"C{c1.id}": "README.md in wt-a is back to its baseline",
                           f"C{c2.id}": "docs/new.md in wt-a is back to its baseline"}
        assert await changed_paths(agents, "wt-a") == {"src/ok.py"}


async def test_the_same_file_edited_in_two_worktrees_is_one_concurrent_edit(env: Env, agents: Store) -> None:
    la = await lease(agents, "wt-a", ["src/"])
    lb = await lease(agents, "wt-b", ["src/"])
    original = env.read("wt-a", "src/app.py")
    async with running_service(env.db):
        env.write("wt-a", "src/app.py", "print('a')\n")
        await wait_until(lambda: _has(agents, "wt-a", "src/app.py"), "wt-a's change stored")
        env.write("wt-b", "src/app.py", "print('b')\n")
        c = await open_conflict(agents, "concurrent_edit", "src/app.py", "wt-b")
        assert (c.other_worktree, c.lease_id, c.other_lease_id) == ("wt-a", lb, la)
        assert "wt-a" in c.message and "wt-b" in c.message

        # more writes on both sides: still one conflict for the pair, whichever side writes
        env.write("wt-a", "src/app.py", "print('a2')\n")
        env.write("wt-b", "src/app.py", "print('b2')\n")
        env.write("wt-b", "src/marker.py", "marker\n")
        await wait_until(lambda: _has(agents, "wt-b", "src/marker.py"), "the marker stored")
        edits = [x for x in await agents.list_conflicts(None) if x.kind == "concurrent_edit"]
        assert [x.id for x in edits] == [c.id]

        env.write("wt-a", "src/app.py", original)  # wt-a reverts: no longer two sides
        done = await closed(agents, c.id)
        assert done.status == "resolved"
        (ev,) = await audit_events(agents, "conflict.resolved")
        assert ev.details["reason"] == "src/app.py in wt-a is back to its baseline"


async def test_events_lost_on_purpose_are_caught_by_the_reconciliation_rescan(env: Env, agents: Store) -> None:
    await lease(agents, "wt-a", ["src/"], claim=("src/app.py",))
    async with running_service(env.db, rescan_interval=0.3) as run:
        watcher = run.service.watcher
        assert watcher is not None
        watcher.pause()  # every file event is dropped from here on
        try:
            env.write("wt-b", "src/app.py", "written while nobody listened\n")
            env.write("wt-b", "src/new/deeper.py", "in a directory created meanwhile\n")
            c = await open_conflict(agents, "claimed_by_other", "src/app.py", "wt-b")
            await open_conflict(agents, "unleased_write", "src/new/deeper.py", "wt-b")
        finally:
            watcher.resume()
        assert c.other_worktree == "wt-a"


async def test_ignored_paths_never_raise_conflicts(env: Env, agents: Store) -> None:
    ignored = [
        "node_modules/pkg/index.js",
        ".venv/lib/site.py",
        "build/out.o",
        "dist/pkg.whl",
        "debug.log",  # .gitignore: *.log
        "generated/code.py",  # .gitignore: generated/
        "src/__pycache__/app.cpython-311.pyc",
        "myenv/pyvenv.cfg",  # a virtualenv, whatever its name ...
        "myenv/lib/x.py",  # ... and what is inside it
        ".#lock",
        "src/app.py.swp",
    ]
    async with running_service(env.db) as run:
        for wt in ("main", "wt-a"):
            for rel in ignored:
                env.write(wt, rel, f"{wt} {rel}\n")
        env.write("wt-a", "marker.txt", "the marker\n")
        await open_conflict(agents, "unleased_write", "marker.txt", "wt-a")
        await run.service.rescan_now()
        assert keyed(await agents.list_conflicts(None)) == {("unleased_write", "marker.txt", "wt-a", None)}
        assert await changed_paths(agents, "main") == set()


async def test_baselines_survive_a_restart(env: Env, agents: Store) -> None:
    original = env.read("wt-b", "README.md")
    async with running_service(env.db):
        env.write("wt-b", "README.md", "edited\n")
        env.write("wt-a", "docs/guide.md", "edited\n")
        c1 = await open_conflict(agents, "unleased_write", "README.md", "wt-b")
        c2 = await open_conflict(agents, "unleased_write", "docs/guide.md", "wt-a")
    # while nobody watches: one change reverted, another made
    env.write("wt-b", "README.md", original)
    env.write("wt-a", "src/app.py", "edited offline\n")
    async with running_service(env.db):
        assert (await closed(agents, c1.id)).status == "resolved"
        await open_conflict(agents, "unleased_write", "src/app.py", "wt-a")
        assert (await agents.get_conflict(c2.id)).status == "open"
    (guide,) = [fc for fc in await agents.list_changed_files("wt-a") if fc.path == "docs/guide.md"]
    assert guide.base_hash == hashlib.sha256(b"# guide\n").hexdigest()
    assert guide.hash == hashlib.sha256(b"edited\n").hexdigest()


async def test_an_acknowledged_conflict_stays_quiet_until_its_cause_comes_back(env: Env, agents: Store) -> None:
    async with running_service(env.db):
        original = env.read("wt-a", "README.md")
        env.write("wt-a", "README.md", "one\n")
        c1 = await open_conflict(agents, "unleased_write", "README.md", "wt-a")
        await agents.ack_conflict(c1.id, actor="person:test")
        env.write("wt-a", "README.md", "two\n")
        env.write("wt-a", "marker.txt", "marker\n")
        await open_conflict(agents, "unleased_write", "marker.txt", "wt-a")
        assert [c.path for c in await agents.list_conflicts("open")] == ["marker.txt"]

        env.write("wt-a", "README.md", original)  # reverted: the episode is over ...
        await wait_until(lambda: _gone(agents, "wt-a", "README.md"), "the revert stored")
        env.write("wt-a", "README.md", "three\n")  # ... and a new one starts
        c3 = await open_conflict(agents, "unleased_write", "README.md", "wt-a")
        assert c3.id != c1.id and (await agents.get_conflict(c1.id)).status == "acked"


async def _gone(store: Store, worktree: str, path: str) -> bool:
    return path not in await changed_paths(store, worktree)


async def test_worktrees_added_and_removed_while_running(env: Env, agents: Store) -> None:
    async with running_service(env.db) as run:
        env.tower("worktree", "add", "wt-c")
        env.wt["wt-c"] = (env.repo.parent / f"{env.repo.name}-wt-c").resolve()

        async def watched() -> bool:
            return "wt-c" in run.service.worktrees

        await wait_until(watched, "wt-c to be watched")
        await asyncio.wait_for(run.service.wait_ready(), 15)
        env.write("wt-c", "README.md", "from the new worktree\n")
        c = await open_conflict(agents, "unleased_write", "README.md", "wt-c")

        git("worktree", "remove", "--force", str(env.wt["wt-c"]), cwd=env.repo)
        env.tower("worktree", "sync")
        done = await closed(agents, c.id)
        assert done.status == "resolved"
        (ev,) = await audit_events(agents, "conflict.resolved")
        assert ev.details["reason"] == "worktree wt-c is no longer registered"

        async def unwatched() -> bool:
            return "wt-c" not in run.service.worktrees

        await wait_until(unwatched, "wt-c to be dropped")


async def test_a_second_service_stands_by_and_takes_over(env: Env, agents: Store) -> None:
    async with Store(env.db, actor="second") as other:
        second = WatchService(other, rescan_interval=None)
        second.lock_retry_interval = 0.05
        task = None
        try:
            async with running_service(env.db):
                task = asyncio.create_task(second.run())

                async def standing_by() -> bool:
                    return second.status == "standby"

                await wait_until(standing_by, "the second watcher to stand by")
                assert any("another Tower watcher" in w for w in second.warnings)
            await asyncio.wait_for(second.wait_ready(), 15)  # the first one stopped: it takes over
            assert second.status in ("watching", "polling") and second.warnings == []
            env.write("wt-a", "README.md", "seen by the second watcher\n")
            await open_conflict(agents, "unleased_write", "README.md", "wt-a")
        finally:
            second.stop()
            if task is not None:
                await asyncio.wait_for(task, 15)


async def test_running_out_of_inotify_watches_falls_back_to_polling_loudly(env: Env, agents: Store) -> None:
    import functools

    import watchfiles

    from core.watcher import Watcher

    def awatch(*paths, **kwargs):
        if not kwargs.get("force_polling"):  # what notify raises when inotify runs out of watches
            raise OSError(f'OS file watch limit reached. about {list(paths)!r}')
        return watchfiles.awatch(*paths, **{**kwargs, "poll_delay_ms": 50})

    factory = functools.partial(Watcher, awatch=awatch)
    async with running_service(env.db, watcher_factory=factory) as run:
        assert run.service.status == "polling"
        (warning,) = run.service.warnings
        assert "inotify watch limit reached" in warning and "falling back to polling" in warning
        assert any(warning in st.warnings for st in run.statuses)  # reported through on_status
        # a new file: notify's poll watcher compares whole-second mtimes, so a rewrite within the
        # second of the checkout could be left to the reconciliation rescan (off here)
        env.write("wt-b", "notes.txt", "seen by polling\n")
        await open_conflict(agents, "unleased_write", "notes.txt", "wt-b")


async def test_cancelling_run_closes_everything(env: Env, agents: Store) -> None:
    async with Store(env.db, actor="watch-test") as store:
        service = WatchService(store, rescan_interval=0.5)
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.wait_ready(), 15)
        task.cancel()  # what a UI worker does on quit
        with pytest.raises(asyncio.CancelledError):
            await task
        assert service.status == "stopped"
        assert service.watcher is not None and not service.watcher._tasks


def test_one_rescan_default_for_the_watcher_the_service_and_tower_watch() -> None:
    """The watcher, the service and ``tower watch --rescan-interval`` drifted apart once (10 s vs 20 s)."""
    import inspect

    from core.watcher import DEFAULT_RESCAN_INTERVAL, Watcher
    from tui.commands.watch import watch

    option = next(p for p in watch.params if p.name == "rescan_interval")
    assert {
        inspect.signature(Watcher).parameters["rescan_interval"].default,
        inspect.signature(WatchService).parameters["rescan_interval"].default,
        option.default,
    } == {DEFAULT_RESCAN_INTERVAL}
