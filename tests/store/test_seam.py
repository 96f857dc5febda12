"""The store's seam (store/backend/) and its row types (core/models.py): what a second
backend and every reader rely on."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import NotFound
from store import lifecycle
from store.backend import ConstraintViolation

ROOT = Path(__file__).resolve().parents[2]
ENGINES = {"sqlite3", "aiosqlite", "psycopg", "psycopg_pool", "asyncpg"}


def engine_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & ENGINES


def test_no_engine_module_outside_its_backend():
    """The verbs speak to Backend/Tx/Dialect only: a second backend replaces one module."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(engine_imports(path))
        for package in ("store", "core")
        for path in (ROOT / package).rglob("*.py")
        if path.parent.name != "backend" or path.name == "__init__.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert engine_imports(ROOT / "store" / "backend" / "sqlite.py") == {"sqlite3", "aiosqlite"}  # not vacuous


def test_row_types_load_neither_pydantic_nor_an_engine():
    code = ("import sys, core.models, store.rows\n"
            "print(sorted(m for m in ('pydantic', 'sqlite3', 'aiosqlite') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


async def test_a_task_may_only_move_as_the_transition_table_says(store):
    """Every task status is written through one statement guarded by core.rules.TASK_TRANSITIONS:
    an illegal move rolls the whole transaction back, its audit event with it."""
    task = await store.add_task("t")
    lease = await store.claim_task(agent="a")
    await store.complete_task(lease.lease_id)
    head = await store.audit_head()
    with pytest.raises(ConstraintViolation, match="T1 cannot move to leased"):
        async with store.transaction() as tx:
            await store._audit(tx, "test.event")
            await lifecycle.move_task(tx, task.id, "leased")  # done -> leased: not in the table
    assert (await store.get_task(task.id)).status == "done"
    assert await store.audit_head() == head
    other = await store.add_task("u")
    async with store.transaction() as tx:  # a legal move passes the same guard
        await lifecycle.move_task(tx, other.id, "cancelled")
    assert (await store.get_task(other.id)).status == "cancelled"


async def test_a_broken_constraint_is_the_backends_exception_and_rolls_back(store):
    """Engine errors never reach the verbs: a unique index refusing a write arrives as
    ConstraintViolation (whichever backend), and the transaction leaves nothing."""
    await store.add_task("t", scope=["src/**"])
    lease = await store.claim_task(agent="a")
    await store.claim_files(lease.lease_id, ["src/a.py"])
    head = await store.audit_head()
    with pytest.raises(ConstraintViolation):
        async with store.transaction() as tx:
            await store._audit(tx, "test.event")
            await tx.execute("INSERT INTO claims (lease_id, path, claimed_at) VALUES (?, 'src/a.py', ?)",
                             (lease.lease_id, tx.now))
    assert await store.audit_head() == head
    assert [c.path for c in await store.active_claims()] == ["src/a.py"]


async def test_a_list_parameter_has_no_length_limit(store):
    """Lists go in as one parameter (Dialect.values): past SQLite's host-parameter limit
    (32,766 by default, 250,000 in Debian's build; Postgres: 65,535) a control-room read or
    a watcher batch still answers."""
    await store.add_task("t")
    ids = list(range(1, 260_001))
    assert [t.id for t in await store.view_tasks(ids)] == [1]
    assert await store.view_leases(ids) == []
    world = await store.watch_world([f"src/{i}.py" for i in range(70_000)])
    assert world.claims == {} and world.changed == []


async def test_rows_encode_the_documented_json(store, clock):
    """One encoder for every row type: ids prefixed, times ISO-8601 UTC, tuples as lists,
    fields the control room reads with a row left out of its JSON."""
    await store.add_task("first")
    task = await store.add_task("second", priority=2, scope=["src/**"], depends_on=[1])
    assert task.blocked and task.depends_on == (1,)
    assert task.to_json() == {
        "id": "T2", "title": "second", "description": "", "priority": 2, "status": "pending",
        "depends_on": ["T1"], "scope": ["src/**"], "attempts": 0, "max_attempts": 3, "last_error": None,
        "created_by": "test", "created_at": "2027-01-15T08:00:00.000Z", "updated_at": "2027-01-15T08:00:00.000Z"}
    lease = await store.claim_task(agent="a", worktree="wt")
    held = await store.get_task(1)
    assert (held.lease_id, held.agent, held.worktree) == (lease.lease_id, "a", "wt")
    assert "agent" not in held.to_json()
    clock.advance(1.5)
    approval = await store.request_approval(kind="command", summary="rm", detail={"cmd": "rm"},
                                            lease_id=lease.lease_id, key="k1")
    assert approval.to_json() == {
        "id": "A1", "kind": "command", "summary": "rm", "detail": {"cmd": "rm"}, "status": "pending",
        "requested_by": "a", "worktree": "wt", "lease_id": "L1", "task_id": "T1", "key": "k1",
        "created_at": "2027-01-15T08:00:01.500Z", "decided_at": None, "decided_by": None, "reason": None}
    conflict, new = await store.record_conflict(kind="unleased_write", path="x.py", worktree="wt", message="m")
    assert new and conflict.to_json() == {
        "id": "C1", "kind": "unleased_write", "path": "x.py", "worktree": "wt", "other_worktree": None,
        "lease_id": None, "other_lease_id": None, "task_id": None, "status": "open", "message": "m", "detail": {},
        "created_at": "2027-01-15T08:00:01.500Z", "updated_at": "2027-01-15T08:00:01.500Z", "closed_at": None,
        "closed_by": None}
    # the control room's rows are the same rows
    assert (await store.view_approvals([approval.id]))[0] == approval
    assert (await store.view_conflicts([conflict.id]))[0] == conflict
    assert (await store.view_tasks([2], with_dependents=False))[0] == await store.get_task(2)
    with pytest.raises(NotFound):
        await store.get_lease(99)


def test_no_verb_class_calls_another():
    """What several verbs share (reaping, ending a lease, an agent's session) is a function of
    store/lifecycle.py they call, never a method of a sibling class composed into Store."""
    def members(cls: ast.ClassDef) -> set[str]:
        names = {f.name for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assigned = [t for f in cls.body if isinstance(f, ast.Assign) for t in f.targets]
        assigned += [f.target for f in cls.body if isinstance(f, ast.AnnAssign)]
        return names | {t.id for t in assigned if isinstance(t, ast.Name)}

    def self_attributes(node: ast.AST) -> set[str]:
        return {n.attr for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"}

    [base] = [c for c in ast.walk(ast.parse((ROOT / "store" / "db.py").read_text())) if isinstance(c, ast.ClassDef)
              and c.name == "StoreBase"]
    shared = members(base) | self_attributes(base)
    found = {}
    for path in sorted((ROOT / "store").glob("*.py")):
        for cls in ast.walk(ast.parse(path.read_text())):
            if isinstance(cls, ast.ClassDef) and any(getattr(b, "id", None) == "StoreBase" for b in cls.bases):
                found[cls.name] = sorted(self_attributes(cls) - members(cls) - shared)
    assert {"ApprovalVerbs", "TaskVerbs", "ConflictVerbs"} <= set(found)  # not vacuous
    assert {k: v for k, v in found.items() if v} == {}
