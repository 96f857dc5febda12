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

from core.errors import BadInput, NotFound, TowerError
from core.gitrepo import DB_NAME, POLICY_NAME
from core.hook import FILE_TOOLS, HookInput, HookInputError, parse_input
from tui.clikit import common_options, emit, opt

AGENTS = ("claude-code",)


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
    limits = Limits(started, None)
    hookguard.set_deadline(limits.hard)
    try:
        if deadline is not None:
            from core.hook import parse_deadline

            try:
                deadline = parse_deadline(deadline)
            except ValueError as exc:
                raise BadInput(f"{exc} (fix the hook entry: run `tower hook install claude-code` again)") from None
            limits = Limits(started, deadline)
            hookguard.set_deadline(limits.hard)
        raw = sys.stdin.buffer.read()
        decision, reason = decide(raw, started, deadline, limits)
    except TowerError as exc:
        decision, reason = "deny", f"Tower: {exc.message}"
    except hookguard.OutOfTime:
        decision, reason = "deny", (f"Tower could not check this call within {limits.budget:g}s (a very long or"
                                    " complex command?): denied; split it into simpler commands")
    except (KeyboardInterrupt, hookguard.HookInterrupted):
        decision, reason = "deny", "Tower hook interrupted before it could decide"
    except BaseException as exc:  # noqa: BLE001 - a hook that dies lets the call through
        decision, reason = "deny", f"Tower hook internal error: {_where(exc)} (a bug: please report it)"
    hookguard.answer(decision, reason)


class Limits:
    """The hook's time limits, counted from its start.

    Claude Code kills the hook ``deadline`` seconds after it starts (the
    installed ``--deadline``; without one its default, or the policy's ask
    timeout plus the margin when that is longer) and then runs the call. So:
    a store lock is waited for until ``soft``, the hook answers ``deny`` by
    itself at ``hard`` whatever it is doing, and the policy check has
    ``budget`` seconds.
    """

    def __init__(self, started: float, deadline: float | None, ask_timeout: float | None = None) -> None:
        from core.hook import DEADLINE_MARGIN
        from core.policy import CLAUDE_HOOK_TIMEOUT

        if deadline is None:
            deadline = CLAUDE_HOOK_TIMEOUT
            if ask_timeout is not None:
                deadline = max(deadline, ask_timeout + DEADLINE_MARGIN)
        self.total = deadline
        margin = min(1.0, deadline * 0.1)
        self.hard = started + deadline - margin
        self.soft = self.hard - margin
        self.budget = min(2.0, deadline / 4)


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    at = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _explicit_db() -> Path | None:
    explicit = opt("db") or os.environ.get("TOWER_DB")
    return Path(explicit).expanduser().absolute() if explicit else None


class Wait:
    """How long this hook call may wait for a person, counted from the hook's start.

    The policy's ask timeout, capped by the installed deadline (``--deadline``:
    Claude Code kills the hook then and lets the call through) less a margin.
    """

    def __init__(self, started: float, ask_timeout: float, deadline: float | None = None) -> None:
        from core.hook import wait_budget

        self.started = started
        self.ask_timeout = ask_timeout
        self.deadline = deadline
        self.limit = ask_timeout
        self.capped = False
        if deadline is not None and wait_budget(deadline) < ask_timeout:
            self.limit, self.capped = wait_budget(deadline), True

    def left(self) -> float:
        return self.limit - (time.monotonic() - self.started)

    def within(self) -> str:
        text = f"within {self.limit:g}s"
        if self.capped:
            text += (f" (the hook's deadline: Claude Code stops it after {self.deadline:g}s, sooner than the"
                     f" policy's ask timeout of {self.ask_timeout:g}s; run `tower hook install claude-code`"
                     " again to raise it)")
        return text


