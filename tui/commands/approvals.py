"""Approvals from the command line: agents request, people (or scripts) decide."""

from __future__ import annotations

import json

import click

from core.errors import BadInput
from core.ids import format_id
from core.models import APPROVAL_KINDS, APPROVAL_STATUSES
from tui.clikit import agent_name, common_options, current_worktree, emit, parse, person, run, short


def approval_line(a) -> str:
    decided = f" by {a.decided_by}" if a.decided_by else ""
    reason = f": {a.reason}" if a.reason else ""
    return (f"{format_id('approval', a.id):<5} {a.status:<9} {a.kind:<8} {a.summary}"
            f"  ({a.requested_by}, {short(a.created_at)}){decided}{reason}")


@click.group()
def approval() -> None:
    """Request, list and decide approvals."""


@approval.command("request")
@click.option("--kind", "-k", type=click.Choice(APPROVAL_KINDS), required=True)
@click.option("--summary", "-s", required=True, help="One line a person can decide on.")
@click.option("--detail", default=None, help="JSON object with the particulars.")
@click.option("--lease", "lease_id", default=None, help="The lease this step belongs to.")
@click.option("--key", default=None, help="Idempotency key: the same key returns the same approval.")
@common_options
def approval_request(kind, summary, detail, lease_id, key) -> None:
    """Ask a person before a risky step."""
    try:
        detail_obj = json.loads(detail) if detail else {}
    except json.JSONDecodeError as exc:
        raise BadInput(f"--detail is not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(detail_obj, dict):
        raise BadInput("--detail must be a JSON object")
    lid = parse("lease", lease_id) if lease_id else None

    async def body(s):
        worktree, _ = await current_worktree(s)
        return await s.request_approval(kind=kind, summary=summary, detail=detail_obj, lease_id=lid, key=key,
                                        requested_by=agent_name(), worktree=worktree)

    a = run(body)
    emit(a, f"{format_id('approval', a.id)} {a.status}: {a.summary}")


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
    a = run(lambda s: s.decide_approval(aid, approve=True, reason=reason, actor=person()), actor=person())
    emit(a, f"{format_id('approval', a.id)} approved")


@approval.command("reject")
@click.argument("approval_id")
@click.option("--reason", "-r", required=True, help="Why: shown to the agent.")
@common_options
def approval_reject(approval_id, reason) -> None:
    """Reject a pending request with a reason."""
    aid = parse("approval", approval_id)
    a = run(lambda s: s.decide_approval(aid, approve=False, reason=reason, actor=person()), actor=person())
    emit(a, f"{format_id('approval', a.id)} rejected: {a.reason}")
