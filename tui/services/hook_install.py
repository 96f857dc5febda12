"""Installing Tower's hook into each agent's own hook file (docs/agents.md), keeping the rest.

Pure functions over parsed JSON/TOML text; the click layer reads and writes the
files atomically. A Tower entry is recognised by its command running
``tower hook <kind>``; install replaces Tower's entries in place (never
duplicates them), uninstall removes only them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

# the events each agent's entry is installed for: the gates and the news Tower records
EVENTS: dict[str, tuple[str, ...]] = {
    "codex": ("PreToolUse", "PermissionRequest", "PostToolUse", "SessionStart", "UserPromptSubmit", "Stop"),
    "gemini": ("BeforeTool", "AfterTool", "SessionStart", "SessionEnd", "AfterAgent", "Notification"),
    "copilot": ("preToolUse", "permissionRequest", "postToolUse", "sessionStart", "sessionEnd", "agentStop",
                "notification"),
    "cursor": ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "preToolUse", "afterFileEdit",
               "stop"),
}
# the entry's timeout in the agent's own unit; the hook's --deadline (s) fits inside it
TIMEOUT_S = {"codex": 600, "gemini": 120, "copilot": 30, "cursor": 30}


def is_tower_command(command: Any, kind: str) -> bool:
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return any(a == "hook" and b == kind for a, b in zip(words, words[1:]))


def hook_command(program: list[str], kind: str, db: str | None, deadline: int, event: str | None = None) -> str:
    words = [*program, "hook", kind]
    if event:
        words += ["--event", event]
    if db:
        words += ["--db", db]
    words += ["--deadline", str(deadline)]
    return " ".join(shlex.quote(w) for w in words)


def _hooks(settings: dict, where: str) -> dict:
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError(f"{where}: \"hooks\" is not an object")
    return hooks


def install(settings: dict, kind: str, program: list[str], db: str | None, deadline: int) -> bool:
    """Put Tower's entries for ``kind`` into ``settings``; True if it changed."""
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
                           "timeoutSec": TIMEOUT_S[kind]}
            key = "bash"
        elif kind == "cursor":
            entry = {"command": hook_command(program, kind, db, deadline), "timeout": TIMEOUT_S[kind],
                     "failClosed": True}
            key = "command"
        else:
            timeout = TIMEOUT_S[kind] * (1000 if kind == "gemini" else 1)
            handler = {"type": "command", "command": hook_command(program, kind, db, deadline),
                       "timeout": timeout}
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


def _snake(event: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", event).lower()


def codex_hook_hash(event: str, group: dict, handler: dict) -> str:
    """The ``trusted_hash`` Codex records for one hook handler (docs/agents.md, verified)."""
    norm: dict = {"type": "command", "command": handler["command"],
                  "timeout": max(int(handler.get("timeout", 600)), 1), "async": bool(handler.get("async", False))}
    for key in ("statusMessage", "commandWindows"):
        if handler.get(key) is not None:
            norm[key] = handler[key]
    identity: dict = {"event_name": _snake(event), "hooks": [norm]}
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
                    out[f"{hooks_file}:{_snake(event)}:{gi}:{hi}"] = codex_hook_hash(event, group, handler)
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
