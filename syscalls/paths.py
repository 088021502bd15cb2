"""Path-based file syscalls: open, stat, access, readlink, the working directory, namespace
changes (mkdir, unlink, rename, link, symlink) and attributes (chmod, truncate, utimensat,
statfs). See open(2), stat(2), statx(2), access(2), readlink(2), getcwd(2), chdir(2),
mkdir(2), rmdir(2), unlink(2), rename(2), truncate(2), symlink(2), link(2), chmod(2),
utimensat(2), statfs(2) and path_resolution(7).

As in LegoOS, the processor owns the process's view of the name space (its cwd and the
directory fds that *at calls start from) and the storage manager owns the files: a handler
turns (dirfd, pathname) into an absolute guest path here and sends one self-contained P2S
request for it. The /proc files and links that describe the process itself are served by
the processor (processor/procfs.py), since the storage manager would describe itself.
"""

from __future__ import annotations

import os
import stat as stat_module
import struct
import time
from typing import Any

from legorun.processor import procfs, unlinked
from legorun.processor.devices import open_device
from legorun.processor.fifo import is_named_fifo, open_fifo
from legorun.processor.files import (
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_LARGEFILE,
    O_NOCTTY,
    O_NOFOLLOW,
    O_PATH,
    O_TMPFILE,
    O_TRUNC,
    O_WRONLY,
    Directory,
    OpenFile,
    StorageFile,
)
from legorun.processor.uaccess import PATH_MAX
from legorun.rpc.messages import (
    AccessRequest,
    ChmodRequest,
    FileStat,
    LinkRequest,
    MkdirRequest,
    MknodRequest,
    OpenReply,
    OpenRequest,
    PathReply,
    ReadlinkRequest,
    RenameRequest,
    Request,
    RmdirRequest,
    StatfsReply,
    StatfsRequest,
    StatReply,
    StatRequest,
    SymlinkRequest,
    TruncateRequest,
    UnlinkRequest,
    UtimensRequest,
)
from syscalls.args import AT_FDCWD, CStr, Fd, Int, Long, Ptr, Size, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.fs import pack_stat

AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200  # faccessat2 only: shares its value with AT_REMOVEDIR
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000  # FORCE_SYNC | DONT_SYNC: both at once is invalid

RENAME_NOREPLACE = 1

X_OK = 1
SYMLOOP_MAX = 40  # MAXSYMLINKS, as the storage manager's resolver counts them

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

# open(2) keeps these out of the open file description (F_GETFL never reports them).
OPEN_ONLY_FLAGS = O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC
# With O_PATH, Linux ignores every flag but these (open(2), "O_PATH").
O_PATH_FLAGS = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

# struct statx (include/uapi/linux/stat.h), 256 bytes: mask, blksize, attributes, nlink,
# uid, gid, mode, ino, size, blocks, attributes_mask, then atime, btime, ctime and mtime as
# (s64 sec, u32 nsec, reserved), rdev and dev as major/minor pairs, the rest zero.
STATX_FORMAT = "<IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIII96x"
STATX_BASIC_STATS = 0x7FF  # type, mode, nlink, uid, gid, atime, mtime, ctime, ino, size, blocks
STATX_RESERVED = 0x80000000

# struct statfs on x86-64: type, bsize, blocks, bfree, bavail, files, ffree, fsid (two ints,
# carried as one u64), namelen, frsize, flags, spare[4].
STATFS_FORMAT = "<qqQQQQQQqqq32x"


# ---------------------------------------------------------------- shared helpers


def call_storage(ctx: SyscallContext, request: Request) -> Any:
    """Send `request` to the storage manager; a failed reply becomes the syscall's error."""
    reply = ctx.storage.call(request)
    if reply.status:
        raise SyscallError(Errno(reply.status))
    return reply


def read_path(ctx: SyscallContext, pathname: int, empty_ok: bool = False) -> str:
    """The path the user passed, checked as getname() does: ENAMETOOLONG when no NUL comes
    within PATH_MAX bytes, ENOENT when empty unless the call accepts AT_EMPTY_PATH."""
    if empty_ok and not pathname:
        return ""  # Linux 6.11+ takes NULL as "" with AT_EMPTY_PATH
    raw = ctx.mem.read_cstr(pathname, PATH_MAX)
    if len(raw) >= PATH_MAX:
        raise SyscallError(Errno.ENAMETOOLONG)
    if not raw and not empty_ok:
        raise SyscallError(Errno.ENOENT)
    return os.fsdecode(raw)


