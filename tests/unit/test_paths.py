"""core.paths against real directories and real symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.paths import PathError, is_within, normalize


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A worktree with files, an internal symlink and several that point outside it."""
    root = tmp_path / "repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "app.py").write_text("x")
    (root / "docs").mkdir()
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (root / "out").symlink_to(outside)  # a directory symlink leading out
    (root / "secret_link").symlink_to(outside / "secret.txt")
    (root / "dangling").symlink_to(outside / "not-yet.txt")  # writing it creates a file outside
    (root / "alias").symlink_to(root / "src")  # stays inside
    (root / "src" / "up").symlink_to("..")  # relative, stays inside
    (root / "gitlink").symlink_to(root / ".git" / "config")
    return root


# --- accepted paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("src/app.py", "src/app.py"),
        ("./src//app.py", "src/app.py"),
        ("src/./pkg/../app.py", "src/app.py"),
        ("src/app.py/", "src/app.py"),
        ("src/new.py", "src/new.py"),  # need not exist
        ("src/newdir/deeper/x.py", "src/newdir/deeper/x.py"),
        ("newdir/../docs/a.md", "docs/a.md"),
        ("docs", "docs"),
        ("alias/app.py", "src/app.py"),  # internal symlink resolved to one spelling
        ("alias/new.py", "src/new.py"),
        ("src/up/docs/a.md", "docs/a.md"),
        ("vendor/.git/config", "vendor/.git/config"),  # only the top-level .git is refused
        ("src/.gitignore", "src/.gitignore"),
        (".gitignore", ".gitignore"),
        ("dir with space/ünïcode.py", "dir with space/ünïcode.py"),
    ],
)
def test_relative_paths(repo: Path, given: str, expected: str) -> None:
    assert normalize(given, repo) == expected


def test_absolute_path_inside(repo: Path) -> None:
    assert normalize(str(repo / "src" / "app.py"), repo) == "src/app.py"
    assert normalize(repo / "docs" / "new.md", repo) == "docs/new.md"  # PathLike


def test_cwd_in_subdirectory(repo: Path) -> None:
    sub = repo / "src"
    assert normalize("app.py", repo, cwd=sub) == "src/app.py"
    assert normalize("pkg/m.py", repo, cwd=sub) == "src/pkg/m.py"
    assert normalize("../docs/a.md", repo, cwd=sub) == "docs/a.md"
    assert normalize(str(repo / "docs" / "a.md"), repo, cwd=sub) == "docs/a.md"


def test_cwd_through_internal_symlink(repo: Path) -> None:
    assert normalize("app.py", repo, cwd=repo / "alias") == "src/app.py"


def test_root_reached_through_symlink(repo: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-repo"
    link.symlink_to(repo)
    # Root given through the link, path spelled either way (as /tmp vs
    # /private/tmp on macOS).
    assert normalize(str(link / "src" / "app.py"), link) == "src/app.py"
    assert normalize(str(repo / "src" / "app.py"), link) == "src/app.py"
    assert normalize(str(link / "src" / "app.py"), repo) == "src/app.py"
    assert normalize("src/app.py", link) == "src/app.py"
    assert normalize("app.py", link, cwd=link / "src") == "src/app.py"
    with pytest.raises(PathError, match="outside"):
        normalize(str(tmp_path / "outside" / "secret.txt"), link)


# --- refused paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "empty path"),
        ("src/a\0b.py", "NUL"),
        ("../x", "escapes the repository"),
        ("..", "escapes the repository"),
        ("src/../../x", "escapes the repository"),
        ("src/pkg/../../../repo/src/app.py", None),  # leaves and re-enters by name: fine
        ("out/secret.txt", "symlink"),
        ("out/new.txt", "symlink"),  # the file does not exist, its directory leads out
        ("out/sub/dir/new.txt", "symlink"),
        ("secret_link", "symlink"),
        ("dangling", "symlink"),
        ("src/up/../x", "symlink"),  # ".." applies to up's target (the root), not to "src"
        ("/etc/passwd", "is outside the repository"),
        ("/", "is outside the repository"),
        (".", "repository root"),
        ("./", "repository root"),
        ("src/..", "repository root"),
        (".git", "inside .git"),
        (".git/config", "inside .git"),
        ("./.git/HEAD", "inside .git"),
        ("src/../.git/hooks/pre-commit", "inside .git"),
        (".GIT/config", "inside .git"),
        ("gitlink", "inside .git"),  # a symlink to .git/config
    ],
)
def test_refused(repo: Path, given: str, fragment: str | None) -> None:
    if fragment is None:
        assert normalize(given, repo) == "src/app.py"
        return
    with pytest.raises(PathError, match=fragment) as info:
        normalize(given, repo)
    assert "\n" not in str(info.value)


