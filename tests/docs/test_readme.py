"""Every command the README shows in a ``console`` block is run, and its output checked.

Each block runs in a fresh scratch directory holding a small `shop`
repository, in one bash session (so `cd` and `export` carry over). Times,
hashes and temporary paths are normalised; everything else must match.
A ``# exit N`` comment on a command line states its expected exit code.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, git, tower_env

README = ROOT / "README.md"
EXIT = re.compile(r"#\s*exit (\d+)")


def console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def normalise(text: str, base: Path) -> str:
    text = text.replace(str(base), "/tmp")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<iso>", text)
    text = re.sub(r"\b\d\d:\d\d:\d\d\b", "<time>", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<hash>", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def make_shop(base: Path) -> None:
    shop = base / "shop"
    (shop / "src").mkdir(parents=True)
    (shop / "src" / "cart.py").write_text("x = 1\n")
    (shop / "README.md").write_text("# shop\n")
    git("init", "-q", "-b", "main", cwd=shop)
    git("add", "-A", cwd=shop)
    git("commit", "-q", "-m", "init", cwd=shop)


BLOCKS = console_blocks(README.read_text())


def test_readme_has_console_blocks():
    assert BLOCKS and all(BLOCKS)


@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_readme_console_block(block, tmp_path):
    base = tmp_path.resolve()
    make_shop(base)
    env = tower_env()
    env["PATH"] = f"{Path(__import__('sys').executable).parent}:{env['PATH']}"
    shell = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=base, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = "__TOWER_README_DONE__"
    try:
        for command, expected in BLOCKS[block]:
            shell.stdin.write(f"{command}\necho \"{marker} $?\"\n")
            shell.stdin.flush()
            lines = []
            while True:
                line = shell.stdout.readline()
                assert line, f"shell ended during: {command}"
                if line.startswith(marker):
                    code = int(line.split()[1])
                    break
                lines.append(line)
            want_code = int(EXIT.search(command).group(1)) if EXIT.search(command) else 0
            assert code == want_code, f"{command!r} exited {code}:\n{''.join(lines)}"
            assert normalise("".join(lines), base) == normalise("\n".join(expected), base), command
    finally:
        shell.stdin.close()
        shell.kill()
        shell.wait()
