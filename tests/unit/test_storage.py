"""StorageManager: every P2S opcode and M2S_READ against a tmp_path export."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from legorun.managers import storage as st
from legorun.managers.storage import MAX_IO, StorageManager
from legorun.rpc.messages import (
    AccessRequest,
    ChmodRequest,
    DirEntry,
    FileReadRequest,
    LinkRequest,
    MkdirRequest,
    Opcode,
    OpenRequest,
    ReaddirRequest,
    ReadlinkRequest,
    ReadRequest,
    RenameRequest,
    RmdirRequest,
    StatfsRequest,
    StatRequest,
    SymlinkRequest,
    TruncateRequest,
    UnlinkRequest,
    UtimensRequest,
    WriteRequest,
)
from syscalls.errno import Errno


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "file").write_bytes(b"hello world")
    (root / "dir").mkdir()
    (root / "dir" / "inner").write_bytes(b"inner")
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host secret")
    return outside.resolve()


@pytest.fixture
def sm(root: Path) -> StorageManager:
    return StorageManager(root)


# ---------------------------------------------------------------- dispatch


def test_handlers_cover_every_storage_opcode(sm: StorageManager) -> None:
    handlers = sm.handlers()
    expected = {op for op in Opcode if op.name.startswith(("P2S_", "M2S_"))}
    assert set(handlers) == expected
    assert handlers[Opcode.P2S_STAT] == sm.handle_p2s_stat
    assert handlers[Opcode.M2S_READ] == sm.handle_m2s_read


# ---------------------------------------------------------------- open


def test_open_existing_returns_stat(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_open(OpenRequest("/file", st.O_RDONLY))
    assert reply.status == 0
    assert reply.stat is not None
    assert reply.stat.size == 11
    assert reply.stat.ino == os.stat(root / "file").st_ino
    assert stat.S_ISREG(reply.stat.mode)


def test_open_missing_is_enoent(sm: StorageManager) -> None:
    assert sm.handle_p2s_open(OpenRequest("/missing", st.O_RDONLY)).status == Errno.ENOENT


def test_open_creat_uses_mode_as_given(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_open(OpenRequest("/new", st.O_WRONLY | st.O_CREAT, 0o666))
    assert reply.status == 0
    assert (root / "new").is_file()
    # The manager's own umask must not strip bits the processor left in.
    assert stat.S_IMODE(os.stat(root / "new").st_mode) == 0o666
    assert reply.stat is not None and stat.S_IMODE(reply.stat.mode) == 0o666


def test_open_creat_on_existing_keeps_mode(sm: StorageManager, root: Path) -> None:
    os.chmod(root / "file", 0o600)
    assert sm.handle_p2s_open(OpenRequest("/file", st.O_RDWR | st.O_CREAT, 0o777)).status == 0
    assert stat.S_IMODE(os.stat(root / "file").st_mode) == 0o600


def test_open_excl_existing_is_eexist(sm: StorageManager, root: Path) -> None:
    flags = st.O_WRONLY | st.O_CREAT | st.O_EXCL
    assert sm.handle_p2s_open(OpenRequest("/file", flags)).status == Errno.EEXIST
    # An existing symlink counts as existing, even a dangling one.
    (root / "dangling").symlink_to("nowhere")
    assert sm.handle_p2s_open(OpenRequest("/dangling", flags)).status == Errno.EEXIST
    assert not (root / "nowhere").exists()


def test_open_creat_through_dangling_link_creates_target(sm: StorageManager, root: Path) -> None:
    (root / "dangling").symlink_to("made")
    assert sm.handle_p2s_open(OpenRequest("/dangling", st.O_WRONLY | st.O_CREAT)).status == 0
    assert (root / "made").is_file()


def test_open_trunc(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_open(OpenRequest("/file", st.O_WRONLY | st.O_TRUNC))
    assert reply.status == 0
    assert reply.stat is not None and reply.stat.size == 0
    assert (root / "file").read_bytes() == b""


def test_open_directory_flag_on_file_is_enotdir(sm: StorageManager) -> None:
    reply = sm.handle_p2s_open(OpenRequest("/file", st.O_RDONLY | st.O_DIRECTORY))
    assert reply.status == Errno.ENOTDIR
    assert sm.handle_p2s_open(OpenRequest("/dir", st.O_RDONLY | st.O_DIRECTORY)).status == 0


def test_open_directory_for_writing_is_eisdir(sm: StorageManager) -> None:
    assert sm.handle_p2s_open(OpenRequest("/dir", st.O_WRONLY)).status == Errno.EISDIR
    assert sm.handle_p2s_open(OpenRequest("/dir", st.O_RDWR)).status == Errno.EISDIR


def test_open_nofollow_on_symlink_is_eloop(sm: StorageManager, root: Path) -> None:
    (root / "link").symlink_to("file")
    reply = sm.handle_p2s_open(OpenRequest("/link", st.O_RDONLY | st.O_NOFOLLOW))
    assert reply.status == Errno.ELOOP
    followed = sm.handle_p2s_open(OpenRequest("/link", st.O_RDONLY))
    assert followed.status == 0 and followed.stat is not None and followed.stat.size == 11


def test_open_creat_with_trailing_slash_is_eisdir(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_open(OpenRequest("/newdir/", st.O_WRONLY | st.O_CREAT))
    assert reply.status == Errno.EISDIR
    assert not (root / "newdir").exists()


def test_open_fifo_without_reader_does_not_block(sm: StorageManager, root: Path) -> None:
    os.mkfifo(root / "fifo")
    reply = sm.handle_p2s_open(OpenRequest("/fifo", st.O_WRONLY))
    assert reply.status == 0
    assert reply.stat is not None and stat.S_ISFIFO(reply.stat.mode)
    nonblocking = sm.handle_p2s_open(OpenRequest("/fifo", st.O_WRONLY | st.O_NONBLOCK))
    assert nonblocking.status == Errno.ENXIO


def test_open_ignores_cloexec_and_largefile(sm: StorageManager) -> None:
    reply = sm.handle_p2s_open(OpenRequest("/file", st.O_RDONLY | st.O_CLOEXEC | st.O_LARGEFILE))
    assert reply.status == 0


# ---------------------------------------------------------------- read


def test_read_at_offset(sm: StorageManager) -> None:
    assert sm.handle_p2s_read(ReadRequest("/file", 6, 5)).data == b"world"
    assert sm.handle_p2s_read(ReadRequest("/file", 0, 100)).data == b"hello world"
    assert sm.handle_p2s_read(ReadRequest("/file", 100, 5)).data == b""


def test_read_errors(sm: StorageManager) -> None:
    assert sm.handle_p2s_read(ReadRequest("/dir", 0, 5)).status == Errno.EISDIR
    assert sm.handle_p2s_read(ReadRequest("/missing", 0, 5)).status == Errno.ENOENT
    assert sm.handle_p2s_read(ReadRequest("/file", -1, 5)).status == Errno.EINVAL
    assert sm.handle_p2s_read(ReadRequest("/file", 0, -5)).status == Errno.EINVAL
    assert sm.handle_p2s_read(ReadRequest("/file", 1 << 70, 5)).status == Errno.EINVAL


def test_read_is_capped(sm: StorageManager, root: Path) -> None:
    os.truncate(root / "file", MAX_IO + 4096)
    reply = sm.handle_p2s_read(ReadRequest("/file", 0, MAX_IO + 4096))
    assert reply.status == 0
    assert len(reply.data) == MAX_IO


def test_m2s_read_is_like_p2s_read(sm: StorageManager) -> None:
    reply = sm.handle_m2s_read(FileReadRequest("/dir/inner", 1, 3))
    assert reply.status == 0 and reply.data == b"nne"
    assert sm.handle_m2s_read(FileReadRequest("/missing", 0, 1)).status == Errno.ENOENT


def test_read_character_device_unconfined() -> None:
    sm = StorageManager(None)
    reply = sm.handle_p2s_read(ReadRequest("/dev/urandom", 0, 16))
    assert reply.status == 0 and len(reply.data) == 16
    assert sm.handle_p2s_read(ReadRequest("/dev/zero", 4096, 8)).data == bytes(8)


def test_read_fifo_falls_back_to_read(sm: StorageManager, root: Path) -> None:
    os.mkfifo(root / "fifo")
    # O_RDWR keeps both ends open so the manager's open finds a writer.
    both = os.open(root / "fifo", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(both, b"piped")
        reply = sm.handle_p2s_read(ReadRequest("/fifo", 0, 100))
    finally:
        os.close(both)
    assert reply.status == 0
    assert reply.data == b"piped"


# ---------------------------------------------------------------- write


def test_write_at_offset(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_write(WriteRequest("/file", 6, b"WORLD!"))
    assert (reply.status, reply.written, reply.end) == (0, 6, 12)
    assert (root / "file").read_bytes() == b"hello WORLD!"


def test_write_past_end_leaves_hole(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_write(WriteRequest("/file", 20, b"x"))
    assert reply.status == 0 and reply.end == 21
    assert (root / "file").read_bytes() == b"hello world" + bytes(9) + b"x"


def test_write_append_reports_end(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_write(WriteRequest("/file", 0, b"!!", append=True))
    assert (reply.status, reply.written, reply.end) == (0, 2, 13)
    assert (root / "file").read_bytes() == b"hello world!!"
    empty = sm.handle_p2s_write(WriteRequest("/file", 0, b"", append=True))
    assert (empty.status, empty.written, empty.end) == (0, 0, 13)


def test_write_does_not_create(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_write(WriteRequest("/missing", 0, b"x")).status == Errno.ENOENT
    assert not (root / "missing").exists()


def test_write_directory_is_eisdir(sm: StorageManager) -> None:
    assert sm.handle_p2s_write(WriteRequest("/dir", 0, b"x")).status == Errno.EISDIR


def test_write_dev_null_unconfined() -> None:
    reply = StorageManager(None).handle_p2s_write(WriteRequest("/dev/null", 1234, b"gone"))
    assert reply.status == 0 and reply.written == 4


def test_write_fifo_falls_back_to_write(sm: StorageManager, root: Path) -> None:
    os.mkfifo(root / "fifo")
    reader = os.open(root / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    try:
        reply = sm.handle_p2s_write(WriteRequest("/fifo", 0, b"through"))
        got = os.read(reader, 100)
    finally:
        os.close(reader)
    assert reply.status == 0 and reply.written == 7
    assert got == b"through"


# ---------------------------------------------------------------- stat / access


def test_stat_follows_or_not(sm: StorageManager, root: Path) -> None:
    (root / "link").symlink_to("dir")
    followed = sm.handle_p2s_stat(StatRequest("/link", follow=True))
    assert followed.status == 0 and followed.stat is not None
    assert stat.S_ISDIR(followed.stat.mode)
    assert followed.stat.ino == os.stat(root / "dir").st_ino
    own = sm.handle_p2s_stat(StatRequest("/link", follow=False))
    assert own.status == 0 and own.stat is not None
    assert stat.S_ISLNK(own.stat.mode)
    assert own.stat.size == len("dir")


def test_stat_fields(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_stat(StatRequest("/file"))
    host = os.stat(root / "file")
    assert reply.stat is not None
    assert (reply.stat.dev, reply.stat.nlink, reply.stat.uid, reply.stat.mtime_ns) == (
        host.st_dev,
        host.st_nlink,
        host.st_uid,
        host.st_mtime_ns,
    )


def test_stat_errors(sm: StorageManager) -> None:
    assert sm.handle_p2s_stat(StatRequest("/missing")).status == Errno.ENOENT
    assert sm.handle_p2s_stat(StatRequest("/file/x")).status == Errno.ENOTDIR
    assert sm.handle_p2s_stat(StatRequest("relative")).status == Errno.EINVAL
    assert sm.handle_p2s_stat(StatRequest("")).status == Errno.ENOENT


def test_access(sm: StorageManager, root: Path) -> None:
    os.chmod(root / "file", 0o644)
    assert sm.handle_p2s_access(AccessRequest("/file", st.F_OK)).status == 0
    assert sm.handle_p2s_access(AccessRequest("/file", st.R_OK | st.W_OK)).status == 0
    # No execute bit anywhere: refused even to root.
    assert sm.handle_p2s_access(AccessRequest("/file", st.X_OK)).status == Errno.EACCES
    assert sm.handle_p2s_access(AccessRequest("/dir", st.X_OK)).status == 0
    assert sm.handle_p2s_access(AccessRequest("/missing", st.F_OK)).status == Errno.ENOENT
    assert sm.handle_p2s_access(AccessRequest("/file", 8)).status == Errno.EINVAL


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses read permission")
def test_access_unreadable_is_eacces(sm: StorageManager, root: Path) -> None:
    os.chmod(root / "file", 0o200)
    assert sm.handle_p2s_access(AccessRequest("/file", st.R_OK)).status == Errno.EACCES


# ---------------------------------------------------------------- readdir


def host_order(path: Path) -> list[bytes]:
    with os.scandir(os.fsencode(path)) as it:
        return [entry.name for entry in it]


def test_readdir_lists_dot_dotdot_then_host_order(sm: StorageManager, root: Path) -> None:
    for name in ("zeta", "alpha", "mid"):
        (root / "dir" / name).write_bytes(b"")
    (root / "dir" / "sub").mkdir()
    (root / "dir" / "ln").symlink_to("alpha")
    reply = sm.handle_p2s_readdir(ReaddirRequest("/dir"))
    assert reply.status == 0
    names = [e.name for e in reply.entries]
    assert names == [b".", b".."] + host_order(root / "dir")
    by_name = {e.name: e for e in reply.entries}
    assert by_name[b"."] == DirEntry(b".", os.stat(root / "dir").st_ino, st.DT_DIR)
    assert by_name[b".."] == DirEntry(b"..", os.stat(root).st_ino, st.DT_DIR)
    assert by_name[b"sub"].type == st.DT_DIR
    assert by_name[b"zeta"].type == st.DT_REG
    assert by_name[b"ln"].type == st.DT_LNK
    assert by_name[b"zeta"].ino == os.lstat(root / "dir" / "zeta").st_ino


def test_readdir_paging(sm: StorageManager, root: Path) -> None:
    for i in range(7):
        (root / "dir" / f"f{i}").write_bytes(b"")
    whole = sm.handle_p2s_readdir(ReaddirRequest("/dir")).entries
    assert len(whole) == 2 + 8
    pages: list[DirEntry] = []
    start = 0
    while True:
        page = sm.handle_p2s_readdir(ReaddirRequest("/dir", start=start, count=3))
        assert page.status == 0
        assert len(page.entries) <= 3
        if not page.entries:
            break
        pages.extend(page.entries)
        start += len(page.entries)
    assert tuple(pages) == whole
    assert sm.handle_p2s_readdir(ReaddirRequest("/dir", start=100)).entries == ()
    assert sm.handle_p2s_readdir(ReaddirRequest("/dir", count=0)).entries == ()


def test_readdir_root_dotdot_is_root(sm: StorageManager, root: Path) -> None:
    entries = sm.handle_p2s_readdir(ReaddirRequest("/", count=2)).entries
    ino = os.stat(root).st_ino
    assert [(e.name, e.ino) for e in entries] == [(b".", ino), (b"..", ino)]


def test_readdir_special_types(sm: StorageManager, root: Path) -> None:
    os.mkfifo(root / "dir" / "fifo")
    types = {e.name: e.type for e in sm.handle_p2s_readdir(ReaddirRequest("/dir")).entries}
    assert types[b"fifo"] == st.DT_FIFO


def test_readdir_errors(sm: StorageManager) -> None:
    assert sm.handle_p2s_readdir(ReaddirRequest("/file")).status == Errno.ENOTDIR
    assert sm.handle_p2s_readdir(ReaddirRequest("/missing")).status == Errno.ENOENT
    assert sm.handle_p2s_readdir(ReaddirRequest("/dir", start=-1)).status == Errno.EINVAL


# ---------------------------------------------------------------- readlink / symlink


def test_symlink_and_readlink_round_trip_raw_bytes(sm: StorageManager, root: Path) -> None:
    target = b"../odd-\xff-name"
    assert sm.handle_p2s_symlink(SymlinkRequest(target, "/s")).status == 0
    assert os.readlink(os.fsencode(root / "s")) == target
    reply = sm.handle_p2s_readlink(ReadlinkRequest("/s"))
    assert reply.status == 0 and reply.path == target


def test_readlink_errors(sm: StorageManager) -> None:
    assert sm.handle_p2s_readlink(ReadlinkRequest("/file")).status == Errno.EINVAL
    assert sm.handle_p2s_readlink(ReadlinkRequest("/missing")).status == Errno.ENOENT


def test_symlink_errors(sm: StorageManager) -> None:
    assert sm.handle_p2s_symlink(SymlinkRequest(b"x", "/file")).status == Errno.EEXIST
    assert sm.handle_p2s_symlink(SymlinkRequest(b"x", "/dir/.")).status == Errno.EEXIST
    assert sm.handle_p2s_symlink(SymlinkRequest(b"x", "/nope/s")).status == Errno.ENOENT
    assert sm.handle_p2s_symlink(SymlinkRequest(b"a\0b", "/s")).status == Errno.EINVAL


# ---------------------------------------------------------------- mkdir / rmdir / unlink


def test_mkdir_rmdir_round_trip(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_mkdir(MkdirRequest("/newdir", 0o755)).status == 0
    assert stat.S_IMODE(os.stat(root / "newdir").st_mode) == 0o755
    assert sm.handle_p2s_mkdir(MkdirRequest("/newdir", 0o755)).status == Errno.EEXIST
    assert sm.handle_p2s_rmdir(RmdirRequest("/newdir")).status == 0
    assert not (root / "newdir").exists()


def test_mkdir_mode_not_masked_by_host_umask(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_mkdir(MkdirRequest("/open/", 0o777)).status == 0
    assert stat.S_IMODE(os.stat(root / "open").st_mode) == 0o777


def test_mkdir_errors(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_mkdir(MkdirRequest("/nope/x", 0o755)).status == Errno.ENOENT
    assert sm.handle_p2s_mkdir(MkdirRequest("/", 0o755)).status == Errno.EEXIST
    (root / "link").symlink_to("elsewhere")
    # mkdir does not follow a final symlink, even a dangling one.
    assert sm.handle_p2s_mkdir(MkdirRequest("/link", 0o755)).status == Errno.EEXIST
    assert not (root / "elsewhere").exists()


def test_rmdir_errors(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_rmdir(RmdirRequest("/dir")).status == Errno.ENOTEMPTY
    assert sm.handle_p2s_rmdir(RmdirRequest("/file")).status == Errno.ENOTDIR
    assert sm.handle_p2s_rmdir(RmdirRequest("/missing")).status == Errno.ENOENT
    assert sm.handle_p2s_rmdir(RmdirRequest("/dir/.")).status == Errno.EINVAL
    assert sm.handle_p2s_rmdir(RmdirRequest("/dir/..")).status == Errno.ENOTEMPTY


def test_rmdir_of_root_is_ebusy(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    sm = StorageManager(empty)
    assert sm.handle_p2s_rmdir(RmdirRequest("/")).status == Errno.EBUSY
    (empty / "d").mkdir()
    assert sm.handle_p2s_rmdir(RmdirRequest("/d/../..")).status == Errno.ENOTEMPTY
    (empty / "up").symlink_to("..")
    assert sm.handle_p2s_rmdir(RmdirRequest("/up/")).status == Errno.EBUSY
    assert empty.is_dir()


def test_unlink(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_unlink(UnlinkRequest("/file")).status == 0
    assert not (root / "file").exists()
    assert sm.handle_p2s_unlink(UnlinkRequest("/file")).status == Errno.ENOENT


def test_unlink_symlink_removes_link_only(sm: StorageManager, root: Path) -> None:
    (root / "link").symlink_to("file")
    assert sm.handle_p2s_unlink(UnlinkRequest("/link")).status == 0
    assert not (root / "link").is_symlink()
    assert (root / "file").exists()


def test_unlink_directory_is_eisdir(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_unlink(UnlinkRequest("/dir")).status == Errno.EISDIR
    assert sm.handle_p2s_unlink(UnlinkRequest("/")).status == Errno.EISDIR
    assert sm.handle_p2s_unlink(UnlinkRequest("/dir/..")).status == Errno.EISDIR
    assert sm.handle_p2s_unlink(UnlinkRequest("/file/")).status == Errno.ENOTDIR
    assert (root / "dir").is_dir()


# ---------------------------------------------------------------- rename / link


def test_rename_round_trip(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_rename(RenameRequest("/file", "/dir/moved")).status == 0
    assert (root / "dir" / "moved").read_bytes() == b"hello world"
    assert not (root / "file").exists()


def test_rename_moves_symlink_itself(sm: StorageManager, root: Path) -> None:
    (root / "link").symlink_to("file")
    assert sm.handle_p2s_rename(RenameRequest("/link", "/link2")).status == 0
    assert (root / "link2").is_symlink()
    assert (root / "file").exists()


def test_rename_errors(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_rename(RenameRequest("/missing", "/x")).status == Errno.ENOENT
    assert sm.handle_p2s_rename(RenameRequest("/", "/x")).status == Errno.EBUSY
    assert sm.handle_p2s_rename(RenameRequest("/file", "/dir/.")).status == Errno.EBUSY
    assert sm.handle_p2s_rename(RenameRequest("/dir", "/file")).status == Errno.ENOTDIR
    (root / "up").symlink_to("/")
    assert sm.handle_p2s_rename(RenameRequest("/up/", "/x")).status == Errno.EBUSY
    assert (root / "file").exists() and (root / "dir").is_dir()


def test_link_round_trip(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_link(LinkRequest("/file", "/hard")).status == 0
    assert os.stat(root / "hard").st_ino == os.stat(root / "file").st_ino
    assert os.stat(root / "file").st_nlink == 2


def test_link_errors(sm: StorageManager) -> None:
    assert sm.handle_p2s_link(LinkRequest("/file", "/dir/inner")).status == Errno.EEXIST
    assert sm.handle_p2s_link(LinkRequest("/missing", "/x")).status == Errno.ENOENT
    assert sm.handle_p2s_link(LinkRequest("/dir", "/x")).status == Errno.EPERM


def test_link_of_symlink_links_the_symlink(sm: StorageManager, root: Path) -> None:
    (root / "link").symlink_to("file")
    assert sm.handle_p2s_link(LinkRequest("/link", "/hard")).status == 0
    assert (root / "hard").is_symlink()


# ---------------------------------------------------------------- truncate / chmod / utimens


def test_truncate(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_truncate(TruncateRequest("/file", 5)).status == 0
    assert (root / "file").read_bytes() == b"hello"
    assert sm.handle_p2s_truncate(TruncateRequest("/file", 8)).status == 0
    assert (root / "file").read_bytes() == b"hello" + bytes(3)


def test_truncate_errors(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_truncate(TruncateRequest("/dir", 0)).status == Errno.EISDIR
    assert sm.handle_p2s_truncate(TruncateRequest("/missing", 0)).status == Errno.ENOENT
    assert sm.handle_p2s_truncate(TruncateRequest("/file", -1)).status == Errno.EINVAL
    os.mkfifo(root / "fifo")
    assert sm.handle_p2s_truncate(TruncateRequest("/fifo", 0)).status == Errno.EINVAL


def test_chmod(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_chmod(ChmodRequest("/file", 0o4751)).status == 0
    assert stat.S_IMODE(os.stat(root / "file").st_mode) == 0o4751
    assert sm.handle_p2s_chmod(ChmodRequest("/missing", 0o600)).status == Errno.ENOENT


def test_chmod_follows_symlink(sm: StorageManager, root: Path) -> None:
    (root / "link").symlink_to("file")
    assert sm.handle_p2s_chmod(ChmodRequest("/link", 0o600)).status == 0
    assert stat.S_IMODE(os.stat(root / "file").st_mode) == 0o600


def test_utimens_sets_and_omits(sm: StorageManager, root: Path) -> None:
    os.utime(root / "file", ns=(1_000_000_000, 2_000_000_000))
    assert sm.handle_p2s_utimens(UtimensRequest("/file", 5_000_000_123, None)).status == 0
    host = os.stat(root / "file")
    assert (host.st_atime_ns, host.st_mtime_ns) == (5_000_000_123, 2_000_000_000)
    assert sm.handle_p2s_utimens(UtimensRequest("/file", None, 7_000_000_000)).status == 0
    host = os.stat(root / "file")
    assert (host.st_atime_ns, host.st_mtime_ns) == (5_000_000_123, 7_000_000_000)
    assert sm.handle_p2s_utimens(UtimensRequest("/file", None, None)).status == 0
    host = os.stat(root / "file")
    assert (host.st_atime_ns, host.st_mtime_ns) == (5_000_000_123, 7_000_000_000)


def test_utimens_nofollow_touches_link_only(sm: StorageManager, root: Path) -> None:
    os.utime(root / "file", ns=(1_000_000_000, 1_000_000_000))
    (root / "link").symlink_to("file")
    reply = sm.handle_p2s_utimens(UtimensRequest("/link", 3_000_000_000, 4_000_000_000, follow=False))
    assert reply.status == 0
    assert os.lstat(root / "link").st_mtime_ns == 4_000_000_000
    assert os.stat(root / "file").st_mtime_ns == 1_000_000_000
    followed = UtimensRequest("/link", 3_000_000_000, 6_000_000_000, follow=True)
    assert sm.handle_p2s_utimens(followed).status == 0
    assert os.stat(root / "file").st_mtime_ns == 6_000_000_000


def test_utimens_missing_is_enoent(sm: StorageManager) -> None:
    assert sm.handle_p2s_utimens(UtimensRequest("/missing", 1, 1)).status == Errno.ENOENT
    assert sm.handle_p2s_utimens(UtimensRequest("/missing", None, None)).status == Errno.ENOENT


# ---------------------------------------------------------------- statfs


def test_statfs(sm: StorageManager, root: Path) -> None:
    reply = sm.handle_p2s_statfs(StatfsRequest("/dir"))
    assert reply.status == 0
    assert len(reply.fields) == 11
    fstype, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags = reply.fields
    host = os.statvfs(root)
    assert (bsize, blocks, namelen, frsize) == (
        host.f_bsize,
        host.f_blocks,
        host.f_namemax,
        host.f_frsize,
    )
    assert fsid == host.f_fsid
    assert bavail <= bfree <= blocks
    assert fstype >= 0 and files >= ffree >= 0 and flags >= 0
    assert sm.handle_p2s_statfs(StatfsRequest("/missing")).status == Errno.ENOENT


# ---------------------------------------------------------------- confinement through the ops


def test_escaping_absolute_symlink_is_kept_inside(
    sm: StorageManager, root: Path, outside: Path
) -> None:
    (root / "out").symlink_to(outside)
    secret = str(Path("/out") / "secret")
    assert sm.handle_p2s_read(ReadRequest(secret, 0, 100)).status == Errno.ENOENT
    assert sm.handle_p2s_unlink(UnlinkRequest(secret)).status == Errno.ENOENT
    assert sm.handle_p2s_rename(RenameRequest(secret, "/stolen")).status == Errno.ENOENT
    assert sm.handle_p2s_rename(RenameRequest("/file", "/out/planted")).status == Errno.ENOENT
    assert sm.handle_p2s_link(LinkRequest(secret, "/hard")).status == Errno.ENOENT
    assert sm.handle_p2s_chmod(ChmodRequest(secret, 0o777)).status == Errno.ENOENT
    assert sm.handle_p2s_truncate(TruncateRequest(secret, 0)).status == Errno.ENOENT
    assert sm.handle_p2s_write(WriteRequest(secret, 0, b"pwned")).status == Errno.ENOENT
    assert sm.handle_p2s_readdir(ReaddirRequest("/out")).status == Errno.ENOENT
    open_out = OpenRequest("/out/new", st.O_WRONLY | st.O_CREAT)
    assert sm.handle_p2s_open(open_out).status == Errno.ENOENT
    # Removing the link removes the link, never what it names on the host.
    assert sm.handle_p2s_unlink(UnlinkRequest("/out")).status == 0
    assert (outside / "secret").read_bytes() == b"host secret"
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (root / "file").exists()


def test_escaping_relative_symlink_is_kept_inside(
    sm: StorageManager, root: Path, outside: Path
) -> None:
    (root / "dir" / "up").symlink_to("../../../../..")
    through = f"/dir/up/{outside.name}/secret"
    assert sm.handle_p2s_unlink(UnlinkRequest(through)).status == Errno.ENOENT
    assert sm.handle_p2s_read(ReadRequest("/dir/up/file", 0, 5)).data == b"hello"
    reply = sm.handle_p2s_stat(StatRequest("/dir/up"))
    assert reply.stat is not None and reply.stat.ino == os.stat(root).st_ino
    assert sm.handle_p2s_rename(RenameRequest("/dir/up/file", "/dir/up/renamed")).status == 0
    assert (root / "renamed").exists()
    assert (outside / "secret").read_bytes() == b"host secret"


def test_dotdot_paths_stay_inside(sm: StorageManager, root: Path, outside: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_bytes(b"guest passwd")
    reply = sm.handle_p2s_read(ReadRequest("/../../etc/passwd", 0, 100))
    assert reply.status == 0 and reply.data == b"guest passwd"
    assert sm.handle_p2s_read(ReadRequest("../../etc/passwd", 0, 100)).status == Errno.EINVAL
    escape = f"/../../{outside.name}/secret"
    assert sm.handle_p2s_unlink(UnlinkRequest(escape)).status == Errno.ENOENT
    assert (outside / "secret").exists()


def test_dangling_symlinks_create_inside(sm: StorageManager, root: Path, outside: Path) -> None:
    (root / "abs").symlink_to(outside / "planted")
    (root / "rel").symlink_to("../../../planted")
    flags = st.O_WRONLY | st.O_CREAT
    assert sm.handle_p2s_open(OpenRequest("/abs", flags)).status == Errno.ENOENT
    assert sm.handle_p2s_open(OpenRequest("/rel", flags)).status == 0
    assert (root / "planted").is_file()
    assert not (outside / "planted").exists()
    assert not (outside.parent / "planted").exists()


def test_symlink_created_by_guest_resolves_inside(sm: StorageManager, root: Path) -> None:
    assert sm.handle_p2s_symlink(SymlinkRequest(b"/dir/inner", "/abs")).status == 0
    assert sm.handle_p2s_read(ReadRequest("/abs", 0, 100)).data == b"inner"
    assert sm.handle_p2s_symlink(SymlinkRequest(b"/etc/passwd", "/pw")).status == 0
    assert sm.handle_p2s_read(ReadRequest("/pw", 0, 100)).status == Errno.ENOENT


def test_symlink_loop_is_eloop(sm: StorageManager, root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    assert sm.handle_p2s_stat(StatRequest("/a")).status == Errno.ELOOP
    assert sm.handle_p2s_open(OpenRequest("/a", st.O_RDONLY)).status == Errno.ELOOP
    assert sm.handle_p2s_unlink(UnlinkRequest("/a/x")).status == Errno.ELOOP
    lstat = sm.handle_p2s_stat(StatRequest("/a", follow=False))
    assert lstat.status == 0 and lstat.stat is not None and stat.S_ISLNK(lstat.stat.mode)


def test_unconfined_manager_sees_host_paths(root: Path) -> None:
    sm = StorageManager(None)
    reply = sm.handle_p2s_read(ReadRequest(str(root / "file"), 0, 5))
    assert reply.status == 0 and reply.data == b"hello"
    assert sm.handle_p2s_stat(StatRequest("file")).status == Errno.EINVAL
