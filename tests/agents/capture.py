"""Capture the real hook payloads of each installed agent into tests/agents/fixtures/<agent>/.

    .venv/bin/python -m tests.agents.capture [claude codex gemini]

Runs each agent against the scripted model server with the recording hook on
every event it knows, through: a shell command, a failing shell command, a new
file, an edit, the agent's permission path, and the decision matrix
(scenarios.decision_matrix). Writes one fixture per event (and per tool for
tool events) as the binary sent it, throw-away paths replaced by
``/tmp/sandbox``; ``decisions.json`` (what each hook answer did); ``hook-env.json``
(the environment variables the agent gives its hooks); and ``versions.json``.
docs/agents.md is written from these files.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.agents import harness, scenarios
from tests.agents.model_server import ModelServer, Text, ToolCall

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCRUB = "/tmp/sandbox"
SECRET_ENV = ("TOKEN", "KEY", "SECRET")


def _scrub(obj, base: str):
    # Claude Code also names per-project folders after the path, every other character a "-"
    mangled = re.sub(r"[^A-Za-z0-9]", "-", base)
    text = json.dumps(obj, ensure_ascii=False).replace(base, SCRUB).replace(mangled, re.sub(r"[^A-Za-z0-9]", "-", SCRUB))
    return json.loads(text)


def _trim_model_payload(p: dict) -> dict:
    """Gemini's model events carry the whole conversation and system prompt: keep their shape, not their text."""
    p = json.loads(json.dumps(p))
    for key in ("llm_request", "llm_response"):
        req = p.get(key)
        if isinstance(req, dict):
            for m in req.get("messages") or []:
                if isinstance(m.get("content"), str) and len(m["content"]) > 200:
                    m["content"] = m["content"][:200] + "…"
            if isinstance(req.get("config"), dict) and "systemInstruction" in req["config"]:
                req["config"]["systemInstruction"] = "…"
    return p


def _save(kind: str, name: str, data, base: Path) -> None:
    path = FIXTURES / kind / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_scrub(data, str(base)), indent=2, ensure_ascii=False) + "\n")
    print(f"  {path.relative_to(FIXTURES.parent.parent.parent)}")


def _save_payloads(kind: str, log: Path, base: Path, *, only: set[str] | None = None) -> dict:
    saved: dict[str, dict] = {}
    env: dict[str, str] = {}
    for entry in harness.read_log(log):
        p = entry["payload"] or {}
        event = p.get("hook_event_name")
        if not event or (only and event not in only):
            continue
        name = event + (f".{p['tool_name']}" if p.get("tool_name") and event in harness.TOOL_EVENTS else "")
        if event == "Notification" and p.get("notification_type"):
            name += f".{p['notification_type']}"
        if name not in saved:
            saved[name] = _trim_model_payload(p) if event in harness.GEMINI_MODEL_EVENTS else p
        for k, v in entry["env"].items():
            env[k] = "<redacted>" if any(s in k for s in SECRET_ENV) else v
    for name, p in saved.items():
        _save(kind, name, p, base)
    return env


def events_script(kind: str, root: Path) -> list:
    # Claude Code refuses to Edit a file it has not Read in the session
    read = [ToolCall("Read", {"file_path": str(root / "README.md")})] if kind == "claude" else []
    return [
        harness.shell_call(kind, "echo tower-probe"),
        harness.shell_call(kind, "ls does-not-exist"),
        harness.write_call(kind, root, "notes.txt", "first line"),
        *read,
        harness.edit_call(kind, root, "README.md", "# demo", "# demo edited"),
        Text("finished"),
    ]


def capture_events(kind: str, binary: Path, work: Path) -> None:
    base = work / f"{kind}-events"
    sb = harness.Sandbox.create(base)
    log = base / "hooks.jsonl"
    events = harness.EVENTS[kind] + (harness.GEMINI_MODEL_EVENTS if kind == "gemini" else ())
    harness.install_recorder(kind, sb.hooks_root(kind), log, events=events)
    with ModelServer(events_script(kind, sb.root)) as srv:
        run = harness.run_agent(kind, binary, sb, srv.url, "Probe the hooks.")
    if run.code != 0:
        raise SystemExit(run.describe())
    print(f"{kind}: events run {run.seconds:.1f}s")
    env = _save_payloads(kind, log, base)
    _save(kind, "hook-env", env, base)


def capture_permission(kind: str, binary: Path, work: Path) -> None:
    """The agent's own permission path: Claude Code and Codex PermissionRequest, Gemini's Notification."""
    base = work / f"{kind}-permission"
    sb = harness.Sandbox.create(base)
    log = base / "hooks.jsonl"
    command = "python3 -c \"open('perm_probe','w')\""
    if kind == "claude":
        harness.install_recorder(kind, sb.hooks_root(kind), log, events=("PermissionRequest", "Notification"))
        script = [ToolCall("Bash", {"command": command, "description": "needs a permission"}), Text("ok")]
        args: tuple[str, ...] = ()  # acceptEdits does not cover running python: Claude Code asks
    elif kind == "codex":
        harness.install_recorder(kind, sb.hooks_root(kind), log, events=("PermissionRequest",))
        script = [ToolCall("exec_command", {"cmd": command, "sandbox_permissions": "require_escalated",
                                            "justification": "needs a permission"}), Text("ok")]
        args = ("--approve-for-me",)
    else:
        rules = base / "rules.json"
        rules.write_text(json.dumps([{"event": "BeforeTool", "stdout": {"decision": "ask", "reason": "probe"}}]))
        harness.install_recorder(kind, sb.hooks_root(kind), log, rules, events=("BeforeTool", "Notification"))
        script = [harness.write_call(kind, sb.root, "perm_probe", "x"), Text("ok")]
        args = ()
    with ModelServer(script) as srv:
        # Gemini waits for ever on its own confirmation: the run is cut at the timeout
        run = harness.run_agent(kind, binary, sb, srv.url, timeout=30 if kind == "gemini" else 120,
                                args=args)
    print(f"{kind}: permission run {run.seconds:.1f}s (exit {run.code})")
    _save_payloads(kind, log, base, only={"PermissionRequest", "Notification"})


def capture_decisions(kind: str, binary: Path, work: Path) -> None:
    m = scenarios.decision_matrix(kind, binary, work / f"{kind}-matrix")
    out = {
        "hook_timeout": {"value": scenarios.HOOK_TIMEOUT[kind], "unit": "ms" if kind == "gemini" else "s"},
        "answers": {case: rule for case, rule in scenarios.cases(kind).items()},
        "results": {case: {"ran": r.ran, "reason_seen": r.reason_seen, "is_error": r.is_error,
                           "model_was_told": r.told} for case, r in m.results.items()},
    }
    print(f"{kind}: decision matrix {m.run.seconds:.1f}s")
    _save(kind, "decisions", out, work / f"{kind}-matrix")


def version(kind: str, binary: Path) -> str:
    argv = ["node", str(binary), "--version"] if kind == "gemini" else [str(binary), "--version"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()


def main(kinds: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="tower-capture-"))
    versions = json.loads((FIXTURES / "versions.json").read_text()) if (FIXTURES / "versions.json").exists() else {}
    try:
        for kind in kinds:
            binary, why = harness.find_binary(kind)
            if binary is None:
                print(f"skipping {why}")
                continue
            shutil.rmtree(FIXTURES / kind, ignore_errors=True)
            capture_events(kind, binary, work)
            capture_permission(kind, binary, work)
            capture_decisions(kind, binary, work)
            versions[kind] = version(kind, binary)
        (FIXTURES / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(harness.KINDS))
