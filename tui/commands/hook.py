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

import json
import math
import os
import sys
import time
from pathlib import Path

import click

from core.errors import BadInput, NotFound, TowerError, describe_bug
from core.gitrepo import DB_NAME, POLICY_NAME
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
    from tui import hookguard

    started = hookguard.STARTED
    _use_db()
    limits = Limits(started, None)
    hookguard.set_deadline(limits.hard)
    try:
        _use_names()
        deadline, limits = _installed_limits("claude-code", deadline, started, limits)
        raw = sys.stdin.buffer.read()
        decision, reason = decide(raw, started, deadline, limits)
    except BaseException as exc:  # noqa: BLE001 - a hook that dies lets the call through
        decision, reason = _denial(exc, limits)
    hookguard.answer(decision, reason)


def _installed_limits(kind: str, deadline: str | None, started: float,
                      limits: Limits) -> tuple[float | None, Limits]:
    """The installed ``--deadline`` in seconds, and the time limits it sets (armed in hookguard)."""
    if deadline is None:
        return None, limits
    from core.hook import parse_deadline
    from tui import hookguard

    try:
        seconds = parse_deadline(deadline)
    except ValueError as exc:
        raise BadInput(f"{exc} (fix the hook entry: run `tower hook install {kind}` again)") from None
    limits = Limits(started, seconds)
    hookguard.set_deadline(limits.hard)
    return seconds, limits


def _denial(exc: BaseException, limits: Limits) -> tuple[str, str]:
    """What a hook that failed answers: always deny, saying why."""
    from tui import hookguard

    if isinstance(exc, TowerError):
        return "deny", f"Tower: {exc.message}"
    if isinstance(exc, hookguard.OutOfTime):
        return "deny", (f"Tower could not check this call within {limits.budget:g}s (a very long or"
                        " complex command?): denied; split it into simpler commands")
    if isinstance(exc, (KeyboardInterrupt, hookguard.HookInterrupted)):
        # the signal's name tells the model (and the person reading the audit) what stopped it
        return "deny", f"Tower hook interrupted ({exc or 'SIGINT'}) before it could decide"
    return "deny", f"Tower hook internal error: {describe_bug(exc)} (a bug: please report it)"


def _agent_hook(kind: str, event: str | None, deadline) -> None:
    """Any agent's hook but Claude Code's: parse, decide each call, answer in the agent's format.

    An agent that cannot be asked (Codex PreToolUse, Gemini, Copilot
    permissionRequest) gets ``deny`` where the engine would answer ``ask``, with
    a reason the model can act on. Every refusal is audited (``hook.denied``);
    events that decide nothing are answered at once and recorded.
    """
    from tui import hookguard
    from tui.services import hook_adapters, hook_records

    started = hookguard.STARTED
    hookguard.set_format(kind, event)
    hook_engine.AGENT = kind
    _use_db()
    limits = Limits(started, None)
    hookguard.set_deadline(limits.hard)
    parsed = None
    call = None
    try:
        deadline, limits = _installed_limits(kind, deadline, started, limits)
        raw = sys.stdin.buffer.read()
        from core.hook import HookInputError

        try:
            parsed = hook_adapters.parse(kind, raw, event)
        except HookInputError as exc:
            decision, reason = "deny", f"Tower hook: unusable input: {exc}"
        else:
            hookguard.set_format(kind, parsed.event)
            if not parsed.gate:
                hookguard.answer("noop", "")  # never hold up an agent for news
                hook_records.record_news(kind, parsed)
                return
            _use_names()  # a name that is not UTF-8 denies a call, never news
            decision, reason = "allow", "Tower: allowed"
            for call in parsed.calls:
                decision, reason = hook_engine.decide_call(call, started, deadline, limits,
                                                           ask_person=parsed.ask_person)
                if decision != "allow":
                    break
            if decision == "ask" and not parsed.can_ask:
                decision, reason = "deny", (f"{reason} — {kind} cannot ask its user from this hook, so Tower"
                                            " denies it: ask the person running Tower to approve it, or do"
                                            " something else")
    except BaseException as exc:  # noqa: BLE001 - a hook that dies lets the call through
        decision, reason = _denial(exc, limits)
    hookguard.answer(decision, reason)
    if decision == "deny" and parsed is not None:
        hook_records.audit_denial(kind, parsed, call, reason)


