"""Every adapter over its agent's real (or documented) payloads: decision, answer format, hook.denied, session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "agents" / "fixtures"
TOWER = [sys.executable, "-m", "tui.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(args, cwd, stdin: bytes, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    e["PYTHONPATH"] = str(ROOT)
    e.update(env or {})
    return subprocess.run([*TOWER, *args], cwd=cwd, input=stdin, capture_output=True, env=e, timeout=120)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("adapters")
    r = base / "r"
    subprocess.run(["git", "init", "-q", str(r)], check=True)
    subprocess.run(["git", "-C", str(r), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "i"], check=True)
    assert run(["init"], r, b"").returncode == 0
    return r


def payload(rel: str, root: Path) -> bytes:
    return (FIXTURES / rel).read_text().replace("/tmp/sandbox/wt-agent", str(root)).encode()


def audit(root: Path) -> list[dict]:
    out = run(["audit", "tail", "-n", "200", "--json"], root, b"")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["data"]


# (fixture, extra args, expected decision field path, expected value, denied?)
CASES = [
    ("codex/PreToolUse.Bash.json", [], ("hookSpecificOutput", "permissionDecision"), "allow", False),
    ("codex/PreToolUse.apply_patch.json", [], ("hookSpecificOutput", "permissionDecision"), "deny", True),
    ("codex/PostToolUse.Bash.json", [], (), {}, False),
    ("gemini/BeforeTool.write_file.json", [], ("decision",), "deny", True),
    ("gemini/BeforeTool.replace.json", [], ("decision",), "deny", True),
    ("gemini/AfterTool.run_shell_command.json", [], (), {}, False),
    ("copilot/preToolUse.bash.json", ["--event", "preToolUse"], ("permissionDecision",), "deny", True),
    ("copilot/postToolUse.bash.json", ["--event", "postToolUse"], (), {}, False),
    ("cursor/beforeShellExecution.json", [], ("permission",), "deny", True),
    ("cursor/afterFileEdit.json", [], (), {}, False),
]


@pytest.mark.parametrize("rel,extra,field,value,denied", CASES, ids=[c[0] for c in CASES])
def test_adapter_answers_in_its_format_and_audits_refusals(repo, rel, extra, field, value, denied):
    kind = rel.split("/")[0]
    before = len([e for e in audit(repo) if e.get("event") == "hook.denied"])
    p = run(["hook", kind, *extra], repo, payload(rel, repo))
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    got = answer
    for key in field:
        got = got[key]
    assert got == value, answer
    denials = [e for e in audit(repo) if e.get("event") == "hook.denied"]
    assert len(denials) == before + (1 if denied else 0)
    if denied:
        assert denials[-1]["details"]["agent"] == kind


def test_codex_apply_patch_claims_every_path():
    from tui.services.hook_adapters import parse, patch_paths

    patch = ("*** Begin Patch\n*** Add File: a.txt\n+x\n*** Update File: src/b.py\n*** Move to: src/c.py\n"
             "@@\n-x\n+y\n*** Delete File: d.md\n*** End Patch\n")
    assert patch_paths(patch) == ["a.txt", "src/b.py", "src/c.py", "d.md"]
    p = parse("codex", json.dumps({"hook_event_name": "PreToolUse", "tool_name": "apply_patch",
                                   "tool_input": {"command": patch}, "cwd": "/x", "tool_use_id": "c1"}))
    assert [c.tool_input["file_path"] for c in p.calls] == ["a.txt", "src/b.py", "src/c.py", "d.md"]
    assert all(c.tool_name == "Write" for c in p.calls)


def test_codex_force_push_denied_by_policy(repo):
    data = json.loads(payload("codex/PreToolUse.Bash.json", repo))
    data["tool_input"] = {"command": "git push --force origin main"}
    p = run(["hook", "codex"], repo, json.dumps(data).encode())
    out = json.loads(p.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny" and "force" in out["permissionDecisionReason"]
    last = [e for e in audit(repo) if e.get("event") == "hook.denied"][-1]
    assert last["details"]["command"] == "git push --force origin main"


def test_codex_permission_request_answers_behavior(repo):
    data = json.loads(payload("codex/PermissionRequest.Bash.json", repo))
    data["tool_input"] = {"command": "git push --force origin main", "description": "x"}
    p = run(["hook", "codex"], repo, json.dumps(data).encode())
    out = json.loads(p.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PermissionRequest"
    assert out["decision"]["behavior"] == "deny" and "force" in out["decision"]["message"]


@pytest.mark.parametrize("kind,field", [("codex", ("hookSpecificOutput", "permissionDecision")),
                                        ("gemini", ("decision",)), ("copilot", ("permissionDecision",)),
                                        ("cursor", ("permission",))])
@pytest.mark.parametrize("stdin", [b"", b"not json {", b"[1]", b"\xff\xfe"])
def test_garbage_is_denied_in_the_agents_format(tmp_path, kind, field, stdin):
    p = run(["hook", kind, "--event", "preToolUse" if kind == "copilot" else "PreToolUse"], tmp_path, stdin)
    assert p.returncode == 0
    got = json.loads(p.stdout)
    for key in field:
        got = got[key]
    assert got == "deny"


@pytest.mark.parametrize("kind,field", [("codex", ("hookSpecificOutput", "permissionDecision")),
                                        ("gemini", ("decision",)), ("cursor", ("permission",))])
def test_broken_install_is_denied_in_the_agents_format(tmp_path, kind, field):
    # a Tower whose own modules cannot be imported: hookguard answers alone
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("raise ImportError('broken')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}"}
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    e.update(env)
    p = subprocess.run([sys.executable, "-m", "tui.cli", "hook", kind], cwd=tmp_path, input=b"{}",
                       capture_output=True, env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    for key in field:
        got = got[key]
    assert got == "deny"


def test_an_agent_name_that_is_not_utf8_denies_calls_but_not_news(repo):
    """TOWER_AGENT holding a byte that is not UTF-8 is bad input: a call is denied saying so, but an
    event that decides nothing (here Codex's PostToolUse) still gets its empty answer, never a deny."""
    bad = {"TOWER_AGENT": "agent-\udcff"}  # the byte 0xff, as Python hands it over
    news = run(["hook", "codex"], repo, payload("codex/PostToolUse.Bash.json", repo), env=bad)
    assert news.returncode == 0 and json.loads(news.stdout) == {}, news.stdout
    call = run(["hook", "codex"], repo, payload("codex/PreToolUse.Bash.json", repo), env=bad)
    out = json.loads(call.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny" and "UTF-8" in out["permissionDecisionReason"], out
