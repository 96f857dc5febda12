"""core.ignore: fixed ignores, boundaries and gitignore semantics."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from core.ignore import IgnoreRules, common_git_dir
from watcher_testkit import write


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_fixed_ignores(tmp_path: Path) -> None:
    rules = IgnoreRules(tmp_path)
    for d in [".git", ".tower", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
              ".pytest_cache", ".ruff_cache", ".tox", ".nox", "build", "dist", "target", ".idea"]:
        assert rules.is_ignored(d, True), d
        assert rules.is_ignored(f"src/{d}", True), d
        assert rules.is_ignored(f"src/{d}/deep/file.py", False), d
    assert rules.is_ignored(".git", False)  # a linked worktree's .git is a file
    assert rules.is_ignored(".tower", False)
    for junk in [".main.py.swp", "a.swo", "notes.txt~", ".#main.py", "4913", "src/x/.y.swx"]:
        assert rules.is_ignored(junk, False), junk
    assert not rules.is_ignored(".vscode", True)
    assert not rules.is_ignored(".vscode/settings.json", False)
    assert not rules.is_ignored("build", False)  # a *file* named build is kept
    assert not rules.is_ignored("src/builder/x.py", False)
    assert not rules.is_ignored("movie.swf", False)
    assert not rules.is_ignored("env/lib.py", False)  # "env" is only a venv with pyvenv.cfg


def test_venv_and_nested_repository_boundaries(tmp_path: Path) -> None:
    write(tmp_path, "env/pyvenv.cfg", "home = /usr")
    write(tmp_path, "env/lib/site.py")
    write(tmp_path, "vendor/lib/.git", "gitdir: elsewhere")
    write(tmp_path, "vendor/lib/code.py")
    write(tmp_path, "pyvenv.cfg")  # at the root it means nothing
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored("env", True)
    assert rules.is_ignored("env/lib/site.py", False)
    assert rules.is_ignored("vendor/lib/code.py", False)
    assert not rules.is_ignored("vendor/other.py", False)
    assert not rules.is_ignored("main.py", False)


@pytest.mark.parametrize(
    ("gitignore", "path", "is_dir", "ignored"),
    [
        ("*.log", "a.log", False, True),
        ("*.log", "deep/er/a.log", False, True),
        ("*.log\n!keep.log", "deep/keep.log", False, False),
        ("*.log\n!keep.log\nkeep.log", "keep.log", False, True),  # the last match wins
        ("logs/", "logs", True, True),
        ("logs/", "logs", False, False),  # dir-only pattern, a file named logs
        ("logs/", "src/logs/x.txt", False, True),
        ("/todo.txt", "todo.txt", False, True),
        ("/todo.txt", "sub/todo.txt", False, False),  # anchored
        ("doc/frotz", "doc/frotz", False, True),
        ("doc/frotz", "a/doc/frotz", False, False),  # a middle slash anchors too
        ("**/foo", "foo", False, True),
        ("**/foo", "x/y/foo", False, True),
        ("**/foo/bar", "x/foo/bar", False, True),
        ("abc/**", "abc/x/y", False, True),
        ("abc/**", "abc", True, False),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**/b", "xa/b", False, False),
        ("foo*bar", "fooXbar", False, True),
        ("foo*bar", "foo/bar", False, False),  # '*' does not cross '/'
        ("file?.txt", "file1.txt", False, True),
        ("file?.txt", "file10.txt", False, False),
        ("[abc].py", "b.py", False, True),
        ("[!abc].py", "b.py", False, False),
        ("[!abc].py", "d.py", False, True),
        ("v[0-9].txt", "v7.txt", False, True),
        ("[[:digit:]]x", "5x", False, True),
        ("\\#hash", "#hash", False, True),
        ("# a comment", "# a comment", False, False),
        ("\\!bang", "!bang", False, True),
        ("trailing   ", "trailing", False, True),
        ("trailing\\ ", "trailing ", False, True),
        ("/build-out/\n!/build-out/keep", "build-out/keep", False, True),  # parent excluded
        ("secret/*\n!secret/public", "secret/public", False, False),
        ("secret/*\n!secret/public", "secret/other", False, True),
    ],
)
def test_gitignore_semantics(tmp_path: Path, gitignore: str, path: str, is_dir: bool, ignored: bool) -> None:
    write(tmp_path, ".gitignore", gitignore + "\n")
    assert IgnoreRules(tmp_path).is_ignored(path, is_dir) is ignored


def test_nested_gitignore_and_precedence(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.tmp\n")
    write(tmp_path, "sub/.gitignore", "!keep.tmp\n/local.txt\n")
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored("a.tmp", False)
    assert rules.is_ignored("sub/a.tmp", False)
    assert not rules.is_ignored("sub/keep.tmp", False)  # the deeper file wins
    assert rules.is_ignored("keep.tmp", False)  # ... only below its own directory
    assert rules.is_ignored("sub/local.txt", False)  # anchored to sub/
    assert not rules.is_ignored("local.txt", False)
    assert not rules.is_ignored("sub/deeper/local.txt", False)


def test_info_exclude_of_the_common_dir_in_a_linked_worktree(tmp_path: Path) -> None:
    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "-q")
    write(main, "README", "hi")
    git(main, "-c", "user.email=t@t", "-c", "user.name=t", "add", "README")
    git(main, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    git(main, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "feature")
    write(main, ".git/info/exclude", "*.secret\n")
    write(main, ".gitignore", "!override.secret\n")
    wt = tmp_path / "wt"
    assert common_git_dir(wt) == (main / ".git").resolve()
    rules = IgnoreRules(wt)
    assert rules.is_ignored("x.secret", False)
    assert IgnoreRules(main).is_ignored("x.secret", False)
    # a .gitignore outranks info/exclude
    assert not IgnoreRules(main).is_ignored("override.secret", False)
    assert not rules.stale()
    write(main, ".git/info/exclude", "*.secret\n*.other\n")
    assert rules.stale()
    rules.reload()
    assert rules.is_ignored("y.other", False) and not rules.stale()


def test_reload_and_fresh_pick_up_a_changed_gitignore(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\n")
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored("a.log", False)
    write(tmp_path, ".gitignore", "*.txt\n")
    assert rules.is_ignored("a.log", False)  # cached until told
    assert not rules.fresh().is_ignored("a.log", False)
    rules.reload()
    assert not rules.is_ignored("a.log", False)
    assert rules.is_ignored("a.txt", False)


def test_extra_patterns_and_disabling_gitignore(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\n")
    rules = IgnoreRules(tmp_path, use_gitignore=False, extra_patterns=["*.bak"])
    assert not rules.is_ignored("a.log", False)
    assert rules.is_ignored("x/a.bak", False)


PATTERNS = [
    "*.log", "!keep.log", "/top", "doc/frotz/", "**/cache", "a/**/z", "x/**", "[a-c]?.txt", "[!a-c].md",
    "[]]x", "[!]]y", "foo\\*", "\\!bang", "\\#h", "sp\\ ", "abc*/", "**", "*/mid/*", "d?r/", "lit[",
    "q[[:digit:]]", "nested/*.py", "!nested/ok.py", "/only/root/", "**/deep/**/leaf", "a**b", "*.o[!u]t",
]
NESTED = [*PATTERNS, "!*.py", "!sub/", "sub/", "/a.py", "!a.py"]
FILES = [
    "a.log", "keep.log", "top", "doc/frotz/f", "q/doc/frotz/f", "cache/x", "u/cache/v", "a/z", "a/b/c/z",
    "x/y/z", "ab.txt", "dd.txt", "b.md", "d.md", "]x", "zy", "]y", "foo*", "fooX", "!bang", "#h", "sp ",
    "abcd/f", "abc", "p/mid/q", "mid/q", "dir/f", "dar/g", "lit[", "q5", "qx", "nested/a.py", "nested/ok.py",
    "nested/sub/b.py", "only/root/f", "x2/only/root/f", "deep/leaf", "m/deep/n/o/leaf", "aXXb", "f.out",
    "f.oat", "nested/keep.log", "nested/x.txt",
]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_agrees_with_git_on_random_ignore_files(tmp_path: Path) -> None:
    """Random root and nested .gitignore files: our verdict on every file equals git's."""
    git(tmp_path, "init", "-q")
    for rel in FILES:
        write(tmp_path, rel)
    rng = random.Random(7)
    for _ in range(40):
        roots = rng.sample(PATTERNS, rng.randint(1, 5))
        nested = rng.sample(NESTED, 3)
        write(tmp_path, ".gitignore", "\n".join(roots) + "\n")
        write(tmp_path, "nested/.gitignore", "\n".join(nested) + "\n")
        out = subprocess.run(
            ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "-z"],
            cwd=tmp_path, capture_output=True, check=True,
        ).stdout.decode()
        by_git = {p for p in out.split("\0") if p}
        rules = IgnoreRules(tmp_path)
        ours = {p for p in [*FILES, ".gitignore", "nested/.gitignore"] if rules.is_ignored(p, False)}
        assert ours == by_git, (roots, nested)
