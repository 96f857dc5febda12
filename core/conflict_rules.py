"""Which conflicts a write opens, and when an open conflict's cause has gone away.

Pure: no I/O. The watcher service (``tui.services.watch.py``) builds a :class:`World`
from the store after each batch of content changes, asks :func:`conflicts_for`
what each changed file opens, records those, and asks :func:`cause_gone` of
every open conflict whether it can be closed.

Baselines
    A file of a worktree is *changed* when its content differs from its
    baseline: the content the watcher first knew for it (from the worktree's
    first snapshot, or, for a file created later, "absent"). A file equal to
    its baseline -- or deleted when it had none -- is unchanged: that is what
    "reverted" means here. The store keeps one row per changed file
    (``changed_files``: baseline hash, current hash, episode id); the world
    holds those rows as :class:`FileChange`. Commits do not move a baseline.

The four kinds (DESIGN.md, Entities -> Conflict), for a changed file P of
worktree W:

``claimed_by_other``
    P is actively claimed by a lease that is not one of W's and is not held in
    W. Names both worktrees, the holder (lease, agent, task) and W's own lease.
``out_of_scope``
    W has active leases, every one of them has a non-empty task scope, and P
    matches none of them (and no lease of W claims P).
``unleased_write``
    W has no active lease.
``concurrent_edit``
    P is also changed in another registered worktree W2, with different
    content (two worktrees making the *same* change is not a conflict: it
    merges cleanly). One conflict per pair of worktrees, whichever wrote first.

A conflict's cause is gone (:func:`cause_gone`) when:

- its worktree (or, for ``concurrent_edit``, the other one) is no longer
  registered;
- P in W is back to its baseline (every kind);
- ``claimed_by_other``: the holder's claim on P is released (or its lease
  ended or expired);
- ``concurrent_edit``: P in W2 is back to its baseline, or both now hold the
  same content.

``out_of_scope`` and ``unleased_write`` are *not* closed when the lease ends
or a lease is taken later: the stray change is still in the worktree, about
to be committed with the task's work -- exactly when a person should look.
Only a revert, or a person's acknowledgement, closes them.

Episodes
    Each spec carries an ``episode`` key built from the ``changed_files`` row
    ids (and the claim or lease involved). The store keeps an acknowledged
    conflict silent while its episode lasts: a person who acked "wt-b wrote
    src/app.py, claimed by L3" is not asked again on every save, but is
    asked again once the file was reverted and changed anew, or the path was
    claimed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.ids import format_id
from core.records import field, record
from core.scope import matches

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class _ConflictLike(Protocol):
        kind: str
        path: str
        worktree: str
        other_worktree: str | None
        other_lease_id: int | None

__all__ = [
    "ClaimView",
    "ConflictSpec",
    "FileChange",
    "LeaseView",
    "World",
    "cause_gone",
    "conflicts_for",
]

_TITLE_MAX = 40


@record(frozen=True, slots=True)
class LeaseView:
    """An active lease, with what the rules need of its task."""

    id: int
    agent: str
    worktree: str | None
    task_id: int
    task_title: str = ""
    scope: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return format_id("lease", self.id) or ""

    @property
    def task(self) -> str:
        return format_id("task", self.task_id) or ""

    def label(self, *, where: bool = False) -> str:
        """``L3 (agent-a in wt-a, task T2 "Fix login")``."""
        title = self.task_title
        if len(title) > _TITLE_MAX:
            title = title[: _TITLE_MAX - 1] + "…"
        place = ""
        if where:
            place = f" in {self.worktree}" if self.worktree else ", no worktree"
        quoted = f' "{title}"' if title else ""
        return f"{self.name} ({self.agent}{place}, task {self.task}{quoted})"

    def as_detail(self) -> dict[str, Any]:
        return {"lease": self.name, "agent": self.agent, "worktree": self.worktree,
                "task": self.task, "title": self.task_title, "scope": list(self.scope)}


@record(frozen=True, slots=True)
class ClaimView:
    """An active claim on a path (``claim_id`` tells a re-claim from the old one)."""

    path: str
    lease_id: int
    claim_id: int | None = None


@record(frozen=True, slots=True)
class FileChange:
    """A file of a worktree that differs from its baseline (hashes: None = absent)."""

    worktree: str
    path: str
    episode: int
    base_hash: str | None
    hash: str | None

    @property
    def verb(self) -> str:
        if self.hash is None:
            return "deleted"
        if self.base_hash is None:
            return "created"
        return "wrote"

    @property
    def change(self) -> str:
        return {"deleted": "deleted", "created": "added", "wrote": "modified"}[self.verb]


@record
class World:
    """What the rules look at: active leases and claims, changed files, registered worktrees.

    ``changed`` may be limited to the paths being evaluated; ``worktrees``
    None means "do not check registration".
    """

    leases: Mapping[int, LeaseView] = field(default_factory=dict)
    claims: Mapping[str, ClaimView] = field(default_factory=dict)
    changed: Iterable[FileChange] = ()
    worktrees: frozenset[str] | None = None
    # leases that ended a moment ago: a write is judged a little after it
    # happened, and the agent may have finished its task in between
    recent: Iterable[LeaseView] = ()

    def __post_init__(self) -> None:
        self._changed: dict[tuple[str, str], FileChange] = {}
        self._by_path: dict[str, list[FileChange]] = {}
        for fc in self.changed:
            self._changed[(fc.worktree, fc.path)] = fc
            self._by_path.setdefault(fc.path, []).append(fc)
        self._by_wt: dict[str | None, list[LeaseView]] = {}
        for lease in sorted(self.leases.values(), key=lambda x: x.id):
            self._by_wt.setdefault(lease.worktree, []).append(lease)

    def file(self, worktree: str, path: str) -> FileChange | None:
        """The change of ``path`` in ``worktree`` against its baseline; None: at its baseline."""
        return self._changed.get((worktree, path))

    def changed_elsewhere(self, path: str, worktree: str) -> list[FileChange]:
        return sorted(
            (fc for fc in self._by_path.get(path, ()) if fc.worktree != worktree and self.registered(fc.worktree)),
            key=lambda fc: fc.worktree,
        )

    def leases_in(self, worktree: str) -> list[LeaseView]:
        return list(self._by_wt.get(worktree, ()))

    def recent_in(self, worktree: str) -> list[LeaseView]:
        return sorted((lease for lease in self.recent if lease.worktree == worktree), key=lambda x: x.id)

    def registered(self, worktree: str | None) -> bool:
        return self.worktrees is None or worktree in self.worktrees


@record(frozen=True)
class ConflictSpec:
    """A conflict to open (the arguments of the store's ``record_conflict``)."""

    kind: str
    path: str
    worktree: str
    other_worktree: str | None = None
    lease_id: int | None = None
    other_lease_id: int | None = None
    task_id: int | None = None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    episode: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.kind, self.path, self.worktree, self.other_worktree)


