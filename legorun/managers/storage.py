"""The storage manager (LegoOS sComponent): files served statelessly, NFS-style.

As in LegoOS (storage/ and the P2S_*/M2S_* handlers of include/lego/rpc/struct_p2s.h), every
request names an absolute guest path plus, for I/O, an offset and a length; nothing stays
open between requests, the processor keeps the fd table and file positions. Each handler
does what the matching Linux call does to the export (see `confine.PathResolver`) by really
performing it on the host, and replies with `status` 0 or a Linux errno. A guest error is
never raised: it is always a reply.

Flags and modes arrive with their Linux x86-64 values (asm-generic/fcntl.h) and are
translated by name to the host's, as host errnos are translated back by name.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from legorun.hostpipes import is_fifo_node
from legorun.managers.confine import PathResolver, final_component, host_errno
from legorun.rpc.messages import (
    AccessRequest,
    ChmodRequest,
    ChownRequest,
    DataReply,
    DirEntry,
    FileReadRequest,
    FileStat,
    GetxattrRequest,
    LinkRequest,
    ListxattrRequest,
    MkdirRequest,
    MknodRequest,
    Opcode,
    OpenReply,
    OpenRequest,
    PathReply,
    ReaddirReply,
    ReaddirRequest,
    ReadlinkRequest,
    ReadRequest,
    RemovexattrRequest,
    RenameRequest,
    RmdirRequest,
    SetxattrRequest,
    StatfsReply,
    StatfsRequest,
    StatReply,
    StatRequest,
    StatusReply,
    SymlinkRequest,
    TruncateRequest,
    UnlinkRequest,
    UtimensRequest,
    WriteReply,
    WriteRequest,
)
from syscalls.errno import Errno, SyscallError
from syscalls.flags import (
    O_ACCMODE,
    O_RDONLY,
    O_WRONLY,
    O_RDWR,
    O_CREAT,
    O_EXCL,
    O_NOCTTY,
    O_TRUNC,
    O_APPEND,
    O_NONBLOCK,
    O_DSYNC,
    O_ASYNC,
    O_DIRECT,
    O_LARGEFILE,
    O_DIRECTORY,
    O_NOFOLLOW,
    O_NOATIME,
    O_CLOEXEC,
    O_SYNC,
    O_PATH,
    O_TMPFILE,
)

R = TypeVar("R")

# Bounds the memory one request can make the manager allocate; the processor splits
# larger reads (a short read is a valid answer to read(2)).
MAX_IO = 16 * 1024 * 1024
_MAX_OFFSET = (1 << 63) - 1  # loff_t

# Linux bit(s) -> host `os` constant name. Multi-bit flags come before the single bits they
# contain. O_LARGEFILE has no host meaning for a 64-bit open and O_CLOEXEC none for an fd
# closed before the reply: both are dropped.
_OPEN_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (O_TMPFILE, "O_TMPFILE"),
    (O_SYNC, "O_SYNC"),
    (O_WRONLY, "O_WRONLY"),
    (O_RDWR, "O_RDWR"),
    (O_CREAT, "O_CREAT"),
    (O_EXCL, "O_EXCL"),
    (O_NOCTTY, "O_NOCTTY"),
    (O_TRUNC, "O_TRUNC"),
    (O_APPEND, "O_APPEND"),
    (O_NONBLOCK, "O_NONBLOCK"),
    (O_DSYNC, "O_DSYNC"),
    (O_ASYNC, "O_ASYNC"),
    (O_DIRECT, "O_DIRECT"),
    (O_DIRECTORY, "O_DIRECTORY"),
    (O_NOFOLLOW, "O_NOFOLLOW"),
    (O_NOATIME, "O_NOATIME"),
    (O_PATH, "O_PATH"),
)

# access(2) modes
F_OK = 0
X_OK = 1
W_OK = 2
R_OK = 4

# getdents64 d_type values (include/linux/fs_types.h)
DT_UNKNOWN = 0
DT_FIFO = 1
DT_CHR = 2
DT_DIR = 4
DT_BLK = 6
DT_REG = 8
DT_LNK = 10
DT_SOCK = 12

_ST_RDONLY = 1  # statfs f_flags bit, as ST_RDONLY


class _StatfsBuf(ctypes.Structure):
    """struct statfs of a 64-bit Linux host (include/uapi/asm-generic/statfs.h), which is
    also the guest's layout."""

    _fields_ = [
        ("f_type", ctypes.c_long),
        ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2),
        ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long),
        ("f_spare", ctypes.c_long * 4),
    ]


