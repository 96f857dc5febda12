#!/usr/bin/env bash
# Install the real agent CLIs (pinned) for the real-agent tests: Claude Code,
# Codex CLI, Gemini CLI, from the npm registry, into one directory that tests
# and CI share: $TOWER_AGENTS_DIR, else .agents/ at the repository root.
#
# Idempotent: a stamp records the pinned versions; when it matches and every
# binary is there, nothing is downloaded. Prints where each binary is, and
# links them as <dir>/bin/{claude,codex,gemini}, which tests/agents/conftest.py
# looks for.
#
# npm's install scripts are not run (--ignore-scripts): Claude Code's wrapper
# would only copy its native binary, which lives in its platform package
# anyway, and other packages' scripts would try to compile things. So the
# links point at the platform packages' native binaries directly.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.330
CODEX_VERSION=0.169.0
GEMINI_CLI_VERSION=0.61.0

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${TOWER_AGENTS_DIR:-$root/.agents}"
mkdir -p "$dir/bin"
dir="$(cd "$dir" && pwd)"

want="claude-code=$CLAUDE_CODE_VERSION codex=$CODEX_VERSION gemini-cli=$GEMINI_CLI_VERSION"
stamp="$dir/.installed"

find_bins() {
    nm="$dir/node_modules"
    claude="$(ls -1 "$nm"/@anthropic-ai/claude-code-*/claude 2>/dev/null | head -n1 || true)"
    codex="$(ls -1 "$nm"/@openai/codex-*/vendor/*/bin/codex 2>/dev/null | head -n1 || true)"
    gemini="$nm/@google/gemini-cli/bundle/gemini.js"
    [ -x "$claude" ] && [ -x "$codex" ] && [ -f "$gemini" ]
}

if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ] && find_bins; then
    :
else
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-agents: npm is not installed (apt-get install nodejs npm)" >&2
        exit 1
    fi
    cat > "$dir/package.json" <<JSON
{
  "name": "tower-test-agents",
  "private": true,
  "description": "The real agent CLIs Tower's tests drive (scripts/install-agents.sh)",
  "dependencies": {
    "@anthropic-ai/claude-code": "$CLAUDE_CODE_VERSION",
    "@openai/codex": "$CODEX_VERSION",
    "@google/gemini-cli": "$GEMINI_CLI_VERSION"
  }
}
JSON
    rm -f "$stamp"
    # --no-package-lock: the versions above are the pins; a lockfile here would
    # only record which mirror served them.
    npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --no-package-lock \
        --loglevel=error >&2
    if ! find_bins; then
        echo "install-agents: npm finished but a binary is missing under $dir/node_modules" \
             "(no platform package for $(uname -sm)?)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi

ln -sfn "$claude" "$dir/bin/claude"
ln -sfn "$codex" "$dir/bin/codex"
ln -sfn "$gemini" "$dir/bin/gemini"
echo "claude $CLAUDE_CODE_VERSION $claude"
echo "codex $CODEX_VERSION $codex"
echo "gemini $GEMINI_CLI_VERSION $gemini (node $(node --version 2>/dev/null || echo missing))"
