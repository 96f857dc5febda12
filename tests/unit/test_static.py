"""The tree's static checks, part of `make test`: mypy and the import contracts.

Both read their configuration from pyproject.toml ([tool.mypy], [tool.importlinter]).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_mypy_passes() -> None:
    result = _run([sys.executable, "-m", "mypy"], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_import_contracts_hold() -> None:
    result = _run([str(BIN / "lint-imports"), "--no-cache"], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_catch_a_service_that_imports_click(tmp_path: Path) -> None:
    """The same contracts on a copy of the layout whose one service imports click (inside a function,
    where a hand-written check of top-level imports would miss it) are broken."""
    config = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(config[config.index("[tool.importlinter]"):])
    for module in ("core", "store", "tui", "tui.services", "tui.commands", "tui.room"):
        package = tmp_path.joinpath(*module.split("."))
        package.mkdir()
        (package / "__init__.py").write_text("")
    for module in ("tui/clikit.py", "tui/hookguard.py", "tui/room/app.py"):
        (tmp_path / module).write_text("")
    for module in ("tui/cli.py", "tui/commands/demo.py"):  # the two hand-overs the contracts allow
        (tmp_path / module).write_text("def main():\n    from tui.room.app import run_app\n")
    (tmp_path / "tui/services/watch.py").write_text("def run():\n    import click\n")
    result = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0
    assert "the services import neither Textual nor click BROKEN" in result.stdout, result.stdout + result.stderr
    assert "tui.services.watch -> click" in result.stdout
