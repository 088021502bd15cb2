"""Calls on the fd table and on open descriptors: dup, dup2, dup3, fcntl, close_range,
getdents64, fchmod, ftruncate, fsync, fdatasync, syncfs, pipe, pipe2 and sendfile. See
dup(2), fcntl(2), close_range(2), getdents64(2), fchmod(2), ftruncate(2), fsync(2),
syncfs(2), pipe(2), pipe(7) and sendfile(2).

The fd table and pipes are the processor's own state (LegoOS keeps open files in the
processor component); a call that changes a file sends one P2S request for the path the
descriptor remembers.
"""

from __future__ import annotations

import stat as stat_module
import struct

from legorun.processor.files import (
    O_APPEND,
    O_CLOEXEC,
    O_NONBLOCK,
    O_PATH,
    SEEK_CUR,
    Directory,
    OpenFile,
    StorageFile,
)
from legorun.processor.pipe import PipeEnd, make_pipe
from legorun.rpc.messages import ChmodRequest, TruncateRequest
from syscalls.args import Fd, Int, Long, Ptr, Size, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.fs import MAX_RW, readable_file, writable_file, write_to
from syscalls.memfd import F_ADD_SEALS, F_GET_SEALS, fcntl_seals
from syscalls.paths import call_storage, fd_file, fd_path

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ = 1030, 1031, 1032
FD_CLOEXEC = 1
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
FLOCK_FORMAT = "<hh4xqqi4x"  # struct flock: l_type, l_whence, l_start, l_len, l_pid
SETFL_FLAGS = O_APPEND | O_NONBLOCK
# fcntl commands an O_PATH descriptor allows (fs/fcntl.c, check_fcntl_cmd).
O_PATH_COMMANDS = {F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL}

CLOSE_RANGE_UNSHARE = 2  # the fd table is never shared here, so nothing to unshare
CLOSE_RANGE_CLOEXEC = 4

# struct linux_dirent64: d_ino, d_off, d_reclen, d_type, then the NUL-terminated name.
DIRENT64_HEADER = struct.Struct("<QqHB")
DIRENT64_MIN = 24  # a one-character name, 8-aligned
DIRENTS_PER_CALL = 4096  # bounds one READDIR reply; a short getdents64 is normal

SENDFILE_CHUNK = 1 << 20


# ---------------------------------------------------------------- the fd table


def sys_dup(ctx: SyscallContext, oldfd: Fd) -> int:
    return ctx.fds.allocate(ctx.fds.get(oldfd))


def sys_dup2(ctx: SyscallContext, oldfd: Fd, newfd: Fd) -> int:
    file = ctx.fds.get(oldfd)
    if oldfd != newfd:
        ctx.fds.install(newfd, file)
    return newfd


def sys_dup3(ctx: SyscallContext, oldfd: Fd, newfd: Fd, flags: Int) -> int:
    if flags & ~O_CLOEXEC or oldfd == newfd:
        raise SyscallError(Errno.EINVAL)
    ctx.fds.install(newfd, ctx.fds.get(oldfd), cloexec=bool(flags & O_CLOEXEC))
    return newfd


def sys_close_range(ctx: SyscallContext, first: UInt, last: UInt, flags: UInt) -> int:
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise SyscallError(Errno.EINVAL)
    for fd in ctx.fds.fds():
        if first <= fd <= last:
            if flags & CLOSE_RANGE_CLOEXEC:
                ctx.fds.entry(fd).cloexec = True
            else:
                ctx.fds.close(fd)
    return 0


def _lock(ctx: SyscallContext, file: OpenFile, cmd: int, arg: int) -> int:
    """Record locks are advisory and this process is alone with its files: a POSIX lock
    never conflicts with the owner's own locks, so every lock is granted at once and
    F_GETLK finds nothing in the way. The arguments are still checked as Linux does."""
    l_type, l_whence, l_start, l_len, l_pid = ctx.mem.read_struct(FLOCK_FORMAT, arg)
    if l_whence not in (0, 1, 2) or l_type not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise SyscallError(Errno.EINVAL)
    if cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW) and l_pid != 0:
        raise SyscallError(Errno.EINVAL)
    if cmd in (F_GETLK, F_OFD_GETLK):
        if l_type == F_UNLCK:
            raise SyscallError(Errno.EINVAL)
        ctx.mem.write_struct(FLOCK_FORMAT, arg, F_UNLCK, l_whence, l_start, l_len, l_pid)
        return 0
    if (l_type == F_RDLCK and not file.readable) or (l_type == F_WRLCK and not file.writable):
        raise SyscallError(Errno.EBADF)
    return 0


