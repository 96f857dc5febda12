"""The Claude Code hook's pure parts: its input, its answer, and its settings entry.

``tower hook claude-code`` (tui/commands/hook.py) reads one ``PreToolUse``
object on stdin and answers one decision on stdout; this module knows the
shape of both, which tools write files, how a call is summarised for a
person, and how Tower's entry is merged into (and removed from) a
``.claude/settings.json`` without touching anything else in it. No I/O here
beyond what the caller hands in.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex

from core.display import ellipsize
from core.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EVENT = "PreToolUse"

# tool -> the tool_input field holding the file it writes
FILE_TOOLS: dict[str, str] = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}
# fields that name a file or directory a tool reads, for the policy's `paths`
PATH_FIELDS = ("file_path", "notebook_path", "path")

_SURROGATE = re.compile("[\ud800-\udfff]")
_DETAIL_LIMIT = 2000


class HookInputError(ValueError):
    """Stdin is not a PreToolUse object; ``str()`` is one line."""


@record(frozen=True)
class HookInput:
    tool_name: str
    tool_input: dict[str, Any]
    cwd: str | None = None
    session_id: str | None = None
    tool_use_id: str | None = None
    transcript_path: str | None = None
    permission_mode: str | None = None
    hook_event_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str | None:
        value = self.tool_input.get("command")
        return value if isinstance(value, str) else None

    @property
    def written_path(self) -> str | None:
        """The file a writing tool is about to write ('' if the field is missing)."""
        name = FILE_TOOLS.get(self.tool_name)
        if name is None:
            return None
        value = self.tool_input.get(name)
        return value if isinstance(value, str) else ""

    @property
    def read_path(self) -> str | None:
        for name in PATH_FIELDS:
            value = self.tool_input.get(name)
            if isinstance(value, str) and value:
                return value
        return None


def load_object(raw: bytes | str, what: str = "JSON object") -> dict[str, Any]:
    """A hook's stdin as one JSON object; :class:`HookInputError` (one line) for anything else."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HookInputError(f"stdin is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not raw.strip():
        raise HookInputError(f"stdin is empty: expected one {what}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HookInputError(f"stdin is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise HookInputError(f"stdin is a JSON {type(data).__name__}, not an object")
    return data


def parse_input(raw: bytes | str) -> HookInput:
    """Parse Claude Code's PreToolUse stdin; raise :class:`HookInputError` for anything unusable."""
    data = load_object(raw, "PreToolUse JSON object")
    event = data.get("hook_event_name")
    if event is not None and event != EVENT:
        raise HookInputError(f"this hook handles {EVENT} only, got hook_event_name {event!r}")
    tool = data.get("tool_name")
    if not isinstance(tool, str) or not tool:
        raise HookInputError("tool_name is missing or not a string")
    tool_input = data.get("tool_input", {})
    if not isinstance(tool_input, dict):
        raise HookInputError("tool_input is not an object")
    bad = _lone_surrogate([tool, data.get("cwd"), tool_input])
    if bad is not None:
        # JSON allows "\udcff"; no real command or path holds it, and what would run is unknowable
        raise HookInputError(f"the call holds a lone surrogate ({bad}), which is not valid Unicode:"
                             " Tower cannot tell what would run")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    known = {"tool_name", "tool_input", "cwd", "session_id", "tool_use_id", "transcript_path",
             "permission_mode", "hook_event_name"}
    return HookInput(
        tool_name=tool,
        tool_input=tool_input,
        cwd=text("cwd"),
        session_id=text("session_id"),
        tool_use_id=text("tool_use_id"),
        transcript_path=text("transcript_path"),
        permission_mode=text("permission_mode"),
        hook_event_name=text("hook_event_name"),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _lone_surrogate(values: list[Any]) -> str | None:
    """The first lone surrogate in these JSON values (keys included), as ``\\udcff``; None if none."""
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return f"\\u{ord(found.group()):04x}"
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def short(text: str, limit: int = 100) -> str:
    return ellipsize(text, limit)


def approval_kind(call: HookInput) -> str:
    if call.tool_name == "Bash":
        return "command"
    if call.tool_name in FILE_TOOLS:
        return "write"
    return "custom"


def approval_summary(call: HookInput, rel_path: str | None = None) -> str:
    if call.command is not None:
        return f"{call.tool_name}: {short(call.command)}"
    if rel_path or call.written_path or call.read_path:
        return f"{call.tool_name} {rel_path or call.written_path or call.read_path}"
    return f"{call.tool_name}: {short(json.dumps(call.tool_input, ensure_ascii=False, sort_keys=True))}"


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _DETAIL_LIMIT:
        return value[:_DETAIL_LIMIT] + f"… ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value[:50]]
    return value


def approval_detail(call: HookInput, *, rel_path: str | None, policy_reason: str) -> dict[str, Any]:
    """What a person sees when deciding: the call itself (long texts clipped) and why it was asked."""
    detail: dict[str, Any] = {
        "source": "claude-code",
        "tool": call.tool_name,
        "tool_input": _clip(call.tool_input),
        "policy": policy_reason,
    }
    if call.command is not None:
        detail["command"] = call.command
    if rel_path is not None:
        detail["path"] = rel_path
    for key in ("cwd", "session_id", "tool_use_id", "permission_mode", "transcript_path"):
        value = getattr(call, key)
        if value is not None:
            detail[key] = value
    return detail


# -- .claude/settings.json ------------------------------------------------------------

def is_tower_command(command: Any, kind: str = "claude-code") -> bool:
    """True for a hook command that runs ``tower hook <kind>`` (however tower is spelled)."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    for i in range(1, len(words) - 1):
        if (words[i], words[i + 1]) == ("hook", kind):
            if any(os.path.basename(w).startswith("tower") or w == "tui.cli" for w in words[:i]):
                return True
    return False


def is_tower_hook(command: Any) -> bool:
    """True for a hook command that runs ``tower hook claude-code``."""
    return is_tower_command(command, "claude-code")


def hook_command(program: list[str], db: str | None = None, deadline: int | None = None, *,
                 kind: str = "claude-code", event: str | None = None) -> str:
    """The shell command an agent runs: ``<tower> hook <kind> [--event E] [--db PATH] [--deadline N]``.

    ``deadline`` is the entry's timeout in seconds: the hook learns from it when
    the agent will kill it (and let the call through), and stops waiting for a
    person :data:`DEADLINE_MARGIN` seconds before that. ``event``: for agents
    whose payloads do not name their event (Copilot's camelCase ones).
    """
    words = [*program, "hook", kind]
    if event:
        words += ["--event", event]
    if db:
        words += ["--db", db]
    if deadline is not None:
        words += ["--deadline", str(deadline)]
    return " ".join(shlex.quote(w) for w in words)


# -- the hook's own deadline ------------------------------------------------------------

# Claude Code kills a hook that outlives its entry's ``timeout`` and lets the
# call through; the hook stops waiting this long before that (start-up, the
# store's write, and answering all fit easily in it).
DEADLINE_MARGIN = 30.0


def parse_deadline(text: Any) -> float:
    """``--deadline N``: a finite number of seconds above 0; ValueError (one line) otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"--deadline must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--deadline must be a finite number of seconds above 0, got {text!r}")
    return value


def wait_budget(deadline: float) -> float:
    """How long the hook may wait for a person when Claude Code kills it after ``deadline`` s.

    ``deadline - 30`` (half the deadline when it is shorter than a minute),
    measured from the hook's start.
    """
    return deadline - min(DEADLINE_MARGIN, deadline / 2)


def installed_deadline(command: Any) -> float | None:
    """The ``--deadline`` of an installed hook command, None if it has none (or an unusable one)."""
    if not isinstance(command, str):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for i, word in enumerate(words):
        value = word[len("--deadline="):] if word.startswith("--deadline=") else None
        if word == "--deadline" and i + 1 < len(words):
            value = words[i + 1]
        if value is not None:
            try:
                return parse_deadline(value)
            except ValueError:
                return None
    return None


def tower_entries(settings: Any) -> list[dict[str, Any]]:
    """Tower's hook entries in a settings object, read leniently (for `tower hook check`)."""
    hooks = settings.get("hooks") if isinstance(settings, dict) else None
    groups = hooks.get(EVENT) if isinstance(hooks, dict) else None
    found = []
    for group in groups if isinstance(groups, list) else []:
        entries = group.get("hooks") if isinstance(group, dict) else None
        for h in entries if isinstance(entries, list) else []:
            if isinstance(h, dict) and is_tower_hook(h.get("command")):
                found.append(h)
    return found


def deadline_warnings(settings: Any, ask_timeout: float, where: str, default_timeout: float) -> list[str]:
    """Why Tower's entries in ``settings`` may let a call through before a person decides.

    Claude Code kills the hook after the entry's ``timeout`` (``default_timeout``
    when absent) and then lets the call through; the hook stops waiting at
    ``wait_budget(--deadline)``. A policy ask timeout beyond what the installed
    entry allows is capped (or, for an entry without ``--deadline``, fails open).
    """
    out = []
    for h in tower_entries(settings):
        timeout = h.get("timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or timeout <= 0:
            timeout = default_timeout
        deadline = installed_deadline(h.get("command"))
        again = "run `tower hook install claude-code` again (or lower [ask] timeout)"
        if deadline is None:
            if ask_timeout > wait_budget(timeout):
                out.append(f"{where}: Tower's hook entry has no --deadline (installed by an older Tower), so it"
                           f" waits up to the policy's ask timeout of {ask_timeout:g}s, but Claude Code stops"
                           f" it after {timeout:g}s and lets the call through: {again}")
            continue
        if deadline > timeout:
            out.append(f"{where}: Tower's hook entry says --deadline {deadline:g} but its timeout is"
                       f" {timeout:g}s: Claude Code may stop the hook before it answers and let the call"
                       f" through: {again}")
            deadline = timeout
        if ask_timeout > wait_budget(deadline):
            out.append(f"{where}: the policy's ask timeout ({ask_timeout:g}s) exceeds the installed hook's"
                       f" deadline ({deadline:g}s): the hook stops waiting for a person after"
                       f" {wait_budget(deadline):g}s; {again}")
    return out


# -- merging into .claude/settings.json ------------------------------------------------


def _check_shapes(groups: list[Any]) -> None:
    """Refuse (ValueError naming the spot) PreToolUse groups whose shape we would trip over."""
    for i, group in enumerate(groups):
        where = f'"hooks"."{EVENT}"[{i}]'
        if not isinstance(group, dict):
            raise ValueError(f"its {where} is a JSON {_json_type(group)}, not an object")
        entries = group.get("hooks")
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ValueError(f"its {where}.\"hooks\" is a JSON {_json_type(entries)}, not a list")
        for j, h in enumerate(entries):
            if not isinstance(h, dict):
                raise ValueError(f"its {where}.\"hooks\"[{j}] is a JSON {_json_type(h)}, not an object")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else type(value).__name__


def _pre_tool_use(settings: dict[str, Any], create: bool) -> list[Any] | None:
    hooks = settings.get("hooks")
    if hooks is None:
        if not create:
            return None
        hooks = settings["hooks"] = {}
    if not isinstance(hooks, dict):
        raise ValueError("its \"hooks\" is not an object")
    groups = hooks.get(EVENT)
    if groups is None:
        if not create:
            return None
        groups = hooks[EVENT] = []
    if not isinstance(groups, list):
        raise ValueError(f"its \"hooks\".\"{EVENT}\" is not a list")
    _check_shapes(groups)
    return groups


def _strip_ours(groups: list[Any]) -> int:
    """Remove Tower's entries from PreToolUse groups in place; drop groups left empty."""
    removed = 0
    for group in list(groups):
        if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
            continue
        kept = [h for h in group["hooks"] if not (isinstance(h, dict) and is_tower_hook(h.get("command")))]
        if len(kept) != len(group["hooks"]):
            removed += len(group["hooks"]) - len(kept)
            if kept:
                group["hooks"] = kept
            else:
                groups.remove(group)
    return removed


def install_entry(settings: dict[str, Any], command: str, timeout: int) -> bool:
    """Put Tower's PreToolUse entry (matcher "*": every tool) into ``settings``.

    Everything else is kept as it was: other keys, other events, other
    PreToolUse groups and their hooks, in their order. An existing Tower entry
    is replaced where it stands (so a new path, ``--deadline`` or timeout takes
    effect), never duplicated. Returns True if ``settings`` changed. Raises
    ValueError, before changing anything, for a settings object whose ``hooks``
    has an unexpected shape.
    """
    ours = {"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": timeout}]}
    groups = _pre_tool_use(settings, create=True)
    assert groups is not None
    present = [g for g in groups if any(is_tower_hook(h.get("command")) for h in g.get("hooks") or [])]
    if present == [ours]:
        return False
    result: list[Any] = []
    placed = False
    for group in groups:
        entries = group.get("hooks") or []
        if not any(is_tower_hook(h.get("command")) for h in entries):
            result.append(group)
            continue
        kept = [h for h in entries if not is_tower_hook(h.get("command"))]
        if kept:  # a group we share keeps its other hooks; ours goes right after it
            group["hooks"] = kept
            result.append(group)
        if not placed:
            result.append(ours)
            placed = True
    if not placed:
        result.append(ours)
    groups[:] = result
    return True


def remove_entry(settings: dict[str, Any]) -> int:
    """Remove Tower's entries only; returns how many. Containers Tower emptied go too."""
    groups = _pre_tool_use(settings, create=False)
    if groups is None:
        return 0
    removed = _strip_ours(groups)
    if removed and not groups:
        del settings["hooks"][EVENT]
        if not settings["hooks"]:
            del settings["hooks"]
    return removed
