"""Drive the real agent binaries (Claude Code, Codex CLI, Gemini CLI) headless against the model server.

Everything an agent needs to run here, checked against the binaries that
``scripts/install-agents.sh`` installs (see docs/agents.md):

- a throw-away HOME (and ``CODEX_HOME``) per run, so nothing of the machine's
  own agent configuration leaks in, and nothing leaks out;
- the model endpoint: Claude Code ``ANTHROPIC_BASE_URL``, Codex a
  ``model_providers`` entry (``wire_api = "responses"``), Gemini CLI
  ``GOOGLE_GEMINI_BASE_URL`` plus API-key auth in ``~/.gemini/settings.json``;
- the agent's own hook file in the worktree (``.claude/settings.json``,
  ``.codex/hooks.json``, ``.gemini/settings.json``), and for Codex the two
  trust records without which it skips project hooks *silently*: the project's
  ``trust_level`` and each hook's ``trusted_hash`` in ``$CODEX_HOME/config.toml``.

No pytest here: the capture script (tests/agents/capture.py) uses it too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tui.services.hook_install import codex_hook_hash, snake_event

ROOT = Path(__file__).resolve().parents[2]
RECORD_HOOK = Path(__file__).resolve().parent / "record_hook.py"

KINDS = ("claude", "codex", "gemini")

# The hook events each pinned binary was seen to run (Codex ignores a key it
# does not know; the others were not tried with unknown keys).
EVENTS = {
    "claude": ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "Notification",
               "UserPromptSubmit", "Stop", "SubagentStop", "SessionStart", "SessionEnd", "PreCompact"),
    "codex": ("PreToolUse", "PermissionRequest", "PostToolUse", "SessionStart", "UserPromptSubmit", "Stop",
              "StopFailure", "PreCompact", "PostCompact", "SubagentStart", "SubagentStop"),
    "gemini": ("BeforeTool", "AfterTool", "BeforeAgent", "AfterAgent", "Notification", "SessionStart",
               "SessionEnd", "PreCompress"),
}
# Gemini's per-model-call events: AfterModel fires for every streamed chunk, so
# they are recorded only when asked for.
GEMINI_MODEL_EVENTS = ("BeforeModel", "AfterModel", "BeforeToolSelection")
TOOL_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "BeforeTool", "AfterTool"}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Tower Tests",
    "GIT_AUTHOR_EMAIL": "tests@tower.invalid",
    "GIT_COMMITTER_NAME": "Tower Tests",
    "GIT_COMMITTER_EMAIL": "tests@tower.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def agents_dir() -> Path:
    return Path(os.environ.get("TOWER_AGENTS_DIR") or ROOT / ".agents")


def find_binary(kind: str) -> tuple[Path | None, str]:
    """``(binary, why-not)``: the pinned binary of ``kind`` installed by scripts/install-agents.sh."""
    path = agents_dir() / "bin" / kind
    if not path.exists():
        return None, (f"{kind}: not installed under {agents_dir()} (run scripts/install-agents.sh,"
                      " or set TOWER_AGENTS_DIR)")
    if kind == "gemini" and shutil.which("node") is None:
        return None, "gemini: node is not on PATH"
    return path.resolve(), ""


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@dataclass
class Sandbox:
    """A real git repository, a worktree of it the agent works in, and a throw-away HOME."""

    base: Path
    repo: Path  # the main worktree
    root: Path  # the agent's worktree (a `git worktree add` of repo)
    home: Path

    @classmethod
    def create(cls, base: Path, *, files: dict[str, str] | None = None) -> "Sandbox":
        repo, root, home = base / "repo", base / "wt-agent", base / "home"
        repo.mkdir(parents=True)
        home.mkdir()
        git("init", "-q", "-b", "main", cwd=repo)
        for rel, text in ({"README.md": "# demo\n", "src/app.py": "print('hello')\n"} | (files or {})).items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        git("add", "-A", cwd=repo)
        git("commit", "-q", "-m", "init", cwd=repo)
        git("worktree", "add", "-q", "-b", "agent", str(root), cwd=repo)
        return cls(base, repo.resolve(), root.resolve(), home.resolve())

    def hooks_root(self, kind: str) -> Path:
        """Where the agent reads its project hook file from when it runs in ``root``.

        Codex, run in a linked worktree, reads ``hooks.json`` from the main
        worktree's ``.codex/`` (a ``hooks.json`` in the linked worktree's own
        ``.codex/`` is never read), and only when the linked worktree has a
        ``.codex/`` directory at all (see ``codex_trust``). Claude Code and
        Gemini CLI read the worktree's own file.
        """
        return self.repo if kind == "codex" else self.root

    @property
    def codex_home(self) -> Path:
        return self.home / ".codex"

    def status(self) -> str:
        """``git status --porcelain`` of the agent's worktree, ignoring the agents' own config dirs."""
        lines = git("status", "--porcelain", "--untracked-files=all", cwd=self.root).splitlines()
        return "\n".join(ln for ln in lines if not re.match(r"^.. \.(claude|codex|gemini|tower)/", ln))


# -- hook files -------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def hook_file(kind: str, root: Path) -> Path:
    return root / {"claude": ".claude/settings.json", "codex": ".codex/hooks.json",
                   "gemini": ".gemini/settings.json"}[kind]


def add_hook(kind: str, root: Path, event: str, command: str, *, timeout: float | None = None,
             matcher: str | None = None) -> None:
    """Append one command hook for ``event`` to the agent's hook file in ``root``, keeping what is there.

    ``timeout`` is in the agent's own unit: seconds for Claude Code and Codex,
    milliseconds for Gemini CLI.
    """
    path = hook_file(kind, root)
    data = _read_json(path)
    handler: dict = {"type": "command", "command": command}
    if timeout is not None:
        handler["timeout"] = timeout
    if kind == "gemini":
        handler["name"] = f"record-{event}"
    group: dict = {"hooks": [handler]}
    if matcher is None and event in TOOL_EVENTS:
        matcher = ".*" if kind == "gemini" else "*"
    if matcher is not None:
        group["matcher"] = matcher
    data.setdefault("hooks", {}).setdefault(event, []).append(group)
    _write_json(path, data)


def install_recorder(kind: str, root: Path, log: Path, rules: Path | None = None, *,
                     events: tuple[str, ...] | None = None, timeout: float | None = None,
                     notify: str | None = None) -> None:
    """The recording hook (record_hook.py) on every event of the agent, logging to ``log``.

    ``notify``: a model server's ``hook_event_url``, which then hears of every call too.
    """
    command = f"{sys.executable} {RECORD_HOOK} {log} {rules or '-'}" + (f" {notify}" if notify else "")
    for event in events or EVENTS[kind]:
        add_hook(kind, root, event, command, timeout=timeout)


def read_log(log: Path) -> list[dict]:
    """The recording hook's entries, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def payloads(log: Path, event: str | None = None, tool: str | None = None) -> list[dict]:
    out = []
    for entry in read_log(log):
        p = entry["payload"] or {}
        if event is not None and p.get("hook_event_name") != event:
            continue
        if tool is not None and p.get("tool_name") != tool:
            continue
        out.append(p)
    return out


