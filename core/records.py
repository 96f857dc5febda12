"""Record classes without ``dataclasses``: the part of it that the agents' path uses.

``tower hook`` runs on every tool call of every agent, and importing the
stdlib's ``dataclasses`` (which imports ``inspect``, and with it ``ast``,
``dis`` and ``tokenize``) and ``typing``, then generating each class's
methods, was a large part of what such a call costs (docs/DECISIONS.md).
:func:`record` makes a class with what ``dataclasses.dataclass`` gives it,
for the options Tower uses:

- ``__init__`` compiled from source text once per class, at its first
  instance (rows are built in bulk; most classes a process imports are never
  built): parameters in field order, positional or keyword-only
  (``kw_only``), a default or a ``default_factory`` (:func:`field`), then
  ``__post_init__`` if the class has one;
- ``__eq__`` over the fields' values, for the same class only; ``__hash__``
  over the same values when ``frozen`` (or ``unsafe_hash``), else ``None``
  (unhashable), as ``dataclasses`` decides;
- ``__repr__``: ``Name(a=1, b='x')``;
- ``frozen``: assigning or deleting an attribute raises
  :class:`FrozenInstanceError` (an ``AttributeError``);
- ``slots``: the class is rebuilt with ``__slots__`` naming its fields.

What nothing here uses is not offered (``eq=False``, ``repr=False``,
ordering, ``match_args``, ``InitVar``, ``replace``, ``asdict``, fields
inherited from a record) and is refused where it could otherwise go
unnoticed. An explicit ``__init__``,
``__eq__``, ``__hash__`` or ``__repr__`` in the class body is kept.

Type checkers see :func:`record` as a ``dataclass_transform`` (PEP 681), so
mypy checks constructor calls, and assignments to a frozen record's fields,
as it does for dataclasses; ``typing`` is imported for the checker only
(core/typecheck.py).
"""

from __future__ import annotations

from operator import attrgetter
from types import MappingProxyType

from core.typecheck import dataclass_transform, overload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    T = TypeVar("T")


