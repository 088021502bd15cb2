"""PathResolver: guest paths resolved inside an export root as in a chroot."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from legorun.managers.confine import (
    SYMLOOP_MAX,
    PathResolver,
    final_component,
    host_errno,
)
from syscalls.errno import Errno, SyscallError


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """An export root with /etc/passwd and /d/f, next to an outside directory with a secret."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("guest\n")
    (root / "d").mkdir()
    (root / "d" / "f").write_text("f\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host\n")
    return root.resolve(), outside.resolve()


def errno_of(resolver: PathResolver, path: str, follow_final: bool = True) -> Errno:
    with pytest.raises(SyscallError) as info:
        resolver.resolve(path, follow_final)
    return info.value.errno


# ---------------------------------------------------------------- unconfined


def test_unconfined_returns_path_unchanged() -> None:
    resolver = PathResolver(None)
    assert resolver.resolve("/etc/../etc/passwd") == "/etc/../etc/passwd"
    assert not resolver.confined
    assert resolver.is_root("/..")


def test_unconfined_rejects_relative_and_empty() -> None:
    resolver = PathResolver(None)
    assert errno_of(resolver, "etc/passwd") == Errno.EINVAL
    assert errno_of(resolver, "") == Errno.ENOENT


# ---------------------------------------------------------------- plain walks


def test_plain_paths_map_under_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    resolver = PathResolver(root)
    assert resolver.resolve("/") == str(root)
    assert resolver.resolve("/etc/passwd") == str(root / "etc" / "passwd")
    assert resolver.resolve("//etc/./passwd") == str(root / "etc" / "passwd")
    assert resolver.resolve("/d/../etc") == str(root / "etc")
    assert resolver.is_root(resolver.resolve("/d/.."))
    assert resolver.parent(resolver.resolve("/d")) == str(root)
    assert resolver.parent(resolver.resolve("/")) == str(root)


def test_unconfined_parent_and_root() -> None:
    resolver = PathResolver(None)
    assert resolver.parent("/usr/") == "/usr/.."
    assert resolver.is_root("//")
    assert not resolver.is_root("/usr")


