"""Fixtures for the real-agent tests: the binaries, the scripted model server, a worktree, a run.

The binaries come from ``scripts/install-agents.sh`` (``.agents/`` or
``$TOWER_AGENTS_DIR``). A test that needs one is skipped, with the reason, when
it is not installed, except where ``TOWER_REQUIRE_AGENTS=1`` (set by .ci/run):
there a missing binary fails the test, so CI cannot pass by running none.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agents import harness
from tests.agents.model_server import ModelServer


def _binary(kind: str) -> Path:
    path, why = harness.find_binary(kind)
    if path is None:
        if os.environ.get("TOWER_REQUIRE_AGENTS") == "1":
            pytest.fail(f"TOWER_REQUIRE_AGENTS=1 but {why}")
        pytest.skip(why)
    return path


@pytest.fixture
def claude_bin() -> Path:
    return _binary("claude")


@pytest.fixture
def codex_bin() -> Path:
    return _binary("codex")


@pytest.fixture
def gemini_bin() -> Path:
    return _binary("gemini")


@pytest.fixture(params=harness.KINDS)
def agent(request) -> tuple[str, Path]:
    """Each real agent in turn: ``(kind, binary)``."""
    return request.param, _binary(request.param)


@pytest.fixture
def sandbox(tmp_path: Path) -> harness.Sandbox:
    """A real repository, the agent's linked worktree of it, and a throw-away HOME (and CODEX_HOME)."""
    return harness.Sandbox.create(tmp_path / "sb")


@pytest.fixture
def model_server():
    """``model_server(script)``: a scripted model server on 127.0.0.1, closed after the test."""
    servers: list[ModelServer] = []

    def start(script=(), **kwargs) -> ModelServer:
        srv = ModelServer(script, **kwargs)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
def run_agent(sandbox: harness.Sandbox, model_server):
    """``run_agent(kind, binary, script, ...)`` -> ``(AgentRun, ModelServer)``: the agent played ``script`` to its end."""

    def run(kind: str, binary: Path, script, *, prompt: str = "Do the task.", timeout: float = 120, **kwargs):
        srv = model_server(script)
        result = harness.run_agent(kind, binary, sandbox, srv.url, prompt, timeout=timeout, **kwargs)
        return result, srv

    return run


@pytest.fixture
def recorder(sandbox: harness.Sandbox, tmp_path: Path):
    """``recorder(kind, rules=None, events=None, timeout=None, notify=None)`` -> the recording hook's log.

    ``notify``: a model server's ``hook_event_url``, to wait for hook events on it.
    """

    def install(kind: str, rules: list[dict] | None = None, *, events=None, timeout=None, notify=None) -> Path:
        log = tmp_path / f"{kind}-hooks.jsonl"
        rules_path = None
        if rules is not None:
            import json

            rules_path = tmp_path / f"{kind}-rules.json"
            rules_path.write_text(json.dumps(rules))
        harness.install_recorder(kind, sandbox.hooks_root(kind), log, rules_path, events=events, timeout=timeout,
                                 notify=notify)
        return log

    return install
