"""``tower serve``: the control room in a browser (the server: tui/services/serve.py)."""

from __future__ import annotations

import click

from core.errors import BadInput, Refused
from tui.clikit import agent_name, common_options, db_path, emit


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --allow-remote.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port; the printed URL has it).")
@click.option("--allow-remote", is_flag=True,
              help="Listen on a non-loopback --host: the token in the URL is then the only protection.")
@click.option("--public-url", metavar="URL",
              help="The origin the browser uses when a TLS reverse proxy is in front (https://tower.example.com).")
@click.option("--max-sessions", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Control rooms open at once (each is a `tower` process).")
@click.option("--no-watch", is_flag=True, help="Served control rooms do not run the worktree watcher.")
@common_options
def serve(host: str, port: int, allow_remote: bool, public_url: str | None, max_sessions: int,
          no_watch: bool) -> None:
    """Serve the control room to a browser, behind a random token.

    Prints a URL holding the token; open it in a browser. Every request and
    websocket without the token is refused (401). Decisions are recorded as
    the person who started `tower serve`. Runs until Ctrl-C or SIGTERM.
    """
    if agent_name():
        raise Refused("tower serve is the person's control room: it does not start for an agent "
                      "(unset TOWER_AGENT / --agent)", code="agent_refused")
    import asyncio
    import sys

    from store import Store
    from tui.services.serve import Refusal, ServeConfig, check_config, configure_logging
    from tui.services.serve import serve as run_server

    db = db_path()
    config = ServeConfig(db=db, host=host, port=port, watch=not no_watch, allow_remote=allow_remote,
                         public_url=public_url, max_sessions=max_sessions)
    try:
        loopback = check_config(config)
    except Refusal as exc:
        raise BadInput(str(exc), code="refused_host") from None

    async def main() -> None:
        # A missing, corrupt or newer store is the usual one-line error, before anything listens.
        async with Store(db):
            pass
        if not loopback:
            click.echo(f"tower: warning: serving on {host}, reachable from other machines: the token is the only "
                       "protection, and plain http shows it to anyone on the path. Put TLS in front "
                       "(a reverse proxy, or an SSH tunnel to 127.0.0.1 instead).", err=True)

        def ready(served) -> None:
            emit({"url": served.url, "host": host, "port": served.port, "person": f"person:{config.person}"},
                 f"Tower control room: {served.url}\n"
                 f"  open it in a browser; decisions are recorded as person:{config.person}; Ctrl-C stops")
            sys.stdout.flush()

        configure_logging()
        try:
            await run_server(config, on_ready=ready)
        except OSError as exc:
            raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code="bind_failed") from None

    asyncio.run(main())