def test_missing_final_is_allowed_missing_intermediate_is_enoent(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    resolver = PathResolver(root)
    assert resolver.resolve("/d/new") == str(root / "d" / "new")
    assert errno_of(resolver, "/nope/new") == Errno.ENOENT


def test_file_as_directory_is_enotdir(tree: tuple[Path, Path]) -> None:
    resolver = PathResolver(tree[0])
    assert errno_of(resolver, "/d/f/x") == Errno.ENOTDIR
    assert errno_of(resolver, "/d/f/") == Errno.ENOTDIR
    assert errno_of(resolver, "/d/f/.") == Errno.ENOTDIR
    assert errno_of(resolver, "/d/f/..") == Errno.ENOTDIR


def test_trailing_slash_on_missing_name_is_kept(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    resolver = PathResolver(root)
    assert resolver.resolve("/d/newdir/") == str(root / "d" / "newdir") + "/"
    assert resolver.resolve("/d/") == str(root / "d")


def test_relative_path_is_einval(tree: tuple[Path, Path]) -> None:
    resolver = PathResolver(tree[0])
    assert errno_of(resolver, "../../etc/passwd") == Errno.EINVAL


def test_name_too_long(tree: tuple[Path, Path]) -> None:
    resolver = PathResolver(tree[0])
    assert errno_of(resolver, "/" + "x" * 256) == Errno.ENAMETOOLONG
    assert errno_of(resolver, "/a" * 2048) == Errno.ENAMETOOLONG


# ---------------------------------------------------------------- confinement


def test_dotdot_stays_at_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    resolver = PathResolver(root)
    host = resolver.resolve("/../../etc/passwd")
    assert host == str(root / "etc" / "passwd")
    assert Path(host).read_text() == "guest\n"
    assert resolver.resolve("/d/../../../..") == str(root)


def test_absolute_symlink_is_taken_relative_to_root(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "hostetc").symlink_to("/etc")
    (root / "out").symlink_to(outside)
    resolver = PathResolver(root)
    assert resolver.resolve("/hostetc/passwd") == str(root / "etc" / "passwd")
    # The outside directory's host path does not exist inside the root.
    assert errno_of(resolver, "/out/secret") == Errno.ENOENT


def test_relative_symlink_cannot_climb_out(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "d" / "up").symlink_to("../../..")
    resolver = PathResolver(root)
    assert resolver.resolve("/d/up") == str(root)
    assert resolver.resolve("/d/up/etc/passwd") == str(root / "etc" / "passwd")
    assert errno_of(resolver, f"/d/up/{outside.name}/secret") == Errno.ENOENT


def test_relative_symlink_is_relative_to_its_directory(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "d" / "sib").symlink_to("f")
    (root / "d" / "cousin").symlink_to("../etc/passwd")
    resolver = PathResolver(root)
    assert resolver.resolve("/d/sib") == str(root / "d" / "f")
    assert resolver.resolve("/d/cousin") == str(root / "etc" / "passwd")


def test_dangling_absolute_symlink_creates_inside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "evil").symlink_to(outside / "planted")
    resolver = PathResolver(root)
    # The target's directories are looked up inside the root, where they do not exist.
    assert errno_of(resolver, "/evil") == Errno.ENOENT
    (root / "evil2").symlink_to("/new")
    assert resolver.resolve("/evil2") == str(root / "new")


def test_final_symlink_not_followed_on_request(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "l").symlink_to("/etc")
    resolver = PathResolver(root)
    assert resolver.resolve("/l", follow_final=False) == str(root / "l")
    assert resolver.resolve("/l", follow_final=True) == str(root / "etc")
    # A trailing slash forces the final link to be followed.
    assert resolver.resolve("/l/", follow_final=False) == str(root / "etc")
    # Intermediate links are always followed.
    assert resolver.resolve("/l/passwd", follow_final=False) == str(root / "etc" / "passwd")


def test_symlink_loops_are_eloop(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/a")
    (root / "self").symlink_to("self")
    resolver = PathResolver(root)
    assert errno_of(resolver, "/a") == Errno.ELOOP
    assert errno_of(resolver, "/self/x") == Errno.ELOOP
    assert resolver.resolve("/a", follow_final=False) == str(root / "a")


def test_symlink_chain_limit_is_forty(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "l0").symlink_to("etc")
    for i in range(1, SYMLOOP_MAX + 1):
        (root / f"l{i}").symlink_to(f"l{i - 1}")
    resolver = PathResolver(root)
    assert resolver.resolve(f"/l{SYMLOOP_MAX - 1}") == str(root / "etc")
    assert errno_of(resolver, f"/l{SYMLOOP_MAX}") == Errno.ELOOP


def test_empty_symlink_target_is_enoent(tree: tuple[Path, Path]) -> None:
    # Some file systems refuse empty targets; only check what the host allows.
    root, _ = tree
    try:
        os.symlink("", root / "empty")
    except OSError:
        pytest.skip("host refuses empty symlink targets")
    assert errno_of(PathResolver(root), "/empty") == Errno.ENOENT


def test_root_given_through_a_symlink_is_canonicalised(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = tree
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    resolver = PathResolver(alias)
    assert resolver.root == str(root)
    assert resolver.resolve("/etc/passwd") == str(root / "etc" / "passwd")


# ---------------------------------------------------------------- helpers


def test_host_errno_translates_by_name() -> None:
    assert host_errno(OSError(errno.ENOENT, "x")) == Errno.ENOENT
    assert host_errno(OSError(errno.EWOULDBLOCK, "x")) == Errno.EAGAIN
    assert host_errno(OSError(99999, "x")) == Errno.EIO
    assert host_errno(OSError("no errno")) == Errno.EIO


def test_final_component() -> None:
    assert final_component("/a/b") == "b"
    assert final_component("/a/b/") == "b"
    assert final_component("/a/.") == "."
    assert final_component("/a/..") == ".."
    assert final_component("/") == ""
    assert final_component("//") == ""