# -- Codex trust --------------------------------------------------------------------------


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string for these paths and hashes


def codex_trust(sandbox: Sandbox, *, hooks: bool = True) -> None:
    """Write ``$CODEX_HOME/config.toml``: the worktree trusted, and (``hooks``) each hook in its hooks.json.

    Trusting the linked worktree's path is enough: Codex resolves it to the
    repository. The hooks are the main worktree's (see ``Sandbox.hooks_root``),
    and the linked worktree gets the (empty) ``.codex/`` without which Codex
    loads no project layer for it.
    """
    (sandbox.root / ".codex").mkdir(exist_ok=True)
    lines = [f"[projects.{_toml_str(str(sandbox.root))}]", 'trust_level = "trusted"', ""]
    path = hook_file("codex", sandbox.hooks_root("codex"))
    if hooks and path.exists():
        for event, groups in json.loads(path.read_text()).get("hooks", {}).items():
            for gi, group in enumerate(groups):
                for hi, handler in enumerate(group.get("hooks", [])):
                    key = f"{path}:{snake_event(event)}:{gi}:{hi}"
                    lines += [f"[hooks.state.{_toml_str(key)}]",
                              f"trusted_hash = {_toml_str(codex_hook_hash(event, group, handler))}", ""]
    sandbox.codex_home.mkdir(parents=True, exist_ok=True)
    (sandbox.codex_home / "config.toml").write_text("\n".join(lines))