def _agent_command(kind: str, events: str):
    @hook.command(kind, help=f"{kind} hook ({events}): one JSON payload on stdin -> one answer in"
                             f" {kind}'s format on stdout; always exits 0. See docs/agents.md.")
    @click.option("--event", default=None, help="The event this entry was installed for (payloads that"
                                                 " do not name theirs).")
    @click.option("--deadline", "deadline", default=None, metavar="SECONDS",
                  help=f"When {kind} kills this hook: stop waiting for a person before that.")
    @common_options
    def command(event, deadline) -> None:
        _agent_hook(kind, event, deadline)

    return command


hook_codex = _agent_command("codex", "PreToolUse, PermissionRequest")
hook_gemini = _agent_command("gemini", "BeforeTool")
hook_copilot = _agent_command("copilot", "preToolUse, permissionRequest")
hook_cursor = _agent_command("cursor", "beforeShellExecution, beforeReadFile, beforeMCPExecution, preToolUse")


def _use_db() -> None:
    explicit = opt("db")
    if explicit:
        hook_engine.EXPLICIT_DB = Path(explicit).expanduser().absolute()


def _use_names() -> None:
    """Hand --agent/TOWER_AGENT and --worktree/TOWER_WORKTREE to the engine (inside the
    hook's try: a name that is not UTF-8 is a deny that says so)."""
    hook_engine.AGENT_NAME = agent_name()
    hook_engine.WORKTREE_HINT = worktree_hint()


def _explicit_db() -> Path | None:
    explicit = opt("db") or os.environ.get("TOWER_DB")
    return Path(explicit).expanduser().absolute() if explicit else None


# -- install / uninstall ---------------------------------------------------------------


def _tower_program() -> list[str]:
    """How to run this very Tower: the absolute path of the ``tower`` script that is running."""
    import shutil

    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).startswith("tower") and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    found = shutil.which("tower")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "tui.cli"]


def _target_root() -> Path:
    """The worktree whose settings to edit: --worktree (a name Tower knows, or a directory), else this one."""
    from core.gitrepo import discover

    name = opt("worktree") or os.environ.get("TOWER_WORKTREE")
    if name:
        if Path(name).expanduser().is_dir():
            info = discover(Path(name).expanduser())
            return info.worktree_root if info else Path(name).expanduser().resolve()
        from tui.clikit import db_path, run

        if not db_path().exists():
            raise NotFound(f"no worktree {name}: no Tower store to look it up in", code="worktree_not_found")
        known = run(lambda s: s.list_worktrees(), reap=False)
        match = next((w for w in known if w.name == name), None)
        if match is None:
            raise NotFound(f"no worktree {name} (see `tower worktree list`)", code="worktree_not_found")
        return Path(match.path)
    info = discover(Path.cwd())
    if info is None:
        raise BadInput("not inside a git worktree: run this in one, or pass --worktree")
    return info.worktree_root


def _settings_path(local: bool) -> Path:
    return _target_root() / ".claude" / ("settings.local.json" if local else "settings.json")


def _read_settings(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); fix it first") from None
    except _NotJSON as exc:
        line = text.count("\n", 0, max(text.find(exc.token), 0)) + 1
        raise BadInput(f"{path} line {line}: not valid JSON ({exc.token} {exc.why}); fix it first") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a JSON object")
    return data


class _NotJSON(ValueError):
    """A number Python's json would accept but JSON (and Claude Code) would not."""

    def __init__(self, token: str, why: str) -> None:
        super().__init__(token)
        self.token, self.why = token, why


