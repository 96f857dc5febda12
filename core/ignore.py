"""Which paths of a worktree the watcher ignores.

A path is ignored when any of these holds (checked in this order):

1. **Fixed names**, whatever the repository says: ``.git`` and ``.tower`` (file
   or directory: a linked worktree's ``.git`` is a file); the directories
   ``.venv``, ``venv``, ``node_modules``, ``__pycache__``, ``.mypy_cache``,
   ``.pytest_cache``, ``.ruff_cache``, ``.tox``, ``.nox``, ``build``, ``dist``,
   ``target`` and ``.idea``; and editor droppings (``*.swp``, ``*.swo``,
   ``*.swx``, ``*~``, ``.#*`` and vim's ``4913`` probe file). ``.vscode`` is
   *not* ignored: it is often committed.
2. **Boundaries**: a directory (other than the root) that holds ``pyvenv.cfg``
   is a virtualenv, whatever its name (``env``, ``.env311`` ...); one that holds
   ``.git`` is another repository, a submodule or a nested worktree, whose
   files belong to it, not to this worktree (git itself does not descend into
   them).
3. **The repository's ignore files**, with git's precedence: the common dir's
   ``info/exclude`` (lowest), the root ``.gitignore``, then each nested
   ``.gitignore`` (the deepest wins); within one file the last matching line
   wins. Supported: comments, ``\\#``/``\\!`` escapes, trailing-space rules,
   ``!`` negation, directory-only ``foo/``, anchoring by a leading or middle
   ``/``, ``*``, ``?``, ``[...]`` (with ``!``/``^`` negation and the common
   ``[:class:]`` names), and ``**`` (``**/x``, ``x/**``, ``a/**/b``). As in git, a
   file cannot be re-included when a parent directory is excluded. Not
   supported: ``core.excludesFile`` (the user's global excludes, which are
   personal rather than the project's) and ``core.ignoreCase``.

Why match in-process rather than ask git (``git ls-files --others --ignored
--exclude-standard --directory``): the watcher filters every file-system event
(tens of thousands during an ``npm install``) and every entry of every scan,
so matching must be a function call, not a subprocess; a subprocess per
snapshot would also cost more than the snapshot's own stat pass (~40k stats
take a fraction of a second) and would break when ``git`` is missing or slow
(a large untracked tree, a busy index lock). The rules are compiled to regular
expressions once per ignore file: within a file, consecutive lines of the same
sign are joined into one alternation, split into a basename regex (patterns
without a slash match the name at any depth) and a path regex (anchored
patterns), so a typical check is a set lookup plus one or two regex matches.
``.gitignore`` files are read lazily, per directory, and cached; the scanner
hands over what it already listed so a scan costs no extra system call.

Thread-safety: one instance may be used from one thread at a time (the
watcher serialises its workers); the caches only ever grow until ``reload()``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from core.gitrepo import git_dirs

__all__ = [
    "DEFAULT_IGNORED_DIRS",
    "DEFAULT_IGNORED_NAMES",
    "IgnoreRules",
    "common_git_dir",
]

#: Ignored whether file or directory.
DEFAULT_IGNORED_NAMES: frozenset[str] = frozenset({".git", ".tower"})

#: Ignored when they are directories (at any depth).
DEFAULT_IGNORED_DIRS: frozenset[str] = frozenset(
    {
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        "build",
        "dist",
        "target",
        ".idea",
    }
)

# Editor swap/backup/lock files (vim, emacs) and vim's "can I write here" probe.
_EDITOR_JUNK = re.compile(r"(?s:.*\.sw[pox]|.*~|\.#.*|4913)")

_VENV_MARKER = "pyvenv.cfg"
_REPO_MARKER = ".git"


def common_git_dir(root: str | os.PathLike[str]) -> Path | None:
    """The git common dir of the worktree at ``root``, read from ``.git`` without running git."""
    dirs = git_dirs(Path(root))
    return dirs[1] if dirs is not None else None


# -- gitignore pattern compilation -------------------------------------------------

_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "digit": "0-9",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}


def _bracket(pat: str, i: int) -> tuple[str, int] | None:
    """Translate the bracket expression starting at ``pat[i] == '['``; None if unterminated."""
    j = i + 1
    negate = False
    if j < len(pat) and pat[j] in "!^":
        negate = True
        j += 1
    parts: list[str] = []
    first = True
    while j < len(pat):
        c = pat[j]
        if c == "]" and not first:
            body = "".join(parts)
            if negate:
                return f"[^/{body}]", j + 1
            return f"(?!/)[{body}]" if body else "(?!)", j + 1
        first = False
        if c == "[" and pat.startswith("[:", j):
            end = pat.find(":]", j + 2)
            name = pat[j + 2 : end] if end != -1 else ""
            if name in _CLASSES:
                parts.append(_CLASSES[name])
                j = end + 2
                continue
        if c == "\\" and j + 1 < len(pat):
            j += 1
            c = pat[j]
        if c == "-" and parts and j + 1 < len(pat) and pat[j + 1] != "]":
            parts.append("-")
        else:
            parts.append(re.escape(c) if c != "-" else "\\-")
        j += 1
    return None


def _translate(pat: str) -> str:
    """A git wildmatch pattern (no leading '/', no trailing '/') as a regex for fullmatch."""
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            stars = j - i
            at_start = i == 0 or pat[i - 1] == "/"
            at_end = j == n or pat[j] == "/"
            if stars >= 2 and at_start and at_end:
                if j == n:  # "x/**" (or "**"): everything below
                    out.append(".*")
                    i = j
                else:  # "**/x" or "a/**/b": zero or more directories
                    out.append("(?:.*/)?")
                    i = j + 1
                continue
            out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            got = _bracket(pat, i)
            if got is None:
                return "(?!)"  # an unterminated bracket: git's wildmatch matches nothing
            else:
                out.append(got[0])
                i = got[1]
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _strip_trailing_spaces(line: str) -> str:
    end = len(line)
    while end > 0 and line[end - 1] == " ":
        # a space preceded by an odd number of backslashes is escaped
        k, bs = end - 2, 0
        while k >= 0 and line[k] == "\\":
            bs += 1
            k -= 1
        if bs % 2:
            break
        end -= 1
    return line[:end]


class _Group:
    """Consecutive lines of one sign: basename regexes and path regexes, split by dir-only."""

    __slots__ = ("negate", "name_any", "name_file", "path_any", "path_file")

    def __init__(self, negate: bool, rules: list[tuple[str, bool, bool]]) -> None:
        # rules: (regex, anchored, dir_only)
        self.negate = negate

        def join(items: list[str]) -> re.Pattern[str] | None:
            return re.compile("|".join(f"(?:{r})" for r in items), re.DOTALL) if items else None

        self.name_any = join([r for r, anchored, _ in rules if not anchored])
        self.name_file = join([r for r, anchored, d in rules if not anchored and not d])
        self.path_any = join([r for r, anchored, _ in rules if anchored])
        self.path_file = join([r for r, anchored, d in rules if anchored and not d])

    def matches(self, sub: str, name: str, is_dir: bool) -> bool:
        name_re = self.name_any if is_dir else self.name_file
        if name_re is not None and name_re.fullmatch(name):
            return True
        path_re = self.path_any if is_dir else self.path_file
        return path_re is not None and path_re.fullmatch(sub) is not None


class _RuleFile:
    """The compiled lines of one ignore file, relative to ``base`` (a repo-relative dir)."""

    __slots__ = ("base", "prefix", "groups", "source")

    def __init__(self, base: str, lines: Iterable[str], source: str = "") -> None:
        self.base = base
        self.prefix = base + "/" if base else ""
        self.source = source
        groups: list[_Group] = []
        current: list[tuple[str, bool, bool]] = []
        sign: bool | None = None
        for raw in lines:
            parsed = self._parse(raw)
            if parsed is None:
                continue
            negate, regex, anchored, dir_only = parsed
            if sign is not None and negate != sign:
                groups.append(_Group(sign, current))
                current = []
            sign = negate
            current.append((regex, anchored, dir_only))
        if current and sign is not None:
            groups.append(_Group(sign, current))
        self.groups = tuple(groups)

    @staticmethod
    def _parse(raw: str) -> tuple[bool, str, bool, bool] | None:
        line = raw.rstrip("\r\n")
        if not line or line.startswith("#"):
            return None
        line = _strip_trailing_spaces(line)
        negate = False
        if line.startswith("!"):
            negate = True
            line = line[1:]
        dir_only = False
        if line.endswith("/") and not line.endswith("\\/"):
            dir_only = True
            line = line.rstrip("/")
        if not line:
            return None
        anchored = "/" in line
        line = line.lstrip("/")
        if not line:
            return None
        try:
            regex = _translate(line)
            re.compile(regex)
        except re.error:
            return None  # git skips what it cannot parse; so do we
        return negate, regex, anchored, dir_only

    def decide(self, rel: str, name: str, is_dir: bool) -> bool | None:
        """True ignored, False re-included, None no line matched."""
        sub = rel[len(self.prefix) :]
        for group in reversed(self.groups):
            if group.matches(sub, name, is_dir):
                return not group.negate
        return None


def _read_lines(path: Path) -> list[str] | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError:
        return None


Chain = tuple[_RuleFile, ...]


class IgnoreRules:
    """Ignore decisions for the paths of one worktree rooted at ``root``.

    ``is_ignored(rel_path, is_dir)`` takes a repo-relative POSIX path and checks
    the path itself and each of its parent directories. ``reload()`` forgets
    everything read from disk (call it when a ``.gitignore``, ``info/exclude``,
    ``pyvenv.cfg`` or nested ``.git`` appears, changes or goes away);
    ``fresh()`` builds a new instance with the same options, which lets a caller
    compare the old and new decisions.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        use_gitignore: bool = True,
        extra_patterns: Iterable[str] = (),
        ignored_names: Iterable[str] = DEFAULT_IGNORED_NAMES,
        ignored_dirs: Iterable[str] = DEFAULT_IGNORED_DIRS,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self._root_s = str(self.root)
        self.use_gitignore = use_gitignore
        self.extra_patterns = tuple(extra_patterns)
        self.ignored_names = frozenset(ignored_names)
        self.ignored_dirs = frozenset(ignored_dirs)
        self.reload()

    # -- loading ---------------------------------------------------------------

    def fresh(self) -> IgnoreRules:
        return IgnoreRules(
            self.root,
            use_gitignore=self.use_gitignore,
            extra_patterns=self.extra_patterns,
            ignored_names=self.ignored_names,
            ignored_dirs=self.ignored_dirs,
        )

    def reload(self) -> None:
        """Drop every cached ignore file and decision; re-read ``info/exclude``."""
        self._files: dict[str, _RuleFile | None] = {}
        self._chains: dict[str, Chain] = {}
        self._dir_ignored: dict[str, bool] = {}
        base: list[_RuleFile] = []
        if self.extra_patterns:
            base.append(_RuleFile("", self.extra_patterns, "<extra>"))
        self._exclude_path: Path | None = None
        self._exclude_stat: tuple[int, int] | None = None
        if self.use_gitignore:
            common = common_git_dir(self.root)
            if common is not None:
                self._exclude_path = common / "info" / "exclude"
                self._exclude_stat = self._stat_key(self._exclude_path)
                lines = _read_lines(self._exclude_path)
                if lines:
                    base.append(_RuleFile("", lines, str(self._exclude_path)))
        self._base: Chain = tuple(base)

    @staticmethod
    def _stat_key(path: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def stale(self) -> bool:
        """Whether ``info/exclude`` changed since it was read (it lives outside the worktree,
        so no event or scan of the worktree sees it)."""
        if self._exclude_path is None:
            return False
        return self._stat_key(self._exclude_path) != self._exclude_stat

    def _gitignore(self, rel_dir: str, present: bool | None) -> _RuleFile | None:
        if rel_dir in self._files:
            cached = self._files[rel_dir]
            if present is None or present == (cached is not None):
                return cached
            # the scanner saw a .gitignore appear or vanish: everything below is stale
            self.reload()
        lines = None
        if present is not False:
            path = os.path.join(self._root_s, rel_dir, ".gitignore")
            lines = _read_lines(Path(path))
        # an empty file is still cached as present, so the scanner's hint agrees with it
        rf = _RuleFile(rel_dir, lines, f"{rel_dir}/.gitignore".lstrip("/")) if lines is not None else None
        self._files[rel_dir] = rf
        return rf

    def chain(self, rel_dir: str, has_gitignore: bool | None = None) -> Chain:
        """The ignore files that apply inside directory ``rel_dir``, lowest precedence first.

        ``has_gitignore`` is a hint from a caller that has just listed the
        directory (None: look for the file).
        """
        cached = self._chains.get(rel_dir)
        if cached is not None and has_gitignore is None:
            return cached
        if not self.use_gitignore:
            return self._base
        if rel_dir:
            parent = rel_dir.rpartition("/")[0]
            parent_chain = self.chain(parent)
        else:
            parent_chain = self._base
        rf = self._gitignore(rel_dir, has_gitignore)
        result = parent_chain + (rf,) if rf is not None and rf.groups else parent_chain
        self._chains[rel_dir] = result
        return result

    # -- decisions -------------------------------------------------------------

    def fixed(self, name: str, is_dir: bool) -> bool:
        """The name-only rules (fixed names, ignored directories, editor files)."""
        if name in self.ignored_names:
            return True
        if is_dir:
            return name in self.ignored_dirs
        return _EDITOR_JUNK.fullmatch(name) is not None

    def match(self, chain: Chain, rel: str, name: str, is_dir: bool) -> bool:
        """Whether ``rel`` is ignored by name or by ``chain``, its parents assumed not ignored."""
        if self.fixed(name, is_dir):
            return True
        for rf in reversed(chain):
            decision = rf.decide(rel, name, is_dir)
            if decision is not None:
                return decision
        return False

    @staticmethod
    def boundary(names: Iterable[str] | set[str]) -> bool:
        """Whether a (non-root) directory listing these names is a venv or another repository."""
        return _VENV_MARKER in names or _REPO_MARKER in names

    def _is_boundary_dir(self, rel_dir: str) -> bool:
        base = os.path.join(self._root_s, rel_dir)
        return os.path.lexists(os.path.join(base, _REPO_MARKER)) or os.path.isfile(
            os.path.join(base, _VENV_MARKER)
        )

    def dir_ignored(self, rel_dir: str) -> bool:
        """Whether directory ``rel_dir`` or one of its parents is ignored (cached)."""
        if not rel_dir:
            return False
        cached = self._dir_ignored.get(rel_dir)
        if cached is not None:
            return cached
        parent, _, name = rel_dir.rpartition("/")
        result = (
            self.dir_ignored(parent)
            or self.match(self.chain(parent), rel_dir, name, True)
            or self._is_boundary_dir(rel_dir)
        )
        self._dir_ignored[rel_dir] = result
        return result

    def is_ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether the repo-relative POSIX path ``rel_path`` is ignored (parents included)."""
        rel = rel_path.strip("/")
        if rel.startswith("./"):
            rel = rel[2:]
        if not rel or rel == ".":
            return False
        if is_dir:
            return self.dir_ignored(rel)
        parent, _, name = rel.rpartition("/")
        if parent and self.dir_ignored(parent):
            return True
        return self.match(self.chain(parent), rel, name, False)

    def __repr__(self) -> str:
        return f"IgnoreRules({self._root_s!r})"
