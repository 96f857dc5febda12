"""The commit guard: git hooks that refuse commits and pushes breaking Tower's rules.

Hooks are a backstop for agents that Tower does not govern through their own
hook system: whatever an agent wrote, a commit touching a file another
worktree's active lease claims, or a file outside the committing lease's task
scope, is refused (exit 4, naming file, holder and task) and recorded in the
audit log (``guard.refused``). Pushes from an agent (a worktree with an active
lease, or ``TOWER_AGENT`` set) may not rewrite or delete remote branches, nor
update a protected one.

Tower's own failures never block silently: with no store the commit proceeds
after a one-line warning; with a store that cannot be read the commit is
refused with the reason, and the message names ``--no-verify``, the person's
escape hatch.

No click and no Textual here: the command line (``tui/commands/guard.py``)
wraps these functions.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.display import printable_line
from core.errors import BadInput, Refused, StoreUnusable, TowerError
from core.ids import format_id
from tui.services.agent_config import write_text_atomically

HOOKS = ("pre-commit", "pre-push")
MARKER = "# tower-guard:"
CHAINED_SUFFIX = ".tower-chained"
DEFAULT_PROTECTED = ("main", "master")
ZERO_SHA = "0" * 40
NO_VERIFY = "git commit --no-verify (or git push --no-verify) skips this check"


# -- git -------------------------------------------------------------------------------


def _git(args: list[str], cwd: Path, *, input: bytes | None = None, check: bool = True) -> bytes:
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=False)
    if check and proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BadInput(f"git {args[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _split_z(out: bytes) -> list[str]:
    return [os.fsdecode(p) for p in out.split(b"\0") if p]


def has_head(root: Path) -> bool:
    return subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=root,
                          capture_output=True, check=False).returncode == 0


def changed_paths(root: Path, *, staged: bool) -> list[str]:
    """Repository-relative paths a commit would touch.

    ``staged``: the index against HEAD (what ``git commit`` records; git's
    ``GIT_INDEX_FILE`` for ``commit -a`` or a partial commit is inherited).
    Otherwise everything changed in the worktree: staged, unstaged and
    untracked files that are not ignored. Renames count as a deletion and an
    addition, so moving a claimed file away is touching it.
    """
    paths: set[str] = set()
    head = has_head(root)
    if staged:
        base = ["diff", "--cached", "--name-only", "-z", "--no-renames"]
        # an unborn branch: everything in the index is new
        paths.update(_split_z(_git(base if head else ["ls-files", "-z", "--cached"], root)))
    else:
        if head:
            paths.update(_split_z(_git(["diff", "HEAD", "--name-only", "-z", "--no-renames"], root)))
        else:
            paths.update(_split_z(_git(["ls-files", "-z", "--cached"], root)))
        paths.update(_split_z(_git(["ls-files", "-z", "--others", "--exclude-standard"], root)))
    return sorted(paths)


def hooks_dir(root: Path) -> Path:
    """Where git looks for this repository's hooks: ``core.hooksPath`` when set, else the common
    ``hooks`` folder (shared by every worktree). git resolves both (``rev-parse --git-path hooks``)."""
    out = _git(["rev-parse", "--git-path", "hooks"], root).decode().strip()
    path = Path(out)
    return (path if path.is_absolute() else root / path).resolve()


def protected_branches(root: Path) -> list[str]:
    """Branch globs agents may not push to: ``git config tower.protectedBranch`` (repeatable),
    else ``main`` and ``master``."""
    out = _git(["config", "--get-all", "tower.protectedBranch"], root, check=False).decode()
    found = [line.strip() for line in out.splitlines() if line.strip()]
    return found or list(DEFAULT_PROTECTED)


def _is_ancestor(root: Path, old: str, new: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", old, new], cwd=root,
                          capture_output=True, check=False).returncode == 0


# -- judging a commit -----------------------------------------------------------------


@dataclass
class Verdict:
    """What the guard found: the files checked, and each refusal with its reason."""

    checked: int
    refusals: list[dict[str, Any]] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def _holder(claim) -> str:
    where = f" in {claim.worktree}" if claim.worktree else ""
    return (f"{format_id('lease', claim.lease_id)} ({printable_line(claim.agent)}{where},"
            f" task {format_id('task', claim.task_id)} {printable_line(claim.task_title)})")


def judge_commit(paths: list[str], claims, leases, worktree: str | None) -> Verdict:
    """Refuse each path claimed by another worktree's active lease, or outside every scope of
    the committing worktree's leases (no lease: no scope to keep to). Claims cover their path
    and everything below it, so each path is looked up with its parent folders: one dict probe
    per level, whatever the number of claims."""
    from core.scope import matches

    others = {c.path: c for c in claims if c.worktree != worktree}
    unrestricted = not leases or any(not lease.scope for lease in leases)
    verdict = Verdict(checked=len(paths), leases=[format_id("lease", lease.lease_id) for lease in leases])
    for path in paths:
        probe, claim = path, None
        while probe:
            claim = others.get(probe)
            if claim is not None:
                break
            probe = probe.rpartition("/")[0]
        if claim is not None:
            verdict.refusals.append({
                "path": path, "reason": "claimed_by_other", "claim": claim.path,
                "lease_id": format_id("lease", claim.lease_id), "agent": claim.agent,
                "worktree": claim.worktree, "task_id": format_id("task", claim.task_id),
                "message": f"{printable_line(path)} is claimed by {_holder(claim)}",
            })
        elif not unrestricted and not any(matches(path, lease.scope) for lease in leases):
            scopes = sorted({g for lease in leases for g in lease.scope})
            tasks = ", ".join(format_id("task", lease.task_id) for lease in leases)
            verdict.refusals.append({
                "path": path, "reason": "out_of_scope", "scope": scopes,
                "lease_id": format_id("lease", leases[0].lease_id), "task_id": format_id("task", leases[0].task_id),
                "message": f"{printable_line(path)} is outside the scope of task {tasks}"
                           f" ({printable_line(', '.join(scopes))})",
            })
    # another agent's claim is the refusal that matters most: name it first
    verdict.refusals.sort(key=lambda r: (r["reason"] != "claimed_by_other", r["path"]))
    return verdict


def committing_leases(leases, *, agent: str | None, lease_hint: int | None):
    """The leases a commit in this worktree is made under: ``TOWER_LEASE`` if set, else the
    worktree's leases held by ``TOWER_AGENT`` (when it holds any), else all of them."""
    if lease_hint is not None:
        return [lease for lease in leases if lease.lease_id == lease_hint]
    if agent:
        mine = [lease for lease in leases if lease.agent == agent]
        if mine:
            return mine
    return list(leases)