def _directory_path(ctx: SyscallContext, dirfd: int) -> str:
    """The guest path a relative pathname starts from: the cwd or the directory dirfd."""
    if dirfd == AT_FDCWD:
        return ctx.proc.cwd
    file = ctx.fds.get(dirfd)
    if not isinstance(file, Directory):
        raise SyscallError(Errno.ENOTDIR)
    return file.path


def resolve(ctx: SyscallContext, dirfd: int, path: str) -> str:
    """The absolute guest path for `path` relative to dirfd (AT_FDCWD: the cwd).

    Joined, not normalised: "..", "." and a trailing slash are resolved by the storage
    manager, which knows which components are symbolic links.
    """
    if path.startswith("/"):
        return path
    return _directory_path(ctx, dirfd).rstrip("/") + "/" + path


def at_path(ctx: SyscallContext, dirfd: int, pathname: int, flags: int = 0) -> str:
    """resolve() for a pathname argument; with AT_EMPTY_PATH, "" names dirfd itself."""
    path = read_path(ctx, pathname, empty_ok=bool(flags & AT_EMPTY_PATH))
    return resolve(ctx, dirfd, path) if path else fd_path(ctx, dirfd)


def fd_path(ctx: SyscallContext, fd: int) -> str:
    """The guest path of the file open at fd (AT_FDCWD: the cwd), for calls that act on an
    fd through the storage manager."""
    if fd == AT_FDCWD:
        return ctx.proc.cwd
    file = ctx.fds.get(fd)
    if file.path is None:
        # A host stream or a pipe: there is no file on the storage manager to act on.
        raise SyscallError(Errno.EOPNOTSUPP)
    return file.path


def fd_file(ctx: SyscallContext, fd: int) -> OpenFile:
    """The file at fd for a call that O_PATH descriptors may not make (EBADF, as fdget)."""
    file = ctx.fds.get(fd)
    if file.flags & O_PATH:
        raise SyscallError(Errno.EBADF)
    return file


def stat_path(ctx: SyscallContext, path: str, follow: bool = True) -> FileStat:
    if follow:
        described = procfs.described_file(ctx, path)
        if described is not None:
            return described.stat()
        path = procfs.follow_links(ctx, path)
    else:
        link = procfs.link_stat(ctx, path)
        if link is not None:
            return link
    reply: StatReply = call_storage(ctx, StatRequest(path, follow))
    if reply.stat is None:
        raise SyscallError(Errno.EIO)
    return reply.stat


def _readlink_path(ctx: SyscallContext, path: str) -> bytes:
    reply: PathReply = call_storage(ctx, ReadlinkRequest(path))
    return reply.path


def _canonical(ctx: SyscallContext, path: str) -> str:
    """`path` with every ".", ".." and symbolic link resolved, as getcwd(2) reports a
    directory: the processor keeps its cwd in this form so that getcwd needs no RPC."""
    done: list[str] = []
    pending = [part for part in reversed(path.split("/")) if part]
    links = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            # `done` holds no symlinks, so dropping a name is the physical parent.
            if done:
                done.pop()
            continue
        here = "/" + "/".join([*done, name])
        if stat_module.S_ISLNK(stat_path(ctx, here, follow=False).mode):
            links += 1
            if links > SYMLOOP_MAX:
                raise SyscallError(Errno.ELOOP)
            target = os.fsdecode(_readlink_path(ctx, here))
            if target.startswith("/"):
                done = []
            pending.extend(part for part in reversed(target.split("/")) if part)
            continue
        done.append(name)
    return "/" + "/".join(done)


# ---------------------------------------------------------------- open