def decide(raw: bytes, started: float, deadline: float | None = None,
           limits: Limits | None = None) -> tuple[str, str]:
    """The whole hook: (permissionDecision, reason).

    ``deadline``: seconds after ``started`` when Claude Code kills the hook (the
    installed ``--deadline``); a person is waited for until shortly before it.
    """
    from core.gitrepo import discover
    from tui import hookguard

    try:
        call = parse_input(raw)
    except HookInputError as exc:
        return "deny", f"Tower hook: unusable input: {exc}"

    cwd = Path(call.cwd) if call.cwd else Path.cwd()
    repo = discover(cwd) if cwd.is_dir() else None
    db = _explicit_db()
    if db is None:
        if repo is None:
            return "deny", (f"Tower: {cwd} is not inside a git repository, so there is no Tower store"
                            " (run `tower init` in the repository, or set TOWER_DB)")
        db = repo.store_dir / DB_NAME
    if not db.exists():
        return "deny", f"Tower: no Tower store at {db}: run `tower init` in the repository"

    from core.policy import PolicyError, load_policy

    try:
        policy = load_policy(db.parent / POLICY_NAME)
    except PolicyError as exc:
        return "deny", f"Tower: {exc.message}; fix the policy file (check it with `tower hook check`)"

    if limits is None:
        limits = Limits(started, deadline, policy.ask_timeout)
    elif deadline is None:
        limits = Limits(started, None, policy.ask_timeout)  # waits as long as the policy asks
        hookguard.set_deadline(limits.hard)
    root = repo.worktree_root if repo is not None else None
    wait = Wait(started, policy.ask_timeout, deadline)
    written = call.written_path
    if written is not None:
        return _file_call(call, policy, db, root, cwd, written, wait, limits)

    rel = _relative(call.read_path, root, cwd) if call.read_path else None
    with hookguard.budget(limits.budget):
        verdict = policy.decide(call.tool_name, command=call.command, path=rel, cwd=str(cwd))
    if verdict.decision != "ask":
        return _plain(verdict.decision), verdict.reason
    return _with_store(db, limits, call, lambda s, c: _ask(s, c, call, policy, verdict.reason, rel, root, wait))


def _plain(decision: str) -> str:
    # "prompt" is Claude Code's own prompt, which the hook asks for with "ask"
    return "ask" if decision == "prompt" else decision


def _relative(path: str, root: Path | None, cwd: Path) -> str | None:
    if root is None:
        return None
    from core.paths import PathError, normalize

    try:
        return normalize(path, root, cwd)
    except PathError:
        return None


def _file_call(call: HookInput, policy, db: Path, root: Path | None, cwd: Path, written: str,
               wait: Wait, limits: Limits) -> tuple[str, str]:
    from core.paths import PathError, normalize

    tool = call.tool_name
    if not written:
        return "deny", f"Tower: {tool} without tool_input.{FILE_TOOLS[tool]}: nothing to claim"
    if root is None:
        outside = f"{cwd} is not inside a git repository"
        rel = None
    else:
        try:
            rel = normalize(written, root, cwd)
            outside = None
        except PathError as exc:
            rel, outside = None, f"{exc} (worktree {root})"
    if outside is not None:
        decision = policy.outside_repo
        reason = f"Tower: {outside}; the policy says {decision} for files outside the repository"
        if decision == "ask":
            return _with_store(db, limits, call, lambda s, c: _ask(s, c, call, policy, reason, None, root, wait))
        return _plain(decision), reason

    verdict = policy.decide(tool, path=rel)
    if verdict.decision == "deny":
        return "deny", verdict.reason
    return _with_store(db, limits, call, lambda s, c: _claim(s, c, call, policy, verdict, rel, root, wait))


def _with_store(db: Path, limits: Limits, call: HookInput, body) -> tuple[str, str]:
    import asyncio

    from store import Store

    async def main() -> tuple[str, str]:
        from tui.commands.approvals import SignalCatcher

        with SignalCatcher() as catcher:
            async with Store(db, actor=_caller(call)) as store:
                # a store another process keeps locked is waited for only until shortly
                # before the hook's own deadline, then denied saying so
                store.give_up_at = limits.soft
                return await body(store, catcher)

    return asyncio.run(main())


