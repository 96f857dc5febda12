"""The worktree watcher: file-system events in, content changes out.

Pure: no store, no UI. The caller (``tower watch`` or the control room's
background worker) consumes ``Watcher.batches()``, checks each change against
claims, scopes and the other worktrees, and persists each batch's snapshot
updates through ``store`` together with what it found (never before: see
``WatchBatch``).

The pieces, from the bottom:

``Fingerprint(size, mtime_ns, hash)``
    ``hash`` is the hex SHA-256 of the file's bytes (``sha256sum`` prints the
    same), or of ``b"symlink\\0" + target`` for a symbolic link, which is
    recorded but never followed. SHA-256 rather than BLAKE2b: CPUs of the last
    several years hash SHA-256 in hardware (SHA-NI on x86, the ARMv8 crypto
    extensions on Apple and other ARM chips), and either is far faster than
    reading the file (figures: docs/watcher.md), so the choice barely matters
    for cost; SHA-256 also matches the audit chain and is checkable with
    standard tools. Files are read with ``os.read``
    in 1 MiB chunks (no big buffer allocated per small file), opened with
    ``O_NOFOLLOW | O_NONBLOCK`` so a file swapped for a symlink or a FIFO
    between the stat and the open can neither be followed nor hang us.

    *Racy timestamps.* A file can be rewritten after we hashed it yet keep the
    same size and mtime: file-system timestamps come from a coarse clock (a
    jiffy on Linux, up to 2 s on FAT). Like git's "racy clean" entries, a
    fingerprint taken less than ``RACY_NS`` (3 s) after the file's mtime is
    recorded with ``mtime_ns - 1``, so the next reconciliation pass sees a
    stat difference and hashes it again (after which it is no longer racy).
    Without this, a lost event plus a same-size rewrite within the same tick
    would be missed for good.

``scan(root, rules)``
    The full snapshot of a worktree: ``os.scandir`` recursion that prunes
    ignored directories before descending (see ``core.ignore``), stats every
    regular file and symlink, and hashes them -- sequentially: a thread pool
    is slower with a warm page cache, because the per-file Python work holds
    the GIL and small files cost open/read/close, not hashing (figures:
    docs/watcher.md, tests/benchmarks/bench_watcher_scan.py).

``rescan(root, rules, previous)`` -- the cheap reconciliation pass
    Stats everything, hashes only paths whose ``(size, mtime_ns)`` differ from
    ``previous``, and returns the real content changes. Stat-only differences
    (a touch, an identical rewrite, a racy entry re-verified) are not changes:
    pass a dict as ``refreshed=`` to receive their new fingerprints, so the
    next pass is cheap again. ``refreshed`` maps a path to ``None`` when the
    path should simply be forgotten: it still exists but is now ignored (a
    ``.gitignore`` changed) -- that is not a deletion. A path that still
    exists but could not be listed (an unreadable directory) is kept as it was.

``refingerprint(root, rel_paths, previous)``
    The event-driven update: re-fingerprints only the given paths, always
    hashing them (events are exactly when same-tick rewrites happen). A path
    that is now a directory is expanded to the files below it, and a path that
    vanished or turned into a directory also re-checks every known file below
    it: inotify reports a directory rename as one delete + one add, never
    per-file events. (Files found by expansion are hashed only if their stat
    changed.) Paths below a symlinked directory are not ours.

``Watcher``
    One ``watchfiles.awatch`` over every registered worktree root (nested
    roots are covered by their parent's watch and attributed by the longest
    matching root). Raw events (``watch_filter=None``: filtering happens with
    the per-root ``IgnoreRules`` in a worker thread, not on the event loop)
    are mapped to ``(worktree, rel_path)`` and re-fingerprinted in a thread.

    *Debounce.* watchfiles groups events until ``step`` ms pass without a new
    one, at most ``debounce`` ms after the first. The defaults (1600/50) make a
    person wait 1.6 s to see an agent's write; we use ``debounce=50`` and
    ``step=20``: an editor's save sequence (truncate + write, or write a temp
    file + rename) still lands in one batch, and intermediate states are
    harmless anyway because only the content hash decides. A change shows up
    ~20-70 ms after it is written. (The price: watchfiles' thread wakes every
    ``step`` ms to check its stop event.)

    *Reconciliation.* Every ``rescan_interval`` seconds (``DEFAULT_RESCAN_INTERVAL``) all
    worktrees are re-stat'ed (``rescan``): watchfiles silently drops the
    kernel's queue-overflow event, reports renames as delete + add, and
    notify ignores failures to add watches for directories created after the
    start (a watch limit hit then is silent). A write is never missed for
    good, only late. Writes that only reconciliation found, while events were
    live and older than a few seconds, are counted in ``missed_by_events``
    and reported once in ``warnings``.

    *Failure.* A watcher error (``OSError: OS file watch limit reached`` from
    the notify crate when inotify runs out of watches, an inotify instance
    limit, permission errors, or notify's sticky runtime errors) is logged and
    added to ``warnings``, and the watcher restarts with
    ``force_polling=True`` (notify's ``PollWatcher``, which walks the trees
    every ``poll_delay_ms``). If polling fails too, ``status`` becomes
    ``"rescan-only"`` and polling is retried every ``retry_interval`` seconds.
    Note that ignored directories still cost inotify watches (notify cannot
    prune them; it also follows symlinked directories), which is what makes
    the limit reachable in repositories with big ``node_modules`` trees.

    Snapshots (initial and for worktrees added later) and rescans run in
    threads (``asyncio.to_thread``). One asyncio lock serialises every
    compute-and-apply step, so batches are applied and published in order and
    a change is reported once, by whichever path (event or rescan) sees it
    first. Known cost: awatch builds its ``RustNotify`` -- adding every inotify
    watch, or the poll watcher's first walk -- on the event loop when it
    (re)starts, i.e. at start and on ``set_worktrees``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import platform
import stat
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import watchfiles

from core.ignore import IgnoreRules

__all__ = [
    "RACY_NS",
    "Change",
    "ChangeKind",
    "DEFAULT_RESCAN_INTERVAL",
    "Fingerprint",
    "SnapshotUpdate",
    "UNREADABLE",
    "WatchBatch",
    "Watcher",
    "describe_watch_error",
    "fingerprint",
    "refingerprint",
    "rescan",
    "scan",
]

log = logging.getLogger("tower.watcher")

#: A fingerprint taken within this long of the file's mtime is "racy" (see module doc).
RACY_NS = 3_000_000_000
_CHUNK = 1 << 20
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)
#: Hash recorded for a file that exists but cannot be read (it is re-tried every pass).
UNREADABLE = ""
#: Seconds between reconciliation rescans (the watcher, the service and ``tower watch``).
#: The rescan only catches what events missed (a kernel queue overflow, exhausted
#: watches), so such a write is flagged at most this late, never lost; and it is the
#: watcher's whole idle cost, so it is not shorter (figures: docs/watcher.md).
DEFAULT_RESCAN_INTERVAL = 20.0


class Fingerprint(NamedTuple):
    size: int
    mtime_ns: int
    hash: str


ChangeKind = Literal["added", "modified", "deleted"]


class Change(NamedTuple):
    """A content change of one file of one worktree (``old``/``new`` None: absent)."""

    worktree: str
    path: str  # repo-relative, POSIX
    kind: ChangeKind
    old: Fingerprint | None
    new: Fingerprint | None


class SnapshotUpdate(NamedTuple):
    """What to write to the persisted snapshot of one worktree (``replace``: drop the rest first)."""

    worktree: str
    replace: bool
    upserts: dict[str, Fingerprint]
    deletes: list[str]


class WatchBatch(NamedTuple):
    """One compute-and-apply step of the watcher: its content changes and the snapshot updates
    that bring a persisted snapshot to the state right after them.

    A consumer that persists snapshots stores ``updates`` in the same transaction as what it
    makes of ``changes`` (and not before): a snapshot that has moved past a change nobody
    recorded hides that change for good, since a restart reconciles against the snapshot.
    ``seq`` counts batches from 1; ``Watcher.published`` is the last one handed out.
    """

    seq: int
    changes: list[Change]
    updates: list[SnapshotUpdate]


Snapshot = dict[str, Fingerprint]


# -- fingerprints -------------------------------------------------------------------


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    read = os.read
    while True:
        block = read(fd, _CHUNK)
        if not block:
            return h.hexdigest()
        h.update(block)


def _fingerprint_stat(path: str, st: os.stat_result, _retry: bool = True) -> Fingerprint | None:
    """The fingerprint of ``path`` given its lstat; None if it is not a regular file or symlink
    (or vanished)."""
    mode = st.st_mode
    racy = False
    if stat.S_ISREG(mode):
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP and _retry:  # replaced by a symlink since the stat
                try:
                    return _fingerprint_stat(path, os.lstat(path), _retry=False)
                except OSError:
                    return None
            digest, racy = UNREADABLE, True
        else:
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                digest = _hash_fd(fd)
            except OSError:
                digest, racy = UNREADABLE, True
            finally:
                os.close(fd)
    elif stat.S_ISLNK(mode):
        try:
            target = os.readlink(os.fsencode(path))
        except OSError:
            return None
        digest = hashlib.sha256(b"symlink\0" + target).hexdigest()
    else:
        return None
    mtime = st.st_mtime_ns
    if racy or time.time_ns() - mtime < RACY_NS:
        mtime -= 1  # make the next reconciliation pass hash it again
    return Fingerprint(st.st_size, mtime, digest)


def fingerprint(path: str | os.PathLike[str]) -> Fingerprint | None:
    """The fingerprint of one file (not following a final symlink); None if absent or not a file."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except OSError:
        return None
    return _fingerprint_stat(p, st)