def test_message_names_the_path(repo: Path) -> None:
    with pytest.raises(PathError) as info:
        normalize("../x", repo)
    assert str(info.value) == "path '../x' escapes the repository"
    with pytest.raises(PathError) as info:
        normalize("a\nb/../../..", repo)
    assert "\n" not in str(info.value)


def test_absolute_paths_elsewhere(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(PathError, match="is outside the repository"):
        normalize(str(tmp_path / "outside" / "secret.txt"), repo)
    # A sibling whose name starts with the root's name is not inside it.
    sibling = tmp_path / "repo2"
    sibling.mkdir()
    with pytest.raises(PathError, match="outside"):
        normalize(str(sibling / "x"), repo)
    with pytest.raises(PathError, match="repository root"):
        normalize(str(repo), repo)
    with pytest.raises(PathError, match="inside .git"):
        normalize(str(repo / ".git" / "config"), repo)


def test_cwd_outside_root(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(PathError, match="is outside the repository"):
        normalize("x.py", repo, cwd=tmp_path / "outside")
    # A relative path from outside that lands inside is fine.
    assert normalize("../repo/src/app.py", repo, cwd=tmp_path / "outside") == "src/app.py"


def test_cwd_is_symlink_leading_out(repo: Path) -> None:
    with pytest.raises(PathError, match="symlink"):
        normalize("new.txt", repo, cwd=repo / "out")


def test_git_file_of_linked_worktree(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text("gitdir: /somewhere/.git/worktrees/wt\n")
    with pytest.raises(PathError, match="inside .git"):
        normalize(".git", wt)
    assert normalize("src/x.py", wt) == "src/x.py"


def test_symlink_swapped_to_point_outside(repo: Path, tmp_path: Path) -> None:
    # Resolution reads the filesystem as it is now, not as it was.
    (repo / "moving").symlink_to(repo / "docs")
    assert normalize("moving/a.md", repo) == "docs/a.md"
    (repo / "moving").unlink()
    (repo / "moving").symlink_to(tmp_path / "outside")
    with pytest.raises(PathError, match="symlink"):
        normalize("moving/a.md", repo)


def test_path_error_is_value_error() -> None:
    assert issubclass(PathError, ValueError)


def test_bytes_pathlike(repo: Path) -> None:
    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"src/app.py"

    assert normalize(BytesPath(), repo) == "src/app.py"  # type: ignore[arg-type]


# --- is_within -------------------------------------------------------------------


def test_is_within(repo: Path, tmp_path: Path) -> None:
    assert is_within(repo, repo)
    assert is_within(repo / "src" / "app.py", repo)
    assert is_within(repo / "does" / "not" / "exist", repo)
    assert not is_within(tmp_path, repo)
    assert not is_within(tmp_path / "repo2" / "x", repo)
    assert not is_within(repo / "out" / "secret.txt", repo)  # resolved through the symlink
    assert is_within(repo / "alias" / "app.py", repo / "src")
    link = tmp_path / "link-to-repo"
    link.symlink_to(repo)
    assert is_within(link / "src", repo)
    assert is_within(repo / "src", link)
    assert is_within(os.fspath(repo / "docs"), os.fspath(repo))
