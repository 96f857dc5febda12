"""A small Chrome DevTools Protocol driver for Debian's headless Chromium.

No downloaded browser and no extra package: Chromium is started with
``--remote-debugging-port=0``, its "DevTools listening on ws://..." line is the
readiness signal, and aiohttp (which ``tower serve`` depends on already) speaks
the protocol. Each :class:`Context` is a separate browser context (its own
cookies), so a person and an attacker can share one Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = os.environ.get("TOWER_TEST_CHROMIUM", "/usr/bin/chromium")

# The flags that work on this project's machines (no GPU, no network beyond loopback, root).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-default-browser-check",
    "--window-size=1600,1000",
]

# What a terminal shows, from the bytes the page's websocket received: escape
# sequences dropped, so runs of text (a task title) read as they do on screen.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f]")


def available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


class CDPError(Exception):
    pass


class Browser:
    """One headless Chromium process and its browser-level DevTools websocket."""

    def __init__(self, user_data_dir: Path) -> None:
        self.user_data_dir = user_data_dir
        self.proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._listeners: list[tuple[str | None, asyncio.Queue]] = []
        self._reader: asyncio.Task | None = None
        self._stderr_task: asyncio.Task | None = None
        self.stderr: list[str] = []

    async def start(self, timeout: float = 30) -> None:
        self.user_data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--user-data-dir={self.user_data_dir}", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def drain() -> None:
            assert self.proc and self.proc.stderr
            async for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                self.stderr.append(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m and not listening.done():
                    listening.set_result(m.group(1))
            if not listening.done():
                listening.set_exception(CDPError("chromium exited:\n" + "\n".join(self.stderr[-20:])))

        self._stderr_task = asyncio.create_task(drain())
        url = await asyncio.wait_for(listening, timeout)
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut and not fut.done():
                    if "error" in data:
                        fut.set_exception(CDPError(json.dumps(data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
            else:
                for session, queue in self._listeners:
                    if session is None or session == data.get("sessionId"):
                        queue.put_nowait(data)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CDPError("the DevTools connection closed"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None,
                   timeout: float = 30) -> dict:
        assert self._ws is not None
        msg_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        body: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            body["sessionId"] = session
        await self._ws.send_str(json.dumps(body))
        return await asyncio.wait_for(fut, timeout)

    def listen(self, session: str | None) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._listeners.append((session, queue))
        return queue

    async def context(self) -> Context:
        """A fresh browser context (cookies of its own) with one page."""
        ctx = await self.send("Target.createBrowserContext", {"disposeOnDetach": True})
        target = await self.send("Target.createTarget", {"url": "about:blank",
                                                         "browserContextId": ctx["browserContextId"]})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Context(self, attached["sessionId"])
        await page.enable()
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None:
                await self.send("Browser.close", timeout=5)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the renderers too
            await self.proc.wait()
        for task in (self._reader, self._stderr_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


class Context:
    """A page in its own browser context; records what its documents and websockets got."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.events = browser.listen(session)
        self.documents: list[dict] = []  # {"url", "status"} of each document response
        self.websockets: list[str] = []  # URLs of websockets the page created
        self.requests: dict[str, str] = {}  # requestId -> URL of every request the page made
        self.blocked: dict[str, str] = {}  # requestId -> why the browser blocked it ("csp", ...)
        self.console: list[str] = []  # console messages and browser log entries (CSP violations among them)
        self._screen_decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.screen_text = ""  # all text the page's terminal was sent, escapes dropped
        self._changed = asyncio.Event()
        self._pump = asyncio.create_task(self._consume())

    async def enable(self) -> None:
        await self.send("Page.enable")
        await self.send("Network.enable")
        await self.send("Runtime.enable")
        await self.send("Log.enable")

    async def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return await self.browser.send(method, params, self.session, timeout)

    async def _consume(self) -> None:
        while True:
            event = await self.events.get()
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.responseReceived" and params.get("type") == "Document":
                self.documents.append({"url": params["response"]["url"], "status": params["response"]["status"]})
            elif method == "Network.webSocketCreated":
                self.websockets.append(params["url"])
            elif method == "Network.requestWillBeSent":
                self.requests[params["requestId"]] = params["request"]["url"]
            elif method == "Network.loadingFailed" and params.get("blockedReason"):
                self.blocked[params["requestId"]] = params["blockedReason"]
            elif method == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Log.entryAdded":
                self.console.append(params["entry"].get("text", ""))
            elif method == "Network.webSocketFrameReceived":
                frame = params["response"]
                data = frame["payloadData"]
                raw = base64.b64decode(data) if frame.get("opcode") != 1 else b""
                if raw:
                    self.screen_text += _ESCAPES.sub("", self._screen_decoder.decode(raw))
            self._changed.set()

    async def wait_for(self, predicate, timeout: float = 30, what: str = "condition") -> None:
        """Wait until ``predicate()`` holds, re-checked on every DevTools event (no sleeping)."""

        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def goto(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the load event."""
        loaded = asyncio.Event()
        queue = self.browser.listen(self.session)

        async def watch() -> None:
            while True:
                ev = await queue.get()
                if ev.get("method") == "Page.loadEventFired":
                    loaded.set()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await self.send("Page.navigate", {"url": url})
            await asyncio.wait_for(loaded.wait(), timeout)
        finally:
            watcher.cancel()
            self.browser._listeners = [entry for entry in self.browser._listeners if entry[1] is not queue]

    async def evaluate(self, expression: str, timeout: float = 30) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                      "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in result:
            raise CDPError(json.dumps(result["exceptionDetails"]))
        return result["result"].get("value")

    async def type_keys(self, *keys: str) -> None:
        """Type printable keys as a person would (keydown with text, keyup)."""
        for key in keys:
            code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
            vk = ord(key.upper())
            await self.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": key, "code": code, "text": key,
                                                       "unmodifiedText": key, "windowsVirtualKeyCode": vk})
            await self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                                       "windowsVirtualKeyCode": vk})

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(BaseException):
            await self._pump