# -- running an agent -------------------------------------------------------------------------


@dataclass
class AgentRun:
    kind: str
    argv: list[str]
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float
    events: list[dict] = field(default_factory=list)  # stdout JSONL, parsed

    def describe(self) -> str:
        return (f"{self.kind} exited {self.code} after {self.seconds:.1f}s\n--- stdout\n{self.stdout[-4000:]}"
                f"\n--- stderr\n{self.stderr[-4000:]}")


CLAUDE_MODEL = "claude-sonnet-4-5"
CODEX_MODEL = "gpt-5.5"  # a model Codex has metadata for: it then offers apply_patch
GEMINI_MODEL = "gemini-2.5-pro"


def agent_env(kind: str, sandbox: Sandbox, url: str, extra: dict | None = None) -> dict:
    """A clean environment: nothing of the caller's agent or Tower variables, a throw-away HOME."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT", "PYTHONPATH")}
    env.setdefault("PATH", os.defpath)
    env.update(GIT_ENV)
    env["HOME"] = str(sandbox.home)
    env["NO_COLOR"] = "1"
    env["TERM"] = "dumb"
    if kind == "claude":
        env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="sk-ant-test", DISABLE_AUTOUPDATER="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1",
                   DISABLE_ERROR_REPORTING="1")
    elif kind == "codex":
        env.update(CODEX_HOME=str(sandbox.codex_home), OPENAI_API_KEY="sk-test")
    elif kind == "gemini":
        env.update(GOOGLE_GEMINI_BASE_URL=url, GEMINI_API_KEY="test-key", GEMINI_CLI_TRUST_WORKSPACE="true")
    env.update(extra or {})
    return env


def agent_argv(kind: str, binary: Path, url: str, prompt: str, *, args: tuple[str, ...] = ()) -> list[str]:
    if kind == "claude":
        return [str(binary), "-p", prompt, "--output-format", "stream-json", "--verbose",
                "--permission-mode", "acceptEdits", "--model", CLAUDE_MODEL, *args]
    if kind == "codex":
        provider = f'{{name="mock",base_url="{url}/v1",wire_api="responses",env_key="OPENAI_API_KEY"}}'
        return [str(binary), "exec", "--json", "-c", "model_provider=mock", "-c", f"model_providers.mock={provider}",
                "-m", CODEX_MODEL, *args, prompt]
    if kind == "gemini":
        return ["node", str(binary), "-p", prompt, "--output-format", "stream-json", "--approval-mode", "yolo",
                "-m", GEMINI_MODEL, *args]
    raise ValueError(kind)


def prepare_home(kind: str, sandbox: Sandbox, *, codex_trust_hooks: bool = True, codex_config: bool = True) -> None:
    """The agent's HOME for a run: Gemini's API-key auth; Codex's trust records (``codex_config``
    False: leave ``$CODEX_HOME/config.toml`` as it is, e.g. as `tower hook install codex` wrote it)."""
    if kind == "codex":
        if codex_config:
            codex_trust(sandbox, hooks=codex_trust_hooks)
    elif kind == "gemini":
        settings = sandbox.home / ".gemini" / "settings.json"
        data = _read_json(settings)
        data.setdefault("security", {}).setdefault("auth", {})["selectedType"] = "gemini-api-key"
        _write_json(settings, data)


def start_agent(kind: str, binary: Path, sandbox: Sandbox, url: str, prompt: str = "Do the task.", *,
                env: dict | None = None, args: tuple[str, ...] = (), codex_trust_hooks: bool = True,
                codex_config: bool = True, cwd: Path | None = None) -> tuple[subprocess.Popen, list[str]]:
    """Start the agent headless in the sandbox's worktree, in its own process group; see :func:`finish`."""
    prepare_home(kind, sandbox, codex_trust_hooks=codex_trust_hooks, codex_config=codex_config)
    argv = agent_argv(kind, binary, url, prompt, args=args)
    proc = subprocess.Popen(argv, cwd=cwd or sandbox.root, env=agent_env(kind, sandbox, url, env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    return proc, argv


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the agent's process group (the agent, its hooks, their children) by the agent's pid."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def finish(kind: str, proc: subprocess.Popen, argv: list[str], started: float, timeout: float) -> AgentRun:
    """Wait for a started agent to end, killing its group at ``timeout``; what it printed, parsed."""
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill(proc)
        out, err = proc.communicate()
        code = None
    finally:
        if proc.returncode is None:
            kill(proc)
            proc.wait()
    seconds = time.monotonic() - started
    stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    events = []
    for line in stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return AgentRun(kind, argv, code, stdout, stderr, seconds, events)


def run_agent(kind: str, binary: Path, sandbox: Sandbox, url: str, prompt: str = "Do the task.", *,
              timeout: float = 120, env: dict | None = None, args: tuple[str, ...] = (),
              codex_trust_hooks: bool = True, codex_config: bool = True, cwd: Path | None = None) -> AgentRun:
    """Run the agent headless in the sandbox's worktree until it ends (killed, with its group, at ``timeout``)."""
    started = time.monotonic()
    proc, argv = start_agent(kind, binary, sandbox, url, prompt, env=env, args=args,
                             codex_trust_hooks=codex_trust_hooks, codex_config=codex_config, cwd=cwd)
    return finish(kind, proc, argv, started, timeout)


# -- tool calls per agent -------------------------------------------------------------------------
# The same intent, in each agent's own tool names and argument shapes (as the
# pinned binaries offer them to the model).


def shell_call(kind: str, command: str):
    from tests.agents.model_server import ToolCall

    if kind == "claude":
        return ToolCall("Bash", {"command": command, "description": "run a command"})
    if kind == "codex":
        return ToolCall("exec_command", {"cmd": command})
    return ToolCall("run_shell_command", {"command": command, "description": "run a command"})


def write_call(kind: str, root: Path, rel: str, content: str):
    """Create ``rel`` with ``content``: Claude Write, Codex apply_patch (Add File), Gemini write_file."""
    from tests.agents.model_server import ToolCall

    if kind == "claude":
        return ToolCall("Write", {"file_path": str(root / rel), "content": content})
    if kind == "codex":
        body = "".join(f"+{line}\n" for line in content.splitlines())
        return ToolCall("apply_patch", f"*** Begin Patch\n*** Add File: {rel}\n{body}*** End Patch\n")
    return ToolCall("write_file", {"file_path": str(root / rel), "content": content})


def edit_call(kind: str, root: Path, rel: str, old: str, new: str):
    """Replace the line ``old`` by ``new`` in ``rel``: Claude Edit, Codex apply_patch (Update File), Gemini replace."""
    from tests.agents.model_server import ToolCall

    if kind == "claude":
        return ToolCall("Edit", {"file_path": str(root / rel), "old_string": old, "new_string": new})
    if kind == "codex":
        return ToolCall("apply_patch", f"*** Begin Patch\n*** Update File: {rel}\n@@\n-{old}\n+{new}\n*** End Patch\n")
    return ToolCall("replace", {"file_path": str(root / rel), "old_string": old, "new_string": new,
                                "instruction": "change it"})
