"""Tasks, leases and file claims: the agent's loop."""

from __future__ import annotations

from pathlib import Path

import click

from core.display import printable, printable_line as cell
from core.ids import format_id
from core.vocab import TASK_STATUSES
from core.rules import DEFAULT_MAX_ATTEMPTS, DEFAULT_TTL
from tui.clikit import (
    agent_name,
    common_options,
    current_worktree,
    emit,
    normalize_paths,
    parse,
    person,
    run,
    short,
    to_data,
)

token_option = click.option("--token", type=click.IntRange(0, 2**63 - 1), default=None,
                            help="Fencing token from `task claim`: refused if the lease moved on.")


def _task_line(t) -> str:
    deps = f"  after {','.join(format_id('task', d) for d in t.depends_on)}" if t.depends_on else ""
    return f"{format_id('task', t.id):<5} {cell(t.status):<9} p{t.priority:<3} {cell(t.title)}{deps}"


def _lease_line(lease) -> str:
    claims = f"  [{', '.join(cell(c) for c in lease.claims)}]" if lease.claims else ""
    return (f"{format_id('lease', lease.id):<5} {cell(lease.status):<9} {format_id('task', lease.task_id):<5} "
            f"{cell(lease.agent)} @ {cell(lease.worktree or '-')}  token {lease.token}"
            f"  expires {short(lease.expires_at)}{claims}")


@click.group()
def task() -> None:
    """Add, list, claim and finish tasks."""


@task.command("add")
@click.argument("title")
@click.option("--description", "-d", default="", help="What the task is about.")
# SQLite integers are 64-bit: bound what a person could mean, so a typo is exit 2, not an overflow
@click.option("--priority", "-p", type=click.IntRange(-1_000_000, 1_000_000), default=0, show_default=True,
              help="Higher runs first.")
@click.option("--scope", "-s", multiple=True, help="Path glob the task may write (repeatable).")
@click.option("--depends-on", multiple=True, help="Task that must be done first (repeatable).")
@click.option("--max-attempts", type=click.IntRange(1, 1000), default=DEFAULT_MAX_ATTEMPTS, show_default=True)
@common_options
def task_add(title, description, priority, scope, depends_on, max_attempts) -> None:
    """Queue a task."""
    deps = [parse("task", d) for d in depends_on]
    t = run(lambda s: s.add_task(title, description=description, priority=priority, scope=list(scope),
                                 depends_on=deps, max_attempts=max_attempts, actor=person()))
    emit(t, f"{format_id('task', t.id)} added: {cell(t.title)} (priority {t.priority})")


@task.command("list")
@click.option("--status", type=click.Choice(TASK_STATUSES), default=None)
@common_options
def task_list(status) -> None:
    """List tasks."""
    tasks = run(lambda s: s.list_tasks(status))
    emit(tasks, lambda: "\n".join(_task_line(t) for t in tasks) or "no tasks")


@task.command("show")
@click.argument("task_id")
@common_options
def task_show(task_id) -> None:
    """Show a task with its leases."""
    tid = parse("task", task_id)

    async def body(s):
        return await s.get_task(tid), await s.list_leases(all=True, task_id=tid)

    t, leases = run(body)
    data = t.to_json() | {"leases": [lease.to_json() for lease in leases]}

    def human() -> str:
        lines = [_task_line(t)]
        # a description may span lines: each is quoted, so that none can pass for a row of its own
        lines += [f"  | {printable(line)}" for line in t.description.splitlines()]
        lines.append(f"  attempts {t.attempts}/{t.max_attempts}  scope {', '.join(cell(g) for g in t.scope) or '(any)'}")
        if t.last_error:
            lines.append(f"  last error: {cell(t.last_error)}")
        lines += [f"  {_lease_line(lease)}" for lease in leases]
        return "\n".join(lines)

    emit(data, human)


@task.command("claim")
@click.option("--task", "task_id", default=None, help="Claim this task instead of the next eligible one.")
@click.option("--ttl", type=float, default=DEFAULT_TTL, show_default=True, help="Lease time-to-live, seconds.")
@common_options
def task_claim(task_id, ttl) -> None:
    """Lease the next eligible task (highest priority, then oldest)."""
    tid = parse("task", task_id) if task_id else None

    async def body(s):
        worktree, _ = await current_worktree(s)
        agent = agent_name() or (f"agent@{worktree}" if worktree else "agent")
        return await s.claim_task(agent=agent, worktree=worktree, task_id=tid, ttl=ttl)

    r = run(body)
    emit(r, f"{format_id('lease', r.lease_id)} token {r.token}: {format_id('task', r.task_id)} {cell(r.title)}"
            f" (expires {short(r.expires_at)})")


@task.command("done")
@click.argument("lease_id")
@token_option
@common_options
def task_done(lease_id, token) -> None:
    """Finish the lease's task."""
    lid = parse("lease", lease_id)
    lease = run(lambda s: s.complete_task(lid, token=token, agent=agent_name()))
    emit(lease, f"{format_id('task', lease.task_id)} done ({format_id('lease', lid)} completed)")


