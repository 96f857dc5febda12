"""`tower serve` over plain HTTP and websockets (aiohttp as the client): every door the guard keeps."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.serve.conftest import PERSON, serve_env, start_server

pytestmark = pytest.mark.slow

PATHS = ["/", "/ws", "/static/js/textual.js", "/static/", "/download/abc", "/nothing-here", "/favicon.ico"]
SAFE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"}


def assert_safe_headers(resp: aiohttp.ClientResponse) -> None:
    for name, value in SAFE_HEADERS.items():
        assert resp.headers.get(name) == value, (resp.url.path, name, resp.headers.get(name))
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def get(server, path: str, *, cookies: dict | None = None, headers: dict | None = None,
              method: str = "GET") -> tuple[int, str, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession(cookies=cookies) as http:
        async with http.request(method, server.base + path, headers=headers, allow_redirects=False) as resp:
            return resp.status, await resp.text(errors="replace"), resp


async def ws_status(server, *, cookies: dict | None = None, headers: dict | None = None, query: str = "") -> int:
    async with aiohttp.ClientSession(cookies=cookies) as http:
        try:
            async with http.ws_connect(server.base + "/ws?width=80&height=24" + query, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_without_the_token_every_path_and_method_is_401_and_shows_nothing(server):
    wrong = "x" * len(server.token)
    attempts = [
        {},
        {"path_query": "?token=" + wrong},
        {"path_query": "?token=" + server.token[:-1]},  # a prefix is not the token
        {"path_query": "?token=" + server.token + "x"},
        {"cookies": {server.cookie_name: wrong}},
        {"cookies": {"tower_serve_1": server.token}},  # another port's cookie name
        {"headers": {"Authorization": "Bearer " + wrong}},
        {"headers": {"Authorization": "Basic " + server.token}},
        # a wrong token in the URL is refused even beside a good cookie
        {"path_query": "?token=" + wrong, "cookies": {server.cookie_name: server.token}},
    ]
    for attempt in attempts:
        for path in PATHS:
            for method in ("GET", "POST"):
                status, body, resp = await get(server, path + attempt.get("path_query", ""), method=method,
                                               cookies=attempt.get("cookies"), headers=attempt.get("headers"))
                assert status == 401, (attempt, path, method, status)
                assert body.startswith("401") and "textual" not in body.lower() and "Tower" not in body
                assert "Set-Cookie" not in resp.headers
                assert_safe_headers(resp)
    # The websocket handshake too, and no control room was started for any of it.
    assert await ws_status(server) == 401
    assert await ws_status(server, query="&token=" + wrong) == 401
    assert await ws_status(server, cookies={server.cookie_name: wrong}) == 401
    assert server.children() == []


async def test_the_token_moves_into_a_strict_httponly_cookie_and_out_of_the_url(server):
    status, _, resp = await get(server, "/?fontsize=14&token=" + server.token)
    assert status == 303
    assert resp.headers["Location"] == "/?fontsize=14"  # the token is dropped, the rest kept
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{server.cookie_name}={server.token};")
    attrs = {a.strip() for a in cookie.split(";")[1:]}
    assert attrs == {"Path=/", "HttpOnly", "SameSite=Strict"}
    assert_safe_headers(resp)

    status, page, resp = await get(server, "/?fontsize=14", cookies={server.cookie_name: server.token})
    assert status == 200
    assert_safe_headers(resp)
    assert server.token not in page  # the page itself never carries the token
    assert f'data-session-websocket-url="{server.base.replace("http", "ws")}/ws"' in page
    status, js, _ = await get(server, "/static/js/textual.js", cookies={server.cookie_name: server.token})
    assert status == 200 and "WebSocket" in js
    # The websocket URL follows the name the browser used (the cookie is per host name).
    status, page, _ = await get(server, "/", cookies={server.cookie_name: server.token},
                                headers={"Host": f"localhost:{server.port}"})
    assert status == 200 and f'"ws://localhost:{server.port}/ws"' in page
    # Static files are served, not listed.
    assert (await get(server, "/static/", cookies={server.cookie_name: server.token}))[0] in (403, 404)


async def test_the_websocket_must_come_from_the_page_s_own_origin(server):
    cookies = {server.cookie_name: server.token}
    refused = [
        "http://127.0.0.1:1",                 # another port of this host: same site, another origin
        f"http://localhost:{server.port}",    # another host name than the page's
        f"https://127.0.0.1:{server.port}",   # another scheme
        "https://evil.example",
        "null",                               # sandboxed frames, file: pages
        "chrome-extension://abc",
        "",
    ]
    for origin in refused:
        assert await ws_status(server, cookies=cookies, headers={"Origin": origin}) == 403, origin
        await server.wait_log(r"refused a websocket from origin")
    assert server.children() == []  # no control room was started for any of them
    # The page's own origin, and a client that is no browser (browsers always send
    # Origin; a page cannot remove it) but holds the token.
    assert await ws_status(server, cookies=cookies, headers={"Origin": server.base}) == 101
    assert await ws_status(server, cookies=cookies) == 101


async def test_a_loopback_server_answers_only_to_loopback_names(server):
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 sends Host: evil.example."""
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io", ""):
        status, body, _ = await get(server, "/?token=" + server.token, headers={"Host": host})
        assert status == 403 and "Tower" not in body, host
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost", "app.localhost:9000"):
        status, _, _ = await get(server, "/", cookies={server.cookie_name: server.token}, headers={"Host": host})
        assert status == 200, host


