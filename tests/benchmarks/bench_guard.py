"""The commit guard on a large commit: `tower guard check --staged` with 1,000 staged files.

Prints one table (median and max of RUNS runs, interleaved): the guard's check
with 1,000 staged files while another worktree's lease holds 1,000 other
claims (nothing refused: every file probed against every claim and the
lease's scope); the same commit when all 1,000 files are claimed by the other
worktree (refused, audited); the `git diff --cached` that the check runs; and
a real `git commit` of the 1,000 files with the hook installed beside the same
commit with `--no-verify`. The goal: the check under 0.5 s.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store import Store  # noqa: E402

RUNS = 7
FILES = 1000
PY = sys.executable
TOWER = [PY, "-m", "tui.cli"]
SCRIPT = Path(PY).parent / "tower"
if SCRIPT.exists():
    TOWER = [str(SCRIPT)]

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("TOWER_")}
ENV["PYTHONPATH"] = str(ROOT)
ENV.update({"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b.invalid", "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@b.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})


def sh(args: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env or ENV, capture_output=True, text=True, check=check)


def timed(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, int]:
    t = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env or ENV, capture_output=True)
    return time.perf_counter() - t, proc.returncode


async def seed(db: Path, claimed_by_other: list[str]) -> None:
    async with Store(db, actor="bench") as s:
        await s.add_task("main's work", scope=[])
        await s.add_task("wt-b's work", scope=["src/**"])
        main = await s.claim_task(agent="alice", worktree="main", ttl=3600)
        await s.claim_task(agent="bob", worktree="wt-b", ttl=3600)
        for i in range(0, len(claimed_by_other), 200):
            await s.claim_files(main.lease_id, claimed_by_other[i:i + 200], agent="alice")


def build(tmp: Path, *, refuse: bool) -> Path:
    """A repository whose worktree wt-b has FILES new files staged; returns wt-b."""
    main = tmp / ("refused" if refuse else "allowed")
    main.mkdir()
    sh(["git", "init", "-q", "-b", "main"], main)
    (main / "README.md").write_text("bench\n")
    sh(["git", "add", "-A"], main)
    sh(["git", "commit", "-q", "-m", "init"], main)
    sh([*TOWER, "init"], main)
    wt = tmp / f"{main.name}-wt-b"
    sh([*TOWER, "worktree", "add", "wt-b", "--path", str(wt)], main)
    staged = [f"src/pkg{i // 100}/mod{i}.py" for i in range(FILES)]
    other = staged if refuse else [f"src/other{i // 100}/mod{i}.py" for i in range(FILES)]
    asyncio.run(seed(main / ".git" / "tower" / "tower.db", other))
    for rel in staged:
        path = wt / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"X = {rel!r}\n")
    sh(["git", "add", "-A"], wt)
    sh([*TOWER, "guard", "install"], main)
    return wt


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        allowed, refused = build(tmp, refuse=False), build(tmp, refuse=True)
        bob = dict(ENV, TOWER_AGENT="bob")
        check = [*TOWER, "guard", "check", "--staged"]
        rows: dict[str, list[float]] = {k: [] for k in ("pass", "diff", "allowed", "refused", "commit", "noverify")}
        sh(check, allowed, bob, check=False)  # warm-up: .pyc files
        for _ in range(RUNS):
            rows["pass"].append(timed([PY, "-c", "pass"], allowed)[0])
            rows["diff"].append(timed(["git", "diff", "--cached", "--name-only", "-z", "--no-renames"], allowed)[0])
            elapsed, code = timed(check, allowed, bob)
            assert code == 0, "the allowed commit was refused"
            rows["allowed"].append(elapsed)
            elapsed, code = timed(check, refused, bob)
            assert code == 4, f"the refused commit answered {code}"
            rows["refused"].append(elapsed)
        for _ in range(3):
            # a real commit through the hook, then undone; and the same without the hook
            elapsed, code = timed(["git", "commit", "-q", "-m", "bench"], allowed, bob)
            assert code == 0
            rows["commit"].append(elapsed)
            sh(["git", "reset", "-q", "--soft", "HEAD~1"], allowed)
            elapsed, code = timed(["git", "commit", "-q", "--no-verify", "-m", "bench"], allowed, bob)
            assert code == 0
            rows["noverify"].append(elapsed)
            sh(["git", "reset", "-q", "--soft", "HEAD~1"], allowed)

        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:.0f} | {max(values) * 1000:.0f}"

        print(f"\n## Commit guard: {FILES} staged files, {FILES} claims held by another worktree\n")
        print("| what | median ms | max ms |")
        print("|---|---:|---:|")
        print(f"| python -c pass | {ms(rows['pass'])} |")
        print(f"| git diff --cached --name-only ({FILES} files) | {ms(rows['diff'])} |")
        print(f"| tower guard check --staged: nothing refused | {ms(rows['allowed'])} |")
        print(f"| tower guard check --staged: {FILES} refused, audited | {ms(rows['refused'])} |")
        print(f"| git commit through the hook ({FILES} files) | {ms(rows['commit'])} |")
        print(f"| git commit --no-verify ({FILES} files) | {ms(rows['noverify'])} |")
        worst = max(statistics.median(rows["allowed"]), statistics.median(rows["refused"]))
        print(f"\ngoal: check under 500 ms for {FILES} files: {'met' if worst < 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
