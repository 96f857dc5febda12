"""core.watcher.Watcher with real files and real watchfiles (inotify, or polling)."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import aclosing
from pathlib import Path

import pytest
import watchfiles
from watchfiles._rust_notify import WatchfilesRustInternalError

import core.watcher as watcher_mod
from core.watcher import Fingerprint, SnapshotUpdate, Watcher, scan
from core.ignore import IgnoreRules
from watcher_testkit import has, kinds, tree, wait_changes, write

# what watchfiles raises when inotify runs out of watches (notify's ErrorKind::MaxFilesWatch)
WATCH_LIMIT = OSError(
    'OS file watch limit reached. about ["/repo"] (Error { kind: MaxFilesWatch, paths: ["/repo"] })'
)


async def started(w: Watcher):
    it = w.changes()
    await w.start()
    await asyncio.wait_for(w.wait_ready(), 10)
    return it


async def test_events_report_modify_add_delete_rename(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"mod.py": "1", "gone.py": "g", "old.py": "o", "pkg/x.py": "x"})
    w = make_watcher({"a": root})  # no periodic rescan: these come from events
    it = await started(w)
    assert w.status == "watching" and not w.polling
    (root / "mod.py").write_text("2")
    (root / "gone.py").unlink()
    write(root, "new.py", "n")
    (root / "old.py").rename(root / "renamed.py")
    got = await wait_changes(it, has(
        ("a", "mod.py", "modified"), ("a", "gone.py", "deleted"), ("a", "new.py", "added"),
        ("a", "old.py", "deleted"), ("a", "renamed.py", "added"),
    ))
    assert len(got) == 5
    (root / "pkg").rename(root / "lib")  # inotify: one event per side, none per file
    await wait_changes(it, has(("a", "pkg/x.py", "deleted"), ("a", "lib/x.py", "added")))
    write(root, "lib/deeper/new_dir_file.py", "d")  # inside a directory created after the start
    await wait_changes(it, has(("a", "lib/deeper/new_dir_file.py", "added")))


async def test_touch_and_identical_rewrite_are_not_changes(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"same.py": "same", "touched.py": "t", "real.py": "1"})
    w = make_watcher({"a": root})
    it = await started(w)
    os.utime(root / "touched.py")
    (root / "same.py").write_text("same")
    write(root, "node_modules/dep/index.js", "ignored")
    write(root, "debug.swp", "ignored")
    (root / "real.py").write_text("2")  # a marker: everything before it has been processed
    got = await wait_changes(it, has(("a", "real.py", "modified")))
    assert kinds(got) == {("a", "real.py", "modified")}
    # the whole baseline first, then only what moved -- stat-only refreshes included
    (baseline,) = w.take_snapshot_updates()
    assert baseline.replace and set(baseline.upserts) == {"same.py", "touched.py", "real.py"}
    assert w.take_snapshot_updates() == []
    os.utime(root / "touched.py", (1_000_000, 1_000_000))
    (root / "real.py").write_text("3")
    got = await wait_changes(it, has(("a", "real.py", "modified")))
    assert kinds(got) == {("a", "real.py", "modified")}
    (update,) = w.take_snapshot_updates()
    assert not update.replace and update.deletes == []
    assert set(update.upserts) == {"touched.py", "real.py"}
    assert update.upserts["touched.py"].mtime_ns == 1_000_000 * 10**9


async def test_change_while_paused_is_caught_by_rescan_now(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"a.py": "1"})
    w = make_watcher({"a": root})
    it = await started(w)
    w.pause()
    (root / "a.py").write_text("2")
    write(root, "b.py", "b")
    found = await asyncio.wait_for(w.rescan_now(), 10)
    assert kinds(found) == {("a", "a.py", "modified"), ("a", "b.py", "added")}
    # also published, once: the lost event changes nothing after the rescan
    got = await wait_changes(it, has(("a", "a.py", "modified")))
    assert kinds(got) == kinds(found)
    w.resume()
    (root / "b.py").write_text("b2")
    got = await wait_changes(it, has(("a", "b.py", "modified")))
    assert kinds(got) == {("a", "b.py", "modified")}


async def test_change_while_paused_is_caught_by_periodic_rescan(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"a.py": "1"})
    w = make_watcher({"a": root}, rescan_interval=0.2)
    it = await started(w)
    w.pause()
    (root / "a.py").write_text("2")
    (root / "a.py").rename(root / "b.py")
    await wait_changes(it, has(("a", "a.py", "deleted"), ("a", "b.py", "added")))
    assert w.missed_by_events == 0  # paused on purpose: not reported as missed events


async def test_changes_are_attributed_to_the_right_worktree(tmp_path: Path, make_watcher) -> None:
    main = tree(tmp_path / "repo", {"shared.py": "m"})
    nested = tree(main / ".worktrees" / "feature", {"shared.py": "f", ".git": "gitdir: x"})
    other = tree(tmp_path / "other", {"shared.py": "o"})
    w = make_watcher({"main": main, "feature": nested, "other": other})
    it = await started(w)
    snap = w.snapshot()
    assert sorted(snap["main"]) == ["shared.py"]  # the nested worktree is not main's
    assert sorted(snap["feature"]) == ["shared.py"]
    (nested / "shared.py").write_text("f2")
    got = await wait_changes(it, has(("feature", "shared.py", "modified")))
    assert kinds(got) == {("feature", "shared.py", "modified")}
    (other / "shared.py").write_text("o2")
    (main / "shared.py").write_text("m2")
    got = await wait_changes(it, has(("other", "shared.py", "modified"), ("main", "shared.py", "modified")))
    assert len(got) == 2


async def test_set_worktrees_adds_and_removes_roots_live(tmp_path: Path, make_watcher) -> None:
    a = tree(tmp_path / "a", {"a.py": "a"})
    b = tree(tmp_path / "b", {"b.py": "b"})
    w = make_watcher({"a": a})
    it = await started(w)
    w.set_worktrees({"a": a, "b": b})
    await asyncio.wait_for(w.wait_ready(), 10)
    assert sorted(w.snapshot()) == ["a", "b"]
    (b / "b.py").write_text("b2")
    await wait_changes(it, has(("b", "b.py", "modified")))
    w.set_worktrees({"b": b})
    await asyncio.wait_for(w.wait_ready(), 10)
    (a / "a.py").write_text("a2")  # no longer watched
    (b / "b.py").write_text("b3")
    got = await wait_changes(it, has(("b", "b.py", "modified")))
    assert kinds(got) == {("b", "b.py", "modified")}


def fail_native(error: BaseException):
    """An awatch whose native watcher fails at once (like an exhausted inotify)."""
    calls: list[bool] = []

    def fake(*paths, **kwargs):
        calls.append(kwargs["force_polling"])
        if not kwargs["force_polling"]:
            async def boom():
                raise error
                yield  # pragma: no cover

            return boom()
        return watchfiles.awatch(*paths, **kwargs)

    fake.calls = calls  # type: ignore[attr-defined]
    return fake


async def test_watch_limit_falls_back_to_polling(tmp_path: Path, make_watcher, caplog) -> None:
    root = tree(tmp_path / "a", {"a.py": "a"})
    fake = fail_native(WATCH_LIMIT)
    w = make_watcher({"a": root}, force_polling=False, poll_delay_ms=50, awatch=fake)
    with caplog.at_level(logging.ERROR, logger="tower.watcher"):
        it = await started(w)
    assert fake.calls == [False, True]
    assert w.status == "polling" and w.polling
    assert len(w.warnings) == 1 and "inotify watch limit reached" in w.warnings[0]
    assert "falling back to polling" in w.warnings[0]
    assert "inotify watch limit reached" in caplog.text
    write(root, "new.py", "n")  # seen by the poll watcher (no periodic rescan here)
    await wait_changes(it, has(("a", "new.py", "added")))


async def test_runtime_watcher_error_falls_back_to_polling(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"a.py": "a"})
    calls: list[bool] = []
    polling_requested = asyncio.Event()

    async def flaky(*paths, **kwargs):
        """Native events until the first batch, then notify's sticky runtime error."""
        calls.append(kwargs["force_polling"])
        if kwargs["force_polling"]:
            polling_requested.set()
        async with aclosing(watchfiles.awatch(*paths, **kwargs)) as inner:
            async for batch in inner:
                yield batch
                if not kwargs["force_polling"]:
                    raise WatchfilesRustInternalError("error in underlying watcher: boom")

    w = make_watcher({"a": root}, force_polling=False, poll_delay_ms=50, awatch=flaky)
    it = await started(w)
    write(root, "first.py", "1")
    await wait_changes(it, has(("a", "first.py", "added")))
    await asyncio.wait_for(polling_requested.wait(), 10)
    await asyncio.wait_for(w.wait_ready(), 10)  # cleared on the failure, set once polling is up
    assert calls == [False, True] and w.status == "polling"
    assert len(w.warnings) == 1 and "boom" in w.warnings[0]
    write(root, "second.py", "2")
    await wait_changes(it, has(("a", "second.py", "added")))