async def test_the_log_shows_paths_and_statuses_never_the_token(server):
    await get(server, "/?token=" + server.token)
    await get(server, "/static/css/xterm.css?token=" + server.token)
    await get(server, "/", cookies={server.cookie_name: server.token})
    await get(server, "/?token=wrong")
    await get(server, "/\x1b]0;pwned\x07")  # a path with control characters reaches the log escaped
    line = await server.wait_log(r"pwned")
    assert "\x1b" not in line and "\\e]0;pwned" in line
    log = "\n".join(server.log)
    assert "GET / 303" in log and "GET /static/css/xterm.css 303" in log and "GET / 200" in log and "GET / 401" in log
    assert server.token not in log and "token=" not in log


async def test_a_served_session_runs_as_the_person_and_ends_with_its_websocket(serve_db):
    # Started from a shell where an agent's variables linger: none reaches a session.
    server = await start_server(serve_db, env=serve_env({"TOWER_LEASE": "L9", "TOWER_WORKTREE": "wt-a"}))
    try:
        async with aiohttp.ClientSession(cookies={server.cookie_name: server.token}) as http:
            # The browser chooses the size, and nothing else: odd values change nothing.
            url = server.base + "/ws?width=120;id&height=$(id)&LOGNAME=mallory&TOWER_AGENT=mallory"
            async with http.ws_connect(url, headers={"Origin": server.base}) as ws:
                msg = await asyncio.wait_for(ws.receive(), 30)  # the control room's first screen
                assert msg.type == aiohttp.WSMsgType.BINARY
                [child] = server.children()
                pidfd = os.pidfd_open(child)
                environ = dict(item.split("=", 1) for item in
                               Path(f"/proc/{child}/environ").read_bytes().decode().split("\0") if "=" in item)
                argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
            await server.wait_log(r"control room closed")
        try:
            await wait_exit(pidfd)  # closing the websocket quits its control room
        finally:
            os.close(pidfd)
    finally:
        await server.stop()
    assert not {"TOWER_AGENT", "TOWER_LEASE", "TOWER_WORKTREE"} & set(environ)
    assert environ["LOGNAME"] == PERSON and argv[argv.index("--person") + 1] == PERSON
    assert (environ["COLUMNS"], environ["ROWS"]) == ("80", "24")  # unparsable: textual-serve's defaults
    # Other local users can read a process's arguments: the token is in neither.
    assert not any(server.token in v for v in [*environ.values(), *argv])


async def read_all(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def wait_exit(pidfd: int, timeout: float = 20) -> None:
    """Wait for a process to end: its pidfd turns readable (an event, not a poll)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(pidfd, lambda: done.done() or done.set_result(None))
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(pidfd)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
async def test_no_control_room_outlives_the_server(serve_db, how):
    """SIGTERM: the sessions are told to quit. SIGKILL: the kernel stops them (parent-death signal)."""
    server = await start_server(serve_db)
    try:
        async with aiohttp.ClientSession(cookies={server.cookie_name: server.token}) as http:
            ws = await http.ws_connect(server.base + "/ws?width=100&height=30")
            msg = await asyncio.wait_for(ws.receive(), 30)
            assert msg.type == aiohttp.WSMsgType.BINARY
            reader = asyncio.create_task(read_all(ws))  # a browser keeps reading, and answers the close
            [child] = server.children()
            pidfd = os.pidfd_open(child)
            try:
                server.proc.send_signal(how)
                await wait_exit(pidfd)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # only if the test failed
                os.close(pidfd)
            code = await asyncio.wait_for(server.proc.wait(), 20)
            assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
            await asyncio.wait_for(reader, 20)
    finally:
        await server.stop()


async def test_max_sessions_bounds_the_control_rooms(serve_db):
    server = await start_server(serve_db, "--max-sessions", "1")
    try:
        async with aiohttp.ClientSession(cookies={server.cookie_name: server.token}) as http:
            async with http.ws_connect(server.base + "/ws?width=80&height=24") as ws:
                assert (await asyncio.wait_for(ws.receive(), 30)).type == aiohttp.WSMsgType.BINARY
                assert await ws_status(server, cookies={server.cookie_name: server.token}) == 503
                assert len(server.children()) == 1
    finally:
        await server.stop()


async def test_allow_remote_serves_on_every_address_with_a_warning_and_the_token_still_required(serve_db):
    server = await start_server(serve_db, "--host", "0.0.0.0", "--allow-remote", "--json")
    try:
        line = await server.wait_log(r"warning")
        assert "the token is the only protection" in line and "TLS" in line
        assert server.url.startswith("http://0.0.0.0:")
        local = server.base.replace("0.0.0.0", "127.0.0.1")
        async with aiohttp.ClientSession() as http:
            async with http.get(local + "/", allow_redirects=False) as resp:
                assert resp.status == 401
            # Any Host name is answered here (the machine's names are not known), with the token only.
            async with http.get(local + "/", headers={"Host": "tower.lan"}, allow_redirects=False) as resp:
                assert resp.status == 401
            async with http.get(local + "/", headers={"Host": "tower.lan"}, allow_redirects=False,
                                cookies={server.cookie_name: server.token}) as resp:
                assert resp.status == 200
                assert '"ws://tower.lan/ws"' in await resp.text()
    finally:
        await server.stop()
