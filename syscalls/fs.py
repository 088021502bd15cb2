"""File syscalls on open descriptors: read/write and their vector and positional forms,
close, lseek, fstat, ioctl. Path-based calls live in syscalls/paths.py."""

from __future__ import annotations

import fcntl
import stat as stat_module
import struct
import termios

from legorun.processor.files import O_NONBLOCK, OpenFile, StorageFile
from legorun.rpc.messages import FileStat
from syscalls.args import Fd, Int, Long, Ptr, Size, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.process import signal_self

SIGPIPE = 13
IOV_MAX = 1024
MAX_RW = 0x7FFFF000  # Linux caps one read/write at MAX_RW_COUNT
STAT_FORMAT = "<QQQIIIiQqqqQQQQQQ24x"  # struct stat on x86-64 (144 bytes)


def pack_stat(st: FileStat) -> bytes:
    return struct.pack(
        STAT_FORMAT, st.dev, st.ino, st.nlink, st.mode, st.uid, st.gid, 0, st.rdev, st.size,
        st.blksize, st.blocks,
        st.atime_ns // 10**9, st.atime_ns % 10**9,
        st.mtime_ns // 10**9, st.mtime_ns % 10**9,
        st.ctime_ns // 10**9, st.ctime_ns % 10**9,
    )


def readable_file(ctx: SyscallContext, fd: int):  # type: ignore[no-untyped-def]
    file = ctx.fds.get(fd)
    if not file.readable:
        raise SyscallError(Errno.EBADF)
    return file


def writable_file(ctx: SyscallContext, fd: int):  # type: ignore[no-untyped-def]
    file = ctx.fds.get(fd)
    if not file.writable:
        raise SyscallError(Errno.EBADF)
    return file


def write_to(ctx: SyscallContext, file: OpenFile, data: bytes) -> int:
    """file.write(data); a write to a pipe or socket whose reader is gone raises SIGPIPE
    (which kills the guest unless ignored or blocked) before failing with EPIPE."""
    try:
        return file.write(data)
    except SyscallError as error:
        if error.errno == Errno.EPIPE:
            signal_self(ctx, SIGPIPE)
        raise


def sys_read(ctx: SyscallContext, fd: Fd, buf: Ptr, count: Size) -> int:
    file = readable_file(ctx, fd)
    data = file.read(min(count, MAX_RW))
    ctx.mem.write(buf, data)
    return len(data)


def sys_write(ctx: SyscallContext, fd: Fd, buf: Ptr, count: Size) -> int:
    file = writable_file(ctx, fd)
    return write_to(ctx, file, ctx.mem.read(buf, min(count, MAX_RW)))


def sys_pread64(ctx: SyscallContext, fd: Fd, buf: Ptr, count: Size, offset: Long) -> int:
    if offset < 0:
        raise SyscallError(Errno.EINVAL)
    data = readable_file(ctx, fd).pread(min(count, MAX_RW), offset)
    ctx.mem.write(buf, data)
    return len(data)


def sys_pwrite64(ctx: SyscallContext, fd: Fd, buf: Ptr, count: Size, offset: Long) -> int:
    if offset < 0:
        raise SyscallError(Errno.EINVAL)
    return writable_file(ctx, fd).pwrite(ctx.mem.read(buf, min(count, MAX_RW)), offset)


def iovecs(ctx: SyscallContext, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if not 0 <= iovcnt <= IOV_MAX:
        raise SyscallError(Errno.EINVAL)
    raw = ctx.mem.read(iov, 16 * iovcnt)
    vectors = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovcnt)]
    if sum(length for _base, length in vectors) > 0x7FFFFFFFFFFFFFFF:
        raise SyscallError(Errno.EINVAL)
    return vectors


def gather(ctx: SyscallContext, iov: int, iovcnt: int) -> bytes:
    return b"".join(ctx.mem.read(base, length) for base, length in iovecs(ctx, iov, iovcnt))