def host_open_flags(linux_flags: int) -> int:
    """The host os.O_* value for Linux open flags; flags the host lacks are dropped."""
    remaining = linux_flags
    host = 0
    for bits, name in _OPEN_FLAG_NAMES:
        if remaining & bits == bits:
            remaining &= ~bits
            host |= getattr(os, name, 0)
    return host


def dirent_type(mode: int) -> int:
    """The d_type getdents64 reports for an inode of `mode`."""
    if stat.S_ISDIR(mode):
        return DT_DIR
    if stat.S_ISREG(mode):
        return DT_REG
    if stat.S_ISLNK(mode):
        return DT_LNK
    if stat.S_ISCHR(mode):
        return DT_CHR
    if stat.S_ISBLK(mode):
        return DT_BLK
    if stat.S_ISFIFO(mode):
        return DT_FIFO
    if stat.S_ISSOCK(mode):
        return DT_SOCK
    return DT_UNKNOWN


def _open_for_io(host: str, flags: int) -> int:
    """Open `host` for one read or write without ever blocking on a FIFO node: a guest's
    FIFO is the processor's (processor/fifo.py), and a request for one must not stop the
    manager. A terminal or a pipe reached through /proc blocks as before."""
    fd = os.open(host, flags | os.O_NONBLOCK)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) and not is_fifo_node(st.st_mode, st.st_dev):
        os.set_blocking(fd, True)
    return fd


def _check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0 or offset > _MAX_OFFSET:
        raise SyscallError(Errno.EINVAL, f"offset {offset} length {length}")


