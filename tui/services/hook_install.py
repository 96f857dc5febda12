"""Installing Tower's hook into each agent's own hook file (docs/agents.md), keeping the rest.

A Tower entry is recognised by its command running ``tower hook <kind>``;
install replaces Tower's entries in place (never duplicates them), uninstall
removes only them, and :func:`check` finds what would let an agent's calls
through ungoverned. The merge functions work on parsed JSON/TOML text;
:func:`install_files` / :func:`uninstall_files` read and write the files
(atomically). Claude Code's own entry is merged by ``core.hook``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from core.hook import hook_command as _hook_command
from core.hook import is_tower_command

# the events each agent's entry is installed for: the gates and the news Tower records
EVENTS: dict[str, tuple[str, ...]] = {
    "codex": ("PreToolUse", "PermissionRequest", "PostToolUse", "SessionStart", "UserPromptSubmit", "Stop"),
    "gemini": ("BeforeTool", "AfterTool", "SessionStart", "SessionEnd", "AfterAgent", "Notification"),
    "copilot": ("preToolUse", "permissionRequest", "postToolUse", "sessionStart", "sessionEnd", "agentStop",
                "notification"),
    "cursor": ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "preToolUse", "afterFileEdit",
               "stop"),
}
# the hook file of each agent, relative to the worktree (Codex: the MAIN worktree's, see hook_file)
FILES = {"claude-code": (".claude", "settings.json"), "codex": (".codex", "hooks.json"),
         "gemini": (".gemini", "settings.json"), "copilot": (".github/hooks", "tower.json"),
         "cursor": (".cursor", "hooks.json")}
# the events whose entries decide (the rest is news): without them an agent's calls go ungoverned
GATES = {"claude-code": ("PreToolUse",), "codex": ("PreToolUse", "PermissionRequest"), "gemini": ("BeforeTool",),
         "copilot": ("preToolUse", "permissionRequest"),
         "cursor": ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "preToolUse")}
# the unit of each agent's hook timeout: seconds, or milliseconds for Gemini CLI
UNIT = {"claude-code": 1, "codex": 1, "gemini": 1000, "copilot": 1, "cursor": 1}
# Copilot CLI and Cursor (docs only, not run here): their documented default, 30 s; a longer
# entry timeout is unverified, and both fail open when the hook outlives it
FIXED_TIMEOUT_S = {"copilot": 30, "cursor": 30}


def timeout_s(kind: str, hook_timeout: int) -> int:
    """The entry's timeout in seconds (also the hook's --deadline): the policy's (its ask timeout
    plus a margin, at least 600 s) where the agent takes any, else the documented default."""
    return FIXED_TIMEOUT_S.get(kind, hook_timeout)


def hook_command(program: list[str], kind: str, db: str | None, deadline: int, event: str | None = None) -> str:
    return _hook_command(program, db, deadline, kind=kind, event=event)


def _hooks(settings: dict, where: str) -> dict:
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError(f"{where}: \"hooks\" is not an object")
    return hooks


def install(settings: dict, kind: str, program: list[str], db: str | None, deadline: int) -> bool:
    """Put Tower's entries for ``kind`` into ``settings``; True if it changed.

    ``deadline``: seconds; the entry's timeout (in the agent's unit) is the same,
    and the hook, told it, stops waiting for a person a margin before.
    """
    before = json.dumps(settings, sort_keys=True)
    hooks = _hooks(settings, kind)
    if kind in ("copilot", "cursor"):
        settings.setdefault("version", 1)
    for event in EVENTS[kind]:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ValueError(f"hooks.{event} is not a list")
        if kind == "copilot":
            entry: dict = {"type": "command", "bash": hook_command(program, kind, db, deadline, event),
                           "timeoutSec": deadline}
            key = "bash"
        elif kind == "cursor":
            entry = {"command": hook_command(program, kind, db, deadline), "timeout": deadline,
                     "failClosed": True}
            key = "command"
        else:
            handler = {"type": "command", "command": hook_command(program, kind, db, deadline),
                       "timeout": deadline * UNIT[kind]}
            if kind == "gemini":
                handler["name"] = "tower"
            entry = {"matcher": "*", "hooks": [handler]}
            key = None
        kept = [g for g in groups if not _is_ours(g, kind, key)]
        hooks[event] = kept + [entry]
    return json.dumps(settings, sort_keys=True) != before


def _is_ours(group: Any, kind: str, key: str | None) -> bool:
    if not isinstance(group, dict):
        return False
    if key is not None:
        return is_tower_command(group.get(key), kind)
    return any(is_tower_command(h.get("command"), kind) for h in group.get("hooks") or [] if isinstance(h, dict))


def uninstall(settings: dict, kind: str) -> bool:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return False
    key = {"copilot": "bash", "cursor": "command"}.get(kind)
    removed = False
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = [g for g in groups if not _is_ours(g, kind, key)]
        if len(kept) != len(groups):
            removed = True
            if kept:
                hooks[event] = kept
            else:
                del hooks[event]
    return removed


def installed(settings: dict, kind: str) -> list[str]:
    """The events holding a Tower entry for ``kind``."""
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return []
    key = {"copilot": "bash", "cursor": "command"}.get(kind)
    return [e for e, groups in hooks.items() if isinstance(groups, list)
            and any(_is_ours(g, kind, key) for g in groups)]


# -- Codex trust ($CODEX_HOME/config.toml) ---------------------------------------------------


def snake_event(event: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", event).lower()


def codex_hook_hash(event: str, group: dict, handler: dict) -> str:
    """The ``trusted_hash`` Codex records for one hook handler (docs/agents.md, verified)."""
    norm: dict = {"type": "command", "command": handler["command"],
                  "timeout": max(int(handler.get("timeout", 600)), 1), "async": bool(handler.get("async", False))}
    for key in ("statusMessage", "commandWindows"):
        if handler.get(key) is not None:
            norm[key] = handler[key]
    identity: dict = {"event_name": snake_event(event), "hooks": [norm]}
    if group.get("matcher") is not None:
        identity["matcher"] = group["matcher"]
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def codex_trust_records(hooks_file: Path, settings: dict) -> dict[str, str]:
    """``hooks.state`` key -> trusted hash for every Tower handler in ``settings`` (a hooks.json)."""
    out = {}
    for event, groups in (settings.get("hooks") or {}).items():
        for gi, group in enumerate(groups if isinstance(groups, list) else []):
            for hi, handler in enumerate(group.get("hooks") or [] if isinstance(group, dict) else []):
                if isinstance(handler, dict) and is_tower_command(handler.get("command"), "codex"):
                    out[f"{hooks_file}:{snake_event(event)}:{gi}:{hi}"] = codex_hook_hash(event, group, handler)
    return out


_TABLE = re.compile(r"^\s*\[")


def set_codex_trust(text: str, hooks_file: Path, records: dict[str, str], project: Path | None) -> str:
    """``config.toml`` text with every ``hooks.state`` table for ``hooks_file`` replaced by ``records``
    and ``project`` trusted; every other table and line kept as it was."""
    prefix = json.dumps(f"{hooks_file}:")[:-1]  # the quoted key's start
    lines = text.splitlines()
    out: list[str] = []
    skipping = False
    for line in lines:
        if _TABLE.match(line):
            skipping = line.strip().startswith(f"[hooks.state.{prefix}")
        if not skipping:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    if project is not None:
        header = f"[projects.{json.dumps(str(project))}]"
        if header not in (line.strip() for line in out):
            out += ["", header, 'trust_level = "trusted"']
    for key, digest in records.items():
        out += ["", f"[hooks.state.{json.dumps(key)}]", f"trusted_hash = {json.dumps(digest)}"]
    return "\n".join(out).lstrip("\n") + "\n"


def codex_stale(text: str, records: dict[str, str]) -> list[str]:
    """The Tower handlers whose trust record in ``config.toml`` text is missing or stale."""
    stale = []
    for key, digest in records.items():
        block = re.search(r"^\[hooks\.state\." + re.escape(json.dumps(key)) + r"\]\s*\ntrusted_hash\s*=\s*\"([^\"]*)\"",
                          text, re.M)
        if block is None or block.group(1) != digest:
            stale.append(key)
    return stale


# -- the files ----------------------------------------------------------------------------


def hook_file(kind: str, root: Path) -> Path:
    """The hook file ``kind`` reads for a session in the worktree ``root``.

    Codex reads the MAIN worktree's ``.codex/hooks.json`` (never a linked
    worktree's own; verified, docs/agents.md).
    """
    base = root
    if kind == "codex":
        from core.gitrepo import discover

        info = discover(root)
        if info is not None:
            base = info.common_dir.parent  # the main worktree (the common dir is its .git)
    folder, name = FILES[kind]
    return base / folder / name


def codex_config(codex_home: Path) -> Path:
    return codex_home / "config.toml"


def install_files(kind: str, root: Path, program: list[str], db: str | None, hook_timeout: int,
                  codex_home: Path) -> dict[str, Any]:
    """Install Tower's entries for ``kind`` (not Claude Code) serving the worktree ``root``.

    Codex also gets the empty ``.codex/`` in ``root`` without which it loads no
    project hooks in a linked worktree, and the trust records in
    ``$CODEX_HOME/config.toml`` without which it skips them silently.
    """
    from tui.services.agent_config import read_json_object, write_json_atomically, write_text_atomically

    path = hook_file(kind, root)
    settings = read_json_object(path)
    deadline = timeout_s(kind, hook_timeout)
    try:
        changed = install(settings, kind, program, db, deadline)
    except ValueError as exc:
        from core.errors import BadInput

        raise BadInput(f"{path}: {exc}; fix it first") from None
    if changed:
        write_json_atomically(path, settings)
    data: dict[str, Any] = {"settings": str(path), "changed": changed, "timeout": deadline * UNIT[kind],
                            "deadline": deadline}
    if kind == "codex":
        (root / ".codex").mkdir(exist_ok=True)
        config = codex_config(codex_home)
        text = config.read_text(encoding="utf-8") if config.exists() else ""
        records = codex_trust_records(path, settings)
        new = set_codex_trust(text, path, records, root)
        if new != text:
            write_text_atomically(config, new)
        data["codex_config"] = str(config)
        data["trusted"] = len(records)
    return data


def uninstall_files(kind: str, root: Path, codex_home: Path) -> dict[str, Any]:
    """Remove Tower's entries for ``kind`` (and, for Codex, their trust records), and nothing else."""
    from tui.services.agent_config import read_json_object, write_json_atomically, write_text_atomically

    path = hook_file(kind, root)
    settings = read_json_object(path)
    removed = uninstall(settings, kind)
    if removed:
        write_json_atomically(path, settings)
    if kind == "codex":
        config = codex_config(codex_home)
        if config.exists():
            text = config.read_text(encoding="utf-8")
            new = set_codex_trust(text, path, {}, None)
            if new != text:
                write_text_atomically(config, new)
    return {"settings": str(path), "removed": removed}