def _caller(call: HookInput) -> str:
    """Who acts when the hook writes: the named agent, else this Claude Code session."""
    from tui.clikit import agent_name

    name = agent_name()
    if name:
        return name
    return f"claude-code:{call.session_id[:8]}" if call.session_id else "claude-code"


# -- which lease is this session's ------------------------------------------------


async def _worktree_name(store, root: Path | None) -> str | None:
    from tui.clikit import worktree_hint

    hint = worktree_hint()
    if hint:
        return hint
    if root is None:
        return None
    real = os.path.realpath(root)
    for name, path, active in await store.worktree_rows():
        if active and os.path.realpath(path) == real:
            return name
    return None


async def session_lease(store, root: Path | None, path: str | None):
    """The lease this Claude Code session writes for: ``(lease, worktree, problem)``.

    1. ``TOWER_LEASE`` (e.g. ``L7``) names it outright; it must be active.
    2. Else the active leases of this worktree (the registered worktree whose
       path is the git worktree of the call's ``cwd``, or ``TOWER_WORKTREE``),
       narrowed to ``TOWER_AGENT``'s when that is set (an agent's leases with no
       worktree count too). One lease: that one. Several: the one already
       holding ``path``, else the only one whose task scope covers it; still
       several is a problem the reason names (set TOWER_LEASE).
    ``lease`` is None when there is none (``problem`` None) or when it cannot
    be told (``problem`` says why).
    """
    from core.ids import format_id, parse_id
    from tui.clikit import agent_name

    worktree = await _worktree_name(store, root)
    leases = await store.view_leases()  # active leases, plain rows: no pydantic here
    wanted = os.environ.get("TOWER_LEASE")
    if wanted:
        try:
            lid = parse_id("lease", wanted)
        except BadInput as exc:
            return None, worktree, f"TOWER_LEASE: {exc.message}"
        match = next((lease for lease in leases if lease.id == lid), None)
        if match is None:
            return None, worktree, (f"TOWER_LEASE={format_id('lease', lid)} is not an active lease:"
                                    " claim a task (`tower task claim`) and set TOWER_LEASE to its lease")
        return match, worktree, None
    agent = agent_name()
    if agent:
        candidates = [lease for lease in leases if lease.agent == agent and lease.worktree in (worktree, None)]
    elif worktree is not None:
        candidates = [lease for lease in leases if lease.worktree == worktree]
    else:
        candidates = []
    if len(candidates) <= 1:
        return (candidates[0] if candidates else None), worktree, None
    if path is not None:
        holding = [lease for lease in candidates if path in lease.claims]
        if len(holding) == 1:
            return holding[0], worktree, None
        from core.scope import match_one

        covering = [lease for lease in candidates
                    if lease.scope and any(match_one(path, g) for g in lease.scope)]
        if len(covering) == 1:
            return covering[0], worktree, None
    ids = ", ".join(format_id("lease", lease.id) for lease in candidates)
    who = f"{agent} holds" if agent else f"worktree {worktree} has"
    return None, worktree, (f"{who} several active leases ({ids}) and none is the obvious one for this"
                            " call: set TOWER_LEASE to the session's lease")


def _requester(call: HookInput, lease) -> str:
    from tui.clikit import agent_name

    name = agent_name() or (lease.agent if lease is not None else None)
    if name:
        return name
    return f"claude-code:{call.session_id[:8]}" if call.session_id else "claude-code"


# -- writes: claim, then (maybe) ask -----------------------------------------------


