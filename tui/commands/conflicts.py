"""Conflicts the watcher flagged."""

from __future__ import annotations

import click

from core.display import printable_line as cell
from core.ids import format_id
from tui.clikit import common_options, emit, parse, person, require_person, run, short


def conflict_line(c) -> str:
    other = f" vs {cell(c.other_worktree)}" if c.other_worktree else ""
    lease = f" {format_id('lease', c.lease_id)}" if c.lease_id else ""
    msg = f": {cell(c.message)}" if c.message else ""
    return (f"{format_id('conflict', c.id):<5} {cell(c.status):<8} {cell(c.kind):<17} {cell(c.path)}  "
            f"{cell(c.worktree)}{other}{lease} ({short(c.created_at)}){msg}")


@click.group()
def conflict() -> None:
    """List and acknowledge conflicts."""


@conflict.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include acknowledged and resolved ones.")
@common_options
def conflict_list(show_all) -> None:
    """List open conflicts."""
    items = run(lambda s: s.list_conflicts(None if show_all else "open"))
    emit(items, lambda: "\n".join(conflict_line(c) for c in items) or "no open conflicts")


@conflict.command("ack")
@click.argument("conflict_id")
@common_options
def conflict_ack(conflict_id) -> None:
    """Acknowledge a conflict."""
    cid = parse("conflict", conflict_id)

    async def body(s):
        actor = await require_person(s, "acknowledging a conflict")  # an agent never silences its own
        return await s.ack_conflict(cid, actor=actor)

    c = run(body, actor=person())
    emit(c, f"{format_id('conflict', c.id)} {c.status}")
