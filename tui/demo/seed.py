"""The demo's repository: a small shop service, its worktrees, its task queue and policy."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

FILES: dict[str, str] = {
    "README.md": "# shop\n\nA small order service: carts, pricing, inventory and an HTTP API.\n",
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0.3.0"\nrequires-python = ">=3.11"\n',
    ".gitignore": "__pycache__/\n*.pyc\n.venv/\nbuild/\n",
    "src/shop/__init__.py": '"""shop: carts, pricing, inventory."""\n',
    "src/shop/cart.py": (
        "from dataclasses import dataclass, field\n\n\n@dataclass\nclass Line:\n    sku: str\n    qty: int\n"
        "    unit_cents: int\n\n\n@dataclass\nclass Cart:\n    lines: list[Line] = field(default_factory=list)\n\n"
        "    def add(self, sku: str, qty: int, unit_cents: int) -> None:\n"
        "        self.lines.append(Line(sku, qty, unit_cents))\n\n"
        "    def total_cents(self) -> int:\n        return sum(l.qty * l.unit_cents for l in self.lines)\n"
    ),
    "src/shop/pricing.py": (
        "TAX_RATE = 0.2\n\n\ndef with_tax(cents: int) -> int:\n    return round(cents * (1 + TAX_RATE))\n"
    ),
    "src/shop/inventory.py": (
        "STOCK: dict[str, int] = {}\n\n\ndef reserve(sku: str, qty: int) -> bool:\n"
        "    if STOCK.get(sku, 0) < qty:\n        return False\n    STOCK[sku] -= qty\n    return True\n"
    ),
    "src/shop/api.py": (
        "from shop.cart import Cart\n\n\ndef checkout(cart: Cart) -> dict:\n"
        "    return {\"total\": cart.total_cents()}\n"
    ),
    "tests/test_cart.py": (
        "from shop.cart import Cart\n\n\ndef test_total():\n    cart = Cart()\n    cart.add('a', 2, 150)\n"
        "    assert cart.total_cents() == 300\n"
    ),
    "docs/api.md": "# API\n\n`POST /checkout` returns the cart total.\n",
    "migrations/0001_init.sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, total_cents INTEGER);\n",
}


@dataclass(frozen=True)
class DemoTask:
    title: str
    scope: list[str]
    files: list[str]  # what the simulated agent edits
    priority: int = 0
    depends_on: list[int] = field(default_factory=list)  # 1-based positions in TASKS
    approval: str | None = None  # a risky step the agent asks about
    description: str = ""


TASKS: list[DemoTask] = [
    DemoTask("Fix rounding in cart totals", ["src/shop/cart.py", "tests/**"],
             ["src/shop/cart.py", "tests/test_cart.py"], priority=5),
    DemoTask("Add discount codes", ["src/shop/pricing.py", "src/shop/discounts.py"],
             ["src/shop/pricing.py", "src/shop/discounts.py"], priority=4),
    DemoTask("Reserve stock at checkout", ["src/shop/inventory.py", "src/shop/api.py"],
             ["src/shop/inventory.py", "src/shop/api.py"], priority=3, depends_on=[1]),
    DemoTask("Orders table migration", ["migrations/**"], ["migrations/0002_orders.sql"], priority=3,
             approval="run `alembic upgrade head` against the staging database"),
    DemoTask("Document the checkout API", ["docs/**", "*.md"], ["docs/api.md", "README.md"], priority=1,
             depends_on=[3]),
    DemoTask("Tax rates per region", ["src/shop/pricing.py", "src/shop/regions.py"],
             ["src/shop/regions.py", "src/shop/pricing.py"], priority=2, depends_on=[2]),
    DemoTask("Cart serialisation", ["src/shop/cart.py", "src/shop/serde.py"],
             ["src/shop/serde.py"], priority=2, depends_on=[1]),
    DemoTask("Clean build artefacts", ["build/**", "scripts/**"], ["scripts/clean.sh"], priority=1,
             approval="rm -rf build/ dist/ in the release checkout"),
    DemoTask("Inventory low-stock alerts", ["src/shop/inventory.py", "src/shop/alerts.py"],
             ["src/shop/alerts.py", "src/shop/inventory.py"], priority=1, depends_on=[3]),
    DemoTask("Publish release 0.4.0", ["pyproject.toml", "CHANGELOG.md"], ["pyproject.toml", "CHANGELOG.md"],
             priority=0, depends_on=[1, 2, 3], approval="git push --tags origin main"),
]

def git(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="Tower Demo", GIT_AUTHOR_EMAIL="demo@tower.invalid",
               GIT_COMMITTER_NAME="Tower Demo", GIT_COMMITTER_EMAIL="demo@tower.invalid")
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def tower_argv() -> list[str]:
    """How to run the public command line from here (same interpreter, no PATH assumptions)."""
    return [sys.executable, "-m", "tui.cli"]


def tower(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("TOWER_DB", "TOWER_AGENT", "TOWER_WORKTREE")}
    full_env.update(env or {})
    return subprocess.run([*tower_argv(), *args], cwd=cwd, env=full_env, capture_output=True, text=True)


@dataclass
class DemoRepo:
    base: Path
    root: Path
    worktrees: dict[str, Path]

    @property
    def db(self) -> Path:
        return self.root / ".git" / "tower" / "tower.db"


def create(base: Path, agents: int) -> DemoRepo:
    """A git repository with a small codebase, one worktree per agent, and the task queue."""
    root = base / "shop"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(["init", "-q", "-b", "main"], root)
    git(["add", "-A"], root)
    git(["commit", "-q", "-m", "shop 0.3.0"], root)
    _check(tower(["init"], root))
    worktrees = {}
    for i in range(1, agents + 1):
        name = f"agent-{i}"
        path = base / f"shop-{name}"
        _check(tower(["worktree", "add", name, "--path", str(path)], root))
        worktrees[name] = path
    for task in TASKS:
        args = ["task", "add", task.title, "--priority", str(task.priority), "--max-attempts", "3"]
        if task.description:
            args += ["--description", task.description]
        for glob in task.scope:
            args += ["--scope", glob]
        for dep in task.depends_on:
            args += ["--depends-on", f"T{dep}"]
        _check(tower(args, root))
    return DemoRepo(base=base, root=root, worktrees=worktrees)


def _check(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"demo set-up failed: {(result.stderr or result.stdout).strip()}")