def scatter(ctx: SyscallContext, vectors: list[tuple[int, int]], data: bytes) -> None:
    done = 0
    for base, length in vectors:
        if done >= len(data):
            break
        ctx.mem.write(base, data[done : done + length])
        done += length


def sys_readv(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int) -> int:
    file = readable_file(ctx, fd)
    vectors = iovecs(ctx, iov, iovcnt)
    data = file.read(min(sum(length for _b, length in vectors), MAX_RW))
    scatter(ctx, vectors, data)
    return len(data)


def sys_writev(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int) -> int:
    file = writable_file(ctx, fd)
    data = gather(ctx, iov, iovcnt)
    return write_to(ctx, file, data) if data else 0


def sys_preadv(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int, pos_l: ULong,
               pos_h: ULong) -> int:
    file = readable_file(ctx, fd)
    vectors = iovecs(ctx, iov, iovcnt)
    data = file.pread(min(sum(length for _b, length in vectors), MAX_RW), pos_l)
    scatter(ctx, vectors, data)
    return len(data)


def sys_pwritev(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int, pos_l: ULong,
                pos_h: ULong) -> int:
    return writable_file(ctx, fd).pwrite(gather(ctx, iov, iovcnt), pos_l)


def sys_close(ctx: SyscallContext, fd: Fd) -> int:
    ctx.fds.close(fd)
    return 0


def sys_lseek(ctx: SyscallContext, fd: Fd, offset: Long, whence: UInt) -> int:
    return ctx.fds.get(fd).seek(offset, whence)


def sys_fstat(ctx: SyscallContext, fd: Fd, statbuf: Ptr) -> int:
    ctx.mem.write(statbuf, pack_stat(ctx.fds.get(fd).stat()))
    return 0


TTY_IOCTLS_OUT = {
    termios.TCGETS: 36,  # the kernel's struct termios (glibc converts it to its own)
    termios.TIOCGWINSZ: 8,  # struct winsize
    termios.TIOCGPGRP: 4,
}
FIONBIO, FIOCLEX, FIONCLEX, FIONREAD = 0x5421, 0x5451, 0x5450, 0x541B


def sys_ioctl(ctx: SyscallContext, fd: Fd, request: UInt, arg: ULong) -> int:
    entry = ctx.fds.entry(fd)
    if request == FIOCLEX or request == FIONCLEX:
        entry.cloexec = request == FIOCLEX
        return 0
    host = entry.file.host_fd()
    size = TTY_IOCTLS_OUT.get(request)
    if size is not None:
        # Terminal queries go to the real terminal behind a host stream, if there is one.
        if host is None or not entry.file.isatty():
            raise SyscallError(Errno.ENOTTY)
        try:
            result = fcntl.ioctl(host, request, bytes(size))
        except OSError as error:
            raise SyscallError(Errno(error.errno or Errno.EIO)) from None
        ctx.mem.write(arg, result[:size])
        return 0
    if request == FIONBIO:
        # Sets or clears the guest's O_NONBLOCK, as fcntl(F_SETFL) would.
        on = ctx.mem.read_u32(arg)
        entry.file.flags = entry.file.flags | O_NONBLOCK if on else entry.file.flags & ~O_NONBLOCK
        return 0
    if request == FIONREAD:
        ctx.mem.write_u32(arg, _bytes_to_read(entry.file, host))
        return 0
    raise SyscallError(Errno.ENOTTY)


def _bytes_to_read(file: OpenFile, host: int | None) -> int:
    """FIONREAD: what the host queue behind a pipe, socket or terminal holds; for a
    regular file, what lies between the offset and the end."""
    if host is not None:
        try:
            return struct.unpack("<i", fcntl.ioctl(host, FIONREAD, bytes(4)))[0]
        except OSError as error:
            raise SyscallError(Errno(error.errno or Errno.EIO)) from None
    st = file.stat()
    if not isinstance(file, StorageFile) or not stat_module.S_ISREG(st.mode):
        raise SyscallError(Errno.ENOTTY)
    return max(0, st.size - file.offset)