async def _claim(store, catcher, call: HookInput, policy, verdict, rel: str, root, wait: Wait):
    from core.errors import Refused
    from core.ids import format_id
    from tui.clikit import agent_name

    lease, worktree, problem = await session_lease(store, root, rel)
    if problem is not None:
        return "deny", f"Tower: cannot claim {rel}: {problem}"
    if lease is None:
        decision = policy.without_lease
        where = f"worktree {worktree}" if worktree else "this worktree (not registered with Tower)"
        reason = (f"Tower: no active lease for this session in {where}, so {rel} cannot be claimed:"
                  " run `tower task claim` first")
        if decision == "ask":
            return await _ask(store, catcher, call, policy, reason + " (asking a person)", rel, root, wait)
        if decision == "allow":
            return "allow", f"Tower: no active lease in {where}; the policy allows writing {rel} unclaimed"
        return _plain(decision), reason
    lid = format_id("lease", lease.id)
    already = rel in lease.claims and lease.expires_at > time.time()
    if not already:
        try:
            await store.claim_files(lease.id, [rel], agent=agent_name())
        except (Refused, NotFound) as exc:
            hint = ""
            if exc.code == "claim_conflict":
                hint = ": work on other files, or coordinate through the person running Tower"
            elif exc.code == "lease_not_active":
                hint = ": claim a task again (`tower task claim`)"
            return "deny", f"Tower: cannot claim {rel} for {lid}: {exc.message}{hint}"
    held = f"{rel} is claimed for {lid} (task {format_id('task', lease.task_id)})"
    if verdict.decision == "ask":
        return await _ask(store, catcher, call, policy, f"{verdict.reason}; {held}", rel, root, wait,
                          lease=lease, worktree=worktree)
    if verdict.decision == "prompt":
        return "ask", f"{verdict.reason}; {held}"
    return "allow", f"Tower: {held}"


# -- ask a person -------------------------------------------------------------------


async def _ask(store, catcher, call: HookInput, policy, why: str, rel: str | None, root, wait: Wait, *,
               lease=..., worktree=...):
    """File an approval (idempotent on tool_use_id) and wait for it until the hook's deadline."""
    from core.errors import Refused
    from core.hook import approval_detail, approval_kind, approval_summary
    from core.ids import format_id
    from tui.commands.approvals import Interrupted, wait_or_cancel

    if lease is ... or worktree is ...:
        lease, worktree, _ = await session_lease(store, root, rel)
    requester = _requester(call, lease)
    fields = dict(kind=approval_kind(call), summary=approval_summary(call, rel),
                  detail=approval_detail(call, rel_path=rel, policy_reason=why),
                  key=call.tool_use_id, requested_by=requester, worktree=worktree)
    try:
        a = await store.request_approval(lease_id=lease.id if lease is not None else None, **fields)
    except Refused:  # the lease ended meanwhile: ask without it
        a = await store.request_approval(**fields)
    aid = format_id("approval", a.id)
    if a.status == "pending":
        left = wait.left()
        try:
            a = await wait_or_cancel(store, a.id, timeout=max(round(left, 1), 0.1), actor=requester,
                                     catcher=catcher, lease_id=a.lease_id)
        except Interrupted as exc:
            return "deny", f"Tower: {exc.message}"
    by = f" by {a.decided_by}" if a.decided_by else ""
    if a.status == "approved":
        return "allow", f"Tower: {aid} approved{by}" + (f": {a.reason}" if a.reason else "")
    if a.status == "rejected":
        return "deny", f"Tower: {aid} rejected{by}: {a.reason}"
    if a.status == "expired":
        waited = wait.within()
        if policy.on_timeout == "deny":
            return "deny", f"Tower: nobody decided {aid} ({a.summary}) {waited}: denied; ask again later"
        return "ask", f"Tower: nobody decided {aid} ({a.summary}) {waited} in Tower; your call"
    return "deny", f"Tower: {aid} was {a.status}" + (f": {a.reason}" if a.reason else "")


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
    warnings = _rule_warnings(policy) + _deadline_warnings(policy)
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
