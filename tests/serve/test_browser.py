"""`tower serve` in headless Chromium: the person's path, and what a wrong token or another page gets."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import ROOT, run_tower, tower_env
from tests.serve.conftest import PERSON, TITLE

pytestmark = pytest.mark.slow

SUMMARY = "Drop the staging database"


async def request_and_wait(db: Path) -> tuple[asyncio.subprocess.Process, str]:
    """An agent files a request and blocks on it (`tower approval request --wait`), as the hook does."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "--db", str(db), "approval", "request", "--kind", "command",
        "--summary", SUMMARY, "--wait", "--timeout", "120",
        cwd=ROOT, env=tower_env({"TOWER_AGENT": "alice"}), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
    assert "pending: waiting" in line, line  # filed, and the agent is blocked on it
    return proc, line.split()[0]


WS_PROBE = """
new Promise(resolve => {
  const ws = new WebSocket(%s);
  ws.binaryType = "arraybuffer";
  ws.onmessage = m => { ws.close(); resolve({opened: true, data: true}); };
  ws.onclose = e => resolve({opened: false, code: e.code});
})
"""

async def test_the_person_sees_the_queue_and_approves_and_the_waiting_agent_goes_on(serve_db, server, browser,
                                                                                   tmp_path):
    waiter, aid = await request_and_wait(serve_db)
    try:
        page = await browser.context()
        await page.goto(server.url)
        # The token went into a cookie and out of the address bar (and so out of history and bookmarks).
        assert await page.evaluate("location.href") == server.base + "/"
        assert page.documents[-1]["status"] == 200
        assert page.websockets == [page.websockets[0]] and page.websockets[0].startswith(
            server.base.replace("http", "ws") + "/ws?")
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script on the page can read it

        await page.wait_for(lambda: TITLE in page.screen_text and SUMMARY in page.screen_text,
                            what="the queue and the request on screen")
        await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        await page.type_keys("3", "a")  # Approvals pane, approve the selected request

        code = await asyncio.wait_for(waiter.wait(), 30)
        out = (await waiter.stdout.read()).decode()
        assert code == 0, out
        shown = run_tower("--db", str(serve_db), "approval", "show", aid, "--json").data
        assert shown["status"] == "approved"
        assert shown["decided_by"] == f"person:{PERSON}"  # the person who started `tower serve`
        events = run_tower("--db", str(serve_db), "audit", "tail", "-n", "50", "--json").data
        approved = [e for e in events if e["event"] == "approval.approved"]
        assert [e["actor"] for e in approved] == [f"person:{PERSON}"]
        # The page asked nothing of any other origin (the template's web font is stopped by the CSP).
        foreign = {rid: url for rid, url in page.requests.items() if not url.startswith(server.base + "/")}
        assert all(page.blocked.get(rid) == "csp" for rid in foreign), (foreign, page.blocked)
        await page.screenshot(tmp_path / "served.png")
        await page.close()
    finally:
        if waiter.returncode is None:
            waiter.kill()
            await waiter.wait()
    # The token reached the terminal once, in the printed URL, and never the log.
    assert server.token not in "\n".join(server.log)


async def test_a_wrong_or_missing_token_sees_nothing(server, browser):
    page = await browser.context()
    for query in ("", "?token=wrong", "?token=", "?token=" + server.token[:-1]):
        await page.goto(server.base + "/" + query)
        assert page.documents[-1]["status"] == 401, query
        body = await page.evaluate("document.body.innerText")
        assert body.startswith("401") and TITLE not in body and "Tower" not in body
    assert page.websockets == []  # no terminal was even attempted
    # The websocket refuses it too, even asked from the server's own origin.
    probe = await page.evaluate(WS_PROBE % json.dumps(server.base.replace("http", "ws") + "/ws?width=80&height=24"))
    assert probe == {"opened": False, "code": 1006}
    await server.wait_log(r"GET /ws 401")
    assert server.children() == []  # no control room was started for it
    assert page.screen_text == ""
    await page.close()


async def test_a_page_on_another_origin_cannot_drive_the_control_room(server, browser):
    """Cross-site websocket hijacking: the person's browser holds the cookie, another page opens the socket.

    The attacker's page is served from another port of the same host: same
    site, so even a SameSite=Strict cookie goes with its requests; only the
    Origin check stands in the way.
    """
    person = await browser.context()
    await person.goto(server.url)
    await person.wait_for(lambda: TITLE in person.screen_text, what="the person's control room")
    assert len(server.children()) == 1

    target = server.base.replace("http", "ws") + "/ws?width=80&height=24"

    async def evil(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>cat pictures</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", evil)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        # The same browser context as the person: the same cookie jar.
        attacker = person
        await attacker.goto(f"http://127.0.0.1:{port}/")
        probe = await attacker.evaluate(WS_PROBE % json.dumps(target))
        assert probe == {"opened": False, "code": 1006}
        await server.wait_log(rf"refused a websocket from origin http://127\.0\.0\.1:{port}")
        # 403, not 401: the cookie went along (same site), and the Origin check refused it.
        await server.wait_log(r"GET /ws 403")
        assert not any(" GET /ws 401" in line for line in server.log)
        assert sum("control room opened" in line for line in server.log) == 1  # the person's only
    finally:
        await runner.cleanup()
