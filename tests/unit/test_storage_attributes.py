"""The storage manager's attribute opcodes (P2S_GETXATTR, P2S_LISTXATTR, P2S_SETXATTR,
P2S_REMOVEXATTR, P2S_CHOWN) against a confined export: they act inside the root, follow or
not follow a final symbolic link as asked, and never reach a file outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from legorun.managers.storage import StorageManager
from legorun.rpc.messages import (
    ChownRequest,
    GetxattrRequest,
    ListxattrRequest,
    RemovexattrRequest,
    SetxattrRequest,
)
from syscalls.errno import Errno


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "file").write_text("data")
    outside = tmp_path / "secret"  # what "../secret" would reach if it could escape
    outside.write_text("host secret")
    (root / "escape").symlink_to("/secret")  # inside the root: its /secret, not the host's
    (root / "secret").write_text("guest secret")
    try:
        os.setxattr(outside, "user.tag", b"outside")
        os.setxattr(root / "secret", "user.tag", b"inside")
    except OSError:
        pytest.skip("the file system under tmp_path has no user xattrs")
    return root, outside


def test_attributes_stay_inside_the_root(export: tuple[Path, Path]) -> None:
    root, outside = export
    sm = StorageManager(root)
    # An absolute link target is taken relative to the root, as in a chroot.
    reply = sm.handle_p2s_getxattr(GetxattrRequest("/escape", b"user.tag"))
    assert (reply.status, reply.data) == (0, b"inside")
    assert sm.handle_p2s_getxattr(GetxattrRequest("/../secret", b"user.tag")).data == b"inside"
    # Not following: the link itself, which (on Linux) takes no user attributes.
    assert sm.handle_p2s_getxattr(GetxattrRequest("/escape", b"user.tag", False)).status in (
        Errno.ENODATA, Errno.EPERM, Errno.EOPNOTSUPP)
    assert sm.handle_p2s_setxattr(SetxattrRequest("/escape", b"user.new", b"v")).status == 0
    assert os.getxattr(root / "secret", "user.new") == b"v"
    assert "user.new" not in os.listxattr(outside)
    names = sm.handle_p2s_listxattr(ListxattrRequest("/secret")).data
    assert set(names.split(b"\0")) == {b"user.tag", b"user.new", b""}
    assert sm.handle_p2s_removexattr(RemovexattrRequest("/escape", b"user.new")).status == 0
    assert sm.handle_p2s_removexattr(RemovexattrRequest("/escape", b"user.new")).status == (
        Errno.ENODATA)
    assert os.getxattr(outside, "user.tag") == b"outside"
    assert sm.handle_p2s_getxattr(GetxattrRequest("/missing", b"user.tag")).status == (
        Errno.ENOENT)
    assert sm.handle_p2s_getxattr(GetxattrRequest("/file", b"bogus")).status == Errno.EOPNOTSUPP


def test_chown_keeps_ownership_and_reports_errors(export: tuple[Path, Path]) -> None:
    root, outside = export
    sm = StorageManager(root)
    before = os.stat(outside)
    assert sm.handle_p2s_chown(ChownRequest("/escape", os.getuid(), -1)).status == 0
    assert sm.handle_p2s_chown(ChownRequest("/escape", -1, os.getgid(), False)).status == 0
    assert os.stat(outside).st_ctime_ns == before.st_ctime_ns  # never touched
    assert sm.handle_p2s_chown(ChownRequest("/missing", -1, -1)).status == Errno.ENOENT
