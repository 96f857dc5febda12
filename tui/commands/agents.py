"""``tower agent list`` and ``tower agent show``: every agent session, who needs the person first.

States are derived when read (store/sessions.py): ``stalled`` and ``ended``
need no event. Listing also runs the sessions' sweep, so those transitions are
written down (and audited) once. Thresholds: ``TOWER_STALL_AFTER`` (seconds,
default 300) and ``TOWER_SESSION_END_AFTER`` (default 1800).

Everything an agent sent (names, tools, targets, reasons) passes through
``core.display.printable_line`` before it reaches the terminal; ``--json`` is exact.
"""

from __future__ import annotations

import time

import click

from core.display import printable_line
from core.ids import format_id
from tui.clikit import common_options, emit, parse, run


@click.group()
def agent() -> None:
    """Agent sessions: who is working, who waits for you, who is stuck."""


def _clean(text, width: int | None = None) -> str:
    from tui.format import ellipsize

    s = printable_line(text if text is not None else "")
    return ellipsize(s, width) if width else s


def _who(s) -> str:
    name = _clean(s.agent or s.session[:12], 24)
    return f"{name} @ {_clean(s.worktree, 16)}" if s.worktree else name


def _last(s) -> str:
    if s.last_tool == "tower" and s.last_target:  # a command-line agent's own verbs
        return f"last: tower {_clean(s.last_target, 60)}"
    if s.last_tool:
        target = f": {_clean(s.last_target, 60)}" if s.last_target else ""
        return f"last {_clean(s.last_tool, 24)}{target}"
    return f"last {_clean(s.last_event, 24)}"


def _what(s, now: float) -> str:
    from tui.format import duration

    if s.state == "waiting":
        if s.waiting_for is not None:
            why = s.waiting_reason or ""
            prefix = f"Tower approval {format_id('approval', s.waiting_for)}"
            why = why[len(prefix):].lstrip(": ") if why.startswith(prefix) else why
            return f"waits for {format_id('approval', s.waiting_for)}" + (f": {_clean(why, 60)}" if why else "")
        return f"waits at its own prompt: {_clean(s.waiting_reason or 'input', 60)}"
    if s.state == "stalled":
        return f"no event for {duration(now - s.last_event_at)}; {_last(s)}"
    if s.state == "ended" and s.waiting_reason:
        return f"{_clean(s.waiting_reason, 40)}; {_last(s)}"
    return _last(s)


def session_line(s, now: float) -> str:
    from tui.format import duration

    lease = format_id("lease", s.lease_id) or "-"
    return (f"{format_id('session', s.id):<5} {s.state:<8} {duration(now - s.state_since):>6}  {s.kind:<11} "
            f"{_who(s)}  {lease}  {_what(s, now)}")


@agent.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include ended sessions.")
@common_options
def agent_list(show_all: bool) -> None:
    """Agent sessions: waiting first, then stalled, working, idle (ended with --all).

    Each line: id, state, time in that state, kind, agent @ worktree, lease, and
    what it waits for or its last tool call.
    """

    async def body(s):
        await s.sweep_sessions()
        return await s.list_sessions(all=show_all)

    rows = run(body)
    now = time.time()
    emit(rows, lambda: "\n".join(session_line(r, now) for r in rows) or
         ("no agent sessions" if show_all else "no live agent sessions (--all shows ended ones)"))


@agent.command("show")
@click.argument("session_id", metavar="S")
@common_options
def agent_show(session_id: str) -> None:
    """One session: its state, recent tool calls, lease and claims, approvals, and its task's audit."""
    sid = parse("session", session_id)
    detail = run(lambda s: s.session_detail(sid))
    s = detail["session"]
    data = dict(detail, session=s.to_json())
    emit(data, lambda: _show(detail))


def _show(detail: dict) -> str:
    from tui.format import clock_time, duration, iso_clock_time

    now = time.time()
    s = detail["session"]
    lines = [f"{format_id('session', s.id)} {s.kind} session {_clean(s.session)}  ({_who(s)})",
             f"  {s.state} for {duration(now - s.state_since)}: {_what(s, now)}",
             f"  started {clock_time(s.started_at)}, last event {_clean(s.last_event, 40)} at"
             f" {clock_time(s.last_event_at)}" + (f", pid {s.pid}" if s.pid else "")]
    lease = detail["lease"]
    if lease is None:
        lines.append("  no lease")
    else:
        lines.append(f"  lease {lease['id']} {lease['status']}: {lease['task_id']} {_clean(lease['task_title'], 60)}"
                     f" (token {lease['token']})")
        if detail["claims"]:
            lines.append("  claims: " + ", ".join(_clean(p) for p in detail["claims"]))
    calls = detail["tool_calls"]
    lines.append(f"  recent tool calls ({len(calls)}, newest first):" if calls else "  no tool calls recorded")
    for c in calls:
        lines.append(f"    {iso_clock_time(c['at'])} {_clean(c['tool'] or c['event'], 20):<12}"
                     f" {_clean(c['target'], 70)}" + (f"  [{_clean(c['outcome'])}]" if c["outcome"] else ""))
    if detail["approvals"]:
        lines.append("  approvals:")
        for a in detail["approvals"]:
            lines.append(f"    {a['id']:<5} {a['status']:<9} {a['kind']:<8} {_clean(a['summary'], 60)}"
                         f"  ({_clean(a['requested_by'], 24)})")
    if detail["audit"]:
        task = detail["lease"]["task_id"] if detail["lease"] else ""
        lines.append(f"  audit of {task}:")
        for e in detail["audit"]:
            lines.append(f"    #{e['seq']:<6} {iso_clock_time(e['ts'])} {_clean(e['actor'], 20):<20} {e['event']}")
    return "\n".join(lines)
