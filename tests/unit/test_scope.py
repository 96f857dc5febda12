"""core.scope: glob validation, matching, and exact overlap."""

from __future__ import annotations

import itertools

import pytest

from core.scope import (
    ScopeError,
    match_one,
    matches,
    overlap,
    scopes_overlap,
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


def test_invalid_glob_refused_by_matching_and_overlap() -> None:
    with pytest.raises(ScopeError):
        match_one("a", "../a")
    with pytest.raises(ScopeError):
        overlap("src/**", "")


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


# --- overlap ---------------------------------------------------------------------

OVERLAP_TABLE = [
    ("src/**", "src/app/*.py", True),
    ("src/*.py", "tests/*.py", False),
    ("*.md", "docs/**", True),
    ("src/a?.py", "src/[xy]b.py", False),
    ("src/a?.py", "src/[ay]b.py", True),
    ("*.md", "*.py", False),
    ("*.md", "*.m?", True),
    ("a*", "*b", True),
    ("/README.md", "*.md", True),
    ("/README.md", "docs/*.md", False),
    ("**", "deep/er/path.txt", True),
    ("docs/", "docs", True),  # docs/docs
    ("/docs", "docs/", False),  # a file docs vs things below docs/
    ("a/**", "/a", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("**/a/**", "b/*", False),  # needs something below a
    ("**/a/**", "b/a/*", True),
    ("*/*/*", "*/*", False),
    ("*/*", "*", True),
    ("?", "??", False),
    ("[!a]", "/a", False),
    ("[!a]", "/b", True),
    ("[a-c]x", "[c-e]x", True),
    ("[a-b]x", "[c-e]x", False),
    ("[!a-z]", "[a-z]", False),
    ("[z-a]", "*", False),  # an empty class matches nothing
    ("src/**/*.py", "src/*/test_*.py", True),
    ("src/*/x", "src/x", False),
    ("src/*", "src/**/x/**", False),  # src/* is exactly one level below src
    # Only a/../b or a/./b would match both, and those are not paths.
    ("a/.?/b", "a/?./b", False),
    ("a/.*", "a/*.", True),  # a/.x. is a path
    ("a/[.]", "/a/.*", False),  # a/. only
    ("*/b", "/b", False),  # */b needs a non-empty first segment
]


@pytest.mark.parametrize(("a", "b", "expected"), OVERLAP_TABLE)
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert overlap(a, b) is expected
    assert overlap(b, a) is expected
    assert overlap(validate_glob(a), validate_glob(b)) is expected


def test_overlap_with_itself() -> None:
    for glob in ["src/**", "*.md", "a/**/b", "[ab]?c*", "/x"]:
        assert overlap(glob, glob)
    assert not overlap("[z-a]", "[z-a]")  # matches no path at all


SAMPLE_PATHS = [
    "README.md",
    "Makefile",
    "docs",
    "a",
    "b",
    "ab",
    "ax",
    "bx",
    "dx",
    "]x",
    ".x",
    ".x.",
    "src/app.py",
    "src/ab.py",
    "src/xb.py",
    "src/.py",
    "src/a",
    "src/x",
    "src/test_a.py",
    "src/pkg/test_a.py",
    "src/pkg/app.py",
    "src/a/b/c.py",
    "src/app/m.py",
    "src/x/y/test_a.py",
    "tests/test_a.py",
    "docs/index.md",
    "docs/api/index.md",
    "docs/api/v1/x.md",
    "docs/docs",
    "lib/docs/x",
    "a/b",
    "a/x/b",
    "a/.x.",
    "a/a",
    "b/a/c",
    "x/y/z/w",
    "sub/Makefile",
]

GLOBS = sorted({g for g, _, _ in MATCH_TABLE} | {g for pair in OVERLAP_TABLE for g in pair[:2]})


def test_a_common_sample_path_implies_overlap() -> None:
    """Soundness against the regex matcher: a witness path forces overlap()."""
    matched = {g: {p for p in SAMPLE_PATHS if match_one(p, g)} for g in GLOBS}
    checked = 0
    for a, b in itertools.combinations_with_replacement(GLOBS, 2):
        if matched[a] & matched[b]:
            checked += 1
            assert overlap(a, b), (a, b, sorted(matched[a] & matched[b]))
    assert checked > 100  # the samples do exercise the property


def _literal_glob(path: str) -> str:
    """A glob matching exactly ``path`` (which has no glob metacharacters)."""
    return path if "/" in path else "/" + path


def test_overlap_with_a_literal_path_is_match() -> None:
    """overlap(g, exact path) and match_one(path, g) agree, both ways.

    This checks the automaton behind overlap() against the regex behind
    match_one(), including the cases where they must say no.
    """
    paths = [p for p in SAMPLE_PATHS if not set(p) & set("*?[]")]
    disagreements = [
        (g, p)
        for g in GLOBS
        for p in paths
        if overlap(g, _literal_glob(p)) != match_one(p, g)
    ]
    assert disagreements == []


def test_overlap_is_exact_on_a_small_universe() -> None:
    """overlap() equals "some path matches both", exhaustively.

    All globs of up to three tokens are paired, and every well-formed path of
    up to seven characters over {a, b, .} is a candidate witness; that is long
    enough to hold a shortest common path of any two such globs, so the check
    runs both ways.
    """
    tokens = ["a", ".", "*", "?", "[!a]", "/", "**"]
    globs = set()
    for n in (1, 2, 3):
        for combo in itertools.product(tokens, repeat=n):
            try:
                globs.add(validate_glob("".join(combo)))
            except ScopeError:
                pass
    segments = [
        "".join(chars)
        for n in (1, 2, 3, 4)
        for chars in itertools.product("ab.", repeat=n)
        if "".join(chars) not in (".", "..")
    ]
    paths = set(segments)
    frontier = segments
    while frontier:
        frontier = [f"{p}/{s}" for p in frontier for s in segments if len(p) + len(s) < 7]
        paths.update(frontier)
    matched = {g: {p for p in paths if match_one(p, g)} for g in globs}
    wrong = [
        (a, b)
        for a, b in itertools.combinations_with_replacement(sorted(globs), 2)
        if overlap(a, b) != bool(matched[a] & matched[b])
    ]
    assert len(globs) > 300
    assert wrong == []


# --- scopes ----------------------------------------------------------------------


def test_scopes_overlap_pairs() -> None:
    a = ["src/**", "*.md"]
    b = ["tests/*.py", "docs/**", "src/app.py"]
    assert scopes_overlap(a, b) == [("src/**", "src/app.py"), ("*.md", "docs/**")]
    assert scopes_overlap(["src/*.py"], ["tests/*.py"]) == []


def test_scopes_overlap_empty_is_unrestricted() -> None:
    assert scopes_overlap([], ["src/**", "*.md"]) == [("**", "src/**"), ("**", "*.md")]
    assert scopes_overlap(["src/**"], []) == [("src/**", "**")]
    assert scopes_overlap([], []) == [("**", "**")]
    # An empty scope still does not overlap a glob that matches nothing.
    assert scopes_overlap([], ["[z-a]"]) == []