def _tower_handlers(settings: dict, kind: str) -> list[tuple[str, dict]]:
    """(event, entry) for each of Tower's entries; an entry is the handler holding the command."""
    out = []
    key = {"copilot": "bash", "cursor": "command"}.get(kind)
    hooks = settings.get("hooks")
    for event, groups in (hooks.items() if isinstance(hooks, dict) else []):
        for group in groups if isinstance(groups, list) else []:
            if not isinstance(group, dict):
                continue
            handlers = [group] if key else [h for h in group.get("hooks") or [] if isinstance(h, dict)]
            for h in handlers:
                if is_tower_command(h.get(key or "command"), kind):
                    out.append((event, h))
    return out


def _program_problem(command: object) -> str | None:
    if not isinstance(command, str):
        return "its command is not a string"
    try:
        words = shlex.split(command)
    except ValueError:
        return "its command cannot be read"
    exe = words[0] if words else ""
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return f"it runs {exe}, which is not an executable file (Tower moved or uninstalled?)"
    return None


def check(root: Path, codex_home: Path) -> dict[str, dict[str, Any]]:
    """Every agent's hook file for the worktree ``root``: installed or not, and what is broken.

    Broken is what lets an agent's calls through ungoverned: a gate event with no
    Tower entry, an entry whose program is gone (every agent runs the call when
    its hook cannot start), an entry whose timeout is shorter than the hook's
    ``--deadline`` (killed before it answers), a Codex trust record missing or
    stale, or a linked worktree without ``.codex/`` (Codex then skips the hooks).
    """
    from core.errors import BadInput
    from core.hook import installed_deadline
    from tui.services.agent_config import read_json_object

    report: dict[str, dict[str, Any]] = {}
    files = [(kind, kind, hook_file(kind, root)) for kind in FILES]
    files.append(("claude-code (local)", "claude-code", root / ".claude" / "settings.local.json"))
    for name, kind, path in files:
        entry: dict[str, Any] = {"agent": kind, "file": str(path), "installed": False, "problems": []}
        if name != kind and not path.exists():
            continue
        report[name] = entry
        problems: list[str] = entry["problems"]
        try:
            settings = read_json_object(path)
        except BadInput as exc:
            problems.append(f"cannot be read: {exc.message}")
            continue
        handlers = _tower_handlers(settings, kind)
        if not handlers:
            continue
        entry["installed"] = True
        events = sorted({e for e, _ in handlers})
        entry["events"] = events
        missing = [g for g in GATES[kind] if g not in events]
        if missing:
            problems.append(f"no Tower entry for {', '.join(missing)}: those calls are not governed;"
                            f" run `tower hook install {kind}` again")
        seen: set[str] = set()
        for event, h in handlers:
            command = h.get("bash" if kind == "copilot" else "command")
            program = _program_problem(command)
            if program and program not in seen:
                seen.add(program)
                problems.append(f"{program}: the agent runs its calls unchecked; run `tower hook install"
                                f" {kind}` again")
            timeout = h.get("timeoutSec" if kind == "copilot" else "timeout")
            deadline = installed_deadline(command)
            # (Claude Code's entries: deadline_warnings in core.hook, with the policy's ask timeout)
            if kind != "claude-code" and isinstance(timeout, (int, float)) and not isinstance(timeout, bool) \
                    and deadline is not None and timeout / UNIT[kind] < deadline:
                problems.append(f"the {event} entry's timeout ({timeout:g}{'ms' if UNIT[kind] > 1 else 's'})"
                                f" is shorter than the hook's --deadline ({deadline:g}s): the agent may kill"
                                f" the hook and run the call; run `tower hook install {kind}` again")
        if kind == "codex":
            config = codex_config(codex_home)
            text = config.read_text(encoding="utf-8") if config.exists() else ""
            stale = codex_stale(text, codex_trust_records(path, settings))
            if stale:
                problems.append(f"{len(stale)} Tower hook(s) are not trusted in {config}: Codex skips them"
                                " without a word; run `tower hook install codex` again")
            if not (root / ".codex").is_dir():
                problems.append(f"{root} has no .codex/ directory: Codex loads no project hooks there;"
                                " run `tower hook install codex` in it")
    return report
