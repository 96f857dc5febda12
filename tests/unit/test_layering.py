"""Dependencies point one way: tui -> store -> core. core imports neither; store never imports tui.

Checked on the source (every import statement, including ones inside
functions) and at run time (importing the command line must not load Textual).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"core": {"store", "tui", "textual", "aiosqlite"}, "store": {"tui", "textual"}}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upward(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_would_catch_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from tui.room.app import TowerApp\n")
    assert "tui" in imported_roots(bad)


@pytest.mark.parametrize("argv", [["task", "list"], ["approval", "list"], ["audit", "head"], ["hook", "--help"]])
def test_command_line_never_loads_textual(argv, tmp_path):
    code = (
        "import sys\n"
        f"sys.argv = ['tower', '--db', {str(tmp_path / 'x.db')!r}, *{argv!r}]\n"
        "from tui.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED' if any(m == 'textual' or m.startswith('textual.') for m in sys.modules) else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "CLEAN"


def test_store_and_hook_paths_do_not_load_pydantic():
    """pydantic costs ~50 ms per process; the hook runs on every tool call of every agent.

    Models are built lazily, only where a command returns one.
    """
    code = (
        "import sys\n"
        "import store, tui.commands.hook, tui.commands.tasks, core.conflict_rules\n"
        "print('LOADED' if 'pydantic' in sys.modules else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "CLEAN", out.stderr


def test_the_agent_loop_does_not_load_pydantic(tmp_path):
    """Claiming, claiming files, heartbeats and finishing run for every step of every agent."""
    db = tmp_path / "tower.db"
    setup = subprocess.run([sys.executable, "-m", "tui.cli", "--db", str(db), "init"], cwd=ROOT,
                           capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr
    subprocess.run([sys.executable, "-m", "tui.cli", "--db", str(db), "task", "add", "t"], cwd=ROOT, check=True,
                   capture_output=True)
    for argv in (["task", "claim", "--json"], ["claim", "L1", "src/a.py", "--json"],
                 ["lease", "heartbeat", "L1", "--json"], ["task", "fail", "L1", "--reason", "r", "--json"]):
        code = (
            "import sys\n"
            f"sys.argv = ['tower', '--db', {str(db)!r}, *{argv!r}]\n"
            "from tui.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('LOADED' if 'pydantic' in sys.modules else 'CLEAN')\n"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert out.stdout.strip().splitlines()[-1] == "CLEAN", (argv, out.stdout, out.stderr)
