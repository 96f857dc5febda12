"""The hook's last line of defence: one decision on stdout and exit 0, whatever happens.

Claude Code runs the tool call when its hook exits non-zero (other than 2),
prints nothing usable, or outlives its timeout. So a process started as
``tower hook claude-code`` answers exactly once, through :func:`answer`, and
whatever goes wrong before that (an import that fails, a bad option, an
exception, a signal, a write to stdout that fails, a deadline that passes)
turns into a ``deny`` saying why. If even stdout cannot take the answer, the
process exits 2, which Claude Code treats as a block, with the reason on stderr.

Imports only the standard library: it must work when the rest of Tower cannot
be imported.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable



def _spawned_at() -> float:
    """``time.monotonic()`` of when this process was started, as the agent's clock counts it.

    The agent's timeout runs from the moment it spawned the hook; starting the
    interpreter takes tens of milliseconds on a quiet machine and much more on
    a loaded one, so the deadline counts from the process's own start time
    (Linux: ``/proc/self/stat``, in clock ticks after boot), not from when
    Python reached this line. Elsewhere, or if that cannot be read, from now.
    """
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 60 else now  # anything else is not a start time we can trust


STARTED = _spawned_at()  # the deadline counts from here

AGENT_KINDS = ("claude-code", "codex", "gemini", "copilot", "cursor")
HOOKS = {("hook", kind) for kind in AGENT_KINDS}
_REASON_LIMIT = 2000
_SURROGATE = re.compile("[\ud800-\udfff]")

_answered = False
# whose format the answer takes, and for which event: set from argv in run() and by
# the adapter once it has read the event, so a crash at any point denies in the
# format the agent reads (a Codex PermissionRequest wants decision.behavior)
_format = "claude-code"
_event: str | None = None
_hard_deadline: float | None = None
_budget_deadline: float | None = None


class HookInterrupted(BaseException):
    """A signal (SIGTERM, SIGINT, SIGHUP) reached the hook before it decided."""


class OutOfTime(BaseException):
    """The policy check used up its time budget (see :func:`budget`)."""


def is_hook(args: list[str]) -> bool:
    """True when these arguments run an agent hook (``… hook claude-code …``)."""
    return any((a, b) in HOOKS for a, b in zip(args, args[1:]))


def answered() -> bool:
    return _answered


def set_format(kind: str, event: str | None = None) -> None:
    global _format, _event
    if kind in AGENT_KINDS:
        _format = kind
    if event is not None:
        _event = event


def _clean(reason: str) -> str:
    reason = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", " ".join(str(reason).split()))
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 1] + "…"
    return reason


def body(decision: str, reason: str, kind: str | None = None, event: str | None = None) -> dict:
    """The answer object in ``kind``'s format for ``event`` (docs/agents.md).

    ``decision`` ``noop`` is the answer to an event that decides nothing
    (PostToolUse, Stop, SessionStart …): an empty object every agent reads as
    "carry on". ``ask`` reaches only agents that enforce it (Claude Code,
    Copilot, Cursor); the adapters turn it into ``deny`` for the others.
    """
    kind = kind or _format
    event = event if event is not None else _event
    if decision == "noop":
        return {}
    low = (event or "").lower()
    if kind in ("claude-code", "codex"):
        if low == "permissionrequest":
            behavior = "allow" if decision == "allow" else "deny"
            d: dict = {"behavior": behavior}
            if behavior == "deny":
                d["message"] = reason
            return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": d}}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": decision,
                                       "permissionDecisionReason": reason}}
    if kind == "gemini":
        return {"decision": "allow" if decision == "allow" else "deny", "reason": reason}
    if kind == "copilot":
        if low == "permissionrequest":
            return {"behavior": "allow" if decision == "allow" else "deny", "message": reason}
        return {"permissionDecision": decision, "permissionDecisionReason": reason}
    # cursor
    return {"permission": decision, "user_message": reason, "agent_message": reason}


def encode(decision: str, reason: str) -> bytes:
    """The documented answer of this hook's agent, as one line of bytes that always encodes.

    Lone surrogates (JSON allows them, UTF-8 does not) are shown as ``\\udcff``.
    """
    data = body(decision, _clean(reason))
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def answer(decision: str, reason: str) -> None:
    """Print the one decision of this process (later calls do nothing).

    Exits 2 (a block, for Claude Code) with the reason on stderr when stdout
    cannot take it.
    """
    global _answered
    if _answered:
        return
    if decision not in ("allow", "deny", "ask", "noop"):
        decision, reason = "deny", f"Tower hook: not a decision {decision!r} ({reason})"
    _disarm()  # first: the watchdog must not cut the answer in half, nor exit before it is out
    _answered = True
    data = encode(decision, reason)
    try:
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]
    except OSError as exc:
        _block(f"Tower hook could not write its decision to stdout ({exc.strerror or exc}): blocked")


def _block(reason: str) -> None:
    try:
        os.write(2, (reason + "\n").encode("utf-8", "backslashreplace"))
    except OSError:
        pass
    os._exit(2)


def deny_unless_answered(reason: str) -> None:
    answer("deny", reason)


# -- signals and the watchdog -------------------------------------------------------------


def _on_signal(signum, frame) -> None:
    raise HookInterrupted(signal.Signals(signum).name)


def _on_alarm(signum, frame) -> None:
    if _answered:
        return  # the answer is being written (its alarms were disarmed first)
    now = time.monotonic()
    if _hard_deadline is not None and now >= _hard_deadline - 0.001:
        # past this point Claude Code may kill the hook and run the call: answer now, from here
        answer("deny", f"Tower hook ran out of time: no decision within its deadline"
                       f" ({_hard_deadline - STARTED:.1f}s after it started): denied")
        os._exit(0)
    if _budget_deadline is not None and now >= _budget_deadline - 0.001:
        raise OutOfTime()
    _rearm()


def _rearm() -> None:
    times = [t for t in (_hard_deadline, _budget_deadline) if t is not None]
    if not times:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    signal.setitimer(signal.ITIMER_REAL, max(min(times) - time.monotonic(), 0.001))


def _disarm() -> None:
    global _hard_deadline, _budget_deadline
    _hard_deadline = _budget_deadline = None
    try:
        signal.setitimer(signal.ITIMER_REAL, 0)
    except (ValueError, OSError):
        pass


def set_deadline(at: float) -> None:
    """Answer ``deny`` and exit at ``at`` (monotonic) if no decision was made by then."""
    global _hard_deadline
    if _answered:
        return
    _hard_deadline = at
    signal.signal(signal.SIGALRM, _on_alarm)
    _rearm()


class budget:
    """``with budget(seconds):`` raises :class:`OutOfTime` if the block runs longer.

    Python's regular expressions check for signals while they match, so a
    pathological pattern or input is cut short too.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> budget:
        global _budget_deadline
        _budget_deadline = time.monotonic() + self.seconds
        signal.signal(signal.SIGALRM, _on_alarm)
        _rearm()
        return self

    def __exit__(self, *exc_info) -> None:
        global _budget_deadline
        _budget_deadline = None
        if not _answered:
            _rearm()