async def worktree_of(store, root: Path) -> str | None:
    """The registered name of the worktree at ``root`` (read only: the guard registers nothing)."""
    real = root.resolve()
    for name, path, _active in await store.worktree_rows():
        if Path(path) == real:
            return name
    return None


def refusal_error(verdict: Verdict, what: str) -> Refused:
    first = verdict.refusals[0]["message"]
    more = len(verdict.refusals) - 1
    return Refused(f"{what} refused: {first}" + (f" (and {more} more)" if more else ""),
                   code="guard_refused", data={"refusals": verdict.refusals, "checked": verdict.checked})


async def check_commit(store, *, root: Path, paths: list[str], actor: str, agent: str | None,
                       lease_hint: int | None, hook: str | None) -> Verdict:
    """Judge ``paths`` for a commit in the worktree at ``root``; a refusal is audited
    (``guard.refused``) and raised as Refused (exit 4)."""
    worktree = await worktree_of(store, root)
    claims = await store.active_claims()
    leases = await store.worktree_leases(worktree) if worktree else []
    leases = committing_leases(leases, agent=agent, lease_hint=lease_hint)
    verdict = judge_commit(paths, claims, leases, worktree)
    if not verdict.ok:
        first_lease = leases[0] if len(leases) == 1 else None
        await store.record_guard_refusal(
            hook=hook or "check", actor=actor, worktree=worktree,
            refusals=[{k: v for k, v in r.items() if k != "message"} for r in verdict.refusals],
            lease_id=first_lease.lease_id if first_lease else None,
            task_id=first_lease.task_id if first_lease else None,
        )
        raise refusal_error(verdict, "commit")
    return verdict


# -- judging a push ------------------------------------------------------------------


def parse_push_lines(text: str) -> list[tuple[str, str, str, str]]:
    """git's pre-push stdin: ``<local ref> <local sha> <remote ref> <remote sha>`` per line."""
    updates = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise BadInput(f"pre-push input line {n} is not '<local ref> <local sha> <remote ref> <remote sha>'")
        updates.append((parts[0], parts[1], parts[2], parts[3]))
    return updates


def judge_push(root: Path, updates, protected: list[str]) -> Verdict:
    """An agent's push may not delete a remote branch, rewrite one (not a fast-forward), or
    update a protected one."""
    verdict = Verdict(checked=len(updates))
    for _local_ref, local_sha, remote_ref, remote_sha in updates:
        branch = remote_ref.removeprefix("refs/heads/")
        shown = printable_line(branch)
        if set(local_sha) == {"0"}:
            reason, message = "delete", f"deleting {shown} is a person's act"
        elif remote_ref.startswith("refs/heads/") and any(fnmatch.fnmatchcase(branch, g) for g in protected):
            reason, message = "protected", f"{shown} is a protected branch (tower.protectedBranch)"
        elif set(remote_sha) != {"0"} and not _is_ancestor(root, remote_sha, local_sha):
            reason, message = "force", f"the push to {shown} is not a fast-forward (a force push rewrites history)"
        else:
            continue
        verdict.refusals.append({"path": None, "ref": remote_ref, "reason": reason, "message": message})
    return verdict


