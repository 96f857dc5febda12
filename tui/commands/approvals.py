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

import json
import math
import sys

import click

from core.display import printable_line as cell
from core.errors import BadInput, Refused, TimedOut
from core.ids import format_id
from core.vocab import APPROVAL_KINDS, APPROVAL_STATUSES
from tui.services.waiting import Interrupted, SignalCatcher, keep_lease_alive, wait_or_cancel  # noqa: F401
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
from tui.services.waiting import SignalCatcher, wait_or_cancel


def approval_line(a) -> str:
    decided = f" by {cell(a.decided_by)}" if a.decided_by else ""
    reason = f": {cell(a.reason)}" if a.reason else ""
    return (f"{format_id('approval', a.id):<5} {cell(a.status):<9} {cell(a.kind):<8} {cell(a.summary)}"
            f"  ({cell(a.requested_by)}, {short(a.created_at)}){decided}{reason}")


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