def broken_install(exc: BaseException) -> None:
    """Tower's own modules failed to import: if this process is a hook, deny and exit; else return."""
    if is_hook(sys.argv[1:]):

        def reraise() -> None:
            raise exc

        run(reraise)


def run(main: Callable[[], object]) -> None:
    """Run the hook's command line so that it answers exactly once and exits 0 (or 2, see above)."""
    # stdout is the answer's alone: a stray print there would make it unreadable to Claude Code
    sys.stdout = sys.stderr
    args = sys.argv[1:]
    for a, b in zip(args, args[1:]):
        if (a, b) in HOOKS:
            set_format(b)
            break
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            pass
    try:
        main()
    except HookInterrupted as exc:
        answer("deny", f"Tower hook interrupted ({exc}) before it could decide")
    except SystemExit as exc:
        if not _answered:
            answer("deny", f"Tower hook stopped before it could decide (exit {exc.code})")
    except BaseException as exc:  # noqa: BLE001 - anything but an answer lets the call through
        answer("deny", f"Tower hook failed before it could decide: {type(exc).__name__}: {exc}"
                       " (a bug or a broken install: please report it)")
    deny_unless_answered("Tower hook ended without a decision (a bug: please report it)")
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    # the answer is out; a store connection's worker thread must not keep us alive past the deadline
    os._exit(0)