def _no_constant(token: str):
    raise _NotJSON(token, "is not a JSON value")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NotJSON(token, "is out of range for a JSON number")
    return value


def _write_atomically(path: Path, data: dict) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _policy_for_install():
    from core.policy import default_policy, load_policy
    from tui.clikit import db_path

    try:
        return load_policy(db_path().parent / POLICY_NAME)
    except NotFound:  # not in a repository and no --db: the built-in default
        return default_policy()


@hook.command("install")
@click.argument("kind", metavar="AGENT", type=click.Choice(AGENTS))
@click.option("--local", is_flag=True, help="Write .claude/settings.local.json (not committed) instead.")
@common_options
def hook_install(kind, local) -> None:
    """Add Tower's PreToolUse hook to a worktree's .claude/settings.json.

    Keeps every other setting and hook; running it again changes nothing (or
    updates Tower's own entry in place).
    """
    from core.hook import hook_command, install_entry

    if kind != "claude-code":
        _install_other(kind)
        return
    policy = _policy_for_install()  # a bad policy file stops here, naming its line
    db = _explicit_db()
    timeout = policy.hook_timeout()
    # the hook is told when Claude Code will kill it, so a policy ask timeout
    # raised later cannot outlive it (the hook stops waiting 30 s before)
    command = hook_command(_tower_program(), str(db) if db else None, deadline=timeout)
    path = _settings_path(local)
    settings = _read_settings(path)
    try:
        changed = install_entry(settings, command, timeout)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}; fix it first") from None
    if changed:
        _write_atomically(path, settings)
    emit({"settings": str(path), "changed": changed, "command": command, "timeout": timeout,
          "deadline": timeout},
         f"{'installed' if changed else 'already installed:'} Tower's PreToolUse hook in {path}")


@hook.command("uninstall")
@click.argument("kind", metavar="AGENT", type=click.Choice(AGENTS))
@click.option("--local", is_flag=True, help="Edit .claude/settings.local.json instead.")
@common_options
def hook_uninstall(kind, local) -> None:
    """Remove Tower's hook from a worktree's .claude/settings.json, and nothing else."""
    from core.hook import remove_entry

    if kind != "claude-code":
        _uninstall_other(kind)
        return
    path = _settings_path(local)
    settings = _read_settings(path)
    try:
        removed = remove_entry(settings)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}; fix it first") from None
    if removed:
        _write_atomically(path, settings)
    emit({"settings": str(path), "removed": removed},
         f"removed Tower's hook from {path}" if removed else f"Tower's hook is not in {path}")


_FILES = {"codex": (".codex", "hooks.json"), "gemini": (".gemini", "settings.json"),
          "copilot": (".github/hooks", "tower.json"), "cursor": (".cursor", "hooks.json")}


def _agent_file(kind: str) -> tuple[Path, Path]:
    """(the hook file, the worktree it serves); Codex reads the MAIN worktree's .codex/hooks.json."""
    from core.gitrepo import discover

    root = _target_root()
    base = root
    if kind == "codex":
        info = discover(root)
        if info is not None:
            base = info.common_dir.parent  # the main worktree (common dir is its .git)
    folder, name = _FILES[kind]
    return base / folder / name, root


def _codex_config() -> Path:
    home = os.environ.get("CODEX_HOME")
    return Path(home).expanduser() if home else Path.home() / ".codex"


def _install_other(kind: str) -> None:
    from tui.services import hook_install

    _policy_for_install()  # a bad policy file stops here, naming its line
    db = _explicit_db()
    path, root = _agent_file(kind)
    settings = _read_settings(path)
    # the hook stops waiting for a person a margin before the agent kills it
    deadline = hook_install.TIMEOUT_S[kind]
    try:
        changed = hook_install.install(settings, kind, _tower_program(), str(db) if db else None, deadline)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}; fix it first") from None
    if changed:
        _write_atomically(path, settings)
    data = {"settings": str(path), "changed": changed, "timeout": deadline, "deadline": deadline}
    if kind == "codex":
        (root / ".codex").mkdir(exist_ok=True)  # without it Codex loads no project hooks in a linked worktree
        config = _codex_config() / "config.toml"
        text = config.read_text(encoding="utf-8") if config.exists() else ""
        records = hook_install.codex_trust_records(path, settings)
        new = hook_install.set_codex_trust(text, path, records, root)
        if new != text:
            config.parent.mkdir(parents=True, exist_ok=True)
            _write_text_atomically(config, new)
        data["codex_config"] = str(config)
        data["trusted"] = len(records)
    emit(data, f"{'installed' if changed else 'already installed:'} Tower's {kind} hooks in {path}")


