"""``tower mcp``: Tower's MCP server on stdio, and registering it with agents.

The server and the installer live in ``tui/services/``; the MCP SDK is
imported only when the server runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from core.errors import BadInput, NotFound
from tui.clikit import agent_name, common_options, db_path, emit, opt, worktree_hint

_AGENTS = ("claude-code", "codex", "gemini", "cursor")  # tui.services.mcp_install.AGENTS


@click.group(invoke_without_command=True)
@click.option("--approval-wait", type=float, default=None,
              help="Seconds request_approval waits for a decision before answering 'pending' (default 5, at most 30).")
@common_options
@click.pass_context
def mcp(ctx: click.Context, approval_wait) -> None:
    """Serve Tower's verbs as MCP tools on stdio (run by an MCP agent, not by hand).

    The agent and worktree come from TOWER_AGENT / TOWER_WORKTREE (or --agent /
    --worktree) and the current directory, as for every command.
    """
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from tui.services.mcp_server import DEFAULT_APPROVAL_WAIT, Identity, TowerTools, serve_stdio, version

    identity = Identity(db=db_path(), agent=agent_name(), worktree=worktree_hint(), cwd=Path.cwd())
    tools = TowerTools(identity, approval_wait=DEFAULT_APPROVAL_WAIT if approval_wait is None else approval_wait)
    asyncio.run(serve_stdio(tools, version=version()))


def _target_root() -> Path:
    from tui.commands.hook import target_root

    return target_root()


def _explicit_db() -> str | None:
    from tui.services.agent_config import explicit_db

    db = explicit_db(opt("db"))
    return str(db) if db else None


@mcp.command("install")
@click.argument("kind", metavar="AGENT", type=click.Choice(_AGENTS))  # "agent" would clash with --agent
@common_options
def mcp_install(kind) -> None:
    """Register Tower's MCP server in a worktree's config for AGENT, keeping what is there.

    claude-code: .mcp.json; codex: .codex/config.toml; gemini: .gemini/settings.json;
    cursor: .cursor/mcp.json. Running it again changes nothing. With --agent NAME the
    entry sets TOWER_AGENT for the server (otherwise it inherits the agent's environment).
    """
    from tui.services.agent_config import tower_program
    from tui.services.mcp_install import install

    result = install(kind, _target_root(), tower_program(), _explicit_db(), opt("agent"))
    emit(result, f"{'registered' if result['changed'] else 'already registered:'} Tower's MCP server"
                 f" for {kind} in {result['config']}")


@mcp.command("uninstall")
@click.argument("kind", metavar="AGENT", type=click.Choice(_AGENTS))
@common_options
def mcp_uninstall(kind) -> None:
    """Remove Tower's MCP server from a worktree's config for AGENT, and nothing else."""
    from tui.services.mcp_install import uninstall

    result = uninstall(kind, _target_root())
    emit(result, f"removed Tower's MCP server from {result['config']}" if result["removed"]
         else f"Tower's MCP server is not in {result['config']}")
