"""The Claude Code hook's cost per tool call, and how fast a decision reaches a waiter.

Prints three tables:

1. Wall time of `tower hook claude-code` (median and p95 over RUNS runs, runs
   of all rows interleaved so machine noise hits them alike) for an allowed
   Edit of a file the lease already holds (the common case: no write), an
   Edit that claims a new file (one write transaction), a Bash command the
   policy allows alone (no database), beside `python -c pass` and `tower
   --version` measured in the same run.
2. Decision-to-waiter latency (p50/p95 over DECISIONS decisions): from the
   decider's COMMIT returning to a waiting process seeing the decision through
   the store's change signal; and to a `tower approval wait` process exiting.
3. The top-level imports of one hook call (`python -X importtime`), largest first.
4. The policy check (`Policy.decide` with the default policy, in process) on
   commands of 4, 16 and 64 KB: realistic ones and ones built to make a
   reader or a rule's regex work hard; ms per KB should stay flat (linear).

Child processes run without PYTHONDONTWRITEBYTECODE (after one warm-up run
writes the .pyc files), as they would on a user's machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store import Store  # noqa: E402

RUNS = 20
DECISIONS = 20
PY = sys.executable
TOWER = [PY, "-m", "tui.cli"]
SCRIPT = Path(PY).parent / "tower"
if SCRIPT.exists():
    TOWER = [str(SCRIPT)]

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("TOWER_")}
ENV["PYTHONPATH"] = str(ROOT)
ENV.update({"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b.invalid", "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@b.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})

WAITER = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[2])
from store import Store

async def main():
    async with Store(sys.argv[1]) as s:
        for line in sys.stdin:
            aid = int(line)
            await s.get_approval(aid)
            print("waiting", flush=True)
            a = await s.wait_for_decision(aid, timeout=60)
            print(json.dumps({"seen": time.time(), "status": a.status}), flush=True)

asyncio.run(main())
"""


def sh(args: list[str], cwd: Path, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, input=data, capture_output=True, check=True)


def setup(tmp: Path) -> tuple[Path, Path, str]:
    repo = tmp / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('hi')\n")
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "init"], repo)
    sh([*TOWER, "init"], repo)
    sh([*TOWER, "task", "add", "bench"], repo)
    lease = json.loads(sh([*TOWER, "--json", "task", "claim", "--ttl", "3600"], repo).stdout)["data"]["lease_id"]
    sh([*TOWER, "claim", lease, "src/app.py"], repo)
    return repo, repo / ".git" / "tower" / "tower.db", lease


def call(repo: Path, tool: str, tool_input: dict) -> bytes:
    return json.dumps({
        "session_id": "bench", "transcript_path": "/tmp/bench.jsonl", "cwd": str(repo),
        "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
        "tool_input": tool_input, "tool_use_id": "toolu_bench",
    }).encode()


