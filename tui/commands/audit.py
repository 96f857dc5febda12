"""The audit log: tail, follow, head, verify."""

from __future__ import annotations

import json

import click

from core.display import printable, printable_line as cell
from core.errors import BadInput, StoreUnusable
from core.ids import format_id
from tui.clikit import common_options, emit, json_mode, run
from tui.services.audit import follow_log

def event_line(e) -> str:
    ids = " ".join(x for x in (format_id("task", e.task_id), format_id("lease", e.lease_id),
                               format_id("approval", e.approval_id)) if x)
    where = " ".join(cell(x) for x in (e.worktree, e.path) if x)
    details = {k: v for k, v in e.details.items() if v not in (None, [], {})}
    extra = f" {cell(json.dumps(details, ensure_ascii=False, sort_keys=True))}" if details else ""
    damaged = f"  [damaged: {cell(e.damaged)}]" if e.damaged else ""
    # stored text is agents' text: each field is made printable, so no control character
    # reaches the terminal and no newline forges a row
    line = f"{e.seq:>6} {cell(e.ts[11:23])} {cell(e.actor):<16} {cell(e.event):<20} {ids} {where}{extra}"
    return line.rstrip() + damaged


def gap_line(after: int, before: int) -> str:
    missing = f"seq {after + 1}" if before == after + 2 else f"seq {after + 1}..{before - 1}"
    return f"{'':>6} {missing} missing: run `tower audit verify`"


def human_lines(events) -> list[str]:
    """One line per event, and a line where seqs are missing (a damaged log)."""
    out: list[str] = []
    prev = None
    for e in events:
        if prev is not None and e.seq > prev + 1:
            out.append(gap_line(prev, e.seq))
        out.append(event_line(e))
        prev = e.seq
    return out


@click.group()
def audit() -> None:
    """Read and verify the tamper-evident audit log."""


@audit.command("tail")
@click.option("-n", "count", type=click.IntRange(0, 10_000_000), default=20, show_default=True,
              help="How many events.")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new events (JSON: one object per line). Says 'following from seq N' "
                   "on stderr once every later event will be printed.")
@common_options
def audit_tail(count, follow) -> None:
    """Print the newest events (a row that cannot be decoded is printed as far as it can, marked)."""
    if count < 0:
        raise BadInput("-n must be >= 0")
    if not follow:
        events = run(lambda s: s.audit_tail(count))
        emit(events, lambda: "\n".join(human_lines(events)) or "audit log is empty")
        return

    as_json = json_mode()
    last_shown: list[int | None] = [None]

    def show(e) -> None:
        if as_json:
            click.echo(json.dumps({"ok": True, "data": e.to_json()}, ensure_ascii=False))
        else:
            if last_shown[0] is not None and e.seq > last_shown[0] + 1:
                click.echo(gap_line(last_shown[0], e.seq))
            click.echo(event_line(e))
        last_shown[0] = e.seq

    async def body(s):
        await follow_log(s, count, show, lambda seq: click.echo(f"following from seq {seq}", err=True))

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
        f"audit log damaged at seq {f.seq} ({f.reason}): {printable(f.message)}",
        code="audit_" + f.reason,
        data={"seq": f.seq, "reason": f.reason, "checked": result.checked},
    )
