"""``tower hook``: the Claude Code PreToolUse hook, and installing it.

``tower hook claude-code`` runs on every tool call of every agent, so it
imports only what the call needs: a call the policy decides alone (most Bash
commands, every read) never opens the database; a file write opens it for one
read and, the first time a file is touched, one claim; only "ask" waits.

It always answers one decision object on stdout and exits 0: Claude Code lets
a call through when a hook exits non-zero (other than 2) or times out, so every
failure here (bad stdin, missing store, bad policy, internal error) is a
``deny`` that says why. The session -> lease mapping and the policy format are
documented in docs/approvals.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from core.errors import BadInput, NotFound, TowerError
from core.gitrepo import POLICY_NAME
from tui.services import hook_engine
from tui.services.hook_engine import Limits, decide
from tui.clikit import agent_name, common_options, emit, opt, worktree_hint

AGENTS = ("claude-code", "codex", "gemini", "copilot", "cursor")


@click.group()
def hook() -> None:
    """Agent hooks: the Claude Code PreToolUse hook, install, uninstall, check."""


# -- the hook itself -------------------------------------------------------------


@hook.command("claude-code")
@click.option("--deadline", "deadline", default=None, metavar="SECONDS",
              help="When Claude Code kills this hook (its settings timeout): stop waiting for a person"
                   " 30 s before that. `tower hook install` writes it.")
@common_options
def hook_claude_code(deadline) -> None:
    """Claude Code PreToolUse hook: one JSON object on stdin -> one decision on stdout.

    Always exits 0 with {"hookSpecificOutput": {"hookEventName": "PreToolUse",
    "permissionDecision": "allow"|"deny"|"ask", "permissionDecisionReason": ...}}.
    """
    _run_hook("claude-code", None, deadline)


def _agent_command(kind: str, events: str):
    @hook.command(kind, help=f"{kind} hook ({events}): one JSON payload on stdin -> one answer in"
                             f" {kind}'s format on stdout; always exits 0. See docs/agents.md.")
    @click.option("--event", default=None, help="The event this entry was installed for (payloads that"
                                                 " do not name theirs).")
    @click.option("--deadline", "deadline", default=None, metavar="SECONDS",
                  help=f"When {kind} kills this hook: stop waiting for a person before that.")
    @common_options
    def command(event, deadline) -> None:
        _run_hook(kind, event, deadline)

    return command


hook_codex = _agent_command("codex", "PreToolUse, PermissionRequest")
hook_gemini = _agent_command("gemini", "BeforeTool")
hook_copilot = _agent_command("copilot", "preToolUse, permissionRequest")
hook_cursor = _agent_command("cursor", "beforeShellExecution, beforeReadFile, beforeMCPExecution, preToolUse")


def _run_hook(kind: str, event: str | None, deadline: str | None) -> None:
    """The hook through click (`python -m tui.cli hook ...`); the `tower` script skips click (tui/entry.py)."""
    from tui.services import hook_runner

    hook_runner.run(kind, event, deadline, db=opt("db"), agent=opt("agent"), worktree=opt("worktree"))


# -- install / uninstall ---------------------------------------------------------------


def target_root() -> Path:
    """The worktree whose files to edit: --worktree (a name Tower knows, or a directory), else this one."""
    from tui.clikit import db_path, run
    from tui.services.agent_config import target_root as find

    return find(opt("worktree") or os.environ.get("TOWER_WORKTREE"), Path.cwd(),
                lambda: run(lambda s: s.worktree_rows(), reap=False), db_path().exists())


def _codex_home() -> Path:
    home = os.environ.get("CODEX_HOME")
    return Path(home).expanduser() if home else Path.home() / ".codex"


def _policy_for_install():
    from core.policy import default_policy, load_policy
    from tui.clikit import db_path

    try:
        return load_policy(db_path().parent / POLICY_NAME)
    except NotFound:  # not in a repository and no --db: the built-in default
        return default_policy()


def _claude_settings(local: bool) -> Path:
    return target_root() / ".claude" / ("settings.local.json" if local else "settings.json")


@hook.command("install")
@click.argument("kind", metavar="AGENT", type=click.Choice(AGENTS))
@click.option("--local", is_flag=True, help="Claude Code: write .claude/settings.local.json (not committed).")
@common_options
def hook_install(kind, local) -> None:
    """Add Tower's hook to AGENT's own hook file for a worktree (docs/agents.md).

    claude-code: .claude/settings.json; codex: the main worktree's .codex/hooks.json
    and its trust records in $CODEX_HOME/config.toml; gemini: .gemini/settings.json;
    copilot: .github/hooks/tower.json; cursor: .cursor/hooks.json. Keeps every other
    setting and hook; running it again changes nothing (or updates Tower's own
    entries in place).
    """
    from core.hook import hook_command, install_entry
    from tui.services.agent_config import explicit_db, read_json_object, tower_program, write_json_atomically

    policy = _policy_for_install()  # a bad policy file stops here, naming its line
    db = explicit_db(opt("db"))
    # the entry's timeout outlives the policy's ask timeout; the hook, told it as its
    # deadline, stops waiting for a person before the agent kills it
    timeout = policy.hook_timeout()
    if kind != "claude-code":
        from tui.services import hook_install as installer

        data = installer.install_files(kind, target_root(), tower_program(), str(db) if db else None, timeout,
                                       _codex_home())
        emit(data, f"{'installed' if data['changed'] else 'already installed:'} Tower's {kind} hooks in"
                   f" {data['settings']}")
        return
    command = hook_command(tower_program(), str(db) if db else None, deadline=timeout)
    path = _claude_settings(local)
    settings = read_json_object(path)
    try:
        changed = install_entry(settings, command, timeout)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}; fix it first") from None
    if changed:
        write_json_atomically(path, settings)
    emit({"settings": str(path), "changed": changed, "command": command, "timeout": timeout,
          "deadline": timeout},
         f"{'installed' if changed else 'already installed:'} Tower's PreToolUse hook in {path}")


@hook.command("uninstall")
@click.argument("kind", metavar="AGENT", type=click.Choice(AGENTS))
@click.option("--local", is_flag=True, help="Claude Code: edit .claude/settings.local.json instead.")
@common_options
def hook_uninstall(kind, local) -> None:
    """Remove Tower's hook from AGENT's hook file for a worktree, and nothing else."""
    from core.hook import remove_entry
    from tui.services.agent_config import read_json_object, write_json_atomically

    if kind != "claude-code":
        from tui.services import hook_install as installer

        data = installer.uninstall_files(kind, target_root(), _codex_home())
        emit(data, f"removed Tower's {kind} hooks from {data['settings']}" if data["removed"]
             else f"Tower's {kind} hooks are not in {data['settings']}")
        return
    path = _claude_settings(local)
    settings = read_json_object(path)
    try:
        removed = remove_entry(settings)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}; fix it first") from None
    if removed:
        write_json_atomically(path, settings)
    emit({"settings": str(path), "removed": removed},
         f"removed Tower's hook from {path}" if removed else f"Tower's hook is not in {path}")


def _this_worktree() -> Path | None:
    """The worktree `tower hook check` looks at: --worktree, else this one (None outside a worktree)."""
    from core.gitrepo import discover

    if opt("worktree") or os.environ.get("TOWER_WORKTREE"):
        return target_root()
    info = discover(Path.cwd())
    return info.worktree_root if info is not None else None


def _deadline_warnings(policy, root: Path | None) -> list[str]:
    """The policy's ask timeout against the Claude Code entries installed in this worktree's settings."""
    from core.hook import deadline_warnings
    from core.policy import CLAUDE_HOOK_TIMEOUT
    from tui.services.agent_config import read_json_object

    if root is None:
        return []
    warnings = []
    for name in ("settings.json", "settings.local.json"):
        path = root / ".claude" / name
        if not path.exists():
            continue
        try:
            settings = read_json_object(path)
        except BadInput:
            continue  # the agents' report names it
        warnings += deadline_warnings(settings, policy.ask_timeout, str(path), CLAUDE_HOOK_TIMEOUT)
    return warnings


def _rule_warnings(policy) -> list[str]:
    """The built-in deny rules a policy file's own rules leave out (a file without [[rule]] keeps them)."""
    if not policy.exists or policy.builtin_rules:
        return []
    return [f"{policy.source}'s rules replace the built-in ones and leave out the built-in deny rule"
            f" \"{r.reason}\" (built-in rule {r.number}): copy it from `tower hook check --defaults`"
            " unless you mean to drop it"
            for r in policy.dropped_deny_rules()]