async def check_push(store, *, root: Path, updates, actor: str, agent: str | None) -> Verdict:
    """Refuse an agent's push that breaks the branch rules (audited). A person's push (no
    ``TOWER_AGENT`` and no active lease in this worktree) is not restricted."""
    worktree = await worktree_of(store, root)
    leases = await store.worktree_leases(worktree) if worktree else []
    if not agent and not leases:
        return Verdict(checked=len(updates))
    verdict = judge_push(root, updates, protected_branches(root))
    if not verdict.ok:
        await store.record_guard_refusal(hook="pre-push", actor=actor, worktree=worktree,
                                         refusals=[{k: v for k, v in r.items() if k != "message"}
                                                   for r in verdict.refusals])
        raise refusal_error(verdict, "push")
    return verdict


# -- when Tower itself is broken -------------------------------------------------------


def broken(exc: BaseException) -> TowerError:
    """Tower could not judge: say why, and name the person's escape hatch."""
    if isinstance(exc, TowerError):
        exc.message = f"{exc.message}; Tower could not check this commit ({NO_VERIFY})"
        return exc
    return StoreUnusable(
        f"Tower could not check this commit: {type(exc).__name__}: {exc} ({NO_VERIFY})", code="guard_broken"
    )


# -- installing the hooks --------------------------------------------------------------


def hook_script(hook: str, program: list[str], db: str | None) -> str:
    """The hook git runs: the hook that was there before (if any) first, then Tower's check.

    A Tower that is no longer installed warns and lets git go on (nothing to
    enforce with); a chained hook's failure stops git as it always did.
    """
    words = [*program, "guard", "check"]
    if db:
        words += ["--db", db]
    words += ["--staged", "--hook", "pre-commit"] if hook == "pre-commit" else ["--push", "--hook", "pre-push"]
    command = " ".join(shlex.quote(w) for w in words)
    exe = shlex.quote(program[0])
    lines = [
        "#!/bin/sh",
        f"{MARKER} installed by `tower guard install`; `tower guard uninstall` restores what was here.",
        f'chained="$(dirname "$0")/{hook}{CHAINED_SUFFIX}"',
    ]
    if hook == "pre-push":
        # git gives the refs on stdin: both the chained hook and Tower read them
        lines += [
            'input=$(cat)',
            'if [ -x "$chained" ]; then',
            '    printf "%s\\n" "$input" | "$chained" "$@" || exit $?',
            "fi",
            f"if [ ! -x {exe} ]; then",
            f'    echo "tower guard: {exe} is not installed; push not checked by Tower" >&2',
            "    exit 0",
            "fi",
            f'printf "%s\\n" "$input" | {command} "$@"',
        ]
    else:
        lines += [
            'if [ -x "$chained" ]; then',
            '    "$chained" "$@" || exit $?',
            "fi",
            f"if [ ! -x {exe} ]; then",
            f'    echo "tower guard: {exe} is not installed; commit not checked by Tower" >&2',
            "    exit 0",
            "fi",
            f"exec {command}",
        ]
    return "\n".join(lines) + "\n"


def is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return MARKER.encode() in fh.read(4096)
    except OSError:
        return False


def _write_executable(path: Path, text: str) -> None:
    write_text_atomically(path, text, mode=0o755)


def install_hooks(root: Path, program: list[str], db: str | None) -> dict[str, Any]:
    """Put Tower's pre-commit and pre-push hooks into the repository's hooks folder.

    A hook that is already there (not Tower's) is kept as ``<hook>.tower-chained``
    and run first; Tower's own hook is rewritten in place (a new path or
    ``--db`` takes effect); running it again changes nothing.
    """
    directory = hooks_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    changed, chained = [], []
    for hook in HOOKS:
        path, saved = directory / hook, directory / f"{hook}{CHAINED_SUFFIX}"
        text = hook_script(hook, program, db)
        if path.exists() and is_ours(path):
            if path.read_text(encoding="utf-8", errors="replace") == text and os.access(path, os.X_OK):
                if saved.exists():
                    chained.append(hook)
                continue
        elif path.exists() or path.is_symlink():
            if saved.exists() or saved.is_symlink():
                raise BadInput(f"{path} exists and so does {saved}: move one of them away first")
            os.replace(path, saved)
        if saved.exists():
            chained.append(hook)
        _write_executable(path, text)
        changed.append(hook)
    return {"hooks_dir": str(directory), "changed": changed, "chained": chained}


def uninstall_hooks(root: Path) -> dict[str, Any]:
    """Remove Tower's hooks, putting back the hooks they chained; anything else is left alone."""
    directory = hooks_dir(root)
    removed, restored, foreign = [], [], []
    for hook in HOOKS:
        path, saved = directory / hook, directory / f"{hook}{CHAINED_SUFFIX}"
        if not path.exists():
            continue
        if not is_ours(path):
            foreign.append(hook)
            continue
        if saved.exists() or saved.is_symlink():
            os.replace(saved, path)
            restored.append(hook)
        else:
            path.unlink()
        removed.append(hook)
    return {"hooks_dir": str(directory), "removed": removed, "restored": restored, "not_ours": foreign}
