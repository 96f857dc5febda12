"""core.records: the classes of the agents' path behave as the dataclasses they replaced.

Where the behaviour is dataclasses' own (equality, hashing, repr, frozen
refusal, the constructor's signature), the same class is also built with
``dataclasses.dataclass`` and the two are compared.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from core.models import Approval, Task
from core.records import FrozenInstanceError, field, fields, record

ROOT = Path(__file__).resolve().parents[2]


def both(options: dict[str, Any], body: dict[str, Any], annotations: dict[str, str]) -> tuple[type, type]:
    """The same class built by core.records and by dataclasses (with the same options)."""
    def build(decorate: Any, make_field: Any) -> type:
        namespace = {k: (make_field(**v) if isinstance(v, dict) else v) for k, v in body.items()}
        namespace["__annotations__"] = dict(annotations)
        return decorate(type("Point", (), namespace))

    ours = build(lambda c: record(**options)(c), field)
    theirs = build(lambda c: dataclasses.dataclass(**options)(c), dataclasses.field)
    return ours, theirs


ANNOTATIONS = {"x": "int", "y": "str", "tags": "tuple[str, ...]"}
BODY = {"y": "a", "tags": {"default_factory": tuple}}


@pytest.mark.parametrize("options", [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True},
                                     {"kw_only": True}, {"unsafe_hash": True}])
def test_equality_hash_and_repr_are_those_of_the_dataclass(options):
    ours, theirs = both(options, BODY, ANNOTATIONS)
    kw = {"x": 1, "y": "b", "tags": ("t",)}
    a, b, c = ours(**kw), ours(**kw), ours(**{**kw, "x": 2})
    da = theirs(**kw)
    assert a == b and a != c
    assert (a == b) == (da == theirs(**kw))
    assert a != da and da != a  # another class, even with the same fields
    assert repr(a) == repr(da) == "Point(x=1, y='b', tags=('t',))"
    hashable = theirs.__hash__ is not None
    assert (ours.__hash__ is not None) == hashable
    if hashable:
        assert hash(a) == hash(b) and len({a, b, c}) == 2
    else:
        with pytest.raises(TypeError, match="unhashable"):
            hash(a)


def test_a_nan_field_equals_itself_as_in_a_dataclass():
    """Fields are compared as tuples are (identity first): a row holding NaN still equals itself."""
    ours, theirs = both({"frozen": True}, {}, {"x": "float"})
    nan = math.nan
    assert ours(nan) == ours(nan)
    assert theirs(nan) == theirs(nan)


@pytest.mark.parametrize("options", [{}, {"kw_only": True}, {"frozen": True, "slots": True}])
def test_the_constructor_takes_what_the_dataclass_takes(options):
    ours, theirs = both(options, BODY, ANNOTATIONS)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {"x": 1}), ((1,), {}), ((1, "b"), {}), ((1, "b", ("t",)), {}), ((), {"x": 1, "tags": ("u",)}),
        ((), {}), ((1,), {"x": 2}), ((1, "b", (), 4), {}), ((), {"x": 1, "z": 2}),
    ]
    for args, kwargs in calls:
        try:
            expected = repr(theirs(*args, **kwargs))
        except TypeError:
            with pytest.raises(TypeError):
                ours(*args, **kwargs)
        else:
            assert repr(ours(*args, **kwargs)) == expected, (args, kwargs)


def test_a_default_factory_makes_a_new_value_for_each_instance():
    @record
    class Bag:
        items: list[int] = field(default_factory=list)
        label: str = "bag"

    a, b = Bag(), Bag()
    a.items.append(1)
    assert b.items == [] and a.items is not b.items
    mine = [7]
    assert Bag(mine).items is mine  # a value given is kept, not replaced by the factory
    assert Bag().label == "bag" and Bag(label="x").label == "x"


def test_kw_only_refuses_positional_arguments():
    @record(kw_only=True)
    class Row:
        id: int
        name: str = ""

    assert Row(id=1).name == ""
    with pytest.raises(TypeError):
        Row(1)  # type: ignore[misc]


def test_a_field_without_default_after_one_with_a_default_is_refused_unless_kw_only():
    with pytest.raises(TypeError, match="'b' without a default follows 'a'"):
        @record
        class Bad:
            a: int = 0
            b: int

    @record(kw_only=True)
    class Fine:
        a: int = 0
        b: int

    assert Fine(b=2).a == 0


def test_a_mutable_default_is_refused():
    with pytest.raises(ValueError, match="default_factory"):
        @record
        class Bad:
            items: list[int] = []  # noqa: RUF012


def test_a_frozen_record_refuses_assignment_and_deletion():
    @record(frozen=True)
    class Point:
        x: int
        y: int = 0

    p = Point(1)
    with pytest.raises(FrozenInstanceError, match="'x'"):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):  # FrozenInstanceError is one: code catching that keeps working
        p.y = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x
    with pytest.raises(FrozenInstanceError):
        p.z = 3  # type: ignore[attr-defined]
    assert (p.x, p.y) == (1, 0)


def test_a_plain_record_is_mutable_and_unhashable():
    @record
    class Cell:
        value: int

    c = Cell(1)
    c.value = 2
    assert c == Cell(2)
    with pytest.raises(TypeError):
        hash(c)


def test_slots_leave_no_instance_dict():
    @record(slots=True, frozen=True)
    class Point:
        x: int
        y: int = 5

    p = Point(1)
    assert Point.__slots__ == ("x", "y")
    assert not hasattr(p, "__dict__")
    assert p.y == 5
    assert Point.__qualname__.endswith("test_slots_leave_no_instance_dict.<locals>.Point")

    @record(slots=True)
    class Open:
        x: int

    o = Open(1)
    o.x = 2
    with pytest.raises(AttributeError):
        o.other = 1  # type: ignore[attr-defined]


def test_post_init_runs_after_the_fields_are_set():
    seen = []

    @record
    class Index:
        keys: tuple[str, ...] = ()

        def __post_init__(self) -> None:
            seen.append(self.keys)
            self.lookup = {k: i for i, k in enumerate(self.keys)}

    assert Index(("a", "b")).lookup == {"a": 0, "b": 1}
    assert seen == [("a", "b")]


def test_fields_give_names_in_order_with_read_only_metadata():
    @record(kw_only=True)
    class Row:
        limit: ClassVar[int] = 3
        id: int = field(metadata={"json": "ref:task"})
        name: str = "n"

    assert [f.name for f in fields(Row)] == ["id", "name"]  # a ClassVar is not a field
    assert fields(Row(id=1)) == fields(Row)
    meta = fields(Row)[0].metadata
    assert meta["json"] == "ref:task" and dict(fields(Row)[1].metadata) == {}
    with pytest.raises(TypeError):
        meta["json"] = "x"  # type: ignore[index]
    assert Row.limit == 3 and Row(id=1).name == "n"
    with pytest.raises(TypeError, match="not a record"):
        fields(int)


def test_methods_written_in_the_class_are_kept():
    @record(frozen=True)
    class Named:
        name: str

        def __repr__(self) -> str:
            return f"<{self.name}>"

    assert repr(Named("a")) == "<a>"


def test_a_record_does_not_inherit_fields():
    @record
    class Base:
        a: int

    with pytest.raises(TypeError, match="do not inherit"):
        @record
        class Child(Base):
            b: int


def test_rows_compare_hash_and_print_by_value():
    """core.models: keyword-only slotted rows, equal and hashable by value (sets and dict keys of rows)."""
    kw: dict[str, Any] = {"id": 3, "title": "t", "created_at": 1.0, "updated_at": 2.0}
    a, b = Task(**kw), Task(**kw)
    assert a == b and hash(a) == hash(b) and len({a, b, Task(**{**kw, "id": 4})}) == 2
    assert repr(a).startswith("Task(id=3, title='t', description=''")
    assert not hasattr(a, "__dict__")
    assert Approval(id=1, kind="k", summary="s", status="pending", requested_by="r", created_at=0.0).detail == {}
    with pytest.raises(TypeError):
        Task(3, "t")  # type: ignore[misc]


def test_importing_records_loads_neither_dataclasses_nor_typing():
    code = ("import sys, core.records, core.models\n"
            "print(sorted({'dataclasses', 'inspect', 'typing'} & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