def timed(args: list[str], cwd: Path, data: bytes | None = None, expect: str | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=ENV, input=data, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or (expect and expect.encode() not in proc.stdout):
        raise SystemExit(f"unexpected result from {args}: {proc.stdout!r} {proc.stderr!r}")
    return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def agent_call(kind: str, repo: Path, what: str, i: int = 0) -> bytes:
    """One gate payload of ``kind`` (its own event and tool names, docs/agents.md): an allowed shell
    command, or a write of a new file (Codex: an apply_patch adding it)."""
    new = f"src/new_{kind}_{i}.py"
    base = {"session_id": f"bench-{kind}", "cwd": str(repo), "transcript_path": "/tmp/bench.jsonl"}
    if kind == "codex":
        tool = ("Bash", {"command": "git status"}) if what == "bash" else (
            "apply_patch", {"command": f"*** Begin Patch\n*** Add File: {new}\n+x = 1\n*** End Patch\n"})
        return json.dumps({**base, "hook_event_name": "PreToolUse", "tool_name": tool[0], "tool_input": tool[1],
                           "tool_use_id": f"call_{i}", "turn_id": "t", "model": "gpt-5.5"}).encode()
    tool = ("run_shell_command", {"command": "git status", "description": "status"}) if what == "bash" else (
        "write_file", {"file_path": str(repo / new), "content": "x = 1\n"})
    return json.dumps({**base, "hook_event_name": "BeforeTool", "tool_name": tool[0], "tool_input": tool[1],
                       "timestamp": "2026-11-24T00:00:00Z"}).encode()


GOALS = {"Bash allowed": 40.0, "claims a new file": 50.0}  # ms, median (issue 12)


def hook_table(repo: Path) -> dict[str, list[float]]:
    edit = call(repo, "Edit", {"file_path": str(repo / "src" / "app.py"), "old_string": "hi", "new_string": "yo"})
    bash = call(repo, "Bash", {"command": "git status"})
    hook = [*TOWER, "hook", "claude-code", "--deadline", "600"]
    rows: dict[str, list[float]] = {name: [] for name in
                                    ("python -c pass", "tower --version",
                                     "claude-code: Bash allowed",
                                     "claude-code: Bash allowed, through click", "claude-code: Edit, file already claimed",
                                     "claude-code: Edit claims a new file",
                                     "codex: Bash allowed", "codex: apply_patch claims a new file",
                                     "gemini: Bash allowed", "gemini: write_file claims a new file")}
    timed(hook, repo, edit, expect='"allow"')  # warm-up: writes .pyc files, fills the policy cache
    for i in range(RUNS):
        new = call(repo, "Edit", {"file_path": str(repo / "src" / f"new_{i}.py"), "old_string": "", "new_string": ""})
        order = list(rows)
        random.shuffle(order)
        for name in order:
            kind = name.split(":")[0]
            if name == "python -c pass":
                rows[name].append(timed([PY, "-c", "pass"], repo))
            elif name == "tower --version":
                rows[name].append(timed([*TOWER, "--version"], repo))
            elif kind in ("codex", "gemini"):
                what = "bash" if name.endswith("Bash allowed") else "write"
                rows[name].append(timed([*TOWER, "hook", kind, "--deadline", "600"], repo,
                                        agent_call(kind, repo, what, i), expect='"allow"'))
            elif name.endswith("Bash allowed"):
                rows[name].append(timed(hook, repo, bash, expect='"allow"'))
            elif name.endswith("through click"):  # the CLI's own path, which the script skips
                rows[name].append(timed([PY, "-m", "tui.cli", *hook[1:]], repo, bash, expect='"allow"'))
            elif name.endswith("already claimed"):
                rows[name].append(timed(hook, repo, edit, expect='"allow"'))
            else:
                rows[name].append(timed(hook, repo, new, expect='"allow"'))
    return rows


async def store_latency(db: Path) -> list[float]:
    """Commit -> a waiting process sees it (its own connection, the change signal)."""
    waiter = subprocess.Popen([PY, "-c", WAITER, str(db), str(ROOT)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=ENV)
    out: list[float] = []
    try:
        async with Store(db, actor="bench") as s:
            for _ in range(DECISIONS):
                a = await s.request_approval(kind="command", summary="bench")
                waiter.stdin.write(f"{a.id}\n")
                waiter.stdin.flush()
                assert waiter.stdout.readline().strip() == "waiting"
                await asyncio.sleep(random.uniform(0.0, 0.1))  # land anywhere in the 50 ms poll
                await s.decide_approval(a.id, approve=True, actor="person:bench")
                committed = time.time()
                seen = json.loads(waiter.stdout.readline())
                out.append(seen["seen"] - committed)
    finally:
        waiter.kill()
        waiter.wait()
    return out


async def cli_latency(db: Path, repo: Path, runs: int) -> list[float]:
    """Commit -> the `tower approval wait` process has exited with the answer."""
    out: list[float] = []
    async with Store(db, actor="bench") as s:
        for _ in range(runs):
            a = await s.request_approval(kind="command", summary="bench")
            proc = subprocess.Popen([*TOWER, "approval", "wait", f"A{a.id}", "--timeout", "60"], cwd=repo,
                                    env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                assert "pending: " in proc.stderr.readline()  # waiting (the requester) or watching
                await asyncio.sleep(random.uniform(0.0, 0.1))
                await s.decide_approval(a.id, approve=True, actor="person:bench")
                committed = time.monotonic()
                proc.wait(timeout=30)
                out.append(time.monotonic() - committed)
                assert proc.returncode == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return out


def import_profile(repo: Path, limit: int = 10) -> list[tuple[str, float]]:
    edit = call(repo, "Edit", {"file_path": str(repo / "src" / "app.py"), "old_string": "hi", "new_string": "yo"})
    # as an agent runs it: the `tower` script (its fast path), or the module when there is no script
    entry = [str(SCRIPT)] if SCRIPT.exists() else ["-c", "import sys; from tui.entry import main; main()"]
    cmd = [PY, "-X", "importtime", *entry, "hook", "claude-code"]
    proc = subprocess.run(cmd, cwd=repo, env=ENV, input=edit.decode(), capture_output=True, text=True)
    top: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith(" ") or name.startswith("  "):
            continue  # top-level imports only (one space of indent)
        try:
            top.append((name.strip(), int(cumulative) / 1000))
        except ValueError:
            continue
    return sorted(top, key=lambda x: -x[1])[:limit]


POLICY_INPUTS = {
    "pytest | tail (realistic)": "pytest -q tests/unit -x 2>&1 | tail -40 && git status --short; ",
    "heredoc body": "cat <<'EOF' > notes.md\n" + "a line of prose about the change\n" * 8,
    "`tower ` repeated (reader)": "tower ",
    "`eval ` repeated (nesting)": "eval ",
    "`git ` repeated (rule regex)": "git ",
    "`ls; ` repeated (many parts)": "ls; ",
}


def policy_table() -> list[tuple[str, list[float]]]:
    from core.policy import default_policy
    from core.shell import analyse

    policy = default_policy()
    rows = []
    for name, unit in POLICY_INPUTS.items():
        per_kb = []
        for size in (4096, 16384, 65000):
            text = (unit * (size // len(unit) + 1))[:size]
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                if "regex" in name or "realistic" in name or "heredoc" in name:
                    policy.decide("Bash", command=text)
                else:
                    analyse(text)
                best = min(best, time.perf_counter() - t0)
            per_kb.append(best * 1000 / (size / 1024))
        rows.append((name, per_kb))
    return rows


def main() -> None:
    print("policy check, ms per KB at 4 / 16 / 64 KB (flat = linear; the hook cuts any check at 2 s)")
    for name, per_kb in policy_table():
        print(f"  {name:34} " + " ".join(f"{v:8.3f}" for v in per_kb))
    print()
    with tempfile.TemporaryDirectory() as tmp:
        repo, db, lease = setup(Path(tmp))
        rows = hook_table(repo)
        base = statistics.median(rows["python -c pass"])
        print(f"`tower hook <agent>` per call, {RUNS} runs each, interleaved (lease {lease} in worktree main)")
        print(f"{'what':42} {'median ms':>10} {'p95 ms':>8} {'- python':>9}")
        for name, values in rows.items():
            med = statistics.median(values)
            print(f"{name:42} {med * 1000:10.1f} {pct(values, 0.95) * 1000:8.1f} {(med - base) * 1000:9.1f}")
        for name, values in rows.items():
            goal = next((g for key, g in GOALS.items() if name.endswith(key)), None)
            if goal is not None:
                med = statistics.median(values) * 1000
                print(f"goal: {name} <= {goal:g} ms median -> {med:.0f} ms ({'met' if med <= goal else 'NOT met'})")
        print(f"machine load (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")

        lat = asyncio.run(store_latency(db))
        cli = asyncio.run(cli_latency(db, repo, max(5, DECISIONS // 2)))
        print()
        print(f"decision -> waiter ({len(lat)} decisions; waiter polls PRAGMA data_version every 50 ms)")
        print(f"{'what':42} {'p50 ms':>10} {'p95 ms':>8} {'max ms':>9}")
        print(f"{'waiting process sees the commit':36} {pct(lat, .5) * 1000:10.1f} {pct(lat, .95) * 1000:8.1f}"
              f" {max(lat) * 1000:9.1f}")
        print(f"{'`tower approval wait` has exited':36} {pct(cli, .5) * 1000:10.1f} {pct(cli, .95) * 1000:8.1f}"
              f" {max(cli) * 1000:9.1f}")

        print()
        print("largest top-level imports of one hook call (Edit, file already claimed), cumulative ms")
        for name, ms in import_profile(repo):
            print(f"  {name:34} {ms:7.1f}")


if __name__ == "__main__":
    main()
