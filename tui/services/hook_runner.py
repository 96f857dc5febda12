"""Running one agent hook call: the engine, the adapter, the answer, and the audit after it.

Shared by ``tower hook <agent>`` under click and the ``tower`` script's fast
path (tui/entry.py), which never imports click: this runs on every tool call
of every agent. It always answers exactly once through :mod:`tui.hookguard`
(a deny in the agent's format for any failure), then records what needs
recording (``hook.denied``, session events) in one short transaction.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from core.errors import BadInput, TowerError
from tui.services import hook_engine
from tui.services.hook_engine import Limits, _where


def run(kind: str, event: str | None, deadline: str | None, *, db: str | None = None,
        agent: str | None = None, worktree: str | None = None) -> None:
    """One hook call of agent ``kind``: parse stdin, decide, answer in the agent's format (via hookguard).

    ``deadline`` (the entry's ``--deadline``, text): when the agent kills the
    hook; ``db``, ``agent``, ``worktree``: the command line's ``--db``,
    ``--agent``, ``--worktree`` (else the ``TOWER_*`` variables). An agent that cannot be asked (Codex PreToolUse, Gemini, Copilot
    permissionRequest) gets ``deny`` where the engine would answer ``ask``, with
    a reason the model can act on. Every refusal is audited (``hook.denied``);
    events that decide nothing are answered at once and recorded.
    """
    from tui import hookguard
    from tui.services import hook_adapters

    started = hookguard.STARTED
    hookguard.set_format(kind, event)
    hook_engine.AGENT = kind
    if db:
        hook_engine.EXPLICIT_DB = Path(db).expanduser().absolute()
    hook_engine.AGENT_OPT, hook_engine.WORKTREE_OPT = agent or None, worktree or None
    limits = Limits(started, None)
    hookguard.set_deadline(limits.hard)
    parsed = None
    call = None
    try:
        if deadline is not None:
            from core.hook import parse_deadline

            try:
                deadline = parse_deadline(deadline)
            except ValueError as exc:
                raise BadInput(f"{exc} (fix the hook entry: run `tower hook install {kind}` again)") from None
            limits = Limits(started, deadline)
            hookguard.set_deadline(limits.hard)
        raw = sys.stdin.buffer.read()
        from core.hook import HookInputError

        try:
            parsed = hook_adapters.parse(kind, raw, event)
        except HookInputError as exc:
            decision, reason = "deny", f"Tower hook: unusable input: {exc}"
        else:
            hookguard.set_format(kind, parsed.event)
            if not parsed.gate:
                hookguard.answer("noop", "")  # never hold up an agent for news
                _record_news(kind, parsed)
                return
            call = parsed.calls[0]
            decision, reason = hook_engine.decide_calls(parsed.calls, started, deadline, limits,
                                                         ask_person=parsed.ask_person)
            if decision == "ask" and not parsed.can_ask:
                decision, reason = "deny", (f"{reason} — {kind} cannot ask its user from this hook, so Tower"
                                            " denies it: ask the person running Tower to approve it, or do"
                                            " something else")
    except TowerError as exc:
        decision, reason = "deny", f"Tower: {exc.message}"
    except hookguard.OutOfTime:
        decision, reason = "deny", (f"Tower could not check this call within {limits.budget:g}s (a very long or"
                                    " complex command?): denied; split it into simpler commands")
    except (KeyboardInterrupt, hookguard.HookInterrupted) as exc:
        # the signal's name tells the model (and the person reading the audit) what stopped it
        decision, reason = "deny", f"Tower hook interrupted ({exc or 'SIGINT'}) before it could decide"
    except BaseException as exc:  # noqa: BLE001 - a hook that dies lets the call through
        decision, reason = "deny", f"Tower hook internal error: {_where(exc)} (a bug: please report it)"
    hookguard.answer(decision, reason)
    if decision == "deny" and parsed is not None:
        _audit_denial(kind, parsed, call, reason, limits)


# once the answer is out, the audit write waits this long at most for a store another process
# keeps locked: the agent may wait for the hook to exit, and must not wait long for Tower's record
AFTER_ANSWER_S = 2.0


def _audit_denial(kind: str, parsed, call, reason: str, limits: Limits) -> None:
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

        async def body(store):
            await store.record_hook_denial(agent=kind, actor=actor, tool=parsed.tool or "?", reason=reason,
                                           session=session, path=path, command=command)
            if session:
                from tui.services.agent_events import SessionEvent, record

                await record(store, SessionEvent(kind=kind, session=session, event=parsed.event,
                                                 state="working", tool=parsed.tool, target=path or command,
                                                 tool_call=True, outcome="denied", cwd=str(cwd)))

        _run_store(db, actor, body, min(limits.soft, time.monotonic() + AFTER_ANSWER_S))
    except BaseException as exc:  # noqa: BLE001 - the answer is out; a failed audit must not change it
        sys.stderr.write(f"tower hook: could not audit the refusal: {exc}\n")


def _record_news(kind: str, parsed) -> None:
    try:
        from tui.services.agent_events import record, session_event

        ev = session_event(kind, parsed.payload, parsed.event)
        if ev is None:
            return
        db = hook_engine.find_db(Path(ev.cwd) if ev.cwd else Path.cwd())
        if db is None or not db.exists():
            return
        _run_store(db, hook_engine.agent_name_or(kind, ev.session), lambda store: record(store, ev),
                   time.monotonic() + AFTER_ANSWER_S)
    except BaseException as exc:  # noqa: BLE001 - news must never fail the agent
        sys.stderr.write(f"tower hook: could not record the session event: {exc}\n")


def _run_store(db: Path, actor: str, body, give_up_at: float) -> None:
    import asyncio

    from store import Store

    async def main():
        async with Store(db, actor=actor) as store:
            store.give_up_at = give_up_at
            await body(store)

    asyncio.run(main())
