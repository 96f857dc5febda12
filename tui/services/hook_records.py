"""What a hook records after its answer is out: a refusal (``hook.denied``) and the news of
events that decide nothing. The agent is never kept waiting long for these, and a failure
to record never changes the answer."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from tui.services import hook_engine

TYPE_CHECKING = False  # typing stays unloaded on the agents' path (core/typecheck.py)
if TYPE_CHECKING:
    from core.hook import HookInput
    from tui.services.hook_adapters import Parsed


# once the answer is out, the audit write waits this long at most for a store another process
# keeps locked: the agent may wait for the hook to exit, and must not wait long for Tower's record
AFTER_ANSWER_S = 2.0


def audit_denial(kind: str, parsed: Parsed, call: HookInput | None, reason: str,
                 give_up_at: float | None = None) -> None:
    """``hook.denied`` in one short transaction, after the answer is out (the agent is not kept waiting)."""
    try:
        from tui.services.hook_adapters import target_of

        cwd = Path(call.cwd) if call is not None and call.cwd else Path.cwd()
        db = hook_engine.find_db(cwd)
        if db is None or not db.exists():
            return
        path, command = target_of(call) if call is not None else (None, None)
        if path is not None and os.path.isabs(path):
            from core.gitrepo import discover

            info = discover(cwd)
            if info is not None:
                try:
                    path = os.path.relpath(path, info.worktree_root)
                except ValueError:
                    pass
        session = parsed.session
        actor = hook_engine.agent_name_or(kind, session)

        async def body(store, _catcher):
            await store.record_hook_denial(agent=kind, actor=actor, tool=parsed.tool or "?", reason=reason,
                                           session=session, path=path, command=command)
            if session:
                from tui.services.agent_events import SessionEvent, record

                await record(store, SessionEvent(kind=kind, session=session, event=parsed.event,
                                                 state="working", tool=parsed.tool, target=path or command,
                                                 tool_call=True, outcome="denied", cwd=str(cwd)))

        hook_engine.run_on_store(db, actor, min(give_up_at or math.inf, time.monotonic() + AFTER_ANSWER_S),
                                 body, waits=False)
    except BaseException as exc:  # noqa: BLE001 - the answer is out; a failed audit must not change it
        sys.stderr.write(f"tower hook: could not audit the refusal: {exc}\n")


def record_news(kind: str, parsed: Parsed) -> None:
    """A hook event that decides nothing (a prompt, a turn's end …): its session event, stored."""
    try:
        from tui.services.agent_events import record, session_event

        ev = session_event(kind, parsed.payload, parsed.event)
        if ev is None:
            return
        db = hook_engine.find_db(Path(ev.cwd) if ev.cwd else Path.cwd())
        if db is None or not db.exists():
            return
        hook_engine.run_on_store(db, hook_engine.agent_name_or(kind, ev.session), time.monotonic() + AFTER_ANSWER_S,
                                 lambda store, _catcher: record(store, ev), waits=False)
    except BaseException as exc:  # noqa: BLE001 - news must never fail the agent
        sys.stderr.write(f"tower hook: could not record the session event: {exc}\n")
