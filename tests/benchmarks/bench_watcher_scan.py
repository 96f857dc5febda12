"""Benchmark the watcher's snapshot passes (a plain script, not collected by pytest).

    python tests/benchmarks/bench_watcher_scan.py [--dirs 8] [--files 5000]

Creates DIRS x FILES small source-like files in a temporary directory and times:
the initial scan (stat + hash everything), a reconciliation rescan of the
unchanged tree (stat only), and a rescan after touching 1% of the files and
modifying 1% (stat + hash of 2%). File mtimes are set one hour back first, as
in a real checkout, so no entry counts as "racy" (see core/watcher.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.ignore import IgnoreRules  # noqa: E402
from core.watcher import rescan, scan  # noqa: E402


def build(root: Path, dirs: int, files: int) -> int:
    body = ("def f(x):\n    return x * 2  # padding to a typical source-file size\n" * 24).encode()
    past = time.time() - 3600
    total = 0
    for d in range(dirs):
        sub = root / f"pkg{d}"
        sub.mkdir()
        for f in range(files):
            path = sub / f"file{f}.py"
            path.write_bytes(body + str(f).encode())
            os.utime(path, (past, past))
            total += 1
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    os.utime(root / ".gitignore", (past, past))
    return total


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dirs", type=int, default=8)
    ap.add_argument("--files", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tower-bench-") as tmp:
        root = Path(tmp)
        t_build, n = timed(lambda: build(root, args.dirs, args.files))
        rules = IgnoreRules(root)
        rows = []
        t, snap = timed(lambda: scan(root, rules))
        assert len(snap) == n + 1, (len(snap), n)
        rows.append(("initial scan (stat + sha256 all)", len(snap), t))
        t, changes = timed(lambda: rescan(root, IgnoreRules(root), snap))
        assert changes == [], changes[:3]
        rows.append(("rescan, unchanged (stat only)", len(snap), t))
        t, changes = timed(lambda: rescan(root, IgnoreRules(root), snap))
        rows.append(("rescan, unchanged, again", len(snap), t))
        paths = sorted(snap)
        step = 100
        for i, rel in enumerate(paths[::step]):
            p = root / rel
            if i % 2:
                os.utime(p)  # touch: stat differs, content same
            else:
                p.write_bytes(p.read_bytes() + b"# edit\n")
        refreshed: dict = {}
        t, changes = timed(lambda: rescan(root, IgnoreRules(root), snap, refreshed=refreshed))
        rows.append((f"rescan, {len(changes)} modified + {len(refreshed)} touched", len(snap), t))

    print(f"tree: {args.dirs} dirs x {args.files} files = {n} files (built in {t_build:.1f} s), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'pass':44} {'files':>7} {'seconds':>8} {'files/s':>10}")
    for name, count, secs in rows:
        print(f"{name:44} {count:>7} {secs:>8.3f} {count / secs:>10,.0f}")


if __name__ == "__main__":
    main()
