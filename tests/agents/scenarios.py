"""The scenarios the real-agent tests and the capture script share.

``decision_matrix``: one agent session that makes one shell call per way a
PreToolUse/BeforeTool hook can answer (empty, allow, deny, ask, exit 2, exit 1,
timeout, garbage, the legacy ``decision: block``) plus a denied file write, each
call creating its own marker file; the result says, per case, whether the
command ran and what the model was told.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.agents import harness
from tests.agents.model_server import ModelServer, Text

PRE = {"claude": "PreToolUse", "codex": "PreToolUse", "gemini": "BeforeTool"}
HOOK_TIMEOUT = {"claude": 2, "codex": 2, "gemini": 2000}  # each agent's own unit: s, s, ms
SLEEP = 6  # the timeout case sleeps well past every HOOK_TIMEOUT


def _answer(kind: str, decision: str, reason: str) -> dict:
    if kind == "gemini":
        return {"decision": decision, "reason": reason}
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": decision,
                                   "permissionDecisionReason": reason}}


def cases(kind: str) -> dict[str, dict]:
    """case name -> the recording hook's rule for it (see record_hook.py)."""
    out = {
        "empty": {"exit": 0},
        "allow_json": {"stdout": _answer(kind, "allow", "MARK-allow_json")},
        "deny_json": {"stdout": _answer(kind, "deny", "MARK-deny_json")},
        "ask_json": {"stdout": _answer(kind, "ask", "MARK-ask_json")},
        "exit2": {"stderr": "MARK-exit2", "exit": 2},
        "exit1": {"stderr": "MARK-exit1", "exit": 1},
        "timeout": {"sleep": SLEEP},
        "garbage": {"stdout": "this is not json {", "exit": 0},
    }
    if kind != "gemini":
        out["block_legacy"] = {"stdout": {"decision": "block", "reason": "MARK-block_legacy"}}
    else:
        # Gemini CLI run headless waits for ever on an "ask" (a confirmation
        # nobody can give): it would stall the rest of the matrix; see gemini_ask.
        del out["ask_json"]
    return out


@dataclass
class CaseResult:
    ran: bool  # the command (or write) took effect
    told: str | None  # what the model got back as the tool's result
    is_error: bool | None
    reason_seen: bool  # the MARK of this case reached the model


@dataclass
class MatrixRun:
    run: harness.AgentRun
    results: dict[str, CaseResult]
    log: Path


def decision_matrix(kind: str, binary: Path, base: Path) -> MatrixRun:
    sb = harness.Sandbox.create(base)
    log, rules = base / "hooks.jsonl", base / "rules.json"
    names = list(cases(kind))
    rule_list = [{"event": PRE[kind], "input": f"case_{n}\\b", **r} for n, r in cases(kind).items()]
    rule_list.append({"event": PRE[kind], "input": "case_deny_write", "stdout": _answer(kind, "deny", "MARK-deny_write")})
    rules.write_text(json.dumps(rule_list))
    harness.add_hook(kind, sb.hooks_root(kind), PRE[kind],
                     f"{harness.sys.executable} {harness.RECORD_HOOK} {log} {rules}",
                     timeout=HOOK_TIMEOUT[kind])
    script = [harness.shell_call(kind, f"touch case_{n}") for n in names]
    script.append(harness.write_call(kind, sb.root, "case_deny_write.txt", "x"))
    script.append(Text("finished"))
    with ModelServer(script) as srv:
        run = harness.run_agent(kind, binary, sb, srv.url, timeout=180)
        results = {}
        for i, n in enumerate([*names, "deny_write"]):
            tr = srv.result_for(i)
            marker = sb.root / (f"case_{n}" if n != "deny_write" else "case_deny_write.txt")
            results[n] = CaseResult(marker.exists(), tr.output if tr else None, tr.is_error if tr else None,
                                    bool(tr and f"MARK-{n}" in tr.output))
    return MatrixRun(run, results, log)
