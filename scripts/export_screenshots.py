"""Regenerate the control room's screenshots in screenshots/ (SVG).

    .venv/bin/python scripts/export_screenshots.py [--out screenshots]

Drives the real app (``TowerApp.run_test``) on a deterministic store built
through the store's verbs in a temporary directory: a stepping clock, fixed
ids, UTC, no animation, no cursor blink, a 160x48 terminal. Writes:

    main.svg           the main screen of a busy session (approvals pane selected)
    reject-dialog.svg  rejecting an approval, with a reason typed
    help.svg           the help screen
    audit-tail.svg     a busy audit tail, paused by scrolling up, counting new events
    compact.svg        the same session in an 80x24 terminal (one pane at a time, tabs)
    light.svg          the main screen in a light theme (catppuccin-latte)
    agents.svg         the Agents pane: agents waiting, stalled, working, idle, ended
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ["TZ"] = "UTC"
time.tzset()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.errors import Refused  # noqa: E402
from store import Store  # noqa: E402
from tui.room.app import TowerApp  # noqa: E402
from tui.room.screens.help import HelpScreen  # noqa: E402
from tui.room.screens.reject import RejectDialog  # noqa: E402

SIZE = (160, 48)
T0 = 1_767_261_600.0  # 2026-01-01 10:00:00 UTC


class SteppingClock:
    """Moves a little on every reading: realistic, and the same on every run."""

    def __init__(self, start: float, step: float = 1.7) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FrozenClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


AGENTS = [("claude-a", "wt-a"), ("claude-b", "wt-b"), ("codex-c", "wt-c"), ("gemini-d", "wt-d")]
TASKS = [
    ("Parse the config loader into typed settings", 5, ["src/config/**"]),
    ("Add retry with jitter to the HTTP client", 3, ["src/http/**"]),
    ("Remove the deprecated v1 endpoints", 4, ["src/api/**"]),
    ("Fix the flaky test in test_scheduler", 2, ["tests/**", "src/scheduler/**"]),
    ("Document the CLI exit codes", 0, ["docs/**"]),
    ("Bump the pinned dependencies", 1, ["pyproject.toml", "uv.lock"]),
    ("Profile the cold start of the CLI", 1, ["src/cli/**"]),
    ("Stream large responses instead of buffering", 3, ["src/http/**"]),
    ("Port the billing job to the new scheduler", 2, ["src/billing/**", "src/scheduler/**"]),
    ("Write the migration for the audit index", 1, ["migrations/**"]),
    ("Translate error messages (fr, de)", 0, ["src/i18n/**"]),
    ("Harden the upload endpoint against zip bombs", 4, ["src/api/**"]),
    ("Cache the pricing table per tenant", 2, ["src/billing/**"]),
    ("Replace the hand-rolled CSV parser", 1, ["src/config/**"]),
    ("Add a health check for the queue consumer", 2, ["src/scheduler/**"]),
    ("Make the retry budget configurable", 1, ["src/http/**", "src/config/**"]),
    ("Split the 2,000-line routes module", 3, ["src/api/**"]),
    ("Type-check the CLI package in CI", 0, ["src/cli/**"]),
    ("Paginate the audit export", 2, ["src/api/**"]),
    ("Drop Python 3.9 support", 1, ["pyproject.toml"]),
    ("Explain the lease model in the docs", 0, ["docs/**"]),
    ("Fix the timezone bug in invoices", 4, ["src/billing/**"]),
    ("Rate-limit the login endpoint", 5, ["src/api/**"]),
    ("Add structured logging to the worker", 1, ["src/scheduler/**"]),
]
FILES = {
    "src/config/**": ["src/config/loader.py", "src/config/schema.py"],
    "src/http/**": ["src/http/client.py", "src/http/retry.py", "src/http/stream.py"],
    "src/api/**": ["src/api/v1/routes.py", "src/api/upload.py"],
    "tests/**": ["tests/test_scheduler.py"],
    "src/scheduler/**": ["src/scheduler/core.py"],
    "docs/**": ["docs/cli.md"],
    "pyproject.toml": ["pyproject.toml"],
    "uv.lock": ["uv.lock"],
    "src/cli/**": ["src/cli/main.py"],
    "src/billing/**": ["src/billing/job.py"],
    "migrations/**": ["migrations/0007_audit_index.sql"],
    "src/i18n/**": ["src/i18n/fr.po", "src/i18n/de.po"],
}


async def build(db: Path, clock: SteppingClock) -> None:
    """A morning with four agents: three waves of claims, heartbeats and finished
    work, a failure, approvals decided, then two requests waiting and a conflict."""
    rng = random.Random(4)
    async with Store(db, create=True, actor="person:ada", clock=clock) as s:
        for agent, wt in AGENTS:
            await s.add_worktree(wt, f"/home/ada/shop/{wt}", branch=f"agent/{agent}", agent=agent)
        ids: list[int] = []
        for title, priority, scope in TASKS:
            deps = [ids[0]] if title.startswith("Write the migration") else []
            ids.append((await s.add_task(title, priority=priority, scope=scope, depends_on=deps)).id)
        commands = ["pytest -x tests/", "npm run build", "git push origin HEAD", "make migrate"]
        for wave in range(3):
            leases: list[tuple[str, str, int, list[str]]] = []
            for agent, wt in AGENTS:
                claim = await s.claim_task(agent=agent, worktree=wt, ttl=rng.choice([600, 900, 1200]))
                files = [f for g in claim.scope for f in FILES.get(g, [])][:2]
                try:
                    await s.claim_files(claim.lease_id, files)
                except Refused:
                    files = []  # another agent holds them: this one works around it
                leases.append((agent, wt, claim.lease_id, files))
            for _ in range(40):
                agent, wt, lease_id, _files = rng.choice(leases)
                await s.heartbeat(lease_id)
                if rng.random() < 0.08:
                    a = await s.request_approval(kind="command", summary=rng.choice(commands), lease_id=lease_id)
                    if rng.random() < 0.8:
                        await s.decide_approval(a.id, approve=True, actor="person:ada")
                    else:
                        await s.decide_approval(a.id, approve=False, reason="run it in the sandbox first",
                                                actor="person:ada")
            if wave == 2:
                break  # the last wave is still at work
            for n, (agent, wt, lease_id, _files) in enumerate(leases):
                if wave == 1 and n == 2:
                    await s.fail_task(lease_id, "tests failed: 2 errors in test_invoices")
                elif wave == 0 and n == 3:
                    await s.release_lease(lease_id)
                else:
                    await s.complete_task(lease_id)
        # the moment of the screenshot: two requests waiting, one conflict open
        (a_agent, a_wt, a_lease, a_files), (b_agent, b_wt, b_lease, _b) = leases[0], leases[1]
        await s.request_approval(kind="command", summary="rm -rf build/ && make release", lease_id=a_lease,
                                 detail={"command": "rm -rf build/ && make release", "cwd": f"/home/ada/shop/{a_wt}"})
        await s.request_approval(kind="merge", summary=f"Merge agent/{b_agent} into main", lease_id=b_lease,
                                 detail={"branch": f"agent/{b_agent}", "commits": 6})
        # what the agents' hooks said: one waits at its own prompt, one works, one went quiet
        await s.record_session_event("claude-code", "8c1f0e2a-5b7d", "Notification", state="waiting",
                                     worktree=a_wt, agent=a_agent,
                                     waiting_reason="permission: Claude needs your permission to use Bash")
        await s.record_session_event("codex", "019a7c3e-codex", "PostToolUse", tool="apply_patch",
                                     target="src/http/retry.py", tool_call=True, outcome="ok", worktree=b_wt,
                                     agent=b_agent)
        await s.record_session_event("gemini", "5d1c9e0a-gem", "AfterAgent", state="idle", tool="run_shell_command",
                                     target="pytest tests/billing -x", worktree=None, agent="gemini-x")
        if a_files:
            await s.record_conflict(kind="claimed_by_other", path=a_files[0], worktree=b_wt, other_worktree=a_wt,
                                    lease_id=b_lease, other_lease_id=a_lease,
                                    message=f"{b_wt} wrote {a_files[0]}, claimed by L{a_lease} in {a_wt}")


async def more_events(db: Path, clock: SteppingClock, n: int) -> None:
    """Another process keeps working while the person reads the tail."""
    async with Store(db, actor="person:ada", clock=clock) as s:
        leases = await s.list_leases()
        for i in range(n):
            await s.heartbeat(leases[i % len(leases)].id)


async def loaded(pilot) -> None:
    app = pilot.app
    await asyncio.wait_for(app.loaded.wait(), 10)
    while app.counts is None or app.audit_tail.head != app.counts.audit_seq:
        await pilot.pause(0.02)
    await pilot.pause()


async def until(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there")
        await pilot.pause(0.02)


def make_app(db: Path, now: float, theme: str | None = None) -> TowerApp:
    app = TowerApp(db, clock=FrozenClock(now), watch=False, actor="person:ada", settings_path=None)
    if theme is not None:
        app.theme = theme
    app.animation_level = "none"
    app.cursor_blink = False
    return app


def text_of(app) -> str:
    """The screen as plain text (``--text``: to review a change without an SVG viewer)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


