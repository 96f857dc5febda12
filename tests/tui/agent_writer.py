"""Another process writing to the store, as agents and their hooks do: one JSON command a
line on stdin, one JSON answer a line on stdout once its transaction has committed.

    {"hook": "claude-code", "payload": {...}, "worktree": "wt-a"}   a hook payload, through the
                                                                    adapters' own mapping and record()
    {"verb": "claim_task", "args": {...}}                            any store verb

Started by ``AgentWriter`` (tui_helpers.py); ``python agent_writer.py DB``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from core.models import to_json
from store import Store
from tui.services.agent_events import record, session_event


async def main(db: str) -> None:
    async with Store(db, actor="agent-writer") as store:
        loop = asyncio.get_running_loop()
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            try:
                if "hook" in command:
                    ev = session_event(command["hook"], command["payload"], command.get("event"))
                    assert ev is not None, f"the adapters ignore {command['payload']}"
                    change = await record(store, ev, agent=command.get("agent"), worktree=command.get("worktree"))
                    answer = {"ok": True, "data": {"id": change.id, "state": change.state}}
                else:
                    result = await getattr(store, command["verb"])(**command.get("args", {}))
                    answer = {"ok": True, "data": to_json(result) if not isinstance(result, tuple) else
                              to_json(list(result))}
            except Exception as exc:  # noqa: BLE001 - said to the test, which fails on it
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