def open_path(ctx: SyscallContext, dirfd: int, pathname: int, flags: int, mode: int) -> int:
    """What open, openat and creat share: open the file, then give it a descriptor."""
    path = resolve(ctx, dirfd, read_path(ctx, pathname))
    if flags & O_TMPFILE == O_TMPFILE:
        # An unnamed file would have to stay open at the storage manager, which keeps no
        # state between requests; callers fall back to a named file on EOPNOTSUPP.
        raise SyscallError(Errno.EOPNOTSUPP)
    if flags & O_PATH:
        flags &= O_PATH_FLAGS
        kept = flags & ~O_CLOEXEC
    else:
        # 64-bit kernels force O_LARGEFILE into every open file description.
        kept = flags & ~OPEN_ONLY_FLAGS | O_LARGEFILE
    served = procfs.open_file(ctx, path, flags, kept)
    if served is not None:
        return ctx.fds.allocate(served, cloexec=bool(flags & O_CLOEXEC))
    if not flags & O_NOFOLLOW:
        path = procfs.follow_links(ctx, path)
    mode = mode & ~ctx.proc.umask & 0o7777 if flags & O_CREAT else 0
    reply: OpenReply = call_storage(ctx, OpenRequest(path, flags & ~O_CLOEXEC, mode))
    if reply.stat is not None and is_named_fifo(reply.stat) and not flags & O_PATH:
        fifo = open_fifo(reply.stat, path, kept)  # the pipe is the processor's (fifo.py)
        return ctx.fds.allocate(fifo, cloexec=bool(flags & O_CLOEXEC))
    if reply.stat is not None and stat_module.S_ISDIR(reply.stat.mode):
        file: StorageFile = Directory(ctx.storage, path, kept)
    else:
        device = open_device(ctx.storage, path, kept, reply.stat)
        file = device if device is not None else StorageFile(ctx.storage, path, kept,
                                                             ctx.vm.shared)
    return ctx.fds.allocate(file, cloexec=bool(flags & O_CLOEXEC))


def sys_open(ctx: SyscallContext, pathname: CStr, flags: Int, mode: UInt) -> int:
    return open_path(ctx, AT_FDCWD, pathname, flags, mode)


def sys_openat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, flags: Int, mode: UInt) -> int:
    return open_path(ctx, dirfd, pathname, flags, mode)


def sys_creat(ctx: SyscallContext, pathname: CStr, mode: UInt) -> int:
    return open_path(ctx, AT_FDCWD, pathname, O_CREAT | O_WRONLY | O_TRUNC, mode)


# ---------------------------------------------------------------- stat


def stat_at(ctx: SyscallContext, dirfd: int, pathname: int, flags: int) -> FileStat:
    """The file newfstatat and statx describe; "" with AT_EMPTY_PATH is dirfd itself,
    which need not be a file on the storage manager (a pipe, the terminal)."""
    path = read_path(ctx, pathname, empty_ok=bool(flags & AT_EMPTY_PATH))
    if not path and dirfd != AT_FDCWD:
        return ctx.fds.get(dirfd).stat()
    return stat_path(ctx, resolve(ctx, dirfd, path or "."), not flags & AT_SYMLINK_NOFOLLOW)


def sys_stat(ctx: SyscallContext, pathname: CStr, statbuf: Ptr) -> int:
    ctx.mem.write(statbuf, pack_stat(stat_path(ctx, at_path(ctx, AT_FDCWD, pathname))))
    return 0


def sys_lstat(ctx: SyscallContext, pathname: CStr, statbuf: Ptr) -> int:
    path = at_path(ctx, AT_FDCWD, pathname)
    ctx.mem.write(statbuf, pack_stat(stat_path(ctx, path, follow=False)))
    return 0


def sys_newfstatat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, statbuf: Ptr,
                   flags: Int) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        raise SyscallError(Errno.EINVAL)
    ctx.mem.write(statbuf, pack_stat(stat_at(ctx, dirfd, pathname, flags)))
    return 0


def _dev_major(dev: int) -> int:
    return (dev >> 8) & 0xFFF | (dev >> 32) & ~0xFFF  # Linux's new_encode_dev layout


def _dev_minor(dev: int) -> int:
    return dev & 0xFF | (dev >> 12) & ~0xFF


def pack_statx(st: FileStat) -> bytes:
    """struct statx for `st`: the basic stats, which is all FileStat carries (no btime)."""
    def timestamp(ns: int) -> tuple[int, int]:
        return ns // 10**9, ns % 10**9

    return struct.pack(
        STATX_FORMAT, STATX_BASIC_STATS, st.blksize, 0, st.nlink, st.uid, st.gid,
        st.mode & 0xFFFF, st.ino, st.size, st.blocks, 0,
        *timestamp(st.atime_ns), 0, 0, *timestamp(st.ctime_ns), *timestamp(st.mtime_ns),
        _dev_major(st.rdev), _dev_minor(st.rdev), _dev_major(st.dev), _dev_minor(st.dev),
    )