__all__ = ["MISSING", "Field", "FrozenInstanceError", "field", "fields", "record"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class FrozenInstanceError(AttributeError):
    """An assignment to, or deletion of, an attribute of a frozen record."""


class Field:
    """One field of a record: its name, default (or factory) and metadata (read-only)."""

    __slots__ = ("name", "default", "default_factory", "metadata")

    def __init__(self, default: Any, default_factory: Any, metadata: Mapping[str, Any]) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.metadata = metadata

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, default={self.default!r}, "
                f"default_factory={self.default_factory!r}, metadata={dict(self.metadata)!r})")


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] = MISSING,
          metadata: Mapping[str, Any] | None = None) -> Any:
    """A field's default (or a factory called for each instance) and metadata, as ``dataclasses.field``."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("a field takes a default or a default_factory, not both")
    return Field(default, default_factory, _EMPTY if not metadata else MappingProxyType(dict(metadata)))


def fields(record_or_class: Any) -> tuple[Field, ...]:
    """The fields of a record class (or of a record), in order."""
    cls = record_or_class if isinstance(record_or_class, type) else type(record_or_class)
    try:
        return cls.__dict__["__record_fields__"]
    except KeyError:
        raise TypeError(f"{cls.__qualname__} is not a record class") from None


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = False, kw_only: bool = False, slots: bool = False,
           unsafe_hash: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[T] | None = None, /, *, frozen: bool = False, kw_only: bool = False, slots: bool = False,
           unsafe_hash: bool = False) -> Any:
    """Make ``cls`` a record (see the module doc); use as ``@record`` or ``@record(frozen=True, …)``."""
    options = (frozen, kw_only, slots, unsafe_hash)
    if cls is None:
        return lambda c: _make(c, *options)
    return _make(cls, *options)


def _is_classvar(annotation: object) -> bool:
    # annotations are text under `from __future__ import annotations`
    text = annotation if isinstance(annotation, str) else str(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _make(cls: Any, frozen: bool, kw_only: bool, slots: bool, unsafe_hash: bool) -> Any:
    for base in cls.__mro__[1:]:
        if "__record_fields__" in base.__dict__:
            raise TypeError(f"{cls.__qualname__}: records do not inherit fields (from {base.__qualname__})")
    found: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(value, MISSING, _EMPTY)
        if isinstance(f.default, (list, dict, set)):
            # one object shared by every instance: dataclasses refuses it too
            raise ValueError(f"{cls.__qualname__}.{name}: a mutable default ({type(f.default).__name__})"
                             " must be a default_factory")
        f.name = name
        found.append(f)
        if isinstance(value, Field):  # the class attribute becomes the plain default, as in dataclasses
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
    names = tuple(f.name for f in found)
    if not kw_only:
        _check_order(cls, found)
    if slots:
        if "__slots__" in cls.__dict__:
            raise TypeError(f"{cls.__qualname__} already defines __slots__")
        namespace = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
        namespace["__slots__"] = names
        qualname = cls.__qualname__
        cls = type(cls)(cls.__name__, cls.__bases__, namespace)
        cls.__qualname__ = qualname
    own = cls.__dict__
    cls.__record_fields__ = tuple(found)
    if "__init__" not in own:
        cls.__init__ = _first_init(cls, found, frozen, kw_only)
    values = _getter(names)
    if "__eq__" not in own:
        def __eq__(self: Any, other: object) -> bool:
            if other.__class__ is self.__class__:
                return values(self) == values(other)
            return NotImplemented

        cls.__eq__ = __eq__
    if "__hash__" not in own or own["__hash__"] is None:
        if unsafe_hash or frozen:
            def __hash__(self: Any) -> int:
                return hash(values(self))

            cls.__hash__ = __hash__
        else:
            cls.__hash__ = None  # mutable and compared by value: unhashable
    if "__repr__" not in own:
        def __repr__(self: Any) -> str:
            return f"{self.__class__.__qualname__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

        cls.__repr__ = __repr__
    if frozen:
        if "__setattr__" in own or "__delattr__" in own:
            raise TypeError(f"{cls.__qualname__}: a frozen record cannot define __setattr__ or __delattr__")
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
    return cls


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The fields' values of a record as one tuple (compared and hashed as dataclasses compares them)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {self.__class__.__qualname__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {self.__class__.__qualname__}")


def _check_order(cls: type, found: list[Field]) -> None:
    """A positional parameter without a default cannot follow one with a default."""
    after_default = None
    for f in found:
        if f.default is not MISSING or f.default_factory is not MISSING:
            after_default = after_default or f.name
        elif after_default is not None:
            raise TypeError(f"{cls.__qualname__}: field {f.name!r} without a default follows"
                            f" {after_default!r}, which has one")


def _first_init(cls: Any, found: list[Field], frozen: bool, kw_only: bool) -> Callable[..., None]:
    """An ``__init__`` that compiles the real one at the class's first instance and puts it in its
    place: a process builds few of the classes it imports (a hook call, a handful of the rows)."""
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _init(cls, found, frozen, kw_only)
        cls.__init__ = init
        init(self, *args, **kwargs)

    return __init__


def _init(cls: type, found: list[Field], frozen: bool, kw_only: bool) -> Callable[..., None]:
    """``__init__`` from source text: as fast as a hand-written one, which matters for rows built in bulk."""
    env: dict[str, Any] = {"__record_factory": MISSING, "__record_setattr": object.__setattr__}
    params: list[str] = []
    body: list[str] = []
    for f in found:
        name = f.name
        value = name
        if f.default is not MISSING:
            env[f"__record_d_{name}"] = f.default
            param = f"{name}=__record_d_{name}"
        elif f.default_factory is not MISSING:
            env[f"__record_f_{name}"] = f.default_factory
            param = f"{name}=__record_factory"
            value = f"__record_f_{name}() if {name} is __record_factory else {name}"
        else:
            param = name
        params.append(param)
        body.append(f"__record_setattr(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    signature = ", ".join(["self", *(["*"] if kw_only and params else []), *params])
    source = f"def __init__({signature}):\n    " + "\n    ".join(body or ["pass"]) + "\n"
    namespace: dict[str, Any] = {}
    exec(source, env, namespace)  # noqa: S102  # our own text: names of the class's fields
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init
