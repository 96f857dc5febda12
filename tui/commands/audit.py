"""The audit log: tail, follow, head, verify."""

from __future__ import annotations

import json

import click

from core.display import printable_line as cell
from core.errors import BadInput, StoreUnusable
from core.ids import format_id
from tui.clikit import common_options, db_path, emit, json_mode, run


def event_line(e) -> str:
    ids = " ".join(x for x in (format_id("task", e.task_id), format_id("lease", e.lease_id),
                               format_id("approval", e.approval_id)) if x)
    where = " ".join(cell(x) for x in (e.worktree, e.path) if x)
    details = {k: v for k, v in e.details.items() if v not in (None, [], {})}
    extra = f" {cell(json.dumps(details, ensure_ascii=False, sort_keys=True))}" if details else ""
    return f"{e.seq:>6} {cell(e.ts[11:23])} {cell(e.actor):<16} {cell(e.event):<20} {ids} {where}{extra}".rstrip()


@click.group()
def audit() -> None:
    """Read and verify the tamper-evident audit log."""


@audit.command("tail")
@click.option("-n", "count", type=click.IntRange(0, 10_000_000), default=20, show_default=True,
              help="How many events.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (JSON: one object per line).")
@common_options
def audit_tail(count, follow) -> None:
    """Print the newest events."""
    if count < 0:
        raise BadInput("-n must be >= 0")
    if not follow:
        events = run(lambda s: s.audit_tail(count))
        emit(events, lambda: "\n".join(event_line(e) for e in events) or "audit log is empty")
        return

    def show(e) -> None:
        if json_mode():
            click.echo(json.dumps({"ok": True, "data": e.model_dump(mode="json")}), nl=True)
        else:
            click.echo(event_line(e))

    async def body(s):
        for e in await s.audit_tail(count):
            show(e)
        signal = await s.change_signal()
        last = (await s.audit_head())[0]
        while True:
            signal = await s.wait_for_change(signal, interval=0.1)
            for e in await s.audit_after(last):
                show(e)
                last = e.seq

    try:
        run(body, reap=False)
    except KeyboardInterrupt:
        pass


@audit.command("head")
@common_options
def audit_head() -> None:
    """Print SEQ:HASH of the newest event: keep it elsewhere to catch truncation."""
    seq, entry_hash = run(lambda s: s.audit_head(), reap=False)
    head = f"{seq}:{entry_hash}" if entry_hash else None
    emit({"seq": seq, "hash": entry_hash, "head": head}, head or "audit log is empty")


@audit.command("verify")
@click.option("--head", "head", default=None, metavar="SEQ:HASH", help="A head kept earlier: proves no tail was cut.")
@common_options
def audit_verify(head) -> None:
    """Re-derive the whole chain; name the first bad entry."""
    from core.audit import parse_head

    expected = None
    if head:
        try:
            expected = parse_head(head)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    result = run(lambda s: s.verify_audit(expected), reap=False)
    if result.ok:
        emit({"ok": True, "checked": result.checked, "head": result.head},
             f"audit log intact: {result.checked} events, head {result.head or '-'}")
        return
    f = result.finding
    raise StoreUnusable(
        f"audit log damaged at seq {f.seq} ({f.reason}): {f.message}",
        code="audit_" + f.reason,
        data={"seq": f.seq, "reason": f.reason, "checked": result.checked},
    )
