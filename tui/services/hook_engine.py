"""The agent-neutral decision engine of every ``tower hook <agent>``.

A call, normalised by an adapter (tui/services/hook_adapters.py) into a
:class:`core.hook.HookInput` whose ``tool_name`` is Claude Code's (``Bash`` for
a shell command, ``Write`` for a file write, anything else as it came), goes
through :func:`decide_call`: the policy on commands, claims on writes,
approvals that wait for a person within the hook's deadline. The answer is
``(allow|deny|ask, reason)``; the adapter puts it in its agent's format.

No click or Textual here; the store and asyncio are imported only when a call
needs them (a call the policy decides alone never opens the database).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from core.errors import BadInput, NotFound
from core.gitrepo import POLICY_NAME
from core.hook import FILE_TOOLS, HookInput, HookInputError, parse_input


class Limits:
    """The hook's time limits, counted from its start.

    Claude Code kills the hook ``deadline`` seconds after it starts (the
    installed ``--deadline``; without one its default, or the policy's ask
    timeout plus the margin when that is longer) and then runs the call. So:
    a store lock is waited for until ``soft``, the hook answers ``deny`` by
    itself at ``hard`` whatever it is doing, and the policy check has
    ``budget`` seconds.
    """

    def __init__(self, started: float, deadline: float | None, ask_timeout: float | None = None) -> None:
        from core.hook import DEADLINE_MARGIN
        from core.policy import CLAUDE_HOOK_TIMEOUT

        if deadline is None:
            deadline = CLAUDE_HOOK_TIMEOUT
            if ask_timeout is not None:
                deadline = max(deadline, ask_timeout + DEADLINE_MARGIN)
        self.total = deadline
        margin = min(1.0, deadline * 0.1)
        self.hard = started + deadline - margin
        self.soft = self.hard - margin
        self.budget = min(2.0, deadline / 4)


EXPLICIT_DB: Path | None = None  # --db of the command line, set by the hook's entry
AGENT_NAME: str | None = None  # --agent or TOWER_AGENT, set by the hook's entry
WORKTREE_HINT: str | None = None  # --worktree or TOWER_WORKTREE, set by the hook's entry
AGENT = "claude-code"  # the agent kind this hook process serves, set by the adapter


def _explicit_db() -> Path | None:
    if EXPLICIT_DB is not None:
        return EXPLICIT_DB
    explicit = os.environ.get("TOWER_DB")
    if not explicit:
        return None
    from core.locate import store_ref

    return store_ref(explicit)  # type: ignore[return-value]  # a postgresql:// URL quacks like the path


class Wait:
    """How long this hook call may wait for a person, counted from the hook's start.

    The policy's ask timeout, capped by the installed deadline (``--deadline``:
    Claude Code kills the hook then and lets the call through) less a margin.
    """

    def __init__(self, started: float, ask_timeout: float, deadline: float | None = None) -> None:
        from core.hook import wait_budget

        self.started = started
        self.ask_timeout = ask_timeout
        self.deadline = deadline
        self.limit = ask_timeout
        self.capped = False
        if deadline is not None and wait_budget(deadline) < ask_timeout:
            self.limit, self.capped = wait_budget(deadline), True

    def left(self) -> float:
        return self.limit - (time.monotonic() - self.started)

    def within(self) -> str:
        text = f"within {self.limit:g}s"
        if self.capped:
            text += (f" (the hook's deadline: Claude Code stops it after {self.deadline:g}s, sooner than the"
                     f" policy's ask timeout of {self.ask_timeout:g}s; run `tower hook install claude-code`"
                     " again to raise it)")
        return text


def decide(raw: bytes, started: float, deadline: float | None = None,
           limits: Limits | None = None) -> tuple[str, str]:
    """The whole hook: (permissionDecision, reason).

    ``deadline``: seconds after ``started`` when Claude Code kills the hook (the
    installed ``--deadline``); a person is waited for until shortly before it.
    """
    try:
        call = parse_input(raw)
    except HookInputError as exc:
        return "deny", f"Tower hook: unusable input: {exc}"
    return decide_call(call, started, deadline, limits)


def find_db(cwd: Path) -> Path | None:
    """The store a call made in ``cwd`` answers to (``--db``/``TOWER_DB``, else the repository's)."""
    from core.gitrepo import discover

    db = _explicit_db()
    if db is not None:
        return db
    repo = discover(cwd) if cwd.is_dir() else None
    if repo is None:
        return None
    from core.locate import store_in

    return store_in(repo.store_dir)


def _setup(call: HookInput, started: float, deadline: float | None, limits: Limits | None):
    """The store, policy and limits a call answers to, or ``(decision, reason)`` when there are none."""
    from core.gitrepo import discover
    from tui import hookguard

    cwd = Path(call.cwd) if call.cwd else Path.cwd()
    repo = discover(cwd) if cwd.is_dir() else None
    db = _explicit_db()
    if db is None:
        if repo is None:
            return "deny", (f"Tower: {cwd} is not inside a git repository, so there is no Tower store"
                            " (run `tower init` in the repository, or set TOWER_DB)")
        from core.locate import store_in

        db = store_in(repo.store_dir)
    if not db.exists():
        return "deny", f"Tower: no Tower store at {db}: run `tower init` in the repository"

    from core.policy import PolicyError, load_policy

    try:
        policy = load_policy(db.parent / POLICY_NAME)
    except PolicyError as exc:
        return "deny", f"Tower: {exc.message}; fix the policy file (check it with `tower hook check`)"

    if limits is None:
        limits = Limits(started, deadline, policy.ask_timeout)
    elif deadline is None:
        limits = Limits(started, None, policy.ask_timeout)  # waits as long as the policy asks
        hookguard.set_deadline(limits.hard)
    root = repo.worktree_root if repo is not None else None
    return _Context(cwd, root, db, policy, limits, Wait(started, policy.ask_timeout, deadline))


class _Context:
    __slots__ = ("cwd", "root", "db", "policy", "limits", "wait")

    def __init__(self, cwd: Path, root: Path | None, db: Path, policy, limits: Limits, wait: Wait) -> None:
        self.cwd, self.root, self.db, self.policy, self.limits, self.wait = cwd, root, db, policy, limits, wait


def decide_call(call: HookInput, started: float, deadline: float | None = None,
                limits: Limits | None = None, *, ask_person: bool = False) -> tuple[str, str]:
    """One normalised call -> (allow|deny|ask, reason).

    ``ask_person``: the agent is asking its user (a permission event): anything
    the policy does not deny becomes a Tower approval a person decides.
    """
    from tui import hookguard

    ctx = _setup(call, started, deadline, limits)
    if isinstance(ctx, tuple):
        return ctx
    policy, db, root, cwd, limits, wait = ctx.policy, ctx.db, ctx.root, ctx.cwd, ctx.limits, ctx.wait
    written = call.written_path
    if written is not None:
        return _file_call(call, policy, db, root, cwd, written, wait, limits)

    rel = _relative(call.read_path, root, cwd) if call.read_path else None
    with hookguard.budget(limits.budget):
        verdict = policy.decide(call.tool_name, command=call.command, path=rel, cwd=str(cwd))
    if ask_person and verdict.decision != "deny":
        why = f"{AGENT} asks permission: {verdict.reason}"
        return _with_store(db, limits, call, lambda s, c: _ask(s, c, call, policy, why, rel, root, wait))
    if verdict.decision != "ask":
        return _plain(verdict.decision), verdict.reason
    return _with_store(db, limits, call, lambda s, c: _ask(s, c, call, policy, verdict.reason, rel, root, wait))


def decide_calls(calls: list[HookInput], started: float, deadline: float | None = None,
                  limits: Limits | None = None, *, ask_person: bool = False) -> tuple[str, str]:
    """One tool call writing several files (a Codex patch) -> (allow|deny|ask, reason), all or nothing.

    Every file is judged before anything is claimed, and the claims are made in
    one transaction: a patch touching a file another lease holds is denied
    whole, naming every held file, and leaves no claim behind (the agent would
    otherwise hold files for a patch that never applied).
    """
    from core.paths import PathError, normalize

    if len(calls) == 1:
        return decide_call(calls[0], started, deadline, limits, ask_person=ask_person)
    first = calls[0]
    ctx = _setup(first, started, deadline, limits)
    if isinstance(ctx, tuple):
        return ctx
    policy = ctx.policy
    rels: list[str] = []
    asks: list[str] = []
    for call in calls:
        written = call.written_path
        if not written:
            return "deny", f"Tower: {call.tool_name} names no file: nothing to claim"
        if ctx.root is None:
            return _file_call(call, policy, ctx.db, None, ctx.cwd, written, ctx.wait, ctx.limits)
        try:
            rel = normalize(written, ctx.root, ctx.cwd)
        except PathError:
            # outside the repository: the single-file rule decides, for the whole patch
            decision, reason = _file_call(call, policy, ctx.db, ctx.root, ctx.cwd, written, ctx.wait, ctx.limits)
            if decision != "allow":
                return decision, reason
            continue
        verdict = policy.decide(call.tool_name, path=rel)
        if verdict.decision == "deny":
            return "deny", f"{verdict.reason} ({rel}; the whole patch is denied)"
        if verdict.decision in ("ask", "prompt"):
            asks.append(f"{rel}: {verdict.reason}")
        rels.append(rel)
    if not rels:
        return "allow", "Tower: every file of the patch is outside the repository, as the policy allows"
    if ask_person:
        asks.append(f"{AGENT} asks permission")
    return _with_store(ctx.db, ctx.limits, first,
                       lambda s, c: _claim_many(s, c, first, policy, rels, asks, ctx.root, ctx.wait),
                       waits=bool(asks) or policy.without_lease == "ask")


def _plain(decision: str) -> str:
    # "prompt" is Claude Code's own prompt, which the hook asks for with "ask"
    return "ask" if decision == "prompt" else decision


def _relative(path: str, root: Path | None, cwd: Path) -> str | None:
    if root is None:
        return None
    from core.paths import PathError, normalize

    try:
        return normalize(path, root, cwd)
    except PathError:
        return None


def _file_call(call: HookInput, policy, db: Path, root: Path | None, cwd: Path, written: str,
               wait: Wait, limits: Limits) -> tuple[str, str]:
    from core.paths import PathError, normalize

    tool = call.tool_name
    if not written:
        return "deny", f"Tower: {tool} without tool_input.{FILE_TOOLS[tool]}: nothing to claim"
    if root is None:
        outside = f"{cwd} is not inside a git repository"
        rel = None
    else:
        try:
            rel = normalize(written, root, cwd)
            outside = None
        except PathError as exc:
            rel, outside = None, f"{exc} (worktree {root})"
    if outside is not None:
        decision = policy.outside_repo
        reason = f"Tower: {outside}; the policy says {decision} for files outside the repository"
        if decision == "ask":
            return _with_store(db, limits, call, lambda s, c: _ask(s, c, call, policy, reason, None, root, wait))
        return _plain(decision), reason

    assert rel is not None  # outside is None exactly when the path is in the repository
    verdict = policy.decide(tool, path=rel)
    if verdict.decision == "deny":
        return "deny", verdict.reason
    return _with_store(db, limits, call, lambda s, c: _claim(s, c, call, policy, verdict, rel, root, wait),
                       waits=verdict.decision == "ask" or policy.without_lease == "ask")


def _with_store(db: Path, limits: Limits, call: HookInput, body, *, waits: bool = True) -> tuple[str, str]:
    """``body(store, catcher)`` on the call's store; a store another process keeps locked is
    waited for only until shortly before the hook's own deadline, then denied saying so."""
    return run_on_store(db, _caller(call), limits.soft, body, waits=waits)


def run_on_store(db: Path, actor: str, give_up_at: float | None, body, *, waits: bool):
    """``body(store, catcher)`` in one short session of the hook's process.

    ``waits``: the body may wait for a person (an approval), under a SignalCatcher
    (``catcher``) on an event loop. A body that cannot (a claim the policy does not
    make ask, an audit record) gets ``catcher`` None and runs inline, without
    asyncio, when the store is SQLite: that is most of the cost of a hook call
    that writes. ``give_up_at``: the deadline (``time.monotonic()``) of any wait
    for the write lock.
    """
    from store import Store, run_inline

    store = Store(db, actor=actor, inline=not waits)

    async def session(catcher):
        async with store:
            store.give_up_at = give_up_at
            return await body(store, catcher)

    if store.inline:
        return run_inline(session(None))

    import asyncio

    async def main():
        if not waits:
            return await session(None)
        from tui.services.waiting import SignalCatcher

        with SignalCatcher() as catcher:
            return await session(catcher)

    return asyncio.run(main())


def agent_name_or(kind: str, session: str | None) -> str:
    return AGENT_NAME or (f"{kind}:{session[:8]}" if session else kind)


def _caller(call: HookInput) -> str:
    """Who acts when the hook writes: the named agent, else this Claude Code session."""
    name = AGENT_NAME
    if name:
        return name
    return f"{AGENT}:{call.session_id[:8]}" if call.session_id else AGENT


# -- which lease is this session's ------------------------------------------------


async def _worktree_name(store, root: Path | None) -> str | None:
    hint = WORKTREE_HINT
    if hint:
        return hint
    if root is None:
        return None
    real = os.path.realpath(root)
    for name, path, active in await store.worktree_rows():
        if active and os.path.realpath(path) == real:
            return name
    return None


async def session_lease(store, root: Path | None, path: str | None):
    """The lease this Claude Code session writes for: ``(lease, worktree, problem)``.

    1. ``TOWER_LEASE`` (e.g. ``L7``) names it outright; it must be active.
    2. Else the active leases of this worktree (the registered worktree whose
       path is the git worktree of the call's ``cwd``, or ``TOWER_WORKTREE``),
       narrowed to ``TOWER_AGENT``'s when that is set (an agent's leases with no
       worktree count too). One lease: that one. Several: the one already
       holding ``path``, else the only one whose task scope covers it; still
       several is a problem the reason names (set TOWER_LEASE).
    ``lease`` is None when there is none (``problem`` None) or when it cannot
    be told (``problem`` says why).
    """
    from core.ids import format_id, parse_id
    worktree = await _worktree_name(store, root)
    leases = await store.view_leases()  # active leases, plain rows: no pydantic here
    wanted = os.environ.get("TOWER_LEASE")
    if wanted:
        try:
            lid = parse_id("lease", wanted)
        except BadInput as exc:
            return None, worktree, f"TOWER_LEASE: {exc.message}"
        match = next((lease for lease in leases if lease.id == lid), None)
        if match is None:
            return None, worktree, (f"TOWER_LEASE={format_id('lease', lid)} is not an active lease:"
                                    " claim a task (`tower task claim`) and set TOWER_LEASE to its lease")
        return match, worktree, None
    agent = AGENT_NAME
    if agent:
        candidates = [lease for lease in leases if lease.agent == agent and lease.worktree in (worktree, None)]
    elif worktree is not None:
        candidates = [lease for lease in leases if lease.worktree == worktree]
    else:
        candidates = []
    if len(candidates) <= 1:
        return (candidates[0] if candidates else None), worktree, None
    if path is not None:
        holding = [lease for lease in candidates if path in lease.claims]
        if len(holding) == 1:
            return holding[0], worktree, None
        from core.scope import match_one

        covering = [lease for lease in candidates
                    if lease.scope and any(match_one(path, g) for g in lease.scope)]
        if len(covering) == 1:
            return covering[0], worktree, None
    ids = ", ".join(format_id("lease", lease.id) for lease in candidates)
    who = f"{agent} holds" if agent else f"worktree {worktree} has"
    return None, worktree, (f"{who} several active leases ({ids}) and none is the obvious one for this"
                            " call: set TOWER_LEASE to the session's lease")


def _requester(call: HookInput, lease) -> str:
    name = AGENT_NAME or (lease.agent if lease is not None else None)
    if name:
        return name
    return f"{AGENT}:{call.session_id[:8]}" if call.session_id else AGENT


# -- writes: claim, then (maybe) ask -----------------------------------------------


async def _claim(store, catcher, call: HookInput, policy, verdict, rel: str, root, wait: Wait):
    from core.errors import Refused
    from core.ids import format_id
    lease, worktree, problem = await session_lease(store, root, rel)
    if problem is not None:
        return "deny", f"Tower: cannot claim {rel}: {problem}"
    if lease is None:
        return await _without_lease(store, catcher, call, policy, rel, worktree, root, wait)
    lid = format_id("lease", lease.id)
    already = rel in lease.claims and lease.expires_at > time.time()
    if not already:
        try:
            await store.claim_files(lease.id, [rel], agent=AGENT_NAME)
        except (Refused, NotFound) as exc:
            hint = ""
            if exc.code == "claim_conflict":
                hint = ": work on other files, or coordinate through the person running Tower"
            elif exc.code == "lease_not_active":
                hint = ": claim a task again (`tower task claim`)"
            return "deny", f"Tower: cannot claim {rel} for {lid}: {exc.message}{hint}"
    held = f"{rel} is claimed for {lid} (task {format_id('task', lease.task_id)})"
    if verdict.decision == "ask":
        return await _ask(store, catcher, call, policy, f"{verdict.reason}; {held}", rel, root, wait,
                          lease=lease, worktree=worktree)
    if verdict.decision == "prompt":
        return "ask", f"{verdict.reason}; {held}"
    return "allow", f"Tower: {held}"


async def _without_lease(store, catcher, call: HookInput, policy, shown: str, worktree: str | None, root,
                         wait: Wait) -> tuple[str, str]:
    """A write when this session holds no lease: the policy's ``without_lease`` decides."""
    decision = policy.without_lease
    where = f"worktree {worktree}" if worktree else "this worktree (not registered with Tower)"
    reason = (f"Tower: no active lease for this session in {where}, so {shown} cannot be claimed:"
              " run `tower task claim` first")
    if decision == "ask":
        return await _ask(store, catcher, call, policy, reason + " (asking a person)", shown, root, wait)
    if decision == "allow":
        return "allow", f"Tower: no active lease in {where}; the policy allows writing {shown} unclaimed"
    return _plain(decision), reason


async def _claim_many(store, catcher, call: HookInput, policy, rels: list[str], asks: list[str], root,
                      wait: Wait):
    """Claim every file of one call in one transaction (all or nothing), then ask if any file needs it."""
    from core.errors import Refused
    from core.ids import format_id
    shown = ", ".join(rels)
    lease, worktree, problem = await session_lease(store, root, rels[0])
    if problem is not None:
        return "deny", f"Tower: cannot claim {shown}: {problem}"
    if lease is None:
        return await _without_lease(store, catcher, call, policy, shown, worktree, root, wait)
    lid = format_id("lease", lease.id)
    fresh = lease.expires_at > time.time()
    wanted = [r for r in rels if not (fresh and r in lease.claims)]
    if wanted:
        try:
            await store.claim_files(lease.id, wanted, agent=AGENT_NAME)
        except (Refused, NotFound) as exc:
            holders = (exc.data or {}).get("holders") if exc.code == "claim_conflict" else None
            if holders:
                held = "; ".join(f"{h['path']} is claimed by {h['lease_id']} ({h['agent']}"
                                 f"{' in ' + h['worktree'] if h['worktree'] else ''}, task {h['task_id']})"
                                 for h in holders)
                return "deny", (f"Tower: this patch touches files another lease holds, so none of it is"
                                f" applied and nothing was claimed for {lid}: {held}: leave those files out"
                                " of the patch, or coordinate through the person running Tower")
            hint = ": claim a task again (`tower task claim`)" if exc.code == "lease_not_active" else ""
            return "deny", f"Tower: cannot claim {shown} for {lid}: {exc.message}{hint}"
    held_text = f"{shown} claimed for {lid} (task {format_id('task', lease.task_id)})"
    if asks:
        return await _ask(store, catcher, call, policy, "; ".join(asks) + f"; {held_text}", shown, root, wait,
                          lease=lease, worktree=worktree)
    return "allow", f"Tower: {held_text}"


# -- ask a person -------------------------------------------------------------------


async def _ask(store, catcher, call: HookInput, policy, why: str, rel: str | None, root, wait: Wait, *,
               lease=..., worktree=...):
    """File an approval (idempotent on tool_use_id) and wait for it until the hook's deadline."""
    from core.errors import Refused
    from core.hook import approval_detail, approval_kind, approval_summary
    from core.ids import format_id
    from tui.services.waiting import Interrupted, wait_or_cancel

    if lease is ... or worktree is ...:
        lease, worktree, _ = await session_lease(store, root, rel)
    requester = _requester(call, lease)
    fields = dict(kind=approval_kind(call), summary=approval_summary(call, rel),
                  detail=approval_detail(call, rel_path=rel, policy_reason=why),
                  key=call.tool_use_id, requested_by=requester, worktree=worktree)
    try:
        a = await store.request_approval(lease_id=lease.id if lease is not None else None, **fields)
    except Refused:  # the lease ended meanwhile: ask without it
        a = await store.request_approval(**fields)
    aid = format_id("approval", a.id)
    if a.status == "pending":
        left = wait.left()
        try:
            a = await wait_or_cancel(store, a.id, timeout=max(round(left, 1), 0.1), actor=requester,
                                     catcher=catcher, lease_id=a.lease_id)
        except Interrupted as exc:
            return "deny", f"Tower: {exc.message}"
    by = f" by {a.decided_by}" if a.decided_by else ""
    if a.status == "approved":
        return "allow", f"Tower: {aid} approved{by}" + (f": {a.reason}" if a.reason else "")
    if a.status == "rejected":
        return "deny", f"Tower: {aid} rejected{by}: {a.reason}"
    if a.status == "expired":
        waited = wait.within()
        if policy.on_timeout == "deny":
            return "deny", f"Tower: nobody decided {aid} ({a.summary}) {waited}: denied; ask again later"
        return "ask", f"Tower: nobody decided {aid} ({a.summary}) {waited} in Tower; your call"
    return "deny", f"Tower: {aid} was {a.status}" + (f": {a.reason}" if a.reason else "")
