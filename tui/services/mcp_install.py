"""``tower mcp install <agent>``: register Tower's MCP server in an agent's project config.

Each agent keeps its MCP servers in its own file, in the worktree, in its own
format (checked against each agent's documentation):

| agent       | file                    | entry                                              |
| ----------- | ----------------------- | -------------------------------------------------- |
| claude-code | ``.mcp.json``           | ``mcpServers.tower`` {type: stdio, command, args}  |
| codex       | ``.codex/config.toml``  | ``[mcp_servers.tower]`` command, args, env_vars    |
| gemini      | ``.gemini/settings.json`` | ``mcpServers.tower`` {command, args, timeout (ms)} |
| cursor      | ``.cursor/mcp.json``    | ``mcpServers.tower`` {type: stdio, command, args}  |

Everything else in the file is kept: other servers, other settings, and for
TOML the comments and layout too (tomlkit round-trips a document; the
standard library reads TOML but cannot write it). Installing twice changes
nothing; uninstall removes Tower's entry and nothing else.

The worktree is not written into the entry (the file may be committed and
merged into another worktree): the server takes it from its working
directory, and the agent's name from ``TOWER_AGENT`` (``--agent NAME`` at
install writes it into the entry, for agents that pass MCP servers no
environment). Codex passes only a fixed list of environment variables to MCP
servers, so its entry names Tower's in ``env_vars``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.errors import BadInput
from tui.services.agent_config import read_json_object, write_text_atomically

AGENTS = ("claude-code", "codex", "gemini", "cursor")
SERVER_KEY = "tower"
ENV_VARS = ["TOWER_AGENT", "TOWER_WORKTREE", "TOWER_DB", "TOWER_LEASE"]
CODEX_STARTUP_TIMEOUT = 30  # seconds; Codex's default of 10 is tight for the MCP SDK's import on a busy machine
GEMINI_TIMEOUT_MS = 60_000  # every Tower tool answers well within this

FILES = {
    "claude-code": Path(".mcp.json"),
    "codex": Path(".codex") / "config.toml",
    "gemini": Path(".gemini") / "settings.json",
    "cursor": Path(".cursor") / "mcp.json",
}


def config_path(agent: str, root: Path) -> Path:
    return root / FILES[agent]


def server_entry(agent: str, program: list[str], db: str | None, name: str | None = None) -> dict[str, Any]:
    """Tower's entry in ``agent``'s format; ``name`` (``--agent`` at install) pins the agent's name
    for agents that pass no environment to MCP servers."""
    args = [*program[1:], *(["--db", db] if db else []), "mcp"]
    env = {"env": {"TOWER_AGENT": name}} if name else {}
    if agent == "codex":
        return {"command": program[0], "args": args, **env, "env_vars": list(ENV_VARS),
                "startup_timeout_sec": CODEX_STARTUP_TIMEOUT}
    if agent == "gemini":
        return {"command": program[0], "args": args, **env, "timeout": GEMINI_TIMEOUT_MS}
    return {"type": "stdio", "command": program[0], "args": args, **env}


def is_tower_entry(entry: Any) -> bool:
    """An entry this installer wrote: runs ``tower … mcp`` (or ``python -m tui.cli … mcp``)."""
    if not isinstance(entry, dict):
        return False
    command, args = entry.get("command"), entry.get("args") or []
    if not isinstance(command, str) or not isinstance(args, list) or not args or args[-1] != "mcp":
        return False
    return os.path.basename(command).startswith("tower") or "tui.cli" in args


# -- JSON files (Claude Code, Gemini CLI, Cursor) ---------------------------------------


def _servers(data: dict[str, Any], path: Path, *, create: bool) -> dict[str, Any] | None:
    servers = data.get("mcpServers")
    if servers is None:
        if not create:
            return None
        servers = data["mcpServers"] = {}
    if not isinstance(servers, dict):
        raise BadInput(f'{path}: "mcpServers" is not an object; fix it first')
    return servers


# -- TOML (Codex) ---------------------------------------------------------------------


def _read_toml(path: Path):
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise BadInput(f"{path}: not valid TOML ({exc}); fix it first") from None


def _toml_servers(doc, path: Path, *, create: bool):
    import tomlkit

    servers = doc.get("mcp_servers")
    if servers is None:
        if not create:
            return None
        servers = tomlkit.table(is_super_table=True)
        doc["mcp_servers"] = servers
        servers = doc["mcp_servers"]
    if not isinstance(servers, dict):
        raise BadInput(f"{path}: mcp_servers is not a table; fix it first")
    return servers


def _toml_entry(servers, entry: dict[str, Any]):
    import tomlkit
    from tomlkit.items import InlineTable

    if isinstance(servers, InlineTable):
        inline = tomlkit.inline_table()
        inline.update(entry)
        return inline
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = value
    table.add(tomlkit.nl())
    return table


# -- install / uninstall --------------------------------------------------------------


def _plain(value: Any) -> Any:
    """tomlkit items as plain Python values, for comparing."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def install(agent: str, root: Path, program: list[str], db: str | None,
            name: str | None = None) -> dict[str, Any]:
    """Register Tower's MCP server for ``agent`` in the worktree at ``root``; returns what changed."""
    if agent not in AGENTS:
        raise BadInput(f"unknown agent {agent!r}: use one of {', '.join(AGENTS)}")
    path = config_path(agent, root)
    entry = server_entry(agent, program, db, name)
    if agent == "codex":
        import tomlkit

        doc = _read_toml(path)
        servers = _toml_servers(doc, path, create=True)
        current = servers.get(SERVER_KEY)
        if current is not None and not is_tower_entry(_plain(current)):
            raise BadInput(f"{path}: an MCP server named {SERVER_KEY!r} is already configured for something else")
        changed = current is None or _plain(current) != entry
        if changed:
            servers[SERVER_KEY] = _toml_entry(servers, entry)
            write_text_atomically(path, tomlkit.dumps(doc))
    else:
        data = read_json_object(path)
        servers = _servers(data, path, create=True)
        assert servers is not None
        current = servers.get(SERVER_KEY)
        if current is not None and not is_tower_entry(current):
            raise BadInput(f"{path}: an MCP server named {SERVER_KEY!r} is already configured for something else")
        changed = current != entry
        if changed:
            servers[SERVER_KEY] = entry
            write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return {"agent": agent, "config": str(path), "changed": changed, "entry": entry}


def uninstall(agent: str, root: Path) -> dict[str, Any]:
    """Remove Tower's entry from ``agent``'s config in the worktree at ``root``, and nothing else."""
    if agent not in AGENTS:
        raise BadInput(f"unknown agent {agent!r}: use one of {', '.join(AGENTS)}")
    path = config_path(agent, root)
    removed = False
    if path.exists():
        if agent == "codex":
            import tomlkit

            doc = _read_toml(path)
            servers = _toml_servers(doc, path, create=False)
            if servers is not None and is_tower_entry(_plain(servers.get(SERVER_KEY))):
                del servers[SERVER_KEY]
                if not servers:
                    del doc["mcp_servers"]
                write_text_atomically(path, tomlkit.dumps(doc))
                removed = True
        else:
            data = read_json_object(path)
            servers = _servers(data, path, create=False)
            if servers is not None and is_tower_entry(servers.get(SERVER_KEY)):
                del servers[SERVER_KEY]
                if not servers:
                    del data["mcpServers"]
                write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
                removed = True
    return {"agent": agent, "config": str(path), "removed": removed}
