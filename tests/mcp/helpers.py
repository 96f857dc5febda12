"""Drive `tower mcp` with the MCP SDK's own stdio client, as an agent would."""

from __future__ import annotations

import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.conftest import tower_env


def server_command(*extra: str) -> tuple[str, list[str]]:
    return sys.executable, ["-m", "tui.cli", *extra, "mcp"]


@asynccontextmanager
async def mcp_session(cwd: Path, *, agent: str | None = None, env: dict | None = None, args: tuple[str, ...] = (),
                      serve_args: tuple[str, ...] = ()):
    """An initialised ClientSession to a `tower mcp` subprocess started in ``cwd``."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    extra = dict(env or {})
    if agent:
        extra["TOWER_AGENT"] = agent
    command, argv = server_command(*args)
    params = StdioServerParameters(command=command, args=[*argv, *serve_args], env=tower_env(extra), cwd=str(cwd))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield Agent(session)


class Agent:
    """A session with one helper: call a tool, get ``(ok, body)`` (the command line's JSON object)."""

    def __init__(self, session) -> None:
        self.session = session

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> tuple[bool, dict[str, Any]]:
        result = await self.session.call_tool(name, arguments or {})
        body = json.loads(result.content[0].text)
        # the structured copy and the text say the same thing
        assert result.structured_content == body
        assert body["ok"] is (not result.is_error)
        return body["ok"], body

    async def data(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        ok, body = await self.call(name, arguments)
        assert ok, body
        return body["data"]

    async def error(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        ok, body = await self.call(name, arguments)
        assert not ok, body
        return body["error"]
