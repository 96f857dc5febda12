"""``tower serve``: the control room in a browser, behind a token.

textual-serve relays a Textual app's terminal to xterm.js over a websocket: one
``tower`` process per browser session, against the same store. It has no
authentication of its own, so its handlers are mounted on an aiohttp
application whose one middleware (:class:`Guard`) every request passes first:
the page, the websocket, the static files, downloads and unknown paths alike.

What the guard enforces (docs/DECISIONS.md, "The control room in a browser"):

- a random token (``secrets.token_urlsafe``) on every request, compared in
  constant time; missing or wrong is 401 and reveals nothing else;
- the token arrives once in the printed URL, is moved into a cookie
  (HttpOnly, SameSite=Strict, one per port) and the URL is redirected to a
  clean one, so reloads and the websocket carry it and history does not;
- a websocket whose ``Origin`` is not the page's own origin is refused (403):
  a page on another site, or on another port of this host, cannot drive it;
- while bound to loopback, a ``Host`` that is not a loopback name is refused
  (403), against DNS rebinding;
- no Referer leaves the page (``Referrer-Policy: no-referrer``), the page
  cannot be framed, nothing is cached, and the access log never shows a query
  string or a cookie.

The served app's actor is fixed when ``tower serve`` starts: the login of the
person who started it (``person:<login>``). The browser only chooses the
terminal size; nothing it sends reaches the child's environment or arguments.

Nothing here imports click or Textual at import time, and aiohttp and
textual-serve only when a server is built: only ``tower serve`` pays for them.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from core.display import printable
from core.people import login

log = logging.getLogger("tower.serve")

TOKEN_PARAM = "token"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_SESSIONS = 8
# Seconds the served control rooms get to quit after the server is told to stop.
SHUTDOWN_GRACE = 10.0
# Variables that name an agent: the served control room must never act as one.
AGENT_ENV = ("TOWER_AGENT", "TOWER_LEASE", "TOWER_WORKTREE")

SECURITY_HEADERS = {
    # The page loads only from itself. Inline script and style are textual-serve's
    # page template; connect-src 'self' also covers ws:// to the same host and port.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# -- pieces without a server ---------------------------------------------------------


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def tokens_equal(presented: str, expected: str) -> bool:
    """Constant-time comparison (bytes: compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def person_login() -> str:
    """Whoever started ``tower serve``: the login the control room's decisions are recorded under."""
    return login() or "person"


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback_name(host: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address literal (no DNS)."""
    name = _strip_brackets(host).rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """Would binding ``host`` listen on loopback only? Names are resolved: all answers must be loopback."""
    if is_loopback_name(host):
        return True
    try:
        infos = socket.getaddrinfo(_strip_brackets(host), None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)
    except ValueError:
        return False


def _hostport(netloc: str, default_port: int | None) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit("//" + netloc)
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not hostname:
        return None
    return hostname.rstrip(".").lower(), port if port is not None else default_port


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def url_host(host: str) -> str:
    """``host`` as it goes into a URL (IPv6 literals in brackets)."""
    bare = _strip_brackets(host)
    return f"[{bare}]" if ":" in bare else bare


@dataclass
class Guard:
    """The checks every request passes before textual-serve sees it. Pure: no aiohttp here."""

    token: str
    port: int
    loopback_only: bool
    public_url: str | None = None
    secure_cookie: bool = False
    cookie_name: str = field(init=False)

    def __post_init__(self) -> None:
        # Cookies are shared by every port of a host: one name per port keeps two
        # servers on one machine from overwriting each other's token.
        self.cookie_name = f"tower_serve_{self.port}"

    # -- what a request presents

    def token_source(self, query: dict[str, str], cookies: dict[str, str], authorization: str | None) -> str | None:
        """Where a valid token came from (``query``, ``cookie``, ``header``), or None.

        A token in the URL is judged alone: a wrong one is refused even beside a
        good cookie, so a pasted URL never silently works on stale credentials.
        """
        if TOKEN_PARAM in query:
            return "query" if tokens_equal(query[TOKEN_PARAM], self.token) else None
        if authorization and authorization[:7].lower() == "bearer ":
            return "header" if tokens_equal(authorization[7:].strip(), self.token) else None
        cookie = cookies.get(self.cookie_name)
        if cookie is not None and tokens_equal(cookie, self.token):
            return "cookie"
        return None

    def host_allowed(self, host_header: str | None) -> bool:
        """DNS rebinding: a loopback server answers only to loopback names (and the public URL's)."""
        if not self.loopback_only:
            return True
        parsed = _hostport(host_header or "", None)
        if parsed is None:
            return False
        hostname = parsed[0]
        if is_loopback_name(hostname):
            return True
        public = urlsplit(self.public_url).hostname if self.public_url else None
        return public is not None and hostname == public.lower()

    def origin_allowed(self, origin: str | None, host_header: str | None, scheme_served: str = "http") -> bool:
        """Cross-site websocket hijacking: the websocket's Origin must be the page's own.

        Browsers always send Origin on a websocket and a page cannot forge it; a
        client without one is not a browser and needed the token anyway.
        Same site is not enough: a page on another port of this host is another
        origin (and SameSite cookies would go there too).
        """
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
            scheme = parts.scheme.lower()
            o_host, o_port = parts.hostname, parts.port
        except ValueError:
            return False
        if scheme not in ("http", "https") or not o_host:
            return False  # "null" (sandboxed frames, files) and anything odd
        o_port = o_port if o_port is not None else _DEFAULT_PORTS[scheme]
        mine = (o_host.rstrip(".").lower(), o_port)
        if self.public_url:
            pub = urlsplit(self.public_url)
            pub_scheme = pub.scheme.lower()
            if pub.hostname and scheme == pub_scheme:
                if mine == (pub.hostname.lower(), pub.port or _DEFAULT_PORTS.get(pub_scheme)):
                    return True
        # Otherwise the page's origin is the scheme it was served over and the
        # Host the browser sent (a TLS proxy in front needs --public-url).
        if scheme != scheme_served:
            return False
        page = _hostport(host_header or "", _DEFAULT_PORTS[scheme])
        return page is not None and page == mine

    def cookie_header(self) -> str:
        attrs = [f"{self.cookie_name}={self.token}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.secure_cookie:
            attrs.append("Secure")
        return "; ".join(attrs)


# -- the served app's command ------------------------------------------------------------


def child_command(db: Path | str, *, person: str, watch: bool) -> str:
    """The shell command textual-serve runs per session (it uses a shell: everything is quoted).

    ``exec`` makes the control room the server's own child, so it can ask the
    kernel to stop it when the server dies (:func:`tui.served.child_main`).
    """
    argv = [sys.executable, "-m", "tui.served", "--db", str(db), "--person", person,
            "--parent", str(os.getpid())]
    if not watch:
        argv.append("--no-watch")
    return "exec " + shlex.join(argv)


# -- the server -------------------------------------------------------------------------------


@dataclass
class ServeConfig:
    db: Path | str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    watch: bool = True
    allow_remote: bool = False
    public_url: str | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS
    person: str = field(default_factory=person_login)


class Refusal(Exception):
    """A configuration ``tower serve`` will not run with (the command line makes it exit 2)."""


def check_config(config: ServeConfig) -> bool:
    """Validate; answer whether the bind address is loopback-only."""
    loopback = is_loopback_host(config.host)
    if not loopback and not config.allow_remote:
        raise Refusal(
            f"refusing to serve on {config.host}: not a loopback address, and the token would be the only "
            "protection (over plain http). Prefer the default 127.0.0.1 with an SSH tunnel or a TLS reverse "
            "proxy; pass --allow-remote to serve there anyway"
        )
    from core.locate import has_password

    if has_password(str(config.db)):
        # each session is started with the store on its command line, which every local user can
        # read (ps): the password belongs in ~/.pgpass (or the file PGPASSFILE names) instead
        raise Refusal("refusing to serve a store whose URL holds a password: each session's command line"
                      " would show it to every user of this machine; put the password in ~/.pgpass (or the"
                      " file PGPASSFILE names) and pass the URL without it")
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.fragment:
            raise Refusal(f"--public-url must be an origin such as https://tower.example.com, not {config.public_url!r}")
    return loopback


def bind(host: str, port: int) -> socket.socket:
    """Listen on ``host:port`` (port 0: any free port); the first address the name resolves to."""
    infos = socket.getaddrinfo(_strip_brackets(host), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def configure_logging() -> None:
    """One line per request and per session on stderr (paths only: see the access logger)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("tower.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class Served:
    """A running server: its URL (with the token) and how to stop it."""

    def __init__(self, url: str, port: int, stop: Callable[[], None]) -> None:
        self.url = url
        self.port = port
        self.stop = stop


def build_app(config: ServeConfig, guard: Guard) -> Any:
    """The aiohttp application: textual-serve's handlers, every route behind ``guard``."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server

    ts = Server(child_command(config.db, person=config.person, watch=config.watch),
                host=config.host, port=config.port, title="Tower")
    sessions: set[asyncio.Task] = set()
    ws_path = "/ws"

    def refuse(status: int, text: str) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="tower serve"'} if status == 401 else None
        return web.Response(status=status, text=text + "\n", headers=headers)

    @web.middleware
    async def guard_middleware(request: web.Request, handler):
        if not guard.host_allowed(request.headers.get("Host")):
            return refuse(403, "403: this server answers only to loopback names")
        source = guard.token_source(dict(request.query), dict(request.cookies), request.headers.get("Authorization"))
        if source is None:
            return refuse(401, "401: open the URL that `tower serve` printed (it holds the token)")
        is_ws = request.path == ws_path
        if is_ws:
            if not guard.origin_allowed(request.headers.get("Origin"), request.headers.get("Host"), request.scheme):
                log.warning("refused a websocket from origin %s", printable(request.headers.get("Origin", "")))
                return refuse(403, "403: cross-origin websocket refused")
            if len(sessions) >= config.max_sessions:
                return refuse(503, f"503: {config.max_sessions} control rooms are open already")
            task = asyncio.current_task()
            assert task is not None
            sessions.add(task)
            log.info("control room opened for %s (%d open)", request.remote, len(sessions))
            try:
                return await handler(request)
            finally:
                sessions.discard(task)
                log.info("control room closed for %s (%d open)", request.remote, len(sessions))
        if source == "query" and request.method == "GET":
            # Move the token into the cookie and out of the address bar and history.
            rest = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
            location = request.path + ("?" + urlencode(rest) if rest else "")
            raise web.HTTPSeeOther(location, headers={"Set-Cookie": guard.cookie_header()})
        return await handler(request)

    async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)

    @aiohttp_jinja2.template("app_index.html")
    async def index(request: web.Request) -> dict[str, Any]:
        # textual-serve builds these from its configured URL; built from the Host
        # the browser used instead, a tunnel's local port or "localhost" work too
        # (the cookie is per host name, so the websocket must go where the page came from).
        if config.public_url:
            origin = config.public_url.rstrip("/")
        else:
            origin = f"{'https' if request.secure else 'http'}://{request.host}"
        ws_origin = "wss" + origin[5:] if origin.startswith("https:") else "ws" + origin[4:]
        try:
            font_size = int(request.query.get("fontsize", "16"))
        except ValueError:
            font_size = 16
        return {
            "font_size": max(6, min(font_size, 48)),
            "app_websocket_url": ws_origin + ws_path,
            "config": {"static": {"url": origin + "/static/"}},
            "application": {"name": "Tower"},
        }

    async def stop_sessions(app: web.Application) -> None:
        # textual-serve ends a session (tells its app to quit) when its handler
        # is cancelled; the grace period bounds a control room that will not quit.
        pending = list(sessions)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)

    app = web.Application(middlewares=[guard_middleware])
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(ts.templates_path))
    app.add_routes([
        web.get("/", index),
        web.get(ws_path, ts.handle_websocket),
        web.get("/download/{key}", ts.handle_download),
        web.static("/static", ts.statics_path, show_index=False),
    ])
    app.on_response_prepare.append(security_headers)
    app.on_shutdown.append(stop_sessions)
    return app


def _access_logger_class() -> type:
    from aiohttp.abc import AbstractAccessLogger

    class PathOnlyAccessLogger(AbstractAccessLogger):
        """Method, path and status: never the query string (the token) or a header."""

        def log(self, request, response, time: float) -> None:
            self.logger.info("%s %s %s %d %.0fms", request.remote, request.method, printable(request.path),
                             response.status, time * 1000)

    return PathOnlyAccessLogger


async def serve(config: ServeConfig, *, on_ready: Callable[[Served], None],
                stop_event: asyncio.Event | None = None) -> None:
    """Run until ``stop_event`` is set (or SIGINT/SIGTERM/SIGHUP); ``on_ready`` once listening."""
    from aiohttp import web

    loopback = check_config(config)
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    config.port = port
    guard = Guard(new_token(), port, loopback_only=loopback, public_url=config.public_url,
                  secure_cookie=bool(config.public_url and config.public_url.startswith("https:")))
    # The server never acts as an agent, and neither does any session it starts.
    for name in AGENT_ENV:
        os.environ.pop(name, None)
    app = build_app(config, guard)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=_access_logger_class(),
                           access_log=logging.getLogger("tower.serve.access"), shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.SockSite(runner, sock)
        await site.start()
        base = config.public_url.rstrip("/") if config.public_url else f"http://{url_host(config.host)}:{port}"
        on_ready(Served(f"{base}/?{TOKEN_PARAM}={guard.token}", port, stop.set))
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        sock.close()