async def test_force_polling_from_the_start(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"a.py": "a"})
    w = make_watcher({"a": root}, force_polling=True, poll_delay_ms=50)
    it = await started(w)
    assert w.status == "polling" and w.warnings == []
    write(root, "sub/new.py", "n")
    await wait_changes(it, has(("a", "sub/new.py", "added")))


async def test_stored_snapshot_that_differs_from_disk_yields_changes_at_start(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"same.py": "s", "edited.py": "old", "touched.py": "t", "gone.py": "g"})
    stored = scan(root, IgnoreRules(root))
    (root / "edited.py").write_text("new")
    os.utime(root / "touched.py")
    (root / "gone.py").unlink()
    write(root, "added.py", "a")
    as_rows = {p: (fp.size, fp.mtime_ns, fp.hash) for p, fp in stored.items()}  # as the store returns them
    w = make_watcher({"a": root}, snapshot={"a": as_rows})
    it = await started(w)
    got = await wait_changes(it, lambda g: bool(g))
    assert kinds(got) == {("a", "edited.py", "modified"), ("a", "gone.py", "deleted"), ("a", "added.py", "added")}
    updates = w.take_snapshot_updates()
    assert len(updates) == 1 and not updates[0].replace
    assert set(updates[0].upserts) == {"edited.py", "added.py", "touched.py"}
    assert updates[0].deletes == ["gone.py"]
    assert isinstance(w.snapshot("a")["a"]["same.py"], Fingerprint)