def sys_statx(ctx: SyscallContext, dirfd: Fd, pathname: CStr, flags: Int, mask: UInt,
              statxbuf: Ptr) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE):
        raise SyscallError(Errno.EINVAL)
    if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or mask & STATX_RESERVED:
        raise SyscallError(Errno.EINVAL)
    # Like a local file system, the basic stats are filled whatever `mask` asked for.
    ctx.mem.write(statxbuf, pack_statx(stat_at(ctx, dirfd, pathname, flags)))
    return 0


# ---------------------------------------------------------------- access


def access_at(ctx: SyscallContext, dirfd: int, pathname: int, mode: int, flags: int) -> int:
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(Errno.EINVAL)
    path = at_path(ctx, dirfd, pathname, flags)
    if flags & AT_SYMLINK_NOFOLLOW and not mode & ~0o7:
        # A symbolic link itself is always rwx (symlink(7)): existing is enough. The
        # ACCESS request always follows, so a link is settled here.
        if stat_module.S_ISLNK(stat_path(ctx, path, follow=False).mode):
            return 0
    # One user runs the guest, so real and effective ids agree and AT_EACCESS changes
    # nothing.
    call_storage(ctx, AccessRequest(path, mode))
    return 0


def sys_access(ctx: SyscallContext, pathname: CStr, mode: Int) -> int:
    return access_at(ctx, AT_FDCWD, pathname, mode, 0)


def sys_faccessat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, mode: Int) -> int:
    return access_at(ctx, dirfd, pathname, mode, 0)


def sys_faccessat2(ctx: SyscallContext, dirfd: Fd, pathname: CStr, mode: Int,
                   flags: Int) -> int:
    return access_at(ctx, dirfd, pathname, mode, flags)


# ---------------------------------------------------------------- readlink


def readlink_at(ctx: SyscallContext, dirfd: int, pathname: int, buf: int, bufsiz: int) -> int:
    if bufsiz <= 0:
        raise SyscallError(Errno.EINVAL)
    # "" names dirfd itself (an O_PATH|O_NOFOLLOW descriptor of a link), since Linux 2.6.39.
    name = read_path(ctx, pathname, empty_ok=True)
    path = resolve(ctx, dirfd, name) if name else fd_path(ctx, dirfd)
    target = procfs.link_target(ctx, path)
    if target is None:
        try:
            target = _readlink_path(ctx, path)
        except SyscallError as error:
            if name or error.errno != Errno.EINVAL:
                raise
            raise SyscallError(Errno.ENOENT) from None  # as Linux: "" that is not a link
    target = target[:bufsiz]  # truncated silently, without a NUL (readlink(2))
    ctx.mem.write(buf, target)
    return len(target)


def sys_readlink(ctx: SyscallContext, pathname: CStr, buf: Ptr, bufsiz: Int) -> int:
    return readlink_at(ctx, AT_FDCWD, pathname, buf, bufsiz)


def sys_readlinkat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, buf: Ptr,
                   bufsiz: Int) -> int:
    return readlink_at(ctx, dirfd, pathname, buf, bufsiz)


# ---------------------------------------------------------------- working directory


def sys_getcwd(ctx: SyscallContext, buf: Ptr, size: Size) -> int:
    cwd = os.fsencode(ctx.proc.cwd) + b"\0"
    if size < len(cwd):
        raise SyscallError(Errno.ERANGE)
    ctx.mem.write(buf, cwd)
    return len(cwd)  # the syscall counts the NUL; glibc returns buf


def change_directory(ctx: SyscallContext, path: str) -> int:
    """Make `path` the cwd if it is a directory the process may search."""
    canonical = _canonical(ctx, path)
    if not stat_module.S_ISDIR(stat_path(ctx, canonical).mode):
        raise SyscallError(Errno.ENOTDIR)
    call_storage(ctx, AccessRequest(canonical, X_OK))
    ctx.proc.cwd = canonical
    return 0


def sys_chdir(ctx: SyscallContext, path: CStr) -> int:
    return change_directory(ctx, at_path(ctx, AT_FDCWD, path))


def sys_fchdir(ctx: SyscallContext, fd: Fd) -> int:
    file = ctx.fds.get(fd)
    if not isinstance(file, Directory):
        raise SyscallError(Errno.ENOTDIR)
    return change_directory(ctx, file.path)


# ---------------------------------------------------------------- namespace changes


