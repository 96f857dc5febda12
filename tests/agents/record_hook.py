"""A recording hook for any agent: appends what it was given to a log, answers as told.

Installed as the hook command of every event in an agent's own hook config::

    python3 record_hook.py LOG [RULES|-] [NOTIFY_URL]

Each call appends one JSON line to LOG: ``{"argv", "env", "cwd", "stdin", "payload",
"pid", "at"}`` (``payload``: stdin parsed as JSON, or null). RULES, when given,
is a JSON file read on every call (so a test can change the answer between
calls): a list of ``{"event": ..., "tool": ..., "stdout": ..., "stderr": ...,
"exit": ..., "sleep": ..., "input": ...}``; the first rule whose ``event``,
``tool`` and ``input`` (all optional; ``tool`` is a regular expression matched
in full against ``tool_name``, ``input`` one searched in the JSON text of
``tool_input``) fit the payload decides the answer. ``stdout`` is written as is
when it is a string, JSON-encoded otherwise. No rule: exit 0 with nothing on
stdout, which every agent reads as "no opinion". NOTIFY_URL, when given, gets
the payload POSTed too (the model server's ``/hook-event``), so a test can wait
for a hook event instead of polling the log.

Stdlib only and nothing else, so the hook itself costs the agent a Python
start and no more.
"""

import json
import os
import re
import sys
import time

ENV_KEYS = ("TOWER_AGENT", "TOWER_LEASE", "TOWER_WORKTREE", "CLAUDE_PROJECT_DIR", "CLAUDE_CODE_ENTRYPOINT",
            "CODEX_HOME", "CODEX_THREAD_ID", "CODEX_SANDBOX", "GEMINI_PROJECT_DIR", "GEMINI_CLI",
            "GEMINI_SESSION_ID", "CLAUDE_ENV_FILE", "PWD")


def main() -> int:
    log = sys.argv[1]
    rules_path = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    notify = sys.argv[3] if len(sys.argv) > 3 else None
    raw = sys.stdin.buffer.read()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    env = {k: v for k, v in os.environ.items()
           if k in ENV_KEYS or k.startswith(("CLAUDE_", "CODEX_", "GEMINI_"))}
    entry = {"argv": sys.argv[1:], "env": env, "cwd": os.getcwd(), "stdin": raw.decode("utf-8", "replace"),
             "payload": payload, "pid": os.getpid(), "at": time.time()}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    if notify:
        import urllib.request

        req = urllib.request.Request(notify, data=json.dumps(entry).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).close()
    rule = _rule(rules_path, payload if isinstance(payload, dict) else {})
    if rule is None:
        return 0
    if rule.get("sleep"):
        time.sleep(float(rule["sleep"]))
    out = rule.get("stdout")
    if out is not None:
        sys.stdout.write(out if isinstance(out, str) else json.dumps(out))
        sys.stdout.flush()
    if rule.get("stderr"):
        sys.stderr.write(rule["stderr"])
        sys.stderr.flush()
    return int(rule.get("exit", 0))


def _rule(path, payload):
    if not path or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        rules = json.load(fh)
    event = payload.get("hook_event_name")
    tool = payload.get("tool_name") or ""
    for rule in rules:
        if "event" in rule and rule["event"] != event:
            continue
        if "tool" in rule and not re.fullmatch(rule["tool"], tool):
            continue
        if "input" in rule and not re.search(rule["input"], json.dumps(payload.get("tool_input"))):
            continue
        return rule
    return None


if __name__ == "__main__":
    sys.exit(main())