async def shoot(out: Path, show_text: bool = False) -> list[Path]:
    written = []

    def save(app: TowerApp, name: str) -> None:
        written.append(Path(app.save_screenshot(name, str(out))))
        if show_text:
            print(f"--- {name}\n{text_of(app)}")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tower.db"
        clock = SteppingClock(T0)
        await build(db, clock)
        now = clock.now + 45

        app = make_app(db, now)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("3")
            save(app, "main.svg")
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, RejectDialog))
            await pilot.press(*"not before the release freeze ends")
            save(app, "reject-dialog.svg")
            await pilot.press("escape")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            save(app, "help.svg")
            await pilot.press("escape")

            await pilot.press("5")
            for _ in range(6):
                await pilot.press("k")
            tail = app.audit_tail
            await more_events(db, clock, 14)
            await until(pilot, lambda: tail.new_events == 14)
            await pilot.pause()
            save(app, "audit-tail.svg")

        app = make_app(db, now)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await pilot.press("3")
            await pilot.pause()
            save(app, "compact.svg")

        app = make_app(db, now, theme="catppuccin-latte")
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("3")
            await pilot.pause()
            save(app, "light.svg")

        # last: the room's sweep writes the stalls down (the shots above are of the earlier moment)
        app = make_app(db, now + 400)  # later: a quiet agent with a live lease has stalled
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("6")
            await pilot.pause()
            save(app, "agents.svg")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--text", action="store_true", help="also print each screen as plain text")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(args.out, args.text)):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
