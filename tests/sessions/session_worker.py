"""One agent for the multi-process session test: sends hook events (or runs lease verbs) on a real store.

    python session_worker.py DB KIND SESSION EVENTS

Waits for one line on stdin (the start signal). KIND ``cli`` claims, heartbeats
and finishes tasks; the others replay their agent's captured payloads (session
id and tool target rewritten): a prompt, then EVENTS tool calls (Pre/Post
pairs), turning idle and back every 10 calls. Prints one JSON summary line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.errors import NotFound  # noqa: E402
from store import Store  # noqa: E402
from tui.services.agent_events import record, session_event  # noqa: E402

FIXTURES = ROOT / "tests" / "agents" / "fixtures"
FILES = {  # kind -> (folder, prompt, pre, post, stop)
    "claude-code": ("claude", "UserPromptSubmit.json", "PreToolUse.Bash.json", "PostToolUse.Bash.json", "Stop.json"),
    "codex": ("codex", "UserPromptSubmit.json", "PreToolUse.Bash.json", "PostToolUse.Bash.json", "Stop.json"),
    "gemini": ("gemini", "BeforeAgent.json", "BeforeTool.run_shell_command.json",
               "AfterTool.run_shell_command.json", "AfterAgent.json"),
}


def load(folder: str, name: str, session: str) -> dict:
    data = json.loads((FIXTURES / folder / name).read_text())
    data["session_id"] = session
    return data


async def agent(db: str, kind: str, session: str, events: int) -> dict:
    folder, prompt, pre, post, stop = FILES[kind]
    payloads = {name: load(folder, name, session) for name in (prompt, pre, post, stop)}
    sys.stdin.readline()
    changes = 0
    async with Store(db, actor=session) as store:
        async def send(name: str, target: str | None = None) -> None:
            nonlocal changes
            data = dict(payloads[name])
            if target is not None:
                data["tool_input"] = {"command": target}
            change = await record(store, session_event(kind, data))
            changes += change.state != change.previous
        await send(prompt)
        for i in range(events):
            await send(pre, f"call-{i}")
            await send(post, f"call-{i}")
            if i % 10 == 9:
                await send(stop)
                await send(prompt)
    return {"session": session, "changes": changes}


async def cli(db: str, name: str, events: int) -> dict:
    sys.stdin.readline()
    done = 0
    async with Store(db, actor=name) as store:
        for _ in range(events):
            try:
                lease = await store.claim_task(agent=name, worktree=f"wt-{name}", ttl=120)
            except NotFound:
                break
            await store.heartbeat(lease.lease_id)
            await store.complete_task(lease.lease_id)
            done += 1
    return {"session": name, "done": done}


if __name__ == "__main__":
    db, kind, session, events = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    result = asyncio.run(cli(db, session, events) if kind == "cli" else agent(db, kind, session, events))
    print(json.dumps(result), flush=True)
