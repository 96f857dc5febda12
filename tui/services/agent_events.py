"""What an agent's hook event says about its session: the mapping the hook adapters use.

``session_event(kind, payload)`` turns one hook payload of Claude Code, Codex,
Gemini CLI, Copilot CLI or Cursor (as captured in tests/agents/fixtures/ and
documented in docs/agents.md) into a :class:`SessionEvent`: the agent's
session id, the event's name, the tool and what it acts on, the state the
event puts the session in (or None when it says nothing new), and why it waits.
The adapter then stores it with :func:`record` (``store.record_session_event``).

Runs on every tool call of every agent: stdlib only, no click, Textual or
pydantic, no I/O (except :func:`agent_process`, which reads ``/proc``).

States an event can set:

- ``working``: a prompt was submitted, a tool call starts or ends.
- ``waiting``: the agent waits for a person at its own prompt (Claude Code,
  Codex and Copilot ``PermissionRequest``; Claude Code ``Notification``
  ``permission_prompt``, ``idle_prompt``, ``elicitation_dialog``,
  ``agent_needs_input``; Gemini ``Notification`` ``ToolPermission``; Copilot
  ``notification`` ``permission_prompt``), or for a Tower approval
  (:func:`approval_wait_event`).
- ``idle``: the turn ended (``Stop``, ``AfterAgent``, ``agentStop``, Cursor
  ``stop``, Codex's ``agent-turn-complete`` notify payload), or the session just
  started and has no prompt yet.
- ``ended``: ``SessionEnd`` / ``sessionEnd``. Codex sends none: its end is seen
  from its process (:func:`agent_process`) or its quiet time (store/sessions.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from core.display import ellipsize
from core import records

TYPE_CHECKING = False  # typing stays unloaded on the agents' path (core/typecheck.py)
if TYPE_CHECKING:
    from typing import Any

KINDS = ("claude-code", "codex", "gemini", "copilot", "cursor")
TARGET_LIMIT = 300


@records.record(frozen=True)
class SessionEvent:
    """One hook event, as the session store wants it (see ``store.record_session_event``)."""

    kind: str
    session: str
    event: str
    state: str | None = None  # working | waiting | idle | ended, or None: no change
    tool: str | None = None
    target: str | None = None  # the file, command or query the tool acts on
    tool_call: bool = False  # goes into the session's recent tool calls
    outcome: str | None = None  # ok | failed | interrupted | denied | done (result unknown)
    reason: str | None = None  # why it waits
    waiting_for: int | None = None  # the Tower approval it waits for
    ends_wait: int | None = None  # the Tower approval whose wait ended
    cwd: str | None = None

    def replace(self, **changes: Any) -> SessionEvent:
        """A copy with ``changes``."""
        values = {f.name: getattr(self, f.name) for f in records.fields(self)}
        values.update(changes)
        return SessionEvent(**values)


# lower-cased event name -> what it means; names differ in case only between
# Copilot's two payload styles (preToolUse / PreToolUse), so one table serves all
_START, _PROMPT, _PRE, _POST, _FAIL, _PERMISSION, _NOTE, _STOP, _END, _ACTIVE, _IGNORE = range(11)
_EVENTS: dict[str, int] = {
    # Claude Code, Codex (and Copilot's PascalCase names)
    "sessionstart": _START,
    "userpromptsubmit": _PROMPT,
    "pretooluse": _PRE,
    "posttooluse": _POST,
    "posttoolusefailure": _FAIL,
    "permissionrequest": _PERMISSION,
    "notification": _NOTE,
    "stop": _STOP,
    "stopfailure": _STOP,
    "sessionend": _END,
    "precompact": _ACTIVE,
    "postcompact": _ACTIVE,
    "subagentstart": _ACTIVE,
    "subagentstop": _ACTIVE,
    # Gemini CLI
    "beforeagent": _PROMPT,
    "beforetool": _PRE,
    "aftertool": _POST,
    "afteragent": _STOP,
    "beforemodel": _ACTIVE,
    "aftermodel": _ACTIVE,
    "beforetoolselection": _ACTIVE,
    "precompress": _ACTIVE,
    # Copilot CLI (camelCase)
    "userpromptsubmitted": _PROMPT,
    "agentstop": _STOP,
    "erroroccurred": _ACTIVE,
    # Cursor
    "beforesubmitprompt": _PROMPT,
    "beforeshellexecution": _PRE,
    "aftershellexecution": _POST,
    "beforemcpexecution": _PRE,
    "aftermcpexecution": _POST,
    "beforereadfile": _PRE,
    "afterfileedit": _POST,
    "afteragentresponse": _ACTIVE,
    "afteragentthought": _ACTIVE,
    "beforetabfileread": _IGNORE,  # Tab completions, not the agent
    "aftertabfileedit": _IGNORE,
    # Codex's `notify` program payload ({"type": "agent-turn-complete", ...})
    "agent-turn-complete": _STOP,
}

# notification type (lower-cased) -> (state, what the person is asked for)
_NOTIFICATIONS: dict[str, tuple[str, str]] = {
    "permission_prompt": ("waiting", "permission"),
    "toolpermission": ("waiting", "permission"),
    "idle_prompt": ("waiting", "input"),
    "elicitation_dialog": ("waiting", "input"),
    "agent_needs_input": ("waiting", "input"),
    "agent_idle": ("idle", ""),
}

# Cursor names the tool by its event
_CURSOR_TOOLS = {
    "beforeshellexecution": "shell", "aftershellexecution": "shell",
    "beforereadfile": "read", "afterfileedit": "edit",
}

_PATH_FIELDS = frozenset({"file_path", "notebook_path", "path", "filePath", "absolute_path", "dir_path"})
_TARGET_FIELDS = ("file_path", "notebook_path", "path", "filePath", "absolute_path", "dir_path",
                  "command", "cmd", "pattern", "url", "query")
_PATCH_PATH = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+?)\s*$|^\*\*\* Move to: (.+?)\s*$", re.M)
_EXIT_CODE = re.compile(r"^Exit code: (-?\d+)")


def session_event(kind: str, payload: Mapping[str, Any], event: str | None = None) -> SessionEvent | None:
    """The session event in one hook payload of ``kind``; None when it names no session
    (or is one the session store ignores, like Cursor's Tab events).

    ``event``: the event name when the payload does not carry one (Copilot's
    camelCase payloads have no ``hook_event_name``: the adapter knows which
    event its entry was installed for).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown agent kind {kind!r}")
    if not isinstance(payload, Mapping):
        return None
    session = _first_str(payload, "session_id", "sessionId", "conversation_id", "thread-id", "thread_id")
    if session is None:
        return None
    name = _first_str(payload, "hook_event_name", "hookEventName", "type") or event
    if name is None:
        return None
    action = _EVENTS.get(name.lower())
    if action == _IGNORE:
        return None
    cwd = _cwd(payload)
    base = SessionEvent(kind=kind, session=session, event=name, cwd=cwd)
    if action is None or action == _ACTIVE:
        return base
    if action == _START:
        source = payload.get("source")
        return base if source == "compact" else base.replace(state="idle")
    if action == _PROMPT:
        return base.replace(state="working")
    if action == _STOP:
        return base.replace(state="idle")
    if action == _END:
        return base.replace(state="ended")
    if action == _NOTE:
        return _notification(base, payload)
    tool, target = _tool(name.lower(), payload)
    if action == _PERMISSION:
        what = " ".join(p for p in (tool, target) if p)
        return base.replace(state="waiting", tool=tool, target=target,
                             reason=f"permission: {what}" if what else "permission")
    if action == _PRE:
        return base.replace(state="working", tool=tool, target=target, tool_call=True)
    outcome = "failed" if action == _FAIL else _outcome(name.lower(), payload)
    if action == _FAIL and payload.get("is_interrupt") is True:
        outcome = "interrupted"
    return base.replace(state="working", tool=tool, target=target, tool_call=True, outcome=outcome)


def approval_wait_event(kind: str, session: str, approval_id: int, summary: str | None = None) -> SessionEvent:
    """The hook filed Tower approval ``approval_id`` and now waits for a person to decide it."""
    reason = f"Tower approval A{approval_id}" + (f": {summary}" if summary else "")
    return SessionEvent(kind=kind, session=session, event="tower.approval_wait", state="waiting",
                        reason=reason, waiting_for=approval_id)


def approval_done_event(kind: str, session: str, approval_id: int, status: str | None = None) -> SessionEvent:
    """The wait for ``approval_id`` is over (decided, expired or given up): back to work,
    unless the session meanwhile waits for another approval."""
    return SessionEvent(kind=kind, session=session, event=f"tower.approval_{status or 'done'}",
                        state="working", ends_wait=approval_id)


async def record(store, ev: SessionEvent, *, agent: str | None = None, worktree: str | None = None,
                 lease_id: int | None = None, pid: int | None = None, pid_start: int | None = None):
    """Store ``ev`` with what the adapter knows besides the payload; returns the SessionChange.

    ``worktree``/``lease_id`` may stay None: the store then takes the registered
    worktree containing the payload's ``cwd`` and that worktree's one active lease
    (``agent``'s, when named). ``pid``: from :func:`agent_process`.
    """
    return await store.record_session_event(
        ev.kind, ev.session, ev.event, state=ev.state, tool=ev.tool, target=ev.target, tool_call=ev.tool_call,
        outcome=ev.outcome, waiting_for=ev.waiting_for, waiting_reason=ev.reason, ends_wait=ev.ends_wait,
        agent=agent, worktree=worktree, cwd=ev.cwd, lease_id=lease_id, pid=pid, pid_start=pid_start,
    )


# -- the agent's process -------------------------------------------------------------

# what runs between an agent and its hook: skipped on the way up
_WRAPPERS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "busybox", "env", "timeout",
                       "nice", "nohup", "stdbuf", "setsid"})