def _uninstall_other(kind: str) -> None:
    from tui.services import hook_install

    path, root = _agent_file(kind)
    settings = _read_settings(path)
    removed = hook_install.uninstall(settings, kind)
    if removed:
        _write_atomically(path, settings)
    if kind == "codex":
        config = _codex_config() / "config.toml"
        if config.exists():
            text = config.read_text(encoding="utf-8")
            new = hook_install.set_codex_trust(text, path, {}, None)
            if new != text:
                _write_text_atomically(config, new)
    emit({"settings": str(path), "removed": removed},
         f"removed Tower's {kind} hooks from {path}" if removed else f"Tower's {kind} hooks are not in {path}")


def _write_text_atomically(path: Path, text: str) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _agent_warnings() -> list[str]:
    """Each installed agent's entries: a Codex trust record missing or stale is a silent fail-open."""
    from core.gitrepo import discover
    from tui.services import hook_install

    if not (opt("worktree") or os.environ.get("TOWER_WORKTREE")) and discover(Path.cwd()) is None:
        return []
    out = []
    for kind in _FILES:
        path, _root = _agent_file(kind)
        if not path.exists():
            continue
        try:
            settings = _read_settings(path)
        except BadInput as exc:
            out.append(f"cannot check the {kind} hooks: {exc.message}")
            continue
        if not hook_install.installed(settings, kind):
            continue
        if kind == "codex":
            config = _codex_config() / "config.toml"
            text = config.read_text(encoding="utf-8") if config.exists() else ""
            stale = hook_install.codex_stale(text, hook_install.codex_trust_records(path, settings))
            if stale:
                out.append(f"{len(stale)} Tower Codex hook(s) in {path} are not trusted in {config}: Codex skips"
                           " them without a word; run `tower hook install codex` again")
    return out


def _deadline_warnings(policy) -> list[str]:
    """The policy's ask timeout against the hook entries installed in this worktree's settings."""
    from core.gitrepo import discover
    from core.hook import deadline_warnings
    from core.policy import CLAUDE_HOOK_TIMEOUT

    if opt("worktree") or os.environ.get("TOWER_WORKTREE"):
        root = _target_root()
    else:
        info = discover(Path.cwd())
        if info is None:
            return []
        root = info.worktree_root
    warnings = []
    for name in ("settings.json", "settings.local.json"):
        path = root / ".claude" / name
        if not path.exists():
            continue
        try:
            settings = _read_settings(path)
        except BadInput as exc:
            warnings.append(f"cannot check the installed hook: {exc.message}")
            continue
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
    warnings = _rule_warnings(policy) + _deadline_warnings(policy) + _agent_warnings()
    data: dict = {"policy": policy.source, "exists": policy.exists, "rules": len(policy.rules),
                  "default": policy.default, "ask_timeout": policy.ask_timeout,
                  "on_timeout": policy.ask_on_timeout, "warnings": warnings}
    rules = f"{len(policy.rules)} built-in rules (the file has no [[rule]])" if policy.builtin_rules and \
        policy.exists else f"{len(policy.rules)} rules"
    data["builtin_rules"] = policy.builtin_rules or not policy.exists
    lines = [f"policy {policy.source}: {rules}, default {policy.default},"
             f" ask timeout {policy.ask_timeout:g}s then {policy.ask_on_timeout}"]
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
