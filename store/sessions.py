"""Agent sessions: who is working, who waits for a person, who is stuck.

One row per agent session (``agent_sessions``): a Claude Code, Codex, Gemini
CLI, Copilot CLI or Cursor session seen through its hooks, or an agent that
only uses the command line (kind ``cli``, seen through its lease verbs). The
row holds the latest state; the last 50 tool calls of each session are kept in
``agent_tool_calls`` (a trigger prunes in the inserting transaction).

The hook path calls :meth:`SessionVerbs.record_session_event` on every tool
call of every agent, so it is one short transaction of plain SQL: one read
that also resolves the worktree and lease, one write, at most two for the
tool-call history, and an audit event only when the stored state changes
(``agent.state``), never for a tool call.

Stored states are ``working``, ``waiting``, ``idle``, ``ended`` and
``stalled``. What a reader sees is derived at read time (:func:`derive`),
because some states arrive without any event: ``stalled`` (an active lease and
no event for ``stall_after``), ``ended`` (the agent's process is gone, or no
event and no lease for ``end_after``), and ``waiting`` on a pending approval
filed under the session's lease. :meth:`SessionVerbs.sweep_sessions` writes
those derived transitions down (audited once each) and prunes old sessions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from core.audit import ROW_FIELDS
from core.errors import BadInput, NotFound
from core.ids import format_id
from core.models import AgentSession
from core.records import record
from core.vocab import iso
from store.audit_log import event_from_values

from store.db import StoreBase
from store.rows import APPROVAL_SELECT, approval_from_row, lease_from_row, lease_select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from store.backend.protocols import Row, Tx


KINDS = ("claude-code", "codex", "gemini", "copilot", "cursor", "cli")
STATES = ("working", "waiting", "idle", "stalled", "ended")
# what an event may set; stalled is only ever derived (and written by the sweep)
EVENT_STATES = ("working", "waiting", "idle", "ended")
# agent list order: who needs the person first
STATE_ORDER = {"waiting": 0, "stalled": 1, "working": 2, "idle": 3, "ended": 4}

DEFAULT_STALL_AFTER = 300.0
DEFAULT_END_AFTER = 1800.0
DEFAULT_RETENTION = 24 * 3600.0
HISTORY_PER_SESSION = 50  # the bound of the agent_tool_calls trigger (store/schema.py)
TEXT_LIMIT = 500
SESSION_ID_LIMIT = 256


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise BadInput(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def stall_after_default() -> float:
    """``TOWER_STALL_AFTER`` (seconds), else 5 minutes."""
    return _env_seconds("TOWER_STALL_AFTER", DEFAULT_STALL_AFTER)


def end_after_default() -> float:
    """``TOWER_SESSION_END_AFTER`` (seconds), else 30 minutes."""
    return _env_seconds("TOWER_SESSION_END_AFTER", DEFAULT_END_AFTER)


def _clip(text: Any) -> str | None:
    if text is None:
        return None
    s = text if isinstance(text, str) else str(text)
    return s if len(s) <= TEXT_LIMIT else s[: TEXT_LIMIT - 1] + "…"


# -- is the agent's process still there ---------------------------------------


_HOST: list[str] = []


def this_host() -> str:
    if not _HOST:
        import socket

        _HOST.append(socket.gethostname())
    return _HOST[0]


@record(frozen=True)
class ProcInfo:
    comm: str
    state: str
    ppid: int
    start: int  # clock ticks after boot: a reused pid has another


def proc_info(pid: int) -> ProcInfo | None:
    """A process's name, state, parent and start time from ``/proc`` (Linux); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    # the name is in parentheses and may hold spaces or parentheses itself
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    try:
        return ProcInfo(head[head.index("(") + 1:], fields[0], int(fields[1]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` (started at ``start``, if known) still runs on this host.

    A zombie counts as gone, and so does a pid now held by another process
    (its start time differs). When nothing can be told it is alive: a session
    then ends by its quiet time instead.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        pass
    info = proc_info(pid)
    if info is None:
        return True
    if info.state in ("Z", "X"):
        return False
    return start is None or info.start == start


# -- rows ----------------------------------------------------------------------


@record(frozen=True)
class SessionChange:
    """What recording an event did: the session, its stored state before and after."""

    id: int
    state: str
    previous: str | None
    created: bool


# a session as a reader sees it: one of the row types of core/models.py
SessionRow = AgentSession


def sort_key(row: SessionRow) -> tuple[int, float, int]:
    """Waiting first, then stalled, working, idle, ended; the longest in its state first."""
    return STATE_ORDER[row.state], row.state_since, row.id


# one query for every reader: the session, its lease, its wait, the oldest pending
# approval filed under its lease
_SESSION_SELECT = """
SELECT s.id, s.kind, s.session, s.agent, s.worktree, s.lease_id, s.host, s.pid, s.pid_start,
       s.started_at, s.last_event, s.last_event_at, s.last_tool, s.last_target, s.state,
       s.state_since, s.waiting_for, s.waiting_reason, s.rev,
       l.status AS lease_status, l.expires_at AS lease_expires, l.task_id,
       w.status AS wait_status,
       p.id AS pending_id, p.created_at AS pending_at, p.summary AS pending_summary
FROM agent_sessions s
LEFT JOIN leases l ON l.id = s.lease_id
LEFT JOIN approvals w ON w.id = s.waiting_for
LEFT JOIN approvals p ON p.id = (SELECT min(a.id) FROM approvals a
                                 WHERE a.lease_id = s.lease_id AND a.status = 'pending')
"""


@record(frozen=True)
class Derived:
    state: str
    since: float
    waiting_for: int | None
    reason: str | None


def derive(r: Row | Mapping[str, Any], now: float, stall_after: float, end_after: float, *,
           alive: Callable[[int, int | None], bool] = process_alive, host: str | None = None) -> Derived:
    """The state a reader sees, from the stored row and what it joins (see ``_SESSION_SELECT``).

    - ``ended`` stays ended; a session whose recorded process (on this host) is
      gone is ended.
    - ``waiting`` on a Tower approval: the one the hook said it waits for while
      it is pending, else the oldest pending approval filed under its active
      lease (an agent on the command line waiting in ``tower approval request
      --wait`` shows this way too). A wait whose approval was decided is over
      even if the hook never said so. Waiting on the agent's own prompt stays
      waiting (a person is what it needs) while its process is known to run or
      it holds a lease; otherwise ``end_after`` of silence ends it too.
    - ``stalled``: an active lease and no event for ``stall_after``.
    - ``ended``: no active lease and no event for ``end_after`` (agents that
      send no end event: Codex, the command line, a killed terminal).
    - a ``cli`` session works while its lease is active, and is idle otherwise.
    """
    stored = r["state"]
    if stored == "ended":
        return Derived("ended", r["state_since"], None, r["waiting_reason"])
    pid = r["pid"]
    watched = pid is not None and r["host"] == (host or this_host())
    if watched and not alive(pid, r["pid_start"]):
        return Derived("ended", r["last_event_at"], None, f"process {pid} is gone")
    lease_active = _lease_active(r, now)
    if r["waiting_for"] is not None and r["wait_status"] == "pending":
        return Derived("waiting", r["state_since"], r["waiting_for"], r["waiting_reason"])
    if lease_active and r["pending_id"] is not None:
        return Derived("waiting", r["pending_at"], r["pending_id"],
                       f"Tower approval {format_id('approval', r['pending_id'])}: {r['pending_summary']}")
    state, since = stored, r["state_since"]
    if state == "waiting" and r["waiting_for"] is not None:
        state = "working"  # its approval was decided: the hook just did not say so
    quiet_since = r["last_event_at"]
    if state == "waiting" and (watched or lease_active or now - quiet_since < end_after):
        return Derived("waiting", since, None, r["waiting_reason"])
    if r["kind"] == "cli":
        state = "working" if lease_active else "idle"
    if lease_active and now - quiet_since >= stall_after:
        stalled_at = quiet_since + stall_after
        return Derived("stalled", since if stored == "stalled" else stalled_at, None, None)
    if state == "stalled":
        state = "working" if lease_active else "idle"
    if not lease_active and now - quiet_since >= end_after:
        return Derived("ended", quiet_since + end_after, None, None)
    return Derived(state, since, None, None)


def _lease_active(r: Row | Mapping[str, Any], now: float) -> bool:
    # a lease past its expiry is as good as reaped: the next lease verb will reap it
    return bool(r["lease_status"] == "active" and r["lease_expires"] > now)


def _row(r: Row, d: Derived, now: float) -> SessionRow:
    lease_active = _lease_active(r, now)
    return SessionRow(
        id=r["id"], kind=r["kind"], session=r["session"], agent=r["agent"], worktree=r["worktree"],
        lease_id=r["lease_id"] if lease_active else None, last_lease_id=r["lease_id"],
        task_id=r["task_id"], state=d.state, state_since=d.since, waiting_for=d.waiting_for,
        waiting_reason=d.reason, last_event=r["last_event"], last_event_at=r["last_event_at"],
        last_tool=r["last_tool"], last_target=r["last_target"], started_at=r["started_at"], pid=r["pid"],
        stored_state=r["state"], rev=r["rev"],
    )


# the session as it is, with the worktree and the lease the event falls under:
# its own, else the one active lease of its worktree (narrowed to its agent)
# (positional parameters: see _lookup_params for their order)
_LOOKUP = """
WITH here(wt) AS (
    SELECT coalesce(?,
                    (SELECT worktree FROM agent_sessions WHERE kind = ? AND session = ?),
                    (SELECT name FROM worktrees WHERE active = 1 AND CAST(? AS TEXT) IS NOT NULL
                       AND (? = path OR substr(?, 1, length(path) + 1) = path || '/')
                     ORDER BY length(path) DESC LIMIT 1))),
who(agent) AS (
    SELECT coalesce(?, (SELECT agent FROM agent_sessions WHERE kind = ? AND session = ?))),
cand AS (
    SELECT id, agent, task_id FROM leases
    WHERE status = 'active' AND expires_at > ? AND worktree = (SELECT wt FROM here)
      AND ((SELECT agent FROM who) IS NULL OR agent = (SELECT agent FROM who))
    LIMIT 2)
SELECT here.wt AS here,
       (SELECT CASE WHEN count(*) = 1 THEN max(id) END FROM cand) AS wt_lease,
       (SELECT CASE WHEN count(*) = 1 THEN max(agent) END FROM cand) AS wt_lease_agent,
       (SELECT CASE WHEN count(*) = 1 THEN max(task_id) END FROM cand) AS wt_lease_task,
       (SELECT status FROM approvals WHERE id = ?) AS new_wait_status,
       s.id, s.agent, s.lease_id, s.host, s.pid, s.pid_start, s.last_tool, s.last_target,
       s.state, s.state_since, s.waiting_for, s.waiting_reason,
       l.id AS lease_found, CASE WHEN l.status = 'active' AND l.expires_at > ? THEN 1 ELSE 0 END AS lease_active,
       l.agent AS lease_agent, l.task_id AS lease_task,
       w.status AS wait_status
FROM here
LEFT JOIN agent_sessions s ON s.kind = ? AND s.session = ?
LEFT JOIN leases l ON l.id = coalesce(?, s.lease_id)
LEFT JOIN approvals w ON w.id = s.waiting_for
"""


def _lookup_params(kind: str, session: str, worktree: str | None, cwd: str | None, agent: str | None,
                   lease_id: int | None, waiting_for: int | None, now: float) -> tuple[Any, ...]:
    return (worktree, kind, session, cwd, cwd, cwd, agent, kind, session, now, waiting_for, now, kind, session,
            lease_id)


_NEXT_REV = "(SELECT coalesce(max(rev), 0) + 1 FROM agent_sessions)"


class SessionVerbs(StoreBase):
    # -- writes ----------------------------------------------------------------

    async def record_session_event(
        self,
        kind: str,
        session: str,
        event: str,
        *,
        state: str | None = None,
        tool: str | None = None,
        target: str | None = None,
        tool_call: bool = False,
        outcome: str | None = None,
        waiting_for: int | None = None,
        waiting_reason: str | None = None,
        ends_wait: int | None = None,
        agent: str | None = None,
        worktree: str | None = None,
        cwd: str | None = None,
        lease_id: int | None = None,
        pid: int | None = None,
        pid_start: int | None = None,
        host: str | None = None,
    ) -> SessionChange:
        """Record one event of an agent session (created on its first event); one transaction.

        ``state``: what the event says (``working|waiting|idle|ended``), or None
        for an event that says nothing new (it still counts as a sign of life).
        ``tool_call``: add ``tool``/``target`` to the session's recent tool calls;
        with an ``outcome`` (``ok``, ``failed`` …) it closes the latest open call
        of the same tool and target instead of adding one. ``waiting_for``: the
        Tower approval a ``waiting`` event waits for; ``ends_wait``: the approval
        whose wait just ended (the session stays waiting if it waits for another).
        ``worktree``/``lease_id``: when the caller knows them; otherwise the
        worktree is the registered one containing ``cwd`` and the lease the one
        active lease of that worktree (of ``agent``, when named). ``pid``: the
        agent's process, so that its end is seen without an end event.

        Audits ``agent.state`` only when the stored state changes. Raises BadInput
        for an unknown kind or state, NotFound for an unknown lease or approval.
        """
        if kind not in KINDS:
            raise BadInput(f"unknown agent kind {kind!r}: use one of {', '.join(KINDS)}")
        if state is not None and state not in EVENT_STATES:
            raise BadInput(f"an event cannot set the state {state!r}: use one of {', '.join(EVENT_STATES)}")
        if not isinstance(session, str) or not session.strip():
            raise BadInput("an agent session needs a non-empty session id")
        if len(session) > SESSION_ID_LIMIT:
            raise BadInput(f"agent session id longer than {SESSION_ID_LIMIT} characters")
        if cwd is not None:
            cwd = os.path.realpath(cwd)
        if pid is not None and host is None:
            host = this_host()
        async with self.transaction() as tx:
            return await _record(
                self, tx, kind, session, _clip(event) or "?", state=state, tool=_clip(tool),
                target=_clip(target), tool_call=tool_call, outcome=_clip(outcome), waiting_for=waiting_for,
                waiting_reason=_clip(waiting_reason), ends_wait=ends_wait, agent=_clip(agent),
                worktree=worktree, cwd=cwd, lease_id=lease_id, pid=pid, pid_start=pid_start, host=host,
                audit=True,
            )

    async def sweep_sessions(
        self,
        *,
        stall_after: float | None = None,
        end_after: float | None = None,
        retention: float = DEFAULT_RETENTION,
        actor: str = "tower",
        wait: bool = True,
    ) -> list[SessionChange]:
        """Write down what time alone changed: sessions that became ``stalled`` or ``ended``
        without an event (and stalled ones whose lease ended), one audited
        ``agent.state`` each; and delete sessions with no event for ``retention``
        and no active lease, with their tool calls. A cheap read first: the write
        lock is taken only when something is due (``wait=False``: only if it is free
        now, else TimedOut ``locked``). Returns the changes written."""
        stall_after = stall_after_default() if stall_after is None else stall_after
        end_after = end_after_default() if end_after is None else end_after
        now = self.clock()
        rows = await self._fetchall(_SESSION_SELECT + " WHERE s.state != 'ended'")
        due = [r["id"] for r in rows if _sweep_target(r, now, stall_after, end_after) is not None]
        old = await self._fetchone(
            "SELECT 1 FROM agent_sessions s WHERE last_event_at < ? AND (lease_id IS NULL OR NOT EXISTS"
            " (SELECT 1 FROM leases WHERE id = s.lease_id AND status = 'active')) LIMIT 1",
            (now - retention,),
        )
        if not due and old is None:
            return []
        changes: list[SessionChange] = []
        async with self.transaction(wait=wait) as tx:
            if due:
                for r in await tx.fetchall(_SESSION_SELECT + f" WHERE s.id IN {tx.dialect.values('int')}",
                                           (tx.dialect.list_param(due),)):
                    target = _sweep_target(r, tx.now, stall_after, end_after)
                    if target is None:
                        continue  # an event got there first
                    await tx.execute(
                        f"UPDATE agent_sessions SET state = ?, state_since = ?, waiting_for = NULL,"
                        f" waiting_reason = ?, rev = {_NEXT_REV} WHERE id = ?",
                        (target.state, target.since, target.reason, r["id"]),
                    )
                    await self._audit(
                        tx, "agent.state", actor=actor, task_id=r["task_id"], lease_id=r["lease_id"],
                        worktree=r["worktree"],
                        details={"session": format_id("session", r["id"]), "kind": r["kind"],
                                 "agent_session": r["session"], "from": r["state"], "to": target.state,
                                 "event": None, "reason": target.reason},
                    )
                    changes.append(SessionChange(r["id"], target.state, r["state"], False))
            await _prune(tx, tx.now - retention)
        return changes

    # -- reads -----------------------------------------------------------------

    async def list_sessions(
        self, *, all: bool = False, stall_after: float | None = None, end_after: float | None = None
    ) -> list[SessionRow]:
        """Agent sessions, who needs the person first (:func:`sort_key`); ended ones only with ``all``."""
        stall_after = stall_after_default() if stall_after is None else stall_after
        end_after = end_after_default() if end_after is None else end_after
        now = self.clock()
        sql = _SESSION_SELECT if all else _SESSION_SELECT + " WHERE s.state != 'ended'"
        rows = [_row(r, derive(r, now, stall_after, end_after), now) for r in await self._fetchall(sql)]
        if not all:
            rows = [r for r in rows if r.state != "ended"]
        return sorted(rows, key=sort_key)

    async def get_session(
        self, session_id: int, *, stall_after: float | None = None, end_after: float | None = None
    ) -> SessionRow:
        """One session (NotFound, exit 3, for an unknown id)."""
        stall_after = stall_after_default() if stall_after is None else stall_after
        end_after = end_after_default() if end_after is None else end_after
        r = await self._fetchone(_SESSION_SELECT + " WHERE s.id = ?", (session_id,))
        if r is None:
            raise NotFound(f"no agent session {format_id('session', session_id)}", code="session_not_found")
        now = self.clock()
        return _row(r, derive(r, now, stall_after, end_after), now)

    async def session_rev(self) -> int:
        """Grows with every write to a session: a live view re-reads when it moves."""
        row = await self._fetchone("SELECT coalesce(max(rev), 0) FROM agent_sessions")
        return int(row[0]) if row is not None else 0

    async def session_tool_calls(self, session_id: int, limit: int = HISTORY_PER_SESSION) -> list[dict[str, Any]]:
        """The session's recent tool calls, newest first."""
        rows = await self._fetchall(
            "SELECT id, at, event, tool, target, outcome FROM agent_tool_calls WHERE session_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (session_id, limit),
        )
        return [{"at": iso(r["at"]), "event": r["event"], "tool": r["tool"], "target": r["target"],
                 "outcome": r["outcome"]} for r in rows]

    async def session_detail(self, session_id: int, *, audit_limit: int = 50,
                             stall_after: float | None = None, end_after: float | None = None) -> dict[str, Any]:
        """Everything ``tower agent show`` and the Agents pane's detail show, as plain data:
        the session, its recent tool calls, its (last) lease with its claims, the
        approvals filed under that lease or by its agent, and the latest audit
        events of its task (oldest first). Each part is the JSON of its row type
        (core/models.py), narrowed to what the detail shows."""
        s = await self.get_session(session_id, stall_after=stall_after, end_after=end_after)
        calls = await self.session_tool_calls(session_id)
        lease = None
        if s.last_lease_id is not None:
            row = await self._fetchone(lease_select(self.dialect) + " WHERE l.id = ?", (s.last_lease_id,))
            lease = lease_from_row(row) if row is not None else None
        requesters = [n for n in (s.agent, f"{s.kind}:{s.session[:8]}") if n]
        where = [f"requested_by IN {self.dialect.values('text')}"]
        params: list[Any] = [self.dialect.list_param(requesters)]
        if s.last_lease_id is not None:
            where.append("lease_id = ?")
            params.append(s.last_lease_id)
        if s.waiting_for is not None:
            where.append("id = ?")
            params.append(s.waiting_for)
        approvals = [approval_from_row(r) for r in await self._fetchall(
            f"{APPROVAL_SELECT} WHERE {' OR '.join(where)} ORDER BY id DESC LIMIT 50", tuple(params))]
        events = []
        if lease is not None:
            rows = await self._fetchall(
                f"SELECT {self.dialect.cells(ROW_FIELDS)} FROM audit WHERE task_id = ? ORDER BY seq DESC LIMIT ?",
                (lease.task_id, audit_limit))
            events = [event_from_values(self.dialect.cell_values(r, ROW_FIELDS)) for r in reversed(rows)]
        return {
            "session": s,
            "tool_calls": calls,
            "lease": None if lease is None else _pick(lease.to_json(), _LEASE_KEYS),
            "claims": list(lease.claims) if lease is not None else [],
            "approvals": [_pick(a.to_json(), _APPROVAL_KEYS) for a in approvals],
            "audit": [_pick(e.to_json(), _AUDIT_KEYS) for e in events],
        }


_LEASE_KEYS = ("id", "task_id", "task_title", "agent", "worktree", "token", "status", "expires_at", "ended_at")
_APPROVAL_KEYS = ("id", "kind", "summary", "status", "requested_by", "lease_id", "task_id", "created_at",
                  "decided_at", "decided_by", "reason")
_AUDIT_KEYS = ("seq", "ts", "actor", "event", "task_id", "lease_id", "approval_id", "worktree", "path", "details")


def _pick(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: data[k] for k in keys}


# -- recording (inside a transaction the caller holds) -------------------------


async def _record(
    store: StoreBase, tx: Tx, kind: str, session: str, event: str, *, state: str | None, tool: str | None,
    target: str | None, tool_call: bool, outcome: str | None, waiting_for: int | None,
    waiting_reason: str | None, ends_wait: int | None, agent: str | None, worktree: str | None,
    cwd: str | None, lease_id: int | None, pid: int | None, pid_start: int | None, host: str | None,
    audit: bool,
) -> SessionChange:
    now = tx.now
    r = await tx.fetchone(_LOOKUP, _lookup_params(kind, session, worktree, cwd, agent, lease_id, waiting_for, now))
    assert r is not None  # the lookup selects FROM a one-row CTE
    if lease_id is not None and r["lease_found"] is None:
        raise NotFound(f"no lease {format_id('lease', lease_id)}", code="lease_not_found")
    if waiting_for is not None and r["new_wait_status"] is None:
        raise NotFound(f"no approval {format_id('approval', waiting_for)}", code="approval_not_found")
    exists = r["id"] is not None
    prev: str | None = r["state"] if exists else None

    # a Tower approval the hook waits for holds the session in `waiting` until
    # that wait ends, whatever parallel tool calls report meanwhile
    held = prev == "waiting" and r["waiting_for"] is not None and r["wait_status"] == "pending"
    new: str
    if ends_wait is not None:
        new = "waiting" if held and r["waiting_for"] != ends_wait else (state or "working")  # held: prev waits
    elif state is None:
        new = prev if prev is not None and prev in ("working", "waiting", "idle") else "working"
    elif state == "working" and held:
        new = "waiting"
    else:
        new = state
    if new != "waiting":
        wait_id, reason = None, None
    elif state == "waiting" and not (held and waiting_for is None):
        wait_id, reason = waiting_for, waiting_reason
    else:
        wait_id, reason = r["waiting_for"], r["waiting_reason"]

    lid: int | None
    if lease_id is not None:
        lid, lease_agent, task_id = lease_id, r["lease_agent"], r["lease_task"]
    elif exists and r["lease_active"]:
        lid, lease_agent, task_id = r["lease_id"], r["lease_agent"], r["lease_task"]
    elif r["wt_lease"] is not None:
        lid, lease_agent, task_id = r["wt_lease"], r["wt_lease_agent"], r["wt_lease_task"]
    else:
        lid, lease_agent, task_id = (r["lease_id"] if exists else None), None, None
    name = agent or (r["agent"] if exists else None) or lease_agent
    if pid is None and exists:
        host, pid, pid_start = r["host"], r["pid"], r["pid_start"]
    if tool is None and exists:
        tool, target = r["last_tool"], r["last_target"]
    since = r["state_since"] if exists and new == prev else now

    sid: int
    if exists:
        sid = r["id"]
        await tx.execute(
            "UPDATE agent_sessions SET agent = ?, worktree = ?, lease_id = ?, host = ?, pid = ?, pid_start = ?,"
            " last_event = ?, last_event_at = ?, last_tool = ?, last_target = ?, state = ?, state_since = ?,"
            f" waiting_for = ?, waiting_reason = ?, rev = {_NEXT_REV} WHERE id = ?",
            (name, r["here"], lid, host, pid, pid_start, event, now, tool, target, new, since, wait_id,
             reason, sid),
        )
    else:
        sid = await tx.insert(
            "INSERT INTO agent_sessions (kind, session, agent, worktree, lease_id, host, pid, pid_start,"
            " started_at, last_event, last_event_at, last_tool, last_target, state, state_since,"
            f" waiting_for, waiting_reason, rev) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,{_NEXT_REV})"
            " RETURNING id",
            (kind, session, name, r["here"], lid, host, pid, pid_start, now, event, now, tool, target, new,
             now, wait_id, reason),
        )
        await _prune(tx, now - DEFAULT_RETENTION, keep=sid)
    if kind != "cli" and lid is not None and lid != r["lease_id"] and (
            lease_id is not None and r["lease_active"] or lid == r["wt_lease"]):
        # the agent claimed from a shell before its hooks reported: its stand-in
        # command-line session ends here, and this one carries on
        await tx.execute(
            "UPDATE agent_sessions SET state = 'ended', state_since = ?, waiting_for = NULL,"
            f" waiting_reason = ?, rev = {_NEXT_REV} WHERE kind = 'cli' AND lease_id = ? AND state != 'ended'",
            (now, f"continued as {format_id('session', sid)} ({kind})", lid),
        )
    if tool_call:
        closed = None
        if outcome is not None:
            same_tool = "tool IS NULL" if tool is None else "tool = ?"
            same_target = "target IS NULL" if target is None else "target = ?"
            closed = await tx.fetchone(
                "UPDATE agent_tool_calls SET outcome = ? WHERE id = (SELECT id FROM agent_tool_calls"
                f" WHERE session_id = ? AND outcome IS NULL AND {same_tool} AND {same_target}"
                " ORDER BY id DESC LIMIT 1) RETURNING id",
                (outcome, sid, *(v for v in (tool, target) if v is not None)),
            )
        if closed is None:
            await tx.execute(
                "INSERT INTO agent_tool_calls (session_id, at, event, tool, target, outcome)"
                " VALUES (?,?,?,?,?,?)",
                (sid, now, event, tool, target, outcome),
            )
    if audit and new != prev:
        details: dict[str, Any] = {"session": format_id("session", sid), "kind": kind,
                                   "agent_session": session, "from": prev, "to": new, "event": event}
        if wait_id is not None:
            details["waiting_for"] = format_id("approval", wait_id)
        if reason:
            details["reason"] = reason
        await store._audit(tx, "agent.state", actor=name or f"{kind}:{session[:8]}", task_id=task_id,
                           lease_id=lid, approval_id=wait_id, worktree=r["here"], details=details)
    return SessionChange(sid, new, prev, not exists)



async def agent_seen(store: StoreBase, tx: Tx, worktree: str | None, agent: str | None) -> None:
    """Called by the lease verbs (``store.lifecycle.seen``) inside their transaction, after
    the lease changed: the agent is a session too.

    An agent whose hooks already report a live session in this worktree
    (the same agent, or one not yet named) is that session: it gets the lease
    and the name. Any other agent is a ``cli`` session (its session id is its
    agent name) that works while its lease is active. Not audited: the lease
    verb's own event, in the same transaction, says what happened.
    """
    if not agent:
        return
    same_worktree = "worktree IS NULL" if worktree is None else "worktree = ?"
    r = await tx.fetchone(
        "SELECT l.id, l.status, l.acquired_at, l.heartbeat_at, l.task_id,"
        " (SELECT CASE WHEN count(*) = 1 THEN max(id) END FROM (SELECT id FROM agent_sessions WHERE worktree = ?"
        "   AND kind != 'cli' AND state != 'ended' AND (agent IS NULL OR agent = ?) LIMIT 2) AS h) AS hooked"
        " FROM (SELECT 1 AS one) AS base LEFT JOIN leases l ON l.id = (SELECT id FROM leases"
        f"   WHERE agent = ? AND {same_worktree} ORDER BY id DESC LIMIT 1)",
        (worktree, agent, agent, *((worktree,) if worktree is not None else ())),
    )
    if r is None or r["id"] is None:
        return
    now = tx.now
    active = r["status"] == "active"
    lid = format_id("lease", r["id"])
    if not active:
        verb = {"completed": "task done", "failed": "task fail", "released": "lease release"}.get(
            r["status"], f"lease {r['status']}")
    elif r["acquired_at"] == now:
        verb = "task claim"
    elif r["heartbeat_at"] == now:
        verb = "lease heartbeat"
    else:
        verb = "claim"
    hooked = r["hooked"]  # the one live hooked session of this worktree (None: none, or several)
    if hooked is not None:
        if active:
            await tx.execute(
                f"UPDATE agent_sessions SET lease_id = ?, agent = coalesce(agent, ?), rev = {_NEXT_REV}"
                " WHERE id = ?",
                (r["id"], agent, int(hooked)),
            )
        return
    await _record(
        store, tx, "cli", agent, f"tower {verb}", state="working" if active else "idle", tool="tower",
        target=f"{verb} {lid}", tool_call=verb != "lease heartbeat", outcome=None, waiting_for=None,
        waiting_reason=None, ends_wait=None, agent=agent, worktree=worktree, cwd=None,
        lease_id=r["id"], pid=None, pid_start=None, host=None, audit=False,
    )


def _sweep_target(r: Row, now: float, stall_after: float, end_after: float) -> Derived | None:
    """What the sweep writes for this row (None: nothing). Waiting is never written:
    the approvals it derives from are audited themselves."""
    d = derive(r, now, stall_after, end_after)
    stored = r["state"]
    if d.state in ("stalled", "ended") and d.state != stored:
        quiet = now - r["last_event_at"]
        if d.state == "stalled":
            why = f"no event for {int(quiet)}s with lease {format_id('lease', r['lease_id'])} active"
        elif d.reason:
            why = d.reason
        else:
            why = f"no event for {int(quiet)}s and no active lease"
        return Derived(d.state, d.since, None, why)
    if stored == "stalled" and d.state not in ("stalled", "waiting"):
        return Derived(d.state, now, None, "its lease is no longer active")
    return None

async def _prune(tx: Tx, cutoff: float, *, keep: int | None = None) -> int:
    """Delete sessions with no event since ``cutoff`` and no active lease (but ``keep``)."""
    rows = await tx.fetchall(
        "DELETE FROM agent_sessions WHERE last_event_at < ?" + ("" if keep is None else " AND id != ?") +
        " AND (lease_id IS NULL OR NOT EXISTS (SELECT 1 FROM leases l WHERE l.id = agent_sessions.lease_id"
        " AND l.status = 'active')) RETURNING id",
        (cutoff,) if keep is None else (cutoff, keep),
    )
    return len(rows)