# what the agent's own process is called (/proc comm): a pid is recorded only when
# it is one of these, because taking a short-lived helper for the agent would end
# a live session, while missing the pid only delays the end to the quiet time
_AGENT_COMMS = {
    "claude-code": frozenset({"claude"}),
    "codex": frozenset({"codex"}),
    "gemini": frozenset({"node", "gemini"}),
    "copilot": frozenset({"node", "copilot"}),
}


def agent_process(kind: str, environ: Mapping[str, str] | None = None,
                  parent: int | None = None) -> tuple[int | None, int | None]:
    """``(pid, start)`` of the agent process running this hook, or ``(None, None)``.

    Claude Code says it (``CLAUDE_PID``, verified). For the others it is the
    hook's parent process, past shells, if its name is the agent's (Codex's
    native ``codex``; Gemini and Copilot run on ``node``). Cursor runs its
    hooks from the editor, which outlives its conversations: none.
    """
    from store.sessions import proc_info

    env = os.environ if environ is None else environ
    if kind == "claude-code":
        raw = env.get("CLAUDE_PID", "")
        if raw.isdigit():
            info = proc_info(int(raw))
            return int(raw), (info.start if info else None)
    names = _AGENT_COMMS.get(kind)
    if not names:
        return None, None
    pid = os.getppid() if parent is None else parent
    for _ in range(8):
        info = proc_info(pid)
        if info is None or pid <= 1:
            return None, None
        if info.comm in _WRAPPERS:
            pid = info.ppid
            continue
        return (pid, info.start) if info.comm in names else (None, None)
    return None, None