def _own(worktree: str, leases: list[LeaseView]) -> str:
    if not leases:
        return f"{worktree} holds no lease"
    return f"{worktree} holds " + " and ".join(lease.label() for lease in leases)


def _scopes(leases: list[LeaseView]) -> str:
    parts = [f"task {lease.task} ({', '.join(lease.scope)}) of {lease.name} ({lease.agent})" for lease in leases]
    return " and of ".join(parts)


def conflicts_for(worktree: str, path: str, world: World) -> list[ConflictSpec]:
    """The conflicts a content change of ``path`` in ``worktree`` opens (none when it is a revert)."""
    fc = world.file(worktree, path)
    if fc is None or not world.registered(worktree):
        return []  # back to its baseline (or not ours to judge)
    mine = world.leases_in(worktree)
    first = mine[0] if mine else None
    lease_id = first.id if first else None
    task_id = first.task_id if first else None
    base_detail: dict[str, Any] = {
        "change": fc.change,
        "hash": fc.hash,
        "base_hash": fc.base_hash,
        "leases": [lease.as_detail() for lease in mine],
    }
    out: list[ConflictSpec] = []

    claim = world.claims.get(path)
    holder = world.leases.get(claim.lease_id) if claim is not None else None
    claimed_by_me = holder is not None and (holder.worktree == worktree or any(x.id == holder.id for x in mine))
    if holder is not None and not claimed_by_me:
        out.append(ConflictSpec(
            kind="claimed_by_other",
            path=path,
            worktree=worktree,
            other_worktree=holder.worktree,
            lease_id=lease_id,
            other_lease_id=holder.id,
            task_id=task_id,
            message=f"{worktree} {fc.verb} {path}, claimed by {holder.label(where=True)}; {_own(worktree, mine)}",
            detail={**base_detail, "holder": holder.as_detail()},
            episode=f"{fc.episode}:{claim.claim_id if claim is not None and claim.claim_id is not None else 'L%d' % holder.id}",
        ))

    recent = world.recent_in(worktree)
    if not mine and not recent:
        out.append(ConflictSpec(
            kind="unleased_write",
            path=path,
            worktree=worktree,
            message=f"{worktree} {fc.verb} {path} with no active lease in {worktree}",
            detail=base_detail,
            episode=str(fc.episode),
        ))
    elif (mine or recent) and not claimed_by_me and all(lease.scope for lease in mine + recent) and not any(
        matches(path, lease.scope) for lease in mine + recent
    ):
        out.append(ConflictSpec(
            kind="out_of_scope",
            path=path,
            worktree=worktree,
            lease_id=lease_id,
            task_id=task_id,
            message=f"{worktree} {fc.verb} {path}, outside the scope of {_scopes(mine)}",
            detail=base_detail,
            episode=f"{fc.episode}:{'+'.join(str(lease.id) for lease in mine)}",
        ))

    for other in world.changed_elsewhere(path, worktree):
        if other.hash == fc.hash:
            continue  # the same change on both sides merges cleanly
        theirs = world.leases_in(other.worktree)
        a, b = sorted((fc.episode, other.episode))
        out.append(ConflictSpec(
            kind="concurrent_edit",
            path=path,
            worktree=worktree,
            other_worktree=other.worktree,
            lease_id=lease_id,
            other_lease_id=theirs[0].id if theirs else None,
            task_id=task_id,
            message=(f"{worktree} {fc.verb} {path}, also changed in {other.worktree}; "
                     f"{_own(worktree, mine)}, {_own(other.worktree, theirs)}"),
            detail={**base_detail, "other": {"worktree": other.worktree, "change": other.change,
                                             "hash": other.hash, "base_hash": other.base_hash,
                                             "leases": [lease.as_detail() for lease in theirs]}},
            episode=f"{a}+{b}",
        ))
    return out


def cause_gone(conflict: _ConflictLike, world: World) -> str | None:
    """Why an open conflict can be closed now, or None while its cause lasts."""
    wt, path, kind = conflict.worktree, conflict.path, conflict.kind
    if not world.registered(wt):
        return f"worktree {wt} is no longer registered"
    if world.file(wt, path) is None:
        return f"{path} in {wt} is back to its baseline"
    if kind == "claimed_by_other" and conflict.other_lease_id is not None:
        claim = world.claims.get(path)
        if claim is None or claim.lease_id != conflict.other_lease_id:
            return f"{format_id('lease', conflict.other_lease_id)} no longer claims {path}"
    elif kind == "concurrent_edit" and conflict.other_worktree is not None:
        other = conflict.other_worktree
        if not world.registered(other):
            return f"worktree {other} is no longer registered"
        theirs = world.file(other, path)
        if theirs is None:
            return f"{path} in {other} is back to its baseline"
        mine = world.file(wt, path)
        if mine is not None and mine.hash == theirs.hash:
            return f"{wt} and {other} now hold the same content for {path}"
    return None
