"""Approvals from the command line: agents request (and wait), people decide.

Waiting: ``approval request --wait`` and ``approval wait`` block on the store's
change signal until the request is decided. Exit 0 approved, 4 rejected (or
cancelled elsewhere), 5 timed out. The requester owns its request: when it
times out the request is expired (so a late decision is refused), SIGINT or
SIGTERM cancels it (status ``cancelled``, audited; exit 128 + the signal
number, 130 for Ctrl-C, 143 for SIGTERM), and while it waits the lease the
request belongs to is kept alive. Anyone else's ``approval wait`` only
watches: it never expires, cancels or heartbeats someone else's request.

Deciding is a person's act: the store refuses a decision by the request's
requester, by a lease holder, or by a name the policy's ``[agents] names``
list (exit 4, ``person_only``).
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys

import click

from core.display import printable_line as cell
from core.errors import BadInput, Refused, TimedOut, TowerError
from core.ids import format_id
from core.vocab import APPROVAL_KINDS, APPROVAL_STATUSES
from tui.clikit import (
    agent_name,
    common_options,
    current_worktree,
    emit,
    parse,
    person,
    policy_agents,
    run,
    short,
    to_data,
)


def approval_line(a) -> str:
    decided = f" by {cell(a.decided_by)}" if a.decided_by else ""
    reason = f": {cell(a.reason)}" if a.reason else ""
    return (f"{format_id('approval', a.id):<5} {cell(a.status):<9} {cell(a.kind):<8} {cell(a.summary)}"
            f"  ({cell(a.requested_by)}, {short(a.created_at)}){decided}{reason}")


class Interrupted(TowerError):
    """The waiting process got SIGINT, SIGTERM or SIGHUP: exit 128 + the signal number."""

    code = "interrupted"

    def __init__(self, message: str, signum: int, data: dict | None = None):
        super().__init__(message, data=data)
        self.exit_code = 128 + signum


class SignalCatcher:
    """While entered, SIGINT, SIGTERM and SIGHUP cancel the guarded wait instead of killing us.

    A signal that arrives outside :meth:`guard` (while the request is being
    filed, or while it is being cancelled) is remembered and acted on at the
    next guard, so a request is never left half-filed and cleanup is never cut
    short by a second Ctrl-C.
    """

    # SIGHUP too: a closed terminal must not leave the request pending for nobody
    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._guarded: asyncio.Future | None = None
        self._previous: dict[int, object] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> SignalCatcher:
        self._loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            try:
                previous = signal.getsignal(sig)
                self._loop.add_signal_handler(sig, self._on_signal, sig)
                self._previous[sig] = previous
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signals here: waiting still works
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, previous in self._previous.items():
            self._loop.remove_signal_handler(sig)
            try:
                signal.signal(sig, previous)  # give asyncio.run its own Ctrl-C handling back
            except (TypeError, ValueError):
                pass
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "signal"

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        if self._guarded is not None and not self._guarded.done():
            self._guarded.cancel()

    async def guard(self, coro):
        """Await ``coro``; raises CancelledError if a signal arrives (or already arrived)."""
        task = asyncio.ensure_future(coro)
        self._guarded = task
        if self.signum is not None:
            task.cancel()
        try:
            return await task
        finally:
            self._guarded = None


async def keep_lease_alive(store, lease_id: int) -> None:
    """While its requester waits for a person, heartbeat the lease a request belongs to.

    Every third of the lease's ttl, with its fencing token; stops when the lease
    moved on (ended, reaped, another holder). A person deciding slowly must not
    cost the agent its task.
    """
    from core.errors import NotFound

    info = await store.get_lease(lease_id)
    if info.status != "active":
        return
    interval = max(info.ttl / 3, 0.2)
    while True:  # a first beat at once: the agent may have spent most of its ttl before asking
        try:
            await store.heartbeat(lease_id, token=info.token, agent=info.agent)
        except (Refused, NotFound):
            return
        except TimedOut:
            pass  # the store is busy right now: the next beat tries again
        await asyncio.sleep(interval)


async def wait_or_cancel(store, approval_id: int, *, timeout: float | None, actor: str | None,
                         catcher: SignalCatcher, owner: bool = True, lease_id: int | None = None):
    """Wait for the decision.

    The requester (``owner``) expires its request on timeout, cancels it on
    SIGINT/SIGTERM/SIGHUP (raising Interrupted), and keeps ``lease_id`` alive while it
    waits. Anyone else only watches: a timeout is TimedOut (exit 5) with the
    request still pending, a signal is Interrupted with nothing changed.
    """
    keeper = asyncio.ensure_future(keep_lease_alive(store, lease_id)) if owner and lease_id else None
    try:
        try:
            return await catcher.guard(store.wait_for_decision(approval_id, timeout=timeout, actor=actor,
                                                               expire=owner))
        finally:
            if keeper is not None:
                keeper.cancel()
                try:
                    await keeper
                except BaseException:  # noqa: BLE001 - cancelled, or a beat that failed: the wait decides
                    pass
    except asyncio.CancelledError:
        if catcher.signum is None:
            raise
    aid = format_id("approval", approval_id)
    if not owner:
        raise Interrupted(f"interrupted ({catcher.name}) while watching {aid}; it is still pending",
                          catcher.signum)
    a = await store.close_approval(approval_id, "cancelled", actor=actor,
                                   reason=f"the requester was interrupted ({catcher.name}) while waiting")
    if a.status == "cancelled":
        message = f"{aid} cancelled: interrupted ({catcher.name}) while waiting for a decision"
    else:
        message = f"interrupted ({catcher.name}); {aid} had already been {a.status}"
    raise Interrupted(message, catcher.signum, data={"approval": to_data(a)})


def announce_wait(a, timeout: float | None, *, watching: bool = False) -> None:
    """One line on stderr once the request is filed and pending: who can decide it, and how."""
    aid = format_id("approval", a.id)
    limit = f" for up to {timeout:g}s" if timeout is not None else ""
    if watching:
        click.echo(f"{aid} pending: watching{limit} for a decision on {a.requested_by}'s request"
                   " (this wait neither expires nor cancels it)", err=True)
    else:
        click.echo(f"{aid} pending: waiting{limit} for a decision"
                   f" (tower approval approve {aid} | tower approval reject {aid} --reason R)", err=True)
    sys.stderr.flush()


def finish_wait(a) -> None:
    """Report a decided request: exit 0 approved, 4 rejected or cancelled, 5 expired."""
    aid = format_id("approval", a.id)
    by = f" by {a.decided_by}" if a.decided_by else ""
    data = {"approval": to_data(a)}
    if a.status == "approved":
        emit(a, f"{aid} approved{by}" + (f": {cell(a.reason)}" if a.reason else ""))
        return
    if a.status == "rejected":
        raise Refused(f"{aid} rejected{by}: {a.reason}", code="rejected", data=data)
    if a.status == "expired":
        raise TimedOut(f"{aid} expired{': ' + a.reason if a.reason else ''}", code="timeout", data=data)
    raise Refused(f"{aid} was {a.status}{by}" + (f": {a.reason}" if a.reason else ""),
                  code=f"approval_{a.status}", data=data)


def _check_timeout(timeout: float | None) -> None:
    """A finite number of seconds above 0 (click's float also takes nan and inf, which never run out)."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise BadInput(f"--timeout must be a finite number of seconds more than 0, got {timeout:g}")


@click.group()
def approval() -> None:
    """Request, list and decide approvals."""


@approval.command("request")
@click.option("--kind", "-k", type=click.Choice(APPROVAL_KINDS), required=True)
@click.option("--summary", "-s", required=True, help="One line a person can decide on.")
@click.option("--detail", default=None, help="JSON object with the particulars.")
@click.option("--lease", "lease_id", default=None, help="The lease this step belongs to.")
@click.option("--key", default=None, help="Idempotency key: the same key returns the same approval.")
@click.option("--wait", "-w", is_flag=True,
              help="Block until decided: exit 0 approved, 4 rejected, 5 timed out.")
@click.option("--timeout", type=float, default=None,
              help="With --wait: give up after SECONDS and expire the request (implies --wait).")
@common_options
def approval_request(kind, summary, detail, lease_id, key, wait, timeout) -> None:
    """Ask a person before a risky step (and, with --wait, wait for the answer).

    With --key, asking again with the same key returns the same approval, and
    --wait re-attaches to it. Ctrl-C while waiting cancels the request.
    """
    from core.limits import parse_detail

    detail_obj = parse_detail(detail) if detail else {}
    _check_timeout(timeout)
    wait = wait or timeout is not None
    lid = parse("lease", lease_id) if lease_id else None

    async def file(s):
        worktree, _ = await current_worktree(s)
        return await s.request_approval(kind=kind, summary=summary, detail=detail_obj, lease_id=lid, key=key,
                                        requested_by=agent_name(), worktree=worktree)

    async def body(s):
        if not wait:
            return await file(s)
        with SignalCatcher() as catcher:
            a = await file(s)
            if a.status == "pending":
                announce_wait(a, timeout)
            return await wait_or_cancel(s, a.id, timeout=timeout, actor=a.requested_by, catcher=catcher,
                                        lease_id=a.lease_id)

    a = run(body)
    if wait:
        finish_wait(a)
    else:
        emit(a, f"{format_id('approval', a.id)} {cell(a.status)}: {cell(a.summary)}")


@approval.command("wait")
@click.argument("approval_id")
@click.option("--timeout", type=float, default=None,
              help="Give up after SECONDS (your own request: and expire it; default: wait until decided).")
@common_options
def approval_wait(approval_id, timeout) -> None:
    """Wait for a decision on an existing request: exit 0 approved, 4 rejected, 5 timed out.

    On your own request, a timeout expires it and Ctrl-C cancels it; on anyone
    else's, this only watches and changes nothing.
    """
    aid = parse("approval", approval_id)
    _check_timeout(timeout)

    async def body(s):
        with SignalCatcher() as catcher:
            a = await s.get_approval(aid)
            owner = person() == a.requested_by
            if a.status == "pending":
                announce_wait(a, timeout, watching=not owner)
            return await wait_or_cancel(s, aid, timeout=timeout, actor=person(), catcher=catcher, owner=owner,
                                        lease_id=a.lease_id)

    finish_wait(run(body))


@approval.command("list")
@click.option("--status", type=click.Choice(APPROVAL_STATUSES), default=None)
@common_options
def approval_list(status) -> None:
    """List approvals, pending first."""
    items = run(lambda s: s.list_approvals(status))
    emit(items, lambda: "\n".join(approval_line(a) for a in items) or "no approvals")


@approval.command("show")
@click.argument("approval_id")
@common_options
def approval_show(approval_id) -> None:
    """Show one approval with its detail."""
    aid = parse("approval", approval_id)
    a = run(lambda s: s.get_approval(aid))
    emit(a, lambda: approval_line(a) + (f"\n{json.dumps(a.detail, indent=2)}" if a.detail else ""))


@approval.command("approve")
@click.argument("approval_id")
@click.option("--reason", "-r", default=None)
@common_options
def approval_approve(approval_id, reason) -> None:
    """Approve a pending request (approving twice is a no-op)."""
    aid = parse("approval", approval_id)
    agents = policy_agents()
    a = run(lambda s: s.decide_approval(aid, approve=True, reason=reason, actor=person(), agents=agents),
            actor=person())
    emit(a, f"{format_id('approval', a.id)} approved")


@approval.command("reject")
@click.argument("approval_id")
@click.option("--reason", "-r", required=True, help="Why: shown to the agent.")
@common_options
def approval_reject(approval_id, reason) -> None:
    """Reject a pending request with a reason."""
    aid = parse("approval", approval_id)
    agents = policy_agents()
    a = run(lambda s: s.decide_approval(aid, approve=False, reason=reason, actor=person(), agents=agents),
            actor=person())
    emit(a, f"{format_id('approval', a.id)} rejected: {cell(a.reason)}")