async def test_gitignore_change_reloads_rules_without_bogus_changes(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"data.csv": "1", "run.log": "l", "code.py": "c"})
    write(root, ".gitignore", "*.log\n", old=True)
    w = make_watcher({"a": root})
    it = await started(w)
    assert sorted(w.snapshot()["a"]) == [".gitignore", "code.py", "data.csv"]
    write(root, ".gitignore", "*.csv\n")  # data.csv becomes ignored, run.log visible
    got = await wait_changes(it, has(("a", ".gitignore", "modified")))
    assert kinds(got) == {("a", ".gitignore", "modified")}
    assert sorted(w.snapshot()["a"]) == [".gitignore", "code.py", "run.log"]
    (root / "data.csv").write_text("2")  # now ignored
    (root / "run.log").write_text("l2")  # now watched
    got = await wait_changes(it, has(("a", "run.log", "modified")))
    assert kinds(got) == {("a", "run.log", "modified")}


async def test_missing_root_is_reported_and_others_still_watched(tmp_path: Path, make_watcher) -> None:
    a = tree(tmp_path / "a", {"a.py": "a"})
    w = make_watcher({"a": a, "ghost": tmp_path / "ghost"})
    it = await started(w)
    assert w.status == "watching"
    assert any("ghost" in m and "missing" in m for m in w.warnings)
    write(a, "b.py", "b")
    await wait_changes(it, has(("a", "b.py", "added")))


