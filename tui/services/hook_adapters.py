"""Per-agent hook adapters: read an agent's payload, normalise its calls, answer in its format.

Each agent (docs/agents.md) names its tools and events its own way. An adapter
turns one payload into a :class:`Parsed`: the event, whether it is a gate
(the hook decides) or only news (recorded, answered with the agent's no-op at
once), and the calls to decide as :class:`core.hook.HookInput` with Claude
Code's tool names (``Bash`` for a shell command, ``Write`` per written file),
so the one engine (tui/services/hook_engine.py) and the one policy serve all.

Stdlib only: no click, Textual or pydantic.
"""

from __future__ import annotations

import json
import re

from core.hook import HookInput, HookInputError, load_object
from core.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Codex apply_patch headers naming a file the patch writes, deletes or moves to
_PATCH_PATH = re.compile(r"^\*\*\* (?:Add File|Update File|Delete File|Move to): (.+?)\s*$", re.M)


@record
class Parsed:
    kind: str
    event: str
    payload: dict
    gate: bool = False  # the hook decides this call
    ask_person: bool = False  # a permission event: a person decides through Tower
    can_ask: bool = False  # the agent enforces "ask" (else ask becomes deny)
    after_write: str | None = None  # Cursor afterFileEdit: the file already written
    calls: list[HookInput] = field(default_factory=list)
    tool: str | None = None  # the agent's own tool name, for the audit
    session: str | None = None


def patch_paths(patch: str) -> list[str]:
    """Every file a Codex ``apply_patch`` text adds, updates, deletes or moves to, in order, once."""
    seen: list[str] = []
    for m in _PATCH_PATH.finditer(patch):
        path = m.group(1)
        if path not in seen:
            seen.append(path)
    return seen