def mknod_at(ctx: SyscallContext, dirfd: int, pathname: int, mode: int) -> int:
    """mknod and mknodat: regular files and FIFOs; device and socket nodes are EPERM (the
    storage manager makes none)."""
    kind = stat_module.S_IFMT(mode)
    if kind not in (0, stat_module.S_IFREG, stat_module.S_IFIFO, stat_module.S_IFCHR,
                    stat_module.S_IFBLK, stat_module.S_IFSOCK):
        raise SyscallError(Errno.EPERM if kind == stat_module.S_IFDIR else Errno.EINVAL)
    path = at_path(ctx, dirfd, pathname)
    call_storage(ctx, MknodRequest(path, kind | mode & ~ctx.proc.umask & 0o7777))
    return 0


def sys_mknod(ctx: SyscallContext, pathname: CStr, mode: UInt, dev: UInt) -> int:
    return mknod_at(ctx, AT_FDCWD, pathname, mode)


def sys_mknodat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, mode: UInt, dev: UInt) -> int:
    return mknod_at(ctx, dirfd, pathname, mode)


def mkdir_at(ctx: SyscallContext, dirfd: int, pathname: int, mode: int) -> int:
    path = at_path(ctx, dirfd, pathname)
    call_storage(ctx, MkdirRequest(path, mode & ~ctx.proc.umask & 0o1777))
    return 0


def sys_mkdir(ctx: SyscallContext, pathname: CStr, mode: UInt) -> int:
    return mkdir_at(ctx, AT_FDCWD, pathname, mode)


def sys_mkdirat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, mode: UInt) -> int:
    return mkdir_at(ctx, dirfd, pathname, mode)


def sys_rmdir(ctx: SyscallContext, pathname: CStr) -> int:
    call_storage(ctx, RmdirRequest(at_path(ctx, AT_FDCWD, pathname)))
    return 0


def sys_unlink(ctx: SyscallContext, pathname: CStr) -> int:
    return unlink_file(ctx, at_path(ctx, AT_FDCWD, pathname))


def sys_unlinkat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, flags: Int) -> int:
    if flags & ~AT_REMOVEDIR:
        raise SyscallError(Errno.EINVAL)
    path = at_path(ctx, dirfd, pathname)
    if flags & AT_REMOVEDIR:
        call_storage(ctx, RmdirRequest(path))
        return 0
    return unlink_file(ctx, path)


def unlink_file(ctx: SyscallContext, path: str) -> int:
    ctx.vm.keep_file_pages(path)  # its mappings outlive the name, as on Linux
    hidden = unlinked.hidden_name(ctx, path)
    if hidden is None:
        call_storage(ctx, UnlinkRequest(path))
    else:  # still open here: hidden until closed (see processor/unlinked.py)
        call_storage(ctx, RenameRequest(path, hidden))
        unlinked.renamed(ctx, path, hidden, hidden=True)
    return 0


def rename_at(ctx: SyscallContext, olddirfd: int, oldpath: int, newdirfd: int, newpath: int,
              flags: int) -> int:
    if flags & ~RENAME_NOREPLACE:
        # RENAME_EXCHANGE and RENAME_WHITEOUT have no P2S request to carry them.
        raise SyscallError(Errno.EINVAL)
    old = at_path(ctx, olddirfd, oldpath)
    new = at_path(ctx, newdirfd, newpath)
    if flags & RENAME_NOREPLACE:
        # Emulated by looking first; safe because the storage manager serves this process
        # one request at a time. The source is looked up first, as Linux does.
        stat_path(ctx, old, follow=False)
        try:
            stat_path(ctx, new, follow=False)
        except SyscallError as error:
            if error.errno != Errno.ENOENT:
                raise
        else:
            raise SyscallError(Errno.EEXIST)
    ctx.vm.keep_file_pages(old)  # mapped files keep their contents when moved
    ctx.vm.keep_file_pages(new)  # or replaced
    call_storage(ctx, RenameRequest(old, new))
    unlinked.renamed(ctx, old, new)
    return 0


