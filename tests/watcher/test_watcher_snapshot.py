"""core.watcher's pure functions: scan, rescan, refingerprint, fingerprints."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from core.ignore import IgnoreRules
from core.watcher import RACY_NS, Change, Fingerprint, fingerprint, refingerprint, rescan, scan
from watcher_testkit import OLD, kinds, tree, write


def test_scan_skips_ignored_dirs_and_gitignored_files(tmp_path: Path) -> None:
    tree(tmp_path, {
        ".gitignore": "*.log\n/out/\n",
        "src/main.py": "print(1)",
        "src/debug.log": "noise",
        "out/report.txt": "generated",
        "node_modules/pkg/index.js": "x",
        ".venv/lib/site.py": "x",
        "src/__pycache__/main.cpython-311.pyc": "x",
        ".git/HEAD": "ref: refs/heads/main",
        ".tower/tower.db": "x",
        "env/pyvenv.cfg": "home=/usr",
        "env/lib/x.py": "x",
        "nested/.git": "gitdir: /elsewhere",
        "nested/inner.py": "x",
        ".vscode/settings.json": "{}",
        "src/.main.py.swp": "x",
    })
    snap = scan(tmp_path, IgnoreRules(tmp_path))
    assert sorted(snap) == [".gitignore", ".vscode/settings.json", "src/main.py"]
    fp = snap["src/main.py"]
    assert fp.size == len("print(1)")
    assert fp.hash == hashlib.sha256(b"print(1)").hexdigest()
    assert fp.mtime_ns == (tmp_path / "src/main.py").stat().st_mtime_ns


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    tree(tmp_path, {"real/a.py": "a"})
    outside = tree(tmp_path.parent / (tmp_path.name + "-outside"), {"big.py": "b"})
    os.symlink("real/a.py", tmp_path / "link.py")
    os.symlink(outside, tmp_path / "linkdir")
    try:
        rules = IgnoreRules(tmp_path)
        snap = scan(tmp_path, rules)
        assert sorted(snap) == ["link.py", "linkdir", "real/a.py"]
        assert snap["link.py"].hash == hashlib.sha256(b"symlink\0real/a.py").hexdigest()
        # retargeting a link is a change; a write through it changes the target only
        os.remove(tmp_path / "link.py")
        os.symlink("real/other.py", tmp_path / "link.py")
        changes = rescan(tmp_path, rules, snap)
        assert kinds(changes) == {("", "link.py", "modified")}
        # events below a symlinked directory are not ours
        assert refingerprint(tmp_path, ["linkdir/big.py"], snap, rules=rules) == []
    finally:
        shutil.rmtree(outside)


def test_touch_is_not_a_change(tmp_path: Path) -> None:
    tree(tmp_path, {"a.py": "same", "b.py": "b"})
    rules = IgnoreRules(tmp_path)
    snap = scan(tmp_path, rules)
    os.utime(tmp_path / "a.py", (OLD + 60, OLD + 60))
    refreshed: dict = {}
    assert rescan(tmp_path, rules, snap, refreshed=refreshed) == []
    new_mtime = (tmp_path / "a.py").stat().st_mtime_ns
    assert refreshed == {"a.py": Fingerprint(4, new_mtime, snap["a.py"].hash)}
    snap.update(refreshed)
    # ... and the next pass is cheap: nothing left to refresh
    again: dict = {}
    assert rescan(tmp_path, rules, snap, refreshed=again) == [] and again == {}
    os.utime(tmp_path / "b.py")  # now: racy, so recorded 1 ns early
    refreshed = {}
    assert refingerprint(tmp_path, ["b.py"], snap, rules=rules, refreshed=refreshed) == []
    assert list(refreshed) == ["b.py"]


def test_identical_rewrite_is_not_a_change(tmp_path: Path) -> None:
    tree(tmp_path, {"a.py": "content"})
    rules = IgnoreRules(tmp_path)
    snap = scan(tmp_path, rules)
    (tmp_path / "a.py").write_text("content")
    assert rescan(tmp_path, rules, snap) == []
    assert refingerprint(tmp_path, ["a.py"], snap, rules=rules) == []


def test_modify_add_delete_rename(tmp_path: Path) -> None:
    tree(tmp_path, {"mod.py": "1", "gone.py": "x", "old_name.py": "moved", "pkg/a.py": "a", "pkg/sub/b.py": "b"})
    rules = IgnoreRules(tmp_path)
    snap = scan(tmp_path, rules)
    (tmp_path / "mod.py").write_text("2")
    (tmp_path / "gone.py").unlink()
    write(tmp_path, "new.py", "n")
    (tmp_path / "old_name.py").rename(tmp_path / "new_name.py")
    (tmp_path / "pkg").rename(tmp_path / "lib")  # a directory rename: one event per side
    expected = {
        ("wt", "mod.py", "modified"), ("wt", "gone.py", "deleted"), ("wt", "new.py", "added"),
        ("wt", "old_name.py", "deleted"), ("wt", "new_name.py", "added"),
        ("wt", "pkg/a.py", "deleted"), ("wt", "pkg/sub/b.py", "deleted"),
        ("wt", "lib/a.py", "added"), ("wt", "lib/sub/b.py", "added"),
    }
    assert kinds(rescan(tmp_path, rules, snap, worktree="wt")) == expected
    events = ["mod.py", "gone.py", "new.py", "old_name.py", "new_name.py", "pkg", "lib"]
    changes = refingerprint(tmp_path, events, snap, rules=rules, worktree="wt")
    assert kinds(changes) == expected
    by_path = {c.path: c for c in changes}
    assert by_path["mod.py"].old == snap["mod.py"] and by_path["mod.py"].new.hash == hashlib.sha256(b"2").hexdigest()
    assert by_path["gone.py"] == Change("wt", "gone.py", "deleted", snap["gone.py"], None)
    assert by_path["new_name.py"].new.hash == snap["old_name.py"].hash


def test_file_replaced_by_directory(tmp_path: Path) -> None:
    tree(tmp_path, {"thing": "file"})
    rules = IgnoreRules(tmp_path)
    snap = scan(tmp_path, rules)
    (tmp_path / "thing").unlink()
    write(tmp_path, "thing/inner.py", "x")
    expected = {("", "thing", "deleted"), ("", "thing/inner.py", "added")}
    assert kinds(rescan(tmp_path, rules, snap)) == expected
    assert kinds(refingerprint(tmp_path, ["thing"], snap, rules=rules)) == expected


def test_same_size_rewrite_within_one_mtime_tick_is_caught(tmp_path: Path) -> None:
    """git's "racy clean" problem: content changes, size and mtime do not."""
    path = write(tmp_path, "a.py", "AAAA")
    rules = IgnoreRules(tmp_path)
    snap = scan(tmp_path, rules)
    mtime = path.stat().st_mtime_ns
    assert snap["a.py"].mtime_ns == mtime - 1  # fresh file: recorded as racy
    path.write_text("BBBB")
    os.utime(path, ns=(mtime, mtime))  # same tick
    assert kinds(rescan(tmp_path, rules, snap)) == {("", "a.py", "modified")}
    # an old file is recorded exactly, so unchanged stats skip hashing
    os.utime(path, ns=(mtime - 2 * RACY_NS, mtime - 2 * RACY_NS))
    assert fingerprint(path).mtime_ns == mtime - 2 * RACY_NS


def test_ignored_paths_are_skipped_and_newly_ignored_are_forgotten(tmp_path: Path) -> None:
    tree(tmp_path, {"keep.py": "k", "data.csv": "1,2"})
    rules = IgnoreRules(tmp_path)
    snap = scan(tmp_path, rules)
    write(tmp_path, "node_modules/x/index.js", "x")
    assert refingerprint(tmp_path, ["node_modules/x/index.js", "node_modules"], snap, rules=rules) == []
    write(tmp_path, ".gitignore", "*.csv\n", old=True)
    snap[".gitignore"] = fingerprint(tmp_path / ".gitignore")
    refreshed: dict = {}
    # data.csv still exists: not a deletion, just no longer ours
    assert rescan(tmp_path, IgnoreRules(tmp_path), snap, refreshed=refreshed) == []
    assert refreshed == {"data.csv": None}


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan(tmp_path / "nope", IgnoreRules(tmp_path / "nope"))