def _str(data: dict, *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _obj(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):  # Cursor's beforeMCPExecution sends tool_input as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {"input": value}
    if not isinstance(value, dict):
        raise HookInputError(f"{what} is not an object")
    return value


def _call(tool: str, tool_input: dict, data: dict, cwd: str | None, call_id: str | None) -> HookInput:
    from core.hook import _lone_surrogate

    bad = _lone_surrogate([tool, cwd, tool_input])
    if bad is not None:
        raise HookInputError(f"the call holds a lone surrogate ({bad}), which is not valid Unicode:"
                             " Tower cannot tell what would run")
    return HookInput(tool_name=tool, tool_input=tool_input, cwd=cwd, session_id=_str(data, "session_id",
                     "sessionId", "conversation_id"), tool_use_id=call_id, hook_event_name="PreToolUse")


def _shell(command: Any, data: dict, cwd: str | None, call_id: str | None) -> HookInput:
    if not isinstance(command, str):
        raise HookInputError("the shell call has no command string")
    return _call("Bash", {"command": command}, data, cwd, call_id)


def _writes(paths: list[Any], data: dict, cwd: str | None, call_id: str | None) -> list[HookInput]:
    calls = []
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not path:
            raise HookInputError("a file write names no file")
        key = f"{call_id}#{i}" if call_id and len(paths) > 1 else call_id
        calls.append(_call("Write", {"file_path": path}, data, cwd, key))
    if not calls:
        raise HookInputError("a file write names no file")
    return calls


def parse(kind: str, raw: bytes | str, event: str | None = None) -> Parsed:
    """One payload of ``kind`` -> what the hook must do (raises HookInputError when unusable).

    ``event``: the event the entry was installed for, for payloads that do not
    name theirs (Copilot's camelCase ones).
    """
    if kind == "claude-code":
        # Claude Code's payload is the engine's own shape (its PreToolUse, as installed)
        from core.hook import parse_input

        call = parse_input(raw)
        return Parsed(kind=kind, event=call.hook_event_name or "PreToolUse", payload={}, gate=True, can_ask=True,
                      calls=[call], tool=call.tool_name, session=call.session_id)
    data = load_object(raw)
    name = _str(data, "hook_event_name", "hookEventName") or event
    if name is None:
        raise HookInputError("the payload names no hook event (hook_event_name)")
    p = Parsed(kind=kind, event=name, payload=data, session=_str(data, "session_id", "sessionId",
                                                                  "conversation_id"))
    cwd = _str(data, "cwd")
    if cwd is None and isinstance(data.get("workspace_roots"), list) and data["workspace_roots"]:
        first = data["workspace_roots"][0]
        cwd = first if isinstance(first, str) else None
    low = name.lower()
    if kind == "codex":
        p.can_ask = False
        if low not in ("pretooluse", "permissionrequest"):
            return p
        p.gate, p.ask_person = True, low == "permissionrequest"
        tool = _str(data, "tool_name")
        if tool is None:
            raise HookInputError("tool_name is missing or not a string")
        p.tool = tool
        tin = _obj(data.get("tool_input"), "tool_input")
        call_id = _str(data, "tool_use_id")
        if tool == "Bash":
            p.calls = [_shell(tin.get("command"), data, cwd, call_id)]
        elif tool == "apply_patch":
            patch = tin.get("command", tin.get("patch"))
            if not isinstance(patch, str):
                raise HookInputError("apply_patch without its patch text (tool_input.command)")
            p.calls = _writes(patch_paths(patch) or [""], data, cwd, call_id)
        else:
            p.calls = [_call(tool, tin, data, cwd, call_id)]
        return p
    if kind == "gemini":
        if low != "beforetool":
            return p
        p.gate = True
        tool = _str(data, "tool_name")
        if tool is None:
            raise HookInputError("tool_name is missing or not a string")
        p.tool = tool
        tin = _obj(data.get("tool_input"), "tool_input")
        if tool == "run_shell_command":
            p.calls = [_shell(tin.get("command"), data, cwd, None)]
        elif tool in ("write_file", "replace"):
            p.calls = _writes([tin.get("file_path")], data, cwd, None)
        else:
            p.calls = [_call(tool, tin, data, cwd, None)]
        return p
    if kind == "copilot":
        if low not in ("pretooluse", "permissionrequest"):
            return p
        p.gate, p.can_ask, p.ask_person = True, low == "pretooluse", low == "permissionrequest"
        tool = _str(data, "toolName", "tool_name")
        if tool is None:
            raise HookInputError("toolName is missing or not a string")
        p.tool = tool
        tin = _obj(data.get("toolArgs", data.get("tool_input")), "toolArgs")
        if tool == "bash":
            p.calls = [_shell(tin.get("command"), data, cwd, None)]
        elif tool in ("create", "edit"):
            p.calls = _writes([tin.get("path", tin.get("file_path"))], data, cwd, None)
        else:
            p.calls = [_call(tool, tin, data, cwd, None)]
        return p
    if kind == "cursor":
        p.can_ask = True
        if low == "aftefileedit" or low == "afterfileedit":
            path = data.get("file_path")
            p.after_write = path if isinstance(path, str) else None
            p.tool = "edit"
            return p
        if low == "beforeshellexecution":
            p.gate, p.tool = True, "shell"
            p.calls = [_shell(data.get("command"), data, cwd, None)]
        elif low == "beforereadfile":
            p.gate, p.tool = True, "read"
            p.calls = [_call("Read", {"file_path": data.get("file_path")}, data, cwd, None)]
        elif low == "beforemcpexecution":
            p.gate = True
            p.tool = _str(data, "tool_name") or "mcp"
            p.calls = [_call(p.tool, _obj(data.get("tool_input"), "tool_input"), data, cwd, None)]
        elif low == "pretooluse":
            p.gate = True
            tool = _str(data, "tool_name")
            if tool is None:
                raise HookInputError("tool_name is missing or not a string")
            p.tool = tool
            tin = _obj(data.get("tool_input"), "tool_input")
            call_id = _str(data, "tool_use_id")
            if tool in ("Write", "Edit", "MultiEdit", "StrReplace", "Delete"):
                p.calls = _writes([tin.get("file_path", tin.get("path"))], data, cwd, call_id)
            elif tool in ("Shell", "Bash", "run_terminal_cmd"):
                p.calls = [_shell(tin.get("command"), data, cwd, call_id)]
            else:
                p.calls = [_call(tool, tin, data, cwd, call_id)]
        return p
    raise HookInputError(f"unknown agent kind {kind!r}")


def target_of(call: HookInput) -> tuple[str | None, str | None]:
    """(path, command) of a normalised call, for the audit."""
    if call.tool_name == "Bash":
        return None, call.command
    path = call.tool_input.get("file_path")
    return (path if isinstance(path, str) else None), None