_Item = tuple[str, str, os.stat_result]  # (rel, abs path, lstat)


def _fingerprint_many(items: Iterable[_Item]) -> list[tuple[str, Fingerprint | None]]:
    # Sequential on purpose: a thread pool is *slower* with a warm page cache (per-file
    # Python work holds the GIL; small files are mostly open/read/close overhead).
    return [(rel, _fingerprint_stat(path, st)) for rel, path, st in items]


# -- walking ------------------------------------------------------------------------


def _root_str(root: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(root))


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes (surrogate escapes): not a path Tower can name
        return False
    return True


def _walk(root: str, rules: IgnoreRules, start: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Yield ``(rel_path, entry)`` for every non-ignored regular file and symlink below ``start``.

    ``start`` (repo-relative) must not itself be ignored; it is skipped if it is a
    venv or another repository. Missing or unreadable sub-directories are
    skipped; a missing or unreadable ``start`` raises.
    """
    stack = [start]
    match = rules.match
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
            if rel_dir == start:
                raise
            log.debug("skipping %s: %s", abs_dir, e)
            continue
        has_gitignore = False
        if rel_dir:
            names = {e.name for e in entries}
            if rules.boundary(names):
                continue
            has_gitignore = ".gitignore" in names
        else:
            has_gitignore = any(e.name == ".gitignore" for e in entries)
        chain = rules.chain(rel_dir, has_gitignore)
        prefix = rel_dir + "/" if rel_dir else ""
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            rel = prefix + name
            if match(chain, rel, name, is_dir) or not _utf8(name):
                continue
            if is_dir:
                stack.append(rel)
            elif entry.is_symlink() or entry.is_file(follow_symlinks=False):
                yield rel, entry


def _diff(
    worktree: str,
    rel: str,
    old: Fingerprint | None,
    new: Fingerprint | None,
    changes: list[Change],
    refreshed: dict[str, Fingerprint | None],
) -> None:
    if old is None:
        if new is not None:
            changes.append(Change(worktree, rel, "added", None, new))
    elif new is None:
        changes.append(Change(worktree, rel, "deleted", old, None))
    elif new.hash != old.hash:
        changes.append(Change(worktree, rel, "modified", old, new))
    elif new != old:
        refreshed[rel] = new


def scan(root: str | os.PathLike[str], rules: IgnoreRules) -> dict[str, Fingerprint]:
    """A full snapshot: repo-relative POSIX path -> fingerprint of every non-ignored file."""
    root_s = _root_str(root)
    items: list[_Item] = []
    for rel, entry in _walk(root_s, rules):
        try:
            items.append((rel, entry.path, entry.stat(follow_symlinks=False)))
        except OSError:
            continue
    return {rel: fp for rel, fp in _fingerprint_many(items) if fp is not None}


def rescan(
    root: str | os.PathLike[str],
    rules: IgnoreRules,
    previous: Mapping[str, Fingerprint],
    *,
    worktree: str = "",
    refreshed: dict[str, Fingerprint | None] | None = None,
) -> list[Change]:
    """Reconcile ``previous`` with the disk: stat everything, hash only what changed stat.

    Returns the content changes (sorted by path). Stat-only refreshes, and
    paths to forget (``None``: now ignored), go into ``refreshed`` if given.
    """
    root_s = _root_str(root)
    if refreshed is None:
        refreshed = {}
    seen: set[str] = set()
    to_hash: list[_Item] = []
    for rel, entry in _walk(root_s, rules):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        seen.add(rel)
        old = previous.get(rel)
        if old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            continue
        to_hash.append((rel, entry.path, st))
    changes: list[Change] = []
    for rel, new in _fingerprint_many(to_hash):
        _diff(worktree, rel, previous.get(rel), new, changes, refreshed)
    for rel in previous.keys() - seen:
        old = previous[rel]
        try:
            st = os.lstat(os.path.join(root_s, rel))
        except (FileNotFoundError, NotADirectoryError):
            changes.append(Change(worktree, rel, "deleted", old, None))
            continue
        except OSError:
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            changes.append(Change(worktree, rel, "deleted", old, None))  # now a directory (or a FIFO)
        elif rules.is_ignored(rel, False):
            refreshed[rel] = None  # still there, now ignored: forget, it was not deleted
        # else: it exists but we could not list it (unreadable directory): keep it
    changes.sort(key=lambda c: c.path)
    return changes


def _norm_rel(raw: str) -> str:
    rel = raw.replace(os.sep, "/") if os.sep != "/" else raw
    rel = rel.strip("/")
    while rel.startswith("./"):
        rel = rel[2:]
    return "" if rel == "." else rel


def _real_dir(root: str, rel_dir: str, cache: dict[str, bool]) -> bool:
    """Whether ``rel_dir`` and all its parents are real directories (not symlinks) under root."""
    if not rel_dir:
        return True
    known = cache.get(rel_dir)
    if known is None:
        parent = rel_dir.rpartition("/")[0]
        if not _real_dir(root, parent, cache):
            known = False
        else:
            try:
                known = stat.S_ISDIR(os.lstat(os.path.join(root, rel_dir)).st_mode)
            except OSError:
                known = False
        cache[rel_dir] = known
    return known


def _collapse(prefixes: Iterable[str]) -> tuple[str, ...]:
    """``p + "/"`` for each prefix not below another one."""
    kept: set[str] = set()
    for p in sorted(set(prefixes), key=lambda s: (s.count("/"), s)):
        parts = p.split("/")
        if not any("/".join(parts[:i]) in kept for i in range(1, len(parts))):
            kept.add(p)
    return tuple(p + "/" for p in kept)


def refingerprint(
    root: str | os.PathLike[str],
    rel_paths: Iterable[str],
    previous: Mapping[str, Fingerprint],
    *,
    rules: IgnoreRules | None = None,
    worktree: str = "",
    refreshed: dict[str, Fingerprint | None] | None = None,
) -> list[Change]:
    """Re-fingerprint only ``rel_paths`` (hashing each): the content changes, sorted by path.

    A touch or an identical rewrite yields no change (its new stat goes to
    ``refreshed``). Directories are expanded (see module doc); files found
    that way are hashed only if their stat changed, as in ``rescan``. ``rules``
    defaults to ``IgnoreRules(root)``; ignored paths are skipped, or forgotten
    (``refreshed[path] = None``) if ``previous`` knew them.
    """
    root_s = _root_str(root)
    if rules is None:
        rules = IgnoreRules(root_s)
    if refreshed is None:
        refreshed = {}
    real: dict[str, bool] = {}
    targets: set[str] = set()  # files named by an event: always hashed
    below: set[str] = set()  # files found below a directory event: hashed if their stat changed
    dir_prefixes: list[str] = []
    for raw in rel_paths:
        rel = _norm_rel(raw)
        if not rel:
            continue
        known = rel in previous
        if known:
            targets.add(rel)
        parent, _, name = rel.rpartition("/")
        if parent and rules.dir_ignored(parent):
            continue  # nothing below an ignored directory is ours (known entries are forgotten)
        if not _real_dir(root_s, parent, real):
            if not known:
                dir_prefixes.append(rel)  # the parent went away: so did anything we knew below rel
            continue
        try:
            mode = os.lstat(os.path.join(root_s, rel)).st_mode
        except OSError:
            if not known:
                dir_prefixes.append(rel)  # maybe a directory that vanished or was renamed away
            continue
        if stat.S_ISDIR(mode):
            dir_prefixes.append(rel)
            if not rules.dir_ignored(rel):
                try:
                    below.update(r for r, _ in _walk(root_s, rules, start=rel))
                except OSError:
                    pass
        elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            if _utf8(name):
                targets.add(rel)
    if dir_prefixes:
        prefixes = _collapse(dir_prefixes)
        below.update(k for k in previous if k.startswith(prefixes))

    changes: list[Change] = []
    to_hash: list[_Item] = []
    for rel in targets | below:
        old = previous.get(rel)
        parent = rel.rpartition("/")[0]
        path = os.path.join(root_s, rel)
        st: os.stat_result | None = None
        if _real_dir(root_s, parent, real):
            try:
                st = os.lstat(path)
            except OSError:
                st = None
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            st = None
        if st is not None and rules.is_ignored(rel, False):
            if old is not None:
                refreshed[rel] = None
            continue
        if st is None:
            _diff(worktree, rel, old, None, changes, refreshed)
        elif (
            rel in targets
            or old is None
            or old.size != st.st_size
            or old.mtime_ns != st.st_mtime_ns
        ):
            to_hash.append((rel, path, st))
    for rel, new in _fingerprint_many(to_hash):
        _diff(worktree, rel, previous.get(rel), new, changes, refreshed)
    changes.sort(key=lambda c: c.path)
    return changes


def _reconcile_rules(
    root: str,
    old: IgnoreRules,
    new: IgnoreRules,
    previous: Mapping[str, Fingerprint],
    worktree: str,
    refreshed: dict[str, Fingerprint | None],
) -> list[Change]:
    """Rescan under new ignore rules; files that only became visible are adopted silently."""
    changes = rescan(root, new, previous, worktree=worktree, refreshed=refreshed)
    real: list[Change] = []
    for c in changes:
        if c.kind == "added" and old.is_ignored(c.path, False):
            refreshed[c.path] = c.new
        else:
            real.append(c)
    return real


_MISSED_AFTER_NS = 5_000_000_000  # an event for a write older than this should have arrived


def _probe(root: str, rules: IgnoreRules) -> tuple[bool, bool]:
    """(the root is a directory, its info/exclude changed) -- in a thread."""
    return os.path.isdir(root), rules.stale()


def _rescan_aged(
    root: str,
    rules: IgnoreRules,
    previous: Mapping[str, Fingerprint],
    worktree: str,
    refreshed: dict[str, Fingerprint | None],
    horizon_ns: int,
) -> tuple[list[Change], int]:
    """``rescan`` plus how many of the added/modified files were written (by their ctime, which
    no one can set back) before ``horizon_ns``: writes whose events should have arrived."""
    changes = rescan(root, rules, previous, worktree=worktree, refreshed=refreshed)
    missed = 0
    for c in changes:
        if c.new is not None:
            try:
                if os.lstat(os.path.join(root, c.path)).st_ctime_ns < horizon_ns:
                    missed += 1
            except OSError:
                pass
    return changes, missed


def _affects_rules(rel: str) -> bool:
    """Whether a change at ``rel`` can change what is ignored."""
    parent, _, name = rel.rpartition("/")
    return name == ".gitignore" or (bool(parent) and name in ("pyvenv.cfg", ".git"))


_Job = tuple[str, IgnoreRules, Snapshot]  # (root, rules, snapshot) of one worktree


def _process_events(
    raw: Collection[tuple[Any, str]], jobs: Mapping[str, _Job]
) -> tuple[dict[str, tuple[list[Change], dict[str, Fingerprint | None]]], set[str]]:
    """Attribute raw watchfiles events to worktrees and re-fingerprint them (in a thread)."""
    roots = sorted(((root, wt) for wt, (root, _, _) in jobs.items()), key=lambda x: -len(x[0]))
    by_wt: dict[str, set[str]] = {}
    rules_touched: set[str] = set()
    sep = os.sep
    for _, path in raw:
        for root, wt in roots:
            if path.startswith(root) and len(path) > len(root) and path[len(root)] == sep:
                rel = _norm_rel(path[len(root) + 1 :])
                if rel:
                    by_wt.setdefault(wt, set()).add(rel)
                    if _affects_rules(rel):
                        rules_touched.add(wt)
                break
    out: dict[str, tuple[list[Change], dict[str, Fingerprint | None]]] = {}
    for wt, rels in by_wt.items():
        root, rules, snap = jobs[wt]
        refreshed: dict[str, Fingerprint | None] = {}
        changes = refingerprint(root, rels, snap, rules=rules, worktree=wt, refreshed=refreshed)
        out[wt] = (changes, refreshed)
    return out, rules_touched


# -- the watcher --------------------------------------------------------------------


class _WatchFailed(Exception):
    """The watchfiles generator raised (the cause is chained)."""


def _default_force_polling() -> bool:
    # the same rules watchfiles applies to force_polling=None, resolved here so we know the mode
    env = os.getenv("WATCHFILES_FORCE_POLLING")
    if env:
        return env.lower() not in {"false", "disable", "disabled"}
    uname = platform.uname()
    return "microsoft-standard" in uname.release.lower() and uname.system.lower() == "linux"


def _read_proc(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def describe_watch_error(err: BaseException) -> str:
    """A one-line, actionable description of a watcher failure."""
    text = str(err).strip() or type(err).__name__
    low = text.lower()
    code = getattr(err, "errno", None)
    if "watch limit" in low or "maxfileswatch" in low or code == errno.ENOSPC or "no space left" in low:
        limit = _read_proc("/proc/sys/fs/inotify/max_user_watches")
        return (
            f"inotify watch limit reached (fs.inotify.max_user_watches={limit}; raise it with "
            "`sudo sysctl fs.inotify.max_user_watches=524288`)"
        )
    if code == errno.EMFILE or "too many open files" in low:
        limit = _read_proc("/proc/sys/fs/inotify/max_user_instances")
        return f"inotify instance or file limit reached (fs.inotify.max_user_instances={limit}): {text}"
    return f"{type(err).__name__}: {text}"


_STOP: Any = object()


def _merge_updates(updates: Iterable[SnapshotUpdate]) -> list[SnapshotUpdate]:
    """Updates applied in order, folded into one per worktree (sorted by worktree)."""
    merged: dict[str, SnapshotUpdate] = {}
    for u in updates:
        m = merged.get(u.worktree)
        if m is None or u.replace:
            merged[u.worktree] = SnapshotUpdate(u.worktree, u.replace, dict(u.upserts), sorted(u.deletes))
            continue
        upserts, deletes = m.upserts, set(m.deletes)
        for path, fp in u.upserts.items():
            upserts[path] = fp
            deletes.discard(path)
        for path in u.deletes:
            upserts.pop(path, None)
            if not m.replace:  # a replace holds the whole snapshot: absent is deleted
                deletes.add(path)
        merged[u.worktree] = SnapshotUpdate(u.worktree, m.replace, upserts, sorted(deletes))
    return [merged[wt] for wt in sorted(merged)]

AwatchFn = Callable[..., AsyncIterator[set[tuple[watchfiles.Change, str]]]]


class Watcher:
    """Watch several worktrees with one ``watchfiles.awatch``; yield batches of content changes.

    ``worktrees`` maps a worktree name to its root. ``snapshot`` (per worktree
    name, e.g. loaded from the store) is the state last seen: at start each
    worktree is reconciled against it and the differences -- files edited
    while nobody watched -- are the first batch. Worktrees without one get a
    fresh baseline (no changes).

    Lifecycle: ``await start()`` (or ``async with Watcher(...) as w``, or just
    iterate ``changes()``, which starts it), then ``stop()`` and
    ``await aclose()`` (``__aexit__`` does both), which waits for every task.
    ``changes()`` is meant for a single consumer and ends after ``stop()``.

    ``force_polling``: True polls from the start; False uses native events
    (inotify, FSEvents ...); None is False unless ``WATCHFILES_FORCE_POLLING``
    or WSL say otherwise, as in watchfiles. Native events fall back to
    polling on any watcher error (see the module doc).
    ``awatch`` is injectable (tests simulate watcher failures with it).
    ``rescan_interval`` None disables periodic reconciliation.

    A store-backed consumer reads ``batches()`` and stores each batch's
    snapshot updates together with what it makes of the batch's changes, in
    one transaction (``tui.services.watch.WatchService`` does)::

        stored = {wt: await store.load_snapshot(wt) for wt in roots}
        async with Watcher(roots, snapshot=stored) as watcher:
            async for batch in watcher.batches():  # baselines and start-up diffs come first
                await persist_and_judge(batch.updates, batch.changes)

    ``changes()`` yields only the non-empty change lists; with it,
    ``take_snapshot_updates()`` returns the updates of the batches it has
    yielded so far (never of a change not yet handed out).
    """

    def __init__(
        self,
        worktrees: Mapping[str, str | os.PathLike[str]],
        *,
        snapshot: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
        debounce_ms: int = 50,
        step_ms: int = 20,
        rescan_interval: float | None = DEFAULT_RESCAN_INTERVAL,
        force_polling: bool | None = None,
        poll_delay_ms: int = 300,
        retry_interval: float = 30.0,
        rules_factory: Callable[[Path], IgnoreRules] = IgnoreRules,
        awatch: AwatchFn = watchfiles.awatch,
    ) -> None:
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._rescan_interval = rescan_interval
        self._poll_delay_ms = poll_delay_ms
        self._retry_interval = retry_interval
        self._rules_factory = rules_factory
        self._awatch = awatch
        self._polling = _default_force_polling() if force_polling is None else force_polling

        self._roots: dict[str, str] = {}
        self._rules: dict[str, IgnoreRules] = {}
        self._snap: dict[str, Snapshot] = {}
        self._seed: dict[str, Snapshot] = {
            wt: {p: Fingerprint(int(fp[0]), int(fp[1]), str(fp[2])) for p, fp in files.items()}
            for wt, files in (snapshot or {}).items()
        }
        self._dirty: dict[str, set[str]] = {}
        self._replace: set[str] = set()
        self._step: list[Change] = []  # applied to the snapshot in the current step, not yet published
        self._seq = 0  # batches published
        self._released: list[SnapshotUpdate] = []  # updates of the batches changes() has yielded

        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._stop_evt = asyncio.Event()
        self._wake = asyncio.Event()
        self._gen_stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._version = 0
        self._live_version = -1
        self._snap_version = -1
        self._started = False
        self._stopped = False
        self._paused = False
        self._missing: dict[str, str] = {}  # worktree -> its warning, while its root is missing
        self._missed_warned = False

        #: "idle", "starting", "watching", "polling", "rescan-only" or "stopped"
        self.status = "idle"
        #: problems the UI/CLI should show (also logged)
        self.warnings: list[str] = []
        #: content changes only reconciliation found although events were live
        self.missed_by_events = 0
        self._set_roots(worktrees)

    # -- public API -------------------------------------------------------------

    @property
    def worktrees(self) -> dict[str, Path]:
        return {wt: Path(root) for wt, root in self._roots.items()}

    @property
    def polling(self) -> bool:
        return self._polling

    @property
    def paused(self) -> bool:
        return self._paused

    async def start(self) -> None:
        """Start watching and take the initial snapshots (in threads); idempotent."""
        if self._started:
            return
        if self._stopped:
            raise RuntimeError("watcher was stopped")
        self._started = True
        self.status = "starting"
        self._spawn(self._watch_loop())
        async with self._stepping():
            await self._snapshot_missing()
        if self._rescan_interval and not self._stopped:
            self._spawn(self._rescan_loop())

    async def batches(self) -> AsyncIterator[WatchBatch]:
        """Every batch, in order: content changes with the snapshot updates that go with them
        (a batch may hold updates only: a new worktree's baseline, stat-only refreshes).
        Ends on stop(), after the batches published before it."""
        if self._stopped:
            return
        await self.start()
        while True:
            item = await self._queue.get()
            if item is _STOP:
                self._queue.put_nowait(_STOP)  # any later reader ends too
                return
            yield item

    async def changes(self) -> AsyncIterator[list[Change]]:
        """Batches of content changes, from events, reconciliation and start-up; ends on stop().
        The snapshot updates of what it has yielded wait in ``take_snapshot_updates()``."""
        async for batch in self.batches():
            self._released.extend(batch.updates)
            if batch.changes:
                yield batch.changes

    @property
    def published(self) -> int:
        """The ``seq`` of the last batch published (0: none yet)."""
        return self._seq

    async def settled(self) -> int:
        """``published`` once no compute-and-apply step is in flight: every change the watcher
        has applied to its snapshot so far is in a batch up to this seq."""
        async with self._lock:
            return self._seq

    async def wait_ready(self) -> None:
        """Until every registered worktree is snapshotted and covered by the running watch."""
        await self._ready.wait()

    def set_worktrees(self, worktrees: Mapping[str, str | os.PathLike[str]]) -> None:
        """Replace the set of watched worktrees: restarts the watch, snapshots new roots."""
        if not self._set_roots(worktrees):
            return
        self._version += 1
        self._update_ready()
        if self._started and not self._stopped:
            self._restart_watch()
            self._spawn(self._snapshot_task())

    def pause(self) -> None:
        """Discard file events until resume() (tests: simulates lost kernel events)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def rescan_now(self) -> list[Change]:
        """Reconcile every worktree now. The changes are returned *and* published to changes()."""
        return await self._rescan(periodic=False)

    def stop(self) -> None:
        """Stop watching (returns at once; ``await aclose()`` to wait for the tasks)."""
        if self._stopped:
            return
        self._stopped = True
        self.status = "stopped"
        self._stop_evt.set()
        self._wake.set()
        if self._gen_stop is not None:
            self._gen_stop.set()
        self._queue.put_nowait(_STOP)

    async def aclose(self) -> None:
        """stop() and wait until every task (and so every watchfiles thread call) has ended."""
        self.stop()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def __aenter__(self) -> Watcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def snapshot(self, worktree: str | None = None) -> dict[str, Snapshot]:
        """A copy of the current snapshot(s), per worktree."""
        names = [worktree] if worktree is not None else list(self._snap)
        return {wt: dict(self._snap[wt]) for wt in names if wt in self._snap}

    def take_snapshot_updates(self) -> list[SnapshotUpdate]:
        """For a ``changes()`` consumer: what the persisted snapshot needs for the batches
        yielded since the last call (content changes, stat-only refreshes, forgotten paths,
        whole baselines of new worktrees), merged into one update per worktree."""
        released, self._released = self._released, []
        return _merge_updates(released)

    # -- bookkeeping ------------------------------------------------------------

    def _take_dirty(self) -> list[SnapshotUpdate]:
        out: list[SnapshotUpdate] = []
        for wt in sorted(set(self._dirty) | self._replace):
            snap = self._snap.get(wt)
            if snap is None:
                continue
            if wt in self._replace:
                out.append(SnapshotUpdate(wt, True, dict(snap), []))
                continue
            paths = self._dirty.get(wt, set())
            upserts = {p: snap[p] for p in paths if p in snap}
            deletes = sorted(p for p in paths if p not in snap)
            if upserts or deletes:
                out.append(SnapshotUpdate(wt, False, upserts, deletes))
        self._dirty.clear()
        self._replace.clear()
        return out

    def _set_roots(self, worktrees: Mapping[str, str | os.PathLike[str]]) -> bool:
        wanted = {str(wt): _root_str(path) for wt, path in worktrees.items()}
        changed = False
        for wt in list(self._roots):
            if wanted.get(wt) != self._roots[wt]:
                changed = True
                for d in (self._roots, self._rules, self._snap, self._dirty):
                    d.pop(wt, None)
                self._replace.discard(wt)
                self._root_back(wt, restart=False)
        for wt, root in wanted.items():
            if wt not in self._roots:
                changed = True
                self._roots[wt] = root
                self._rules[wt] = self._rules_factory(Path(root))
        return changed

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("watcher task failed", exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def _warn(self, message: str, *, level: int = logging.WARNING) -> None:
        log.log(level, "%s", message)
        if message not in self.warnings:
            self.warnings.append(message)

    def _update_ready(self) -> None:
        if self._live_version == self._version and self._snap_version == self._version:
            self._ready.set()
        else:
            self._ready.clear()

    @contextlib.asynccontextmanager
    async def _stepping(self) -> AsyncIterator[None]:
        """One compute-and-apply step: under the lock, and whatever it applied to the snapshot
        is published at its end, even when it fails half-way."""
        async with self._lock:
            try:
                yield
            finally:
                self._publish()

    def _publish(self) -> None:
        """Hand out what this step applied: its changes with the snapshot updates since the last
        batch. The snapshot values are copied now, so that a batch never carries the content of
        a later change (which a consumer could store before it has recorded that change)."""
        changes, self._step = self._step, []
        updates = self._take_dirty()
        if self._stopped or not (changes or updates):
            return  # stopped: never persisted, so a restart finds these changes again
        if changes:
            log.debug("%d change(s): %s", len(changes), changes[:5])
        self._seq += 1
        self._queue.put_nowait(WatchBatch(self._seq, changes, updates))

    def _apply(self, wt: str, changes: Iterable[Change], refreshed: Mapping[str, Fingerprint | None]) -> None:
        snap = self._snap[wt]
        dirty = self._dirty.setdefault(wt, set())
        changes = list(changes)
        self._step.extend(changes)
        for c in changes:
            if c.new is None:
                snap.pop(c.path, None)
            else:
                snap[c.path] = c.new
            dirty.add(c.path)
        for path, fp in refreshed.items():
            if fp is None:
                snap.pop(path, None)
            else:
                snap[path] = fp
            dirty.add(path)

    def _job_valid(self, wt: str, root: str, snap: Snapshot) -> bool:
        return self._roots.get(wt) == root and self._snap.get(wt) is snap

    def _root_missing(self, wt: str, root: str, err: BaseException | None = None) -> None:
        if wt not in self._missing:
            detail = f": {err}" if err else ""
            message = f"worktree {wt!r}: {root} is missing or unreadable, not watched{detail}"
            self._missing[wt] = message
            self._warn(message)

    def _root_back(self, wt: str, *, restart: bool = True) -> None:
        message = self._missing.pop(wt, None)
        if message is None:
            return
        if message in self.warnings:
            self.warnings.remove(message)
        if restart and self._started and not self._stopped:
            log.info("worktree %r is back: watching it again", wt)
            self._restart_watch()  # its old watch (if any) died with the directory

    # -- snapshots and reconciliation (callers hold self._lock) -----------------

    async def _snapshot_missing(self) -> list[Change]:
        changes: list[Change] = []
        while True:
            version = self._version
            todo = [(wt, root) for wt, root in self._roots.items() if wt not in self._snap]
            for wt, root in todo:
                if self._stopped:
                    return changes
                if not os.path.isdir(root):
                    self._root_missing(wt, root)
                    continue
                rules = self._rules[wt]
                seed = self._seed.get(wt)
                try:
                    if seed is not None:
                        refreshed: dict[str, Fingerprint | None] = {}
                        found = await asyncio.to_thread(
                            rescan, root, rules, seed, worktree=wt, refreshed=refreshed
                        )
                    else:
                        fresh = await asyncio.to_thread(scan, root, rules)
                except OSError as e:
                    self._root_missing(wt, root, e)
                    continue
                if self._roots.get(wt) != root or wt in self._snap:
                    continue  # removed or replaced meanwhile
                self._root_back(wt)
                if seed is not None:
                    del self._seed[wt]
                    self._snap[wt] = dict(seed)
                    self._apply(wt, found, refreshed)
                    changes.extend(found)
                    log.info("worktree %r: %d change(s) since the stored snapshot", wt, len(found))
                else:
                    self._snap[wt] = fresh
                    self._replace.add(wt)
                    log.info("worktree %r: snapshot of %d files", wt, len(fresh))
            if version == self._version:
                break
        self._snap_version = self._version
        self._update_ready()
        return changes

    async def _snapshot_task(self) -> None:
        async with self._stepping():
            await self._snapshot_missing()

    async def _reload_rules(self, wt: str) -> list[Change]:
        root, old, snap = self._roots[wt], self._rules[wt], self._snap[wt]
        new = self._rules_factory(Path(root))
        refreshed: dict[str, Fingerprint | None] = {}
        try:
            changes = await asyncio.to_thread(_reconcile_rules, root, old, new, snap, wt, refreshed)
        except OSError as e:
            self._root_missing(wt, root, e)
            return []
        if not self._job_valid(wt, root, snap):
            return []
        self._rules[wt] = new
        self._apply(wt, changes, refreshed)
        log.info("worktree %r: ignore rules reloaded", wt)
        return changes

    async def _rescan(self, *, periodic: bool) -> list[Change]:
        async with self._stepping():
            if self._stopped:
                return []
            changes = await self._snapshot_missing()
            for wt in list(self._snap):
                root = self._roots.get(wt)
                if root is None:
                    continue
                rules, snap = self._rules[wt], self._snap[wt]
                exists, stale = await asyncio.to_thread(_probe, root, rules)
                if not exists:
                    self._root_missing(wt, root)
                    continue
                self._root_back(wt)
                if stale:
                    changes.extend(await self._reload_rules(wt))
                    continue
                refreshed: dict[str, Fingerprint | None] = {}
                try:
                    found, missed = await asyncio.to_thread(
                        _rescan_aged, root, rules, snap, wt, refreshed, time.time_ns() - _MISSED_AFTER_NS
                    )
                except OSError as e:
                    self._root_missing(wt, root, e)
                    continue
                if not self._job_valid(wt, root, snap):
                    continue
                self._apply(wt, found, refreshed)
                changes.extend(found)
                if periodic:
                    self._note_missed(missed)
                if any(_affects_rules(c.path) for c in found):
                    changes.extend(await self._reload_rules(wt))
            return changes

    def _note_missed(self, missed: int) -> None:
        if not missed or self._paused or self.status not in ("watching", "polling"):
            return
        self.missed_by_events += missed
        msg = (
            "file events are being missed (kernel queue overflow or watch limit?): "
            "some writes were found only by the periodic rescan"
        )
        if not self._missed_warned:
            self._missed_warned = True
            self._warn(msg)
        else:
            log.warning("%s (%d so far)", msg, self.missed_by_events)

    async def _rescan_loop(self) -> None:
        assert self._rescan_interval
        while not self._stopped:
            try:
                await asyncio.wait_for(self._stop_evt.wait(), self._rescan_interval)
                return
            except TimeoutError:
                pass
            try:
                await self._rescan(periodic=True)
            except Exception:
                log.exception("periodic rescan failed")

    # -- events -----------------------------------------------------------------

    async def _on_events(self, raw: set[tuple[Any, str]]) -> None:
        async with self._stepping():
            if self._paused or self._stopped:
                return
            jobs: dict[str, _Job] = {
                wt: (self._roots[wt], self._rules[wt], snap)
                for wt, snap in self._snap.items()
                if wt in self._roots
            }
            if not jobs:
                return
            try:
                per_wt, rules_touched = await asyncio.to_thread(_process_events, raw, jobs)
            except Exception:
                log.exception("failed to process %d file event(s); the next rescan will catch up", len(raw))
                return
            changes: list[Change] = []
            for wt, (found, refreshed) in per_wt.items():
                root, _, snap = jobs[wt]
                if self._job_valid(wt, root, snap):
                    self._apply(wt, found, refreshed)
                    changes.extend(found)
            for wt in rules_touched:
                if wt in self._snap and wt in self._roots:
                    changes.extend(await self._reload_rules(wt))

    def _watch_roots(self) -> list[str]:
        roots = sorted(set(self._roots.values()))
        top: list[str] = []
        for root in roots:  # a root inside another one is covered by the outer watch
            if any(root.startswith(t.rstrip(os.sep) + os.sep) for t in top):
                continue
            if os.path.isdir(root):
                top.append(root)
            else:
                for wt, r in self._roots.items():
                    if r == root:
                        self._root_missing(wt, root)
        return top

    def _restart_watch(self) -> None:
        if self._gen_stop is not None:
            self._gen_stop.set()
        self._wake.set()

    def _went_live(self, version: int, polling: bool) -> None:
        if self._stopped:
            return
        self.status = "polling" if polling else "watching"
        self._live_version = version
        self._update_ready()

    async def _idle(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _watch_loop(self) -> None:
        transient = 0
        while not self._stopped:
            self._wake.clear()
            version = self._version
            roots = self._watch_roots()
            if not roots:  # nothing (yet) to watch: wait for set_worktrees or a root to appear
                self._went_live(version, self._polling)
                self.status = "idle"
                await self._idle(self._retry_interval if self._roots else None)
                continue
            polling = self._polling
            gen_stop = asyncio.Event()
            self._gen_stop = gen_stop
            try:
                await self._run_generation(roots, polling, gen_stop, version)
                transient = 0
                continue  # restart requested, or stopped
            except _WatchFailed as failed:
                err = failed.__cause__ or failed
            except Exception as e:  # e.g. an awatch that cannot even be called
                log.exception("file watcher crashed")
                err = e
            finally:
                self._gen_stop = None
            if self._stopped:
                break
            self._live_version = -1  # not watching until the next generation is up
            self._update_ready()
            if self._version != version:
                continue  # the roots changed meanwhile: the error may be about a removed one
            if isinstance(err, FileNotFoundError):
                if not all(os.path.isdir(r) for r in roots):
                    continue  # a root vanished: the next round leaves it out
                if transient < 3:  # a directory vanished while notify was adding watches
                    transient += 1
                    log.info("retrying the watch after %s", err)
                    continue
            transient = 0
            reason = describe_watch_error(err)
            if not polling:
                self._polling = True
                self._warn(
                    f"{reason}: falling back to polling every {self._poll_delay_ms} ms",
                    level=logging.ERROR,
                )
                continue
            every = f"every {self._rescan_interval:g} s" if self._rescan_interval else "on request only"
            self._warn(
                f"polling watcher failed ({reason}): changes are found only by the rescan {every}; "
                f"retrying every {self._retry_interval:g} s",
                level=logging.ERROR,
            )
            self._went_live(version, polling)
            self.status = "rescan-only"
            await self._idle(self._retry_interval)

    async def _run_generation(
        self, roots: list[str], polling: bool, gen_stop: asyncio.Event, version: int
    ) -> None:
        log.info("watching %d root(s) with %s", len(roots), "polling" if polling else "native events")
        gen = self._awatch(
            *roots,
            watch_filter=None,
            debounce=self._debounce_ms,
            step=self._step_ms,
            stop_event=gen_stop,
            force_polling=polling,
            poll_delay_ms=self._poll_delay_ms,
            recursive=True,
            ignore_permission_denied=False,  # True would also hide a watch-limit error
        )
        nxt: asyncio.Future[Any] = asyncio.ensure_future(gen.__anext__())
        pending: asyncio.Future[Any] | None = nxt  # the step the finally must still wait for
        try:
            # awatch builds its RustNotify (adding every watch) before its first await, so once
            # that task has had one step, events are being recorded.
            await asyncio.sleep(0)
            if not nxt.done():
                self._went_live(version, polling)
            while True:
                # asyncio.wait, not await: awatch waits in a *shielded* anyio thread call, so
                # awaiting it directly would delay our cancellation by up to rust_timeout.
                await asyncio.wait({nxt})
                pending = None
                try:
                    raw = nxt.result()
                except StopAsyncIteration:
                    return
                except Exception as e:
                    raise _WatchFailed(str(e)) from e
                self._went_live(version, polling)
                if raw and not self._paused:
                    await self._on_events(raw)
                if gen_stop.is_set():
                    return
                nxt = pending = asyncio.ensure_future(gen.__anext__())
        finally:
            gen_stop.set()
            if pending is not None:
                if not pending.done():
                    await asyncio.wait({pending})  # returns within step_ms now that gen_stop is set
                if not pending.cancelled():
                    pending.exception()  # retrieved: no "exception never retrieved" noise
            try:
                await gen.aclose()  # type: ignore[attr-defined]
            except Exception:
                pass