@hook.command("check")
@click.option("--tool", default=None, help="Explain the decision for a call of this tool.")
@click.option("--command", "command", default=None, help="… with this Bash command (implies --tool Bash).")
@click.option("--path", "path", default=None, help="… on this repo-relative path.")
@click.option("--defaults", is_flag=True, help="Print the built-in policy (what `tower init` writes) and exit.")
@common_options
def hook_check(tool, command, path, defaults) -> None:
    """Validate the policy file (exit 2 naming the bad line), and explain a decision.

    Also warns (exit 0) when the policy's ask timeout outlasts the deadline of
    the hook installed in this worktree's .claude/settings(.local).json, and
    when the file's own rules leave out a built-in deny rule.
    """
    from core.policy import DEFAULT_POLICY, load_policy
    from tui.clikit import db_path

    if defaults:
        emit({"policy": DEFAULT_POLICY}, DEFAULT_POLICY.rstrip("\n"))
        return

    policy = load_policy(db_path().parent / POLICY_NAME)
    root = _this_worktree()
    agents = {}
    if root is not None:
        from tui.services.hook_install import check

        agents = check(root, _codex_home())
    agent_warnings = [f"{name} hook ({a['file']}): {p}" for name, a in agents.items() for p in a["problems"]]
    warnings = _rule_warnings(policy) + _deadline_warnings(policy, root) + agent_warnings
    data: dict = {"policy": policy.source, "exists": policy.exists, "rules": len(policy.rules),
                  "default": policy.default, "ask_timeout": policy.ask_timeout,
                  "on_timeout": policy.ask_on_timeout, "warnings": warnings, "agents": agents}
    rules = f"{len(policy.rules)} built-in rules (the file has no [[rule]])" if policy.builtin_rules and \
        policy.exists else f"{len(policy.rules)} rules"
    data["builtin_rules"] = policy.builtin_rules or not policy.exists
    lines = [f"policy {policy.source}: {rules}, default {policy.default},"
             f" ask timeout {policy.ask_timeout:g}s then {policy.ask_on_timeout}"]
    if agents:
        on = [name for name, a in agents.items() if a["installed"]]
        off = [name for name, a in agents.items() if not a["installed"] and not a["problems"]]
        lines.append(f"hooks installed: {', '.join(on) or 'none'}"
                     + (f"; not installed: {', '.join(off)}" if off else ""))
    lines += [f"warning: {w}" for w in warnings]
    if tool or command:
        from core.policy import Verdict
        from tui import hookguard

        limit = Limits(time.monotonic(), None).budget
        try:
            with hookguard.budget(limit):
                verdict = policy.decide(tool or "Bash", command=command, path=path, cwd=str(Path.cwd()))
        except hookguard.OutOfTime:  # what the hook would answer, too
            verdict = Verdict("deny", f"Tower could not check this call within {limit:g}s: the hook denies it")
        data["verdict"] = {"decision": verdict.decision, "reason": verdict.reason,
                           "rule": verdict.rule, "line": verdict.line}
        lines.append(f"{verdict.decision}: {verdict.reason}")
    emit(data, "\n".join(lines))