async def test_stop_ends_the_iterator_and_all_tasks(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", {"a.py": "a"})
    async with Watcher({"a": root}, rescan_interval=0.05) as w:
        await asyncio.wait_for(w.wait_ready(), 10)
        consumer = asyncio.create_task(anext(w.changes(), None))
        w.stop()
        assert await asyncio.wait_for(consumer, 10) is None
    assert w.status == "stopped" and not w._tasks
    assert [b async for b in w.changes()] == []


async def test_writes_only_reconciliation_found_are_reported(tmp_path: Path, make_watcher, monkeypatch) -> None:
    """Events lost without pause() (a kernel queue overflow) show up in missed_by_events."""
    monkeypatch.setattr(watcher_mod, "_MISSED_AFTER_NS", -10**9)  # count even a fresh write

    async def lossy(*paths, **kwargs):
        async with aclosing(watchfiles.awatch(*paths, **kwargs)) as inner:
            async for _ in inner:
                yield set()  # every event dropped

    root = tree(tmp_path / "a", {"a.py": "a"})
    w = make_watcher({"a": root}, rescan_interval=0.1, awatch=lossy)
    it = await started(w)
    (root / "a.py").write_text("b")
    await wait_changes(it, has(("a", "a.py", "modified")))
    assert w.missed_by_events == 1
    assert any("file events are being missed" in m for m in w.warnings)


async def test_snapshot_updates_never_run_ahead_of_the_changes_handed_out(tmp_path: Path, make_watcher) -> None:
    """A consumer that stored the snapshot of a change it has not recorded yet would lose that
    write for good if it died then (a restart reconciles against the stored snapshot)."""
    root = tree(tmp_path / "a", {"a.py": "1"})
    w = make_watcher({"a": root})
    it = await started(w)  # the baseline is published, not yet handed out
    assert w.take_snapshot_updates() == []
    w.pause()
    (root / "a.py").write_text("2")
    (found,) = await asyncio.wait_for(w.rescan_now(), 10)
    assert w.take_snapshot_updates() == []  # a.py's new content waits for its change
    got = await wait_changes(it, has(("a", "a.py", "modified")))
    assert got == [found]
    (update,) = w.take_snapshot_updates()
    assert update.replace and update.upserts["a.py"] == found.new  # the baseline, then the change


async def test_each_batch_carries_the_snapshot_as_of_its_own_changes(tmp_path: Path, make_watcher) -> None:
    root = tree(tmp_path / "a", {"a.py": "1"})
    w = make_watcher({"a": root})
    batches = w.batches()
    await w.start()
    await asyncio.wait_for(w.wait_ready(), 10)
    w.pause()
    (root / "a.py").write_text("22")
    (second,) = await asyncio.wait_for(w.rescan_now(), 10)
    (root / "a.py").write_text("333")
    (third,) = await asyncio.wait_for(w.rescan_now(), 10)
    assert w.published == 3
    first = await anext(batches)
    assert (first.seq, first.changes) == (1, []) and first.updates[0].replace
    assert first.updates[0].upserts["a.py"] == second.old  # copied when published, not when read
    b2, b3 = await anext(batches), await anext(batches)
    assert (b2.seq, b2.changes, b3.seq, b3.changes) == (2, [second], 3, [third])
    assert b2.updates == [SnapshotUpdate("a", False, {"a.py": second.new}, [])]
    assert b3.updates == [SnapshotUpdate("a", False, {"a.py": third.new}, [])]
    assert await w.settled() == 3