def _pipe_end(file: OpenFile) -> PipeEnd:
    if not isinstance(file, PipeEnd):
        raise SyscallError(Errno.EBADF)
    return file


def sys_fcntl(ctx: SyscallContext, fd: Fd, cmd: Int, arg: ULong) -> int:
    entry = ctx.fds.entry(fd)
    file = entry.file
    if file.flags & O_PATH and cmd not in O_PATH_COMMANDS:
        raise SyscallError(Errno.EBADF)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        lowest = arg & 0xFFFFFFFF  # an int, compared as unsigned: negative is too large
        if lowest >= ctx.fds.limit:
            raise SyscallError(Errno.EINVAL)
        return ctx.fds.allocate(file, cloexec=cmd == F_DUPFD_CLOEXEC, lowest=lowest)
    if cmd == F_GETFD:
        return FD_CLOEXEC if entry.cloexec else 0
    if cmd == F_SETFD:
        entry.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return file.flags
    if cmd == F_SETFL:
        # The access mode and creation flags are fixed at open; on the host stream behind
        # stdin/stdout only the guest's view of O_NONBLOCK changes.
        file.flags = file.flags & ~SETFL_FLAGS | arg & SETFL_FLAGS
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _lock(ctx, file, cmd, arg)
    if cmd == F_GETPIPE_SZ:
        return _pipe_end(file).pipe_size()
    if cmd == F_SETPIPE_SZ:
        return _pipe_end(file).resize(arg & 0xFFFFFFFF)
    if cmd in (F_ADD_SEALS, F_GET_SEALS):
        return fcntl_seals(file, cmd)
    raise SyscallError(Errno.EINVAL)


# ---------------------------------------------------------------- directories