class StorageManager:
    """Serves the P2S_* and M2S_READ opcodes for the export rooted at `root` (None: the
    host file system as is)."""

    def __init__(self, root: Path | None = None) -> None:
        self._paths = PathResolver(root)
        # Confined paths come back with every symlink already followed by the resolver, so
        # the host must not follow one again: a link appearing at the final component after
        # resolution would otherwise lead outside the export.
        self._nofollow = os.O_NOFOLLOW if self._paths.confined else 0
        # statvfs(3) has no f_type; the real statfs(2) is used where its layout is known.
        self._libc: ctypes.CDLL | None = None
        if sys.platform.startswith("linux") and ctypes.sizeof(ctypes.c_long) == 8:
            try:
                self._libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                self._libc = None

    def handlers(self) -> dict[Opcode, Callable[[Any], Any]]:
        """Opcode -> bound handler, for every opcode addressed to storage."""
        return {
            op: getattr(self, f"handle_{op.name.lower()}")
            for op in Opcode
            if op.name.startswith(("P2S_", "M2S_"))
        }

    # ------------------------------------------------------------------ helpers

    def _attempt(self, action: Callable[[], R], failed: Callable[[int], R]) -> R:
        """Run `action`, turning a guest-visible failure into the reply `failed(errno)`."""
        try:
            return action()
        except SyscallError as exc:
            return failed(int(exc.errno))
        except OSError as exc:
            return failed(int(host_errno(exc)))
        except OverflowError:
            # A number the host call cannot represent (an absurd offset, time or mode).
            return failed(int(Errno.EINVAL))

    def _resolve(self, guest_path: str, follow_final: bool = True) -> str:
        return self._paths.resolve(guest_path, follow_final)

    def _stat(self, host: str, follow: bool) -> os.stat_result:
        # Confined: a followed final link was already replaced by its target in `host`.
        return os.stat(host, follow_symlinks=follow and not self._paths.confined)

    # ------------------------------------------------------------------ open

    def handle_p2s_open(self, req: OpenRequest) -> OpenReply:
        return self._attempt(lambda: OpenReply(stat=self._open(req)), OpenReply)

    def _open(self, req: OpenRequest) -> FileStat:
        flags = req.flags
        # O_CREAT|O_EXCL never follows a final symlink: an existing link is EEXIST.
        exclusive = flags & O_CREAT != 0 and flags & O_EXCL != 0
        follow = flags & O_NOFOLLOW == 0 and not exclusive
        host = self._resolve(req.path, follow_final=follow)
        hflags = host_open_flags(flags & ~O_CLOEXEC) | self._nofollow
        # O_NOCTTY: opening a terminal must not make it the manager's controlling tty.
        # O_NONBLOCK: opening a FIFO without a peer would block the manager for every
        # other request; O_CLOEXEC: the probe fd must not leak into anything spawned.
        hflags |= os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
        mode = req.mode & 0o7777
        existed = flags & O_CREAT == 0 or os.path.lexists(host)
        try:
            fd = os.open(host, hflags, mode)
        except OSError as exc:
            if exc.errno == errno.ENXIO and flags & O_NONBLOCK == 0:
                st = self._stat(host, True)
                if stat.S_ISFIFO(st.st_mode):
                    # A blocking open of a FIFO would wait for a reader; stateless storage
                    # cannot wait, so the open is granted and I/O decides later.
                    return FileStat.from_host(st)
            raise
        try:
            st = os.fstat(fd)
            if not existed and stat.S_IMODE(st.st_mode) != mode and stat.S_ISREG(st.st_mode):
                # The guest's umask was applied by the processor; the manager's own umask
                # must not strip further bits. Best effort: the file exists either way.
                try:
                    os.fchmod(fd, mode)
                    st = os.fstat(fd)
                except OSError:
                    pass
            return FileStat.from_host(st)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ read / write

    def handle_p2s_read(self, req: ReadRequest) -> DataReply:
        return self._attempt(
            lambda: DataReply(data=self._read(req.path, req.offset, req.length)), DataReply
        )

    def handle_m2s_read(self, req: FileReadRequest) -> DataReply:
        return self._attempt(
            lambda: DataReply(data=self._read(req.path, req.offset, req.length)), DataReply
        )

    def _read(self, guest_path: str, offset: int, length: int) -> bytes:
        _check_range(offset, length)
        host = self._resolve(guest_path)
        fd = _open_for_io(host, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC | self._nofollow)
        try:
            size = min(length, MAX_IO)
            try:
                return os.pread(fd, size, offset)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:
                    raise
                # A tty, pipe or similar stream has no offsets: take what comes next.
                return os.read(fd, size)
        finally:
            os.close(fd)

    def handle_p2s_write(self, req: WriteRequest) -> WriteReply:
        return self._attempt(lambda: self._write(req), WriteReply)

    def _write(self, req: WriteRequest) -> WriteReply:
        _check_range(req.offset, len(req.data))
        host = self._resolve(req.path)
        # No O_CREAT: the file was created, if at all, by the OPEN that gave the guest its fd.
        hflags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | self._nofollow
        if req.append:
            hflags |= os.O_APPEND
        fd = _open_for_io(host, hflags)
        try:
            data = memoryview(req.data)
            done = 0
            positional = not req.append
            while done < len(data):
                try:
                    if positional:
                        n = os.pwrite(fd, data[done:], req.offset + done)
                    else:
                        n = os.write(fd, data[done:])
                except OSError as exc:
                    if positional and exc.errno == errno.ESPIPE:
                        positional = False  # /dev/tty, a pipe: no offsets to write at
                        continue
                    if done:
                        break  # as write(2): report what was written before the error
                    raise
                if n == 0:
                    break
                done += n
            end = req.offset + done
            if req.append:
                try:
                    end = os.lseek(fd, 0, os.SEEK_END)
                except OSError:
                    pass
            return WriteReply(written=done, end=end)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ metadata

    def handle_p2s_stat(self, req: StatRequest) -> StatReply:
        def run() -> StatReply:
            host = self._resolve(req.path, follow_final=req.follow)
            return StatReply(stat=FileStat.from_host(self._stat(host, req.follow)))

        return self._attempt(run, StatReply)

    def handle_p2s_access(self, req: AccessRequest) -> StatusReply:
        def run() -> StatusReply:
            if req.mode & ~(R_OK | W_OK | X_OK):
                raise SyscallError(Errno.EINVAL, f"access mode {req.mode:#o}")
            host = self._resolve(req.path)
            st = self._stat(host, True)  # existence, with the lookup's own errno
            if req.mode & W_OK and self._read_only_fs(host) and (
                stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
            ):
                raise SyscallError(Errno.EROFS, req.path)
            if req.mode != F_OK and not os.access(host, req.mode):
                raise SyscallError(Errno.EACCES, req.path)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def _read_only_fs(self, host: str) -> bool:
        return os.statvfs(host).f_flag & _ST_RDONLY != 0

    def handle_p2s_readdir(self, req: ReaddirRequest) -> ReaddirReply:
        return self._attempt(lambda: ReaddirReply(entries=self._readdir(req)), ReaddirReply)

    def _readdir(self, req: ReaddirRequest) -> tuple[DirEntry, ...]:
        if req.start < 0 or req.count < 0:
            raise SyscallError(Errno.EINVAL, f"start {req.start} count {req.count}")
        host = self._resolve(req.path)
        entries: list[DirEntry] = []
        # The directory is listed afresh for every page: the host's order is stable while
        # the directory is unchanged, which is all getdents offsets promise anyway.
        with os.scandir(os.fsencode(host)) as it:
            here = self._stat(host, True)
            parent = self._stat(self._paths.parent(host), True)
            entries.append(DirEntry(b".", here.st_ino, DT_DIR))
            entries.append(DirEntry(b"..", parent.st_ino, DT_DIR))
            for entry in it:
                if len(entries) >= req.start + req.count:
                    break
                entries.append(DirEntry(entry.name, entry.inode(), self._entry_type(entry)))
        return tuple(entries[req.start : req.start + req.count])

    @staticmethod
    def _entry_type(entry: os.DirEntry[bytes]) -> int:
        # The is_* calls use the d_type the host's getdents already gave; only the rarer
        # types need an lstat.
        try:
            if entry.is_symlink():
                return DT_LNK
            if entry.is_dir(follow_symlinks=False):
                return DT_DIR
            if entry.is_file(follow_symlinks=False):
                return DT_REG
            return dirent_type(entry.stat(follow_symlinks=False).st_mode)
        except OSError:
            return DT_UNKNOWN  # removed since listed: getdents may report such entries too

    def handle_p2s_readlink(self, req: ReadlinkRequest) -> PathReply:
        def run() -> PathReply:
            host = self._resolve(req.path, follow_final=False)
            return PathReply(path=os.readlink(os.fsencode(host)))

        return self._attempt(run, PathReply)

    def handle_p2s_statfs(self, req: StatfsRequest) -> StatfsReply:
        return self._attempt(
            lambda: StatfsReply(fields=self._statfs(self._resolve(req.path))), StatfsReply
        )

    def _statfs(self, host: str) -> tuple[int, ...]:
        """struct statfs: type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen,
        frsize, flags."""
        if self._libc is not None:
            buf = _StatfsBuf()
            if self._libc.statfs(os.fsencode(host), ctypes.byref(buf)) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), host)
            # fsid as the 8 bytes of its two ints, as statvfs's f_fsid also packs it.
            fsid = (buf.f_fsid[0] & 0xFFFFFFFF) | (buf.f_fsid[1] & 0xFFFFFFFF) << 32
            return (
                buf.f_type,
                buf.f_bsize,
                buf.f_blocks,
                buf.f_bfree,
                buf.f_bavail,
                buf.f_files,
                buf.f_ffree,
                fsid,
                buf.f_namelen,
                buf.f_frsize,
                buf.f_flags,
            )
        sv = os.statvfs(host)
        return (
            0,  # statvfs does not say which file system it is
            sv.f_bsize,
            sv.f_blocks,
            sv.f_bfree,
            sv.f_bavail,
            sv.f_files,
            sv.f_ffree,
            sv.f_fsid,
            sv.f_namemax,
            sv.f_frsize,
            sv.f_flag,
        )

    # ------------------------------------------------------------------ namespace changes

    def handle_p2s_mkdir(self, req: MkdirRequest) -> StatusReply:
        def run() -> StatusReply:
            self._require_new_name(req.path)
            host = self._resolve(req.path, follow_final=False)
            mode = req.mode & 0o1777
            os.mkdir(host, mode)
            st = os.lstat(host)
            if stat.S_IMODE(st.st_mode) & 0o1777 != mode:
                # Undo the manager's own umask (see _open); keep an inherited set-group-ID.
                try:
                    os.chmod(host, stat.S_IMODE(st.st_mode) & ~0o1777 | mode)
                except OSError:
                    pass
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_mknod(self, req: MknodRequest) -> StatusReply:
        def run() -> StatusReply:
            kind = stat.S_IFMT(req.mode) or stat.S_IFREG
            if kind not in (stat.S_IFREG, stat.S_IFIFO):
                # Device and socket nodes: the manager makes none in its export.
                raise SyscallError(Errno.EPERM, req.path)
            self._require_new_name(req.path)
            host = self._resolve(req.path, follow_final=False)
            mode = req.mode & 0o7777
            if kind == stat.S_IFIFO:
                os.mkfifo(host, mode)
            else:
                os.close(os.open(host, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                                 mode))
            if stat.S_IMODE(os.lstat(host).st_mode) != mode:
                os.chmod(host, mode)  # the manager's own umask must not strip bits (_open)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_rmdir(self, req: RmdirRequest) -> StatusReply:
        def run() -> StatusReply:
            name = final_component(req.path)
            if name == ".":
                raise SyscallError(Errno.EINVAL, req.path)
            if name == "..":
                raise SyscallError(Errno.ENOTEMPTY, req.path)
            host = self._resolve(req.path, follow_final=False)
            if name == "" or self._paths.is_root(host):
                raise SyscallError(Errno.EBUSY, req.path)
            os.rmdir(host)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_unlink(self, req: UnlinkRequest) -> StatusReply:
        def run() -> StatusReply:
            if final_component(req.path) in ("", ".", ".."):
                raise SyscallError(Errno.EISDIR, req.path)
            host = self._resolve(req.path, follow_final=False)
            # The host's unlink(2) already refuses a directory with EISDIR, as Linux does.
            os.unlink(host)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_rename(self, req: RenameRequest) -> StatusReply:
        def run() -> StatusReply:
            for path in (req.old, req.new):
                if final_component(path) in ("", ".", ".."):
                    raise SyscallError(Errno.EBUSY, path)
            old = self._resolve(req.old, follow_final=False)
            new = self._resolve(req.new, follow_final=False)
            if self._paths.is_root(old) or self._paths.is_root(new):
                raise SyscallError(Errno.EBUSY, req.old)
            os.rename(old, new)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_symlink(self, req: SymlinkRequest) -> StatusReply:
        def run() -> StatusReply:
            if b"\0" in req.target:
                raise SyscallError(Errno.EINVAL, "NUL in symlink target")
            self._require_new_name(req.path)
            host = self._resolve(req.path, follow_final=False)
            # Stored verbatim: the resolver interprets it relative to the export on use.
            os.symlink(req.target, os.fsencode(host))
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_link(self, req: LinkRequest) -> StatusReply:
        def run() -> StatusReply:
            self._require_new_name(req.new)
            # link(2) does not follow a symlink as `old`: it links the symlink itself.
            old = self._resolve(req.old, follow_final=False)
            new = self._resolve(req.new, follow_final=False)
            os.link(old, new, follow_symlinks=False)
            return StatusReply()

        return self._attempt(run, StatusReply)

    @staticmethod
    def _require_new_name(guest_path: str) -> None:
        # Creating "/", "x/." or "x/.." names something that exists (filename_create).
        if final_component(guest_path) in ("", ".", ".."):
            raise SyscallError(Errno.EEXIST, guest_path)

    # ------------------------------------------------------------------ attributes

    def handle_p2s_truncate(self, req: TruncateRequest) -> StatusReply:
        def run() -> StatusReply:
            if req.length < 0:
                raise SyscallError(Errno.EINVAL, f"length {req.length}")
            host = self._resolve(req.path)
            st = self._stat(host, True)
            if stat.S_ISDIR(st.st_mode):
                raise SyscallError(Errno.EISDIR, req.path)
            if not stat.S_ISREG(st.st_mode):
                # Checked before opening: a FIFO opened for writing would block.
                raise SyscallError(Errno.EINVAL, req.path)
            fd = os.open(host, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | self._nofollow)
            try:
                os.ftruncate(fd, req.length)
            finally:
                os.close(fd)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_chmod(self, req: ChmodRequest) -> StatusReply:
        def run() -> StatusReply:
            host = self._resolve(req.path)
            os.chmod(host, req.mode & 0o7777)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_utimens(self, req: UtimensRequest) -> StatusReply:
        def run() -> StatusReply:
            host = self._resolve(req.path, follow_final=req.follow)
            follow = req.follow and not self._paths.confined
            st = os.stat(host, follow_symlinks=follow)
            if req.atime_ns is None and req.mtime_ns is None:
                # Both UTIME_OMIT: Linux changes nothing and checks no permission.
                return StatusReply()
            # A None time is re-set to its current value, the nearest os.utime has to
            # UTIME_OMIT; setting any explicit time needs ownership either way.
            atime = st.st_atime_ns if req.atime_ns is None else req.atime_ns
            mtime = st.st_mtime_ns if req.mtime_ns is None else req.mtime_ns
            os.utime(host, ns=(atime, mtime), follow_symlinks=follow)
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_chown(self, req: ChownRequest) -> StatusReply:
        def run() -> StatusReply:
            host = self._resolve(req.path, follow_final=req.follow)
            os.chown(host, req.uid, req.gid, follow_symlinks=self._follow_host(req.follow))
            return StatusReply()

        return self._attempt(run, StatusReply)

    def _follow_host(self, follow: bool) -> bool:
        # Confined: a followed final link was already replaced by its target.
        return follow and not self._paths.confined

    # ------------------------------------------------------------------ extended attributes

    def handle_p2s_getxattr(self, req: GetxattrRequest) -> DataReply:
        def run() -> DataReply:
            host = self._resolve(req.path, follow_final=req.follow)
            return DataReply(data=os.getxattr(host, req.name,
                                              follow_symlinks=self._follow_host(req.follow)))

        return self._attempt(run, DataReply)

    def handle_p2s_listxattr(self, req: ListxattrRequest) -> DataReply:
        def run() -> DataReply:
            host = self._resolve(req.path, follow_final=req.follow)
            names = os.listxattr(os.fsencode(host), follow_symlinks=self._follow_host(req.follow))
            return DataReply(data=b"".join(os.fsencode(name) + b"\0" for name in names))

        return self._attempt(run, DataReply)

    def handle_p2s_setxattr(self, req: SetxattrRequest) -> StatusReply:
        def run() -> StatusReply:
            host = self._resolve(req.path, follow_final=req.follow)
            os.setxattr(host, req.name, req.value, req.flags,
                        follow_symlinks=self._follow_host(req.follow))
            return StatusReply()

        return self._attempt(run, StatusReply)

    def handle_p2s_removexattr(self, req: RemovexattrRequest) -> StatusReply:
        def run() -> StatusReply:
            host = self._resolve(req.path, follow_final=req.follow)
            os.removexattr(host, req.name, follow_symlinks=self._follow_host(req.follow))
            return StatusReply()

        return self._attempt(run, StatusReply)
