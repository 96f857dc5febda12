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
from pathlib import Path

from core.errors import BadInput, TowerError, describe_bug
from tui.services import hook_engine, hook_records
from tui.services.hook_engine import Limits


def _use_names(agent: str | None, worktree: str | None) -> None:
    """Hand --agent/TOWER_AGENT and --worktree/TOWER_WORKTREE to the engine."""
    hook_engine.AGENT_NAME = agent or _env("TOWER_AGENT") or None
    hook_engine.WORKTREE_HINT = worktree or _env("TOWER_WORKTREE") or None


def _env(name: str) -> str | None:
    """A TOWER_* variable; one that is not valid UTF-8 is bad input (a deny saying so), not a crash later."""
    value = os.environ.get(name)
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadInput(f"{name} is not valid UTF-8 (at position {exc.start})", code="bad_text") from None
    return value


def run(kind: str, event: str | None, deadline_text: str | None, *, db: str | None = None,
        agent: str | None = None, worktree: str | None = None) -> None:
    """One hook call of agent ``kind``: parse stdin, decide, answer in the agent's format (via hookguard).

    ``deadline_text`` (the entry's ``--deadline``): when the agent kills the
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
        from core.locate import store_ref

        hook_engine.EXPLICIT_DB = store_ref(db)  # type: ignore[assignment]  # a postgresql:// URL quacks like the path
    limits = Limits(started, None)
    hookguard.set_deadline(limits.hard)
    parsed = None
    call = None
    try:
        deadline: float | None = None
        if deadline_text is not None:
            from core.hook import parse_deadline

            try:
                deadline = parse_deadline(deadline_text)
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
                try:
                    _use_names(agent, worktree)
                except BadInput:
                    pass  # news is recorded under the agent's session instead; it never becomes a deny
                hook_records.record_news(kind, parsed)
                return
            _use_names(agent, worktree)  # a name that is not UTF-8 denies a call, saying so
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
        decision, reason = "deny", f"Tower hook internal error: {describe_bug(exc)} (a bug: please report it)"
    hookguard.answer(decision, reason)
    if decision == "deny" and parsed is not None:
        hook_records.audit_denial(kind, parsed, call, reason, limits.soft)