def sys_getdents64(ctx: SyscallContext, fd: Fd, dirp: Ptr, count: UInt) -> int:
    file = fd_file(ctx, fd)
    if not isinstance(file, Directory):
        raise SyscallError(Errno.ENOTDIR)
    wanted = max(1, min(count // DIRENT64_MIN, DIRENTS_PER_CALL))
    entries = file.entries(wanted).entries
    out = bytearray()
    packed = 0
    for entry in entries:
        reclen = (DIRENT64_HEADER.size + len(entry.name) + 1 + 7) & ~7
        if len(out) + reclen > count:
            break
        # d_off is where the entry after this one is read from: its index.
        next_index = file.offset + packed + 1
        out += DIRENT64_HEADER.pack(entry.ino, next_index, reclen, entry.type)
        out += entry.name.ljust(reclen - DIRENT64_HEADER.size, b"\0")
        packed += 1
    if entries and not packed:
        raise SyscallError(Errno.EINVAL)  # the buffer cannot hold even one entry
    ctx.mem.write(dirp, out)
    file.offset += packed  # only once the entries have reached the guest
    return len(out)


# ---------------------------------------------------------------- file attributes and data


def sys_fchmod(ctx: SyscallContext, fd: Fd, mode: UInt) -> int:
    fd_file(ctx, fd)
    call_storage(ctx, ChmodRequest(fd_path(ctx, fd), mode))
    return 0


def sys_ftruncate(ctx: SyscallContext, fd: Fd, length: Long) -> int:
    if length < 0:
        raise SyscallError(Errno.EINVAL)  # checked before the fd, as Linux does
    file = fd_file(ctx, fd)
    if not isinstance(file, StorageFile) or isinstance(file, Directory) or not file.writable:
        raise SyscallError(Errno.EINVAL)
    call_storage(ctx, TruncateRequest(file.path, length))
    return 0


# fallocate(2) modes (include/uapi/linux/falloc.h).
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
ZERO_CHUNK = 1 << 20  # bytes of zeros per storage write


def sys_fallocate(ctx: SyscallContext, fd: Fd, mode: Int, offset: Long, length: Long) -> int:
    """Allocation itself is invisible on the storage manager (its host file system
    allocates as it writes), so what remains is what a program can see: the file grows to
    cover the range (unless FALLOC_FL_KEEP_SIZE), and a punched or zeroed range reads as
    zeros. Collapsing, inserting and unsharing ranges are not supported (EOPNOTSUPP, as on
    file systems without them)."""
    if offset < 0 or length <= 0:
        raise SyscallError(Errno.EINVAL)
    if mode & FALLOC_FL_PUNCH_HOLE and mode != FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
        raise SyscallError(Errno.EOPNOTSUPP)  # a hole must keep the size (vfs_fallocate)
    if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
        raise SyscallError(Errno.EOPNOTSUPP)
    file = fd_file(ctx, fd)
    if not file.writable:
        raise SyscallError(Errno.EBADF)
    if isinstance(file, PipeEnd):
        raise SyscallError(Errno.ESPIPE)
    if not isinstance(file, StorageFile) or isinstance(file, Directory):
        raise SyscallError(Errno.ENODEV)
    end = offset + length
    size = file.stat().size
    if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
        zeros_end = min(end, size) if mode & FALLOC_FL_KEEP_SIZE else end
        for start in range(offset, zeros_end, ZERO_CHUNK):
            file.pwrite(bytes(min(ZERO_CHUNK, zeros_end - start)), start)
    if not mode & FALLOC_FL_KEEP_SIZE and end > size:
        call_storage(ctx, TruncateRequest(file.path, end))
    return 0


def _sync(ctx: SyscallContext, fd: int) -> int:
    """Every write already reached the storage manager (write-through), so there is nothing
    to flush; only what cannot be synced at all (a pipe, a terminal) is refused."""
    file = fd_file(ctx, fd)
    if isinstance(file, StorageFile):
        return 0
    mode = file.stat().mode
    if stat_module.S_ISREG(mode) or stat_module.S_ISDIR(mode) or stat_module.S_ISBLK(mode):
        return 0
    raise SyscallError(Errno.EINVAL)


def sys_fsync(ctx: SyscallContext, fd: Fd) -> int:
    return _sync(ctx, fd)


def sys_fdatasync(ctx: SyscallContext, fd: Fd) -> int:
    return _sync(ctx, fd)


def sys_syncfs(ctx: SyscallContext, fd: Fd) -> int:
    fd_file(ctx, fd)
    return 0


# ---------------------------------------------------------------- pipes


def sys_pipe2(ctx: SyscallContext, pipefd: Ptr, flags: Int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        # Also O_DIRECT (packet mode): refused as kernels before 3.4 did, rather than
        # silently giving a byte stream to a program that counts on packets.
        raise SyscallError(Errno.EINVAL)
    reader, writer = make_pipe(flags)
    install_pair(ctx, reader, writer, bool(flags & O_CLOEXEC), pipefd)
    return 0


def install_pair(ctx: SyscallContext, first: OpenFile, second: OpenFile, cloexec: bool,
                 report: int) -> None:
    """Give two new files the lowest free descriptors and write them to `report` as two
    ints (pipe2, socketpair); Linux installs neither when it cannot report them."""
    try:
        fd0 = ctx.fds.allocate_new(first, cloexec)
    except SyscallError:
        second.close()
        raise
    try:
        fd1 = ctx.fds.allocate_new(second, cloexec)
    except SyscallError:
        ctx.fds.close(fd0)
        raise
    try:
        ctx.mem.write_struct("<ii", report, fd0, fd1)
    except BaseException:
        ctx.fds.close(fd0)
        ctx.fds.close(fd1)
        raise


def sys_pipe(ctx: SyscallContext, pipefd: Ptr) -> int:
    return sys_pipe2(ctx, pipefd, 0)


# ---------------------------------------------------------------- sendfile


def sys_sendfile(ctx: SyscallContext, out_fd: Fd, in_fd: Fd, offset: Ptr, count: Size) -> int:
    source = readable_file(ctx, in_fd)
    sink = writable_file(ctx, out_fd)
    if sink.flags & O_APPEND:
        raise SyscallError(Errno.EINVAL)
    position = None
    if offset:
        position = struct.unpack("<q", ctx.mem.read(offset, 8))[0]
        if position < 0:
            raise SyscallError(Errno.EINVAL)
    count = min(count, MAX_RW)
    done = 0
    try:
        while done < count:
            size = min(count - done, SENDFILE_CHUNK)
            data = source.read(size) if position is None else source.pread(size,
                                                                          position + done)
            if not data:
                break
            written = write_to(ctx, sink, data)
            done += written
            if written < len(data):
                if position is None:
                    # Give back what was read but not written, where the source allows it.
                    try:
                        source.seek(written - len(data), SEEK_CUR)
                    except SyscallError:
                        pass
                break
    except SyscallError:
        if not done:
            raise  # as write(2): an error after some progress is a short count
    if position is not None:
        ctx.mem.write(offset, struct.pack("<q", position + done))
    return done
