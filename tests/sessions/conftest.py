"""Helpers of the agent-session tests: the captured hook payloads, replayed into a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "agents" / "fixtures"
# fixture folder -> Tower's name for the agent
KIND = {"claude": "claude-code", "codex": "codex", "gemini": "gemini", "copilot": "copilot", "cursor": "cursor"}
NOT_PAYLOADS = {"decisions.json", "hook-env.json", "versions.json"}


def payload(folder: str, name: str) -> dict:
    return json.loads((FIXTURES / folder / name).read_text())


def all_payload_files() -> list[tuple[str, str]]:
    return sorted((d.name, f.name) for d in FIXTURES.iterdir() if d.is_dir()
                  for f in d.glob("*.json") if f.name not in NOT_PAYLOADS)


def event_of(name: str) -> str:
    """The event a fixture file holds (``<Event>.<tool>.json``): what the adapter knows
    from its installed entry when the payload does not say (Copilot's camelCase ones)."""
    return name.split(".")[0]


@pytest.fixture
async def wt_store(store):
    """The store with the sandbox worktree the fixtures ran in registered as ``wt-agent``."""
    await store.add_worktree("wt-agent", "/tmp/sandbox/wt-agent")
    return store
