"""core.scope: glob validation and matching."""

from __future__ import annotations

import pytest

from core.scope import (
    ScopeError,
    match_one,
    matches,
    validate_glob,
)

# --- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "normal"),
    [
        ("src/**", "src/**"),
        ("*.md", "*.md"),
        ("docs/api/", "docs/api/**"),
        ("/docs/", "docs/**"),
        ("docs/**/", "docs/**"),
        ("/Makefile", "/Makefile"),
        ("./Makefile", "/Makefile"),
        ("/src/app.py", "src/app.py"),
        ("src//app.py", "src/app.py"),
        ("src/./app.py", "src/app.py"),
        ("**/**/x", "**/x"),
        ("a/**/**/b", "a/**/b"),
        ("**", "**"),
        ("/**", "**"),
        ("**/", "**"),
        ("a**b", "a**b"),  # not a whole segment: kept, means a*b
    ],
)
def test_validate_glob_normal_form(glob: str, normal: str) -> None:
    assert validate_glob(glob) == normal
    assert validate_glob(normal) == normal  # idempotent


@pytest.mark.parametrize(
    ("glob", "fragment"),
    [
        ("", "empty glob"),
        ("   ", "empty glob"),
        ("/", "repository root"),
        ("./", "repository root"),
        ("..", "'..' segment"),
        ("../src/**", "'..' segment"),
        ("src/../../etc/*", "'..' segment"),
        ("/..", "'..' segment"),
        ("src/a\0.py", "NUL"),
    ],
)
def test_validate_glob_refuses(glob: str, fragment: str) -> None:
    with pytest.raises(ScopeError, match=fragment) as info:
        validate_glob(glob)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_invalid_glob_refused_by_matching() -> None:
    with pytest.raises(ScopeError):
        match_one("a", "../a")
    with pytest.raises(ScopeError):
        matches("a", ["src/**", ""])


# --- matching --------------------------------------------------------------------

MATCH_TABLE = [
    # glob, path, expected
    ("src/**", "src/app.py", True),
    ("src/**", "src/a/b/c.py", True),
    ("src/**", "src", False),  # everything below src, not src itself
    ("src/**", "lib/src/app.py", False),  # anchored
    ("*.md", "README.md", True),
    ("*.md", "docs/api/index.md", True),  # basename at any depth
    ("*.md", "README.mdx", False),
    ("*.md", "docs.md/x.py", False),
    ("*", "a/b/c", True),
    ("docs/api/", "docs/api/x.md", True),
    ("docs/api/", "docs/api/v1/x.md", True),
    ("docs/api/", "docs/api", False),
    ("docs/api/", "docs/apix/y.md", False),
    ("docs/", "lib/docs/x", False),  # trailing-slash globs are anchored too
    ("/Makefile", "Makefile", True),
    ("/Makefile", "sub/Makefile", False),
    ("Makefile", "sub/Makefile", True),
    ("src/*.py", "src/app.py", True),
    ("src/*.py", "src/pkg/app.py", False),  # * never crosses "/"
    ("src/*.py", "src/.py", True),  # * may be empty
    ("src/a?.py", "src/ab.py", True),
    ("src/a?.py", "src/a.py", False),
    ("src/a?.py", "src/abc.py", False),
    ("a?b", "a/b", False),  # ? never matches "/"
    ("src/[xy]b.py", "src/xb.py", True),
    ("src/[xy]b.py", "src/zb.py", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[!a-c]x", "dx", True),
    ("[!a-c]x", "bx", False),
    ("[^a-c]x", "dx", True),
    ("[]]x", "]x", True),
    ("[!]]x", "]x", False),
    ("[!]]x", "ax", True),
    ("[z-a]x", "mx", False),  # reversed range is empty
    ("a[bc", "a[bc", True),  # unclosed [ is literal
    ("a[bc", "ab", False),
    ("a\\*", "a\\x", True),  # no escapes: backslash is literal, * still a wildcard
    ("a.b", "axb", False),  # regex metacharacters are literal
    ("a+(b)", "a+(b)", True),
    ("**/test_*.py", "test_a.py", True),
    ("**/test_*.py", "x/y/test_a.py", True),
    ("src/**/test_*.py", "src/test_a.py", True),  # ** may match zero segments
    ("src/**/test_*.py", "src/x/y/test_a.py", True),
    ("src/**/test_*.py", "srcx/test_a.py", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/xb", False),
    ("a**b", "axxb", True),
    ("a**b", "ax/xb", False),  # ** inside a segment is just *
    ("**", "anything/at/all.txt", True),
    ("src/App.py", "src/app.py", False),  # case-sensitive
    ("ünï/*.py", "ünï/x.py", True),
    ("src//app.py", "src/app.py", True),
]


@pytest.mark.parametrize(("glob", "path", "expected"), MATCH_TABLE)
def test_match_one(glob: str, path: str, expected: bool) -> None:
    assert match_one(path, glob) is expected
    assert match_one(path, validate_glob(glob)) is expected  # the normal form means the same


def test_matches_any_and_empty_scope() -> None:
    assert matches("src/app.py", ["docs/**", "src/*.py"])
    assert not matches("lib/app.py", ["docs/**", "src/*.py"])
    assert matches("anything/at/all", [])  # unrestricted
    assert matches("x", ())