@task.command("fail")
@click.argument("lease_id")
@click.option("--reason", "-r", required=True, help="Why it failed (kept on the task).")
@token_option
@common_options
def task_fail(lease_id, reason, token) -> None:
    """Give up on the lease's task: it goes back to the queue, or fails after max attempts."""
    lid = parse("lease", lease_id)

    async def body(s):
        lease = await s.fail_task(lid, reason, token=token, agent=agent_name())
        return lease, await s.task_progress(lease.task_id)

    lease, (status, attempts, max_attempts) = run(body)
    emit(to_data(lease) | {"task_status": status},
         f"{format_id('task', lease.task_id)} {'back to pending' if status == 'pending' else status}"
         f" (attempt {attempts}/{max_attempts}): {cell(reason)}")


@task.command("retry")
@click.argument("task_id")
@common_options
def task_retry(task_id) -> None:
    """Put a failed or cancelled task back in the queue."""
    tid = parse("task", task_id)
    t = run(lambda s: s.retry_task(tid, actor=person()))
    emit(t, f"{format_id('task', t.id)} back to pending")


@task.command("cancel")
@click.argument("task_id")
@common_options
def task_cancel(task_id) -> None:
    """Cancel a task (releasing its lease if it has one)."""
    tid = parse("task", task_id)
    t = run(lambda s: s.cancel_task(tid, actor=person()))
    emit(t, f"{format_id('task', t.id)} cancelled")


@click.group()
def lease() -> None:
    """Heartbeat, list and release leases."""


@lease.command("heartbeat")
@click.argument("lease_id")
@click.option("--ttl", type=float, default=None, help="New time-to-live (default: the lease's own).")
@token_option
@common_options
def lease_heartbeat(lease_id, ttl, token) -> None:
    """Keep a lease alive."""
    lid = parse("lease", lease_id)
    ls = run(lambda s: s.heartbeat(lid, ttl=ttl, token=token, agent=agent_name()))
    emit(ls, f"{format_id('lease', lid)} extended to {short(ls.expires_at)} (ttl {ls.ttl:g}s)")


@lease.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include ended leases.")
@common_options
def lease_list(show_all) -> None:
    """List active leases (all with --all)."""
    leases = run(lambda s: s.list_leases(all=show_all))
    emit(leases, lambda: "\n".join(_lease_line(x) for x in leases) or "no leases")


@lease.command("show")
@click.argument("lease_id")
@common_options
def lease_show(lease_id) -> None:
    """Show one lease with its claims."""
    lid = parse("lease", lease_id)
    ls = run(lambda s: s.get_lease(lid))
    emit(ls, _lease_line(ls))


@lease.command("release")
@click.argument("lease_id")
@token_option
@common_options
def lease_release(lease_id, token) -> None:
    """Hand the task back to the queue without counting a failed attempt."""
    lid = parse("lease", lease_id)
    ls = run(lambda s: s.release_lease(lid, token=token, agent=agent_name()))
    emit(ls, f"{format_id('lease', lid)} released; {format_id('task', ls.task_id)} back to pending")


@click.command()
@common_options
def reap() -> None:
    """Expire stale leases now."""
    reaped = run(lambda s: s.reap(actor=person()), reap=False)
    emit({"reaped": [format_id("lease", i) for i in reaped]},
         "reaped " + ", ".join(format_id("lease", i) for i in reaped) if reaped else "nothing to reap")


@click.command()
@click.argument("lease_id")
@click.argument("paths", nargs=-1, required=True)
@token_option
@common_options
def claim(lease_id, paths, token) -> None:
    """Claim files for a lease (all or nothing)."""
    lid = parse("lease", lease_id)

    async def body(s):
        _, root = await current_worktree(s, register=False)
        if root is None:  # not inside a worktree: paths are relative to the lease's own
            root = await s.lease_worktree_path(lid)
        rel = normalize_paths(list(paths), None if root is None else Path(root))
        new = await s.claim_files(lid, rel, token=token, agent=agent_name())
        return rel, new

    rel, new = run(body)
    emit({"lease_id": format_id("lease", lid), "paths": rel, "new": new},
         f"{format_id('lease', lid)} holds {', '.join(cell(p) for p in rel)}")


@click.command()
@click.argument("lease_id")
@click.argument("paths", nargs=-1)
@token_option
@common_options
def release(lease_id, paths, token) -> None:
    """Release a lease's file claims (all of them without PATH)."""
    lid = parse("lease", lease_id)

    async def body(s):
        rel = None
        if paths:
            _, root = await current_worktree(s, register=False)
            rel = normalize_paths(list(paths), root)
        return await s.release_files(lid, rel, token=token, agent=agent_name())

    released = run(body)
    emit({"lease_id": format_id("lease", lid), "released": released},
         f"{format_id('lease', lid)} released {', '.join(cell(p) for p in released)}" if released
         else "nothing to release")