def sys_rename(ctx: SyscallContext, oldpath: CStr, newpath: CStr) -> int:
    return rename_at(ctx, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


def sys_renameat(ctx: SyscallContext, olddirfd: Fd, oldpath: CStr, newdirfd: Fd,
                 newpath: CStr) -> int:
    return rename_at(ctx, olddirfd, oldpath, newdirfd, newpath, 0)


def sys_renameat2(ctx: SyscallContext, olddirfd: Fd, oldpath: CStr, newdirfd: Fd,
                  newpath: CStr, flags: UInt) -> int:
    return rename_at(ctx, olddirfd, oldpath, newdirfd, newpath, flags)


def symlink_at(ctx: SyscallContext, target: int, newdirfd: int, linkpath: int) -> int:
    # The target is stored as given, never resolved: only its length is checked here.
    contents = os.fsencode(read_path(ctx, target))
    call_storage(ctx, SymlinkRequest(contents, at_path(ctx, newdirfd, linkpath)))
    return 0


def sys_symlink(ctx: SyscallContext, target: CStr, linkpath: CStr) -> int:
    return symlink_at(ctx, target, AT_FDCWD, linkpath)


def sys_symlinkat(ctx: SyscallContext, target: CStr, newdirfd: Fd, linkpath: CStr) -> int:
    return symlink_at(ctx, target, newdirfd, linkpath)


def link_at(ctx: SyscallContext, olddirfd: int, oldpath: int, newdirfd: int, newpath: int,
            flags: int) -> int:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise SyscallError(Errno.EINVAL)
    old = at_path(ctx, olddirfd, oldpath, flags)
    if flags & AT_SYMLINK_FOLLOW:
        # The LINK request links a symlink itself; following it is the processor's part.
        old = _canonical(ctx, old)
    call_storage(ctx, LinkRequest(old, at_path(ctx, newdirfd, newpath)))
    return 0


def sys_link(ctx: SyscallContext, oldpath: CStr, newpath: CStr) -> int:
    return link_at(ctx, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


def sys_linkat(ctx: SyscallContext, olddirfd: Fd, oldpath: CStr, newdirfd: Fd, newpath: CStr,
               flags: Int) -> int:
    return link_at(ctx, olddirfd, oldpath, newdirfd, newpath, flags)


# ---------------------------------------------------------------- attributes


def sys_truncate(ctx: SyscallContext, path: CStr, length: Long) -> int:
    call_storage(ctx, TruncateRequest(at_path(ctx, AT_FDCWD, path), length))
    return 0


def sys_chmod(ctx: SyscallContext, pathname: CStr, mode: UInt) -> int:
    call_storage(ctx, ChmodRequest(at_path(ctx, AT_FDCWD, pathname), mode))
    return 0


def sys_fchmodat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, mode: UInt) -> int:
    call_storage(ctx, ChmodRequest(at_path(ctx, dirfd, pathname), mode))
    return 0


def _utime_ns(sec: int, nsec: int, now: int) -> int | None:
    """The time (ns) one struct timespec of utimensat asks for; None for UTIME_OMIT."""
    if nsec == UTIME_NOW:
        return now
    if nsec == UTIME_OMIT:
        return None
    if not 0 <= nsec < 10**9:
        raise SyscallError(Errno.EINVAL)
    return sec * 10**9 + nsec


def sys_utimensat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, times: Ptr,
                  flags: Int) -> int:
    # "Now" is the processor's clock: the request carries times, not a sentinel.
    now = time.time_ns()
    atime = mtime = now
    if times:
        asec, ansec, msec, mnsec = ctx.mem.read_struct("<qqqq", times)
        if ansec == UTIME_OMIT and mnsec == UTIME_OMIT:
            return 0  # as Linux: nothing to do, so not even the path is checked
        atime, mtime = _utime_ns(asec, ansec, now), _utime_ns(msec, mnsec, now)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(Errno.EINVAL)
    if pathname:
        path = at_path(ctx, dirfd, pathname, flags)
    elif dirfd != AT_FDCWD:
        # futimens(3): a NULL pathname names the file open at dirfd, and takes no flags.
        if flags:
            raise SyscallError(Errno.EINVAL)
        path = fd_path(ctx, dirfd)
    else:
        raise SyscallError(Errno.EFAULT)
    call_storage(ctx, UtimensRequest(path, atime, mtime, not flags & AT_SYMLINK_NOFOLLOW))
    return 0


def statfs_of(ctx: SyscallContext, path: str, buf: int) -> int:
    reply: StatfsReply = call_storage(ctx, StatfsRequest(path))
    ctx.mem.write(buf, struct.pack(STATFS_FORMAT, *reply.fields))
    return 0


def sys_statfs(ctx: SyscallContext, path: CStr, buf: Ptr) -> int:
    return statfs_of(ctx, at_path(ctx, AT_FDCWD, path), buf)


def sys_fstatfs(ctx: SyscallContext, fd: Fd, buf: Ptr) -> int:
    return statfs_of(ctx, fd_path(ctx, fd), buf)
