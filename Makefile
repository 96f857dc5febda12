# One command each, from a fresh clone: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-postgres bench bench-pg screenshots clean agents test-agents

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]" --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tower demo

test: $(STAMP)
	$(BIN)/pytest -q

# Only what runs against PostgreSQL (the [postgres] half of tests/store and tests/cli,
# tests/pg); `make test` runs it too.
test-postgres: $(STAMP)
	TOWER_REQUIRE_PG=1 $(BIN)/pytest -q -m postgres

# The real Claude Code, Codex and Gemini CLI binaries (pinned) in .agents/.
agents:
	scripts/install-agents.sh

# Only the tests that drive the real agents (they also run in `make test`).
test-agents: $(STAMP) agents
	TOWER_REQUIRE_AGENTS=1 $(BIN)/pytest -q -m agents

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/run.py

# Several hosts through PostgreSQL (network namespaces: root), beside SQLite; also part of `make bench`.
bench-pg: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_pg_hosts.py

screenshots: $(STAMP)
	$(BIN)/python scripts/export_screenshots.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