# -- payload fields --------------------------------------------------------------------


def _first_str(payload: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _cwd(payload: Mapping[str, Any]) -> str | None:
    cwd = payload.get("cwd")
    if isinstance(cwd, str) and cwd:
        return cwd
    roots = payload.get("workspace_roots")
    if isinstance(roots, list) and roots and isinstance(roots[0], str):
        return roots[0]
    return None


def _input(payload: Mapping[str, Any]) -> Any:
    for key in ("tool_input", "toolArgs", "toolInput"):
        if key in payload:
            value = payload[key]
            if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
                try:
                    return json.loads(value)
                except ValueError:
                    return value
            return value
    return None


def _tool(name: str, payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    tool = _first_str(payload, "tool_name", "toolName")
    if name in _CURSOR_TOOLS:
        tool = _CURSOR_TOOLS[name]
    elif name in ("beforemcpexecution", "aftermcpexecution"):
        tool = f"mcp:{tool}" if tool else "mcp"
    data = _input(payload)
    if data is None:  # Cursor puts the target at the top level
        data = payload
    if tool == "apply_patch" and isinstance(data, Mapping):
        patch = data.get("command") or data.get("input") or data.get("patch")
        if isinstance(patch, str):
            paths = [a or b for a, b in _PATCH_PATH.findall(patch)]
            if paths:
                return tool, _short(", ".join(dict.fromkeys(paths)))
    return tool, _target(data, _cwd(payload))


def _target(data: Any, cwd: str | None) -> str | None:
    if isinstance(data, str):
        return _short(data) if data.strip() else None
    if not isinstance(data, Mapping):
        return None
    for key in _TARGET_FIELDS:
        value = data.get(key)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            # an argv: ["bash", "-lc", "the command"] is the command
            value = value[-1] if len(value) == 3 and value[1] in ("-c", "-lc") else " ".join(value)
        if isinstance(value, str) and value.strip():
            if key in _PATH_FIELDS and cwd and value.startswith(cwd.rstrip("/") + "/"):
                value = value[len(cwd.rstrip("/")) + 1:]  # a person reads paths from the worktree
            return _short(value)
    return None


def _short(text: str) -> str:
    return ellipsize(text, TARGET_LIMIT)


def _outcome(name: str, payload: Mapping[str, Any]) -> str:
    """How a finished tool call went, as far as its payload tells."""
    if name == "afterfileedit":
        return "ok"
    result = payload.get("toolResult")
    if isinstance(result, Mapping):  # Copilot
        kind = str(result.get("resultType", "")).lower()
        return {"success": "ok", "failure": "failed", "denied": "denied"}.get(kind, "done")
    response = payload.get("tool_response", payload.get("toolResponse"))
    if isinstance(response, str):  # Codex: the tool's text; its exit code only when it prints one
        match = _EXIT_CODE.match(response)
        if match:
            return "ok" if match.group(1) == "0" else "failed"
        return "done"
    if isinstance(response, Mapping):
        if response.get("error") or response.get("is_error") is True:
            return "failed"
        return "ok"
    return "done"


def _notification(base: SessionEvent, payload: Mapping[str, Any]) -> SessionEvent:
    ntype = _first_str(payload, "notification_type", "notificationType") or ""
    found = _NOTIFICATIONS.get(ntype.lower())
    if found is None:
        return base
    state, asked = found
    if state != "waiting":
        return base.replace(state=state)
    details = payload.get("details")
    title = details.get("title") if isinstance(details, Mapping) else None
    message = _first_str(payload, "message") or (title if isinstance(title, str) else None)
    reason = f"{asked}: {_short(message)}" if message else asked
    return base.replace(state=state, reason=reason)
