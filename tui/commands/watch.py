"""``tower watch``: the worktree watcher without the control room.

Prints one line per conflict opened or resolved and per warning; with
``--json``, one ``{"ok": true, "data": {...}}`` object per line, where
``data.event`` is ``watching``, ``conflict.opened``, ``conflict.resolved``,
``warning`` or ``stopped``. Runs until Ctrl-C, SIGTERM or SIGHUP (exit 0).
"""

from __future__ import annotations

import asyncio
import json
import signal

import click

from core.errors import BadInput, NotFound
from core.ids import format_id
from core.display import printable_line as cell
from tui.clikit import common_options, emit, json_mode, human_text, log_to_stderr, person, require_person, run, to_data
from core.watcher import DEFAULT_RESCAN_INTERVAL


def _line(data: dict) -> None:
    _say(json.dumps({"ok": True, "data": to_data(data)}, ensure_ascii=False))


def _say(text: str) -> None:
    """Print a line; once the output is gone (a hung-up terminal, a closed pipe) keep watching
    silently: the store holds everything printed, and a dead output must not stop the watcher."""
    try:
        click.echo(text)
    except OSError:  # EIO from a hung-up terminal, EPIPE
        import os
        import sys

        try:  # Python's own flush at exit must not fail either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no real file behind stdout
            pass


def _tell(text: str) -> None:
    """A human line: agents' text made printable, and the terminal may be gone."""
    _say(human_text(text))


def _stop_signals() -> list[signal.Signals]:
    """SIGINT, SIGTERM and SIGHUP stop the watcher cleanly. Killed by a closed terminal's
    SIGHUP it would lose nothing (the next start finds every write not yet judged), but a clean
    stop judges what is queued now and hands the single-watcher lock on at once. SIGHUP is left
    alone when it is ignored (``nohup tower watch``)."""
    out = [signal.SIGINT, signal.SIGTERM]
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        out.append(hup)
    return out


def conflict_text(action: str, c, reason: str | None = None) -> str:
    other = f" vs {cell(c.other_worktree)}" if c.other_worktree else ""
    why = reason if action == "resolved" else c.message
    return (f"{format_id('conflict', c.id):<5} {action:<8} {cell(c.kind):<17} {cell(c.path)}  {cell(c.worktree)}"
            f"{other}: {cell(why or '')}")


@click.command()
@click.option("--rescan-interval", type=click.FloatRange(min=0.05), default=DEFAULT_RESCAN_INTERVAL, show_default=True,
              metavar="SECONDS", help="Reconcile with the disk this often (catches missed events).")
@click.option("--polling", is_flag=True, help="Poll the file system instead of using native events.")
@click.option("--rebaseline", "rebaseline", multiple=True, metavar="WORKTREE",
              help="Make the current content of WORKTREE its baseline (after a merge), then exit.")
@click.option("--verbose", "-v", count=True, help="Log to stderr (-v: what the watcher does, -vv: debug).")
@common_options
def watch(rescan_interval: float, polling: bool, rebaseline: tuple[str, ...], verbose: int) -> None:
    """Watch every registered worktree and flag conflicting writes as they happen.

    Prints a line per conflict opened or resolved and per warning (--json: one
    JSON object per line) until Ctrl-C, SIGTERM or SIGHUP. See docs/watcher.md.
    """
    if rebaseline:
        _rebaseline(list(rebaseline))
        return
    if verbose:
        import logging

        log_to_stderr(logging.INFO if verbose == 1 else logging.DEBUG,
                      "%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("aiosqlite").setLevel(logging.INFO)  # one line per statement otherwise
    from tui.services.watch import ConflictEvent, WatchService, WatchStatus

    as_json = json_mode()
    shown: set[str] = set()
    announced: list[tuple[str, ...] | None] = [None]

    def on_conflict(event: ConflictEvent) -> None:
        c = event.conflict
        if as_json:
            data = {"event": f"conflict.{event.action}", "conflict": c}
            if event.reason:
                data["reason"] = event.reason
            _line(data)
        else:
            _tell(conflict_text(event.action, c, event.reason))

    def on_status(st: WatchStatus) -> None:
        for w in st.warnings:
            if w in shown:
                continue
            if as_json:
                _line({"event": "warning", "message": w, "status": st.status})
            else:
                _tell(f"warning: {cell(w)}")
        shown.intersection_update(st.warnings)
        shown.update(st.warnings)
        if st.ready and announced[0] != st.worktrees:  # at start, and when worktrees come and go
            announced[0] = st.worktrees
            mode = {"watching": "native events", "polling": "polling"}.get(st.status, st.status)
            if as_json:
                _line({"event": "watching", "status": st.status, "worktrees": list(st.worktrees),
                       "rescan_interval": rescan_interval})
            else:
                names = ", ".join(cell(n) for n in st.worktrees) or "none"
                _tell(f"watching {len(st.worktrees)} worktree{'s' if len(st.worktrees) != 1 else ''}"
                           f" ({names}) with {mode}; rescan every {rescan_interval:g} s; Ctrl-C stops")

    async def body(store) -> None:
        service = WatchService(store, rescan_interval=rescan_interval, force_polling=True if polling else None,
                               on_conflict=on_conflict, on_status=on_status)
        loop = asyncio.get_running_loop()
        signals = _stop_signals()
        for sig in signals:
            try:
                loop.add_signal_handler(sig, service.stop)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        try:
            await service.run()
        finally:
            for sig in signals:
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        if as_json:
            _line({"event": "stopped", "opened": service.opened, "resolved": service.resolved})
        else:
            _tell(f"stopped ({service.opened} opened, {service.resolved} resolved)")

    run(body, reap=False, actor="watcher")


def _rebaseline(names: list[str]) -> None:
    async def body(store):
        known = {w.name for w in await store.list_worktrees()}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise NotFound(f"no worktree {unknown[0]}", code="worktree_not_found")
        if len(set(names)) != len(names):
            raise BadInput("name each worktree once")
        actor = await require_person(store, "rebaselining the watcher")
        return {n: await store.reset_baseline(n, actor=actor) for n in names}

    done = run(body, actor=person())
    emit({"rebaselined": done},
         "; ".join(f"{cell(n)}: {len(p)} file{'s' if len(p) != 1 else ''} rebaselined" for n, p in done.items()))
