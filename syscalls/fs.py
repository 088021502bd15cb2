"""File syscalls on open descriptors: read/write and their vector and positional forms,
close, lseek, fstat, ioctl. Path-based calls live in syscalls/paths.py."""

from __future__ import annotations

import fcntl
import struct
import termios

from legorun.rpc.messages import FileStat
from syscalls.args import Fd, Int, Long, Ptr, Size, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

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


def sys_read(ctx: SyscallContext, fd: Fd, buf: Ptr, count: Size) -> int:
    file = readable_file(ctx, fd)
    data = file.read(min(count, MAX_RW))
    ctx.mem.write(buf, data)
    return len(data)


def sys_write(ctx: SyscallContext, fd: Fd, buf: Ptr, count: Size) -> int:
    file = writable_file(ctx, fd)
    return file.write(ctx.mem.read(buf, min(count, MAX_RW)))


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


def _iovecs(ctx: SyscallContext, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if not 0 <= iovcnt <= IOV_MAX:
        raise SyscallError(Errno.EINVAL)
    raw = ctx.mem.read(iov, 16 * iovcnt)
    vectors = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovcnt)]
    if sum(length for _base, length in vectors) > 0x7FFFFFFFFFFFFFFF:
        raise SyscallError(Errno.EINVAL)
    return vectors


def _gather(ctx: SyscallContext, iov: int, iovcnt: int) -> bytes:
    return b"".join(ctx.mem.read(base, length) for base, length in _iovecs(ctx, iov, iovcnt))


def _scatter(ctx: SyscallContext, vectors: list[tuple[int, int]], data: bytes) -> None:
    done = 0
    for base, length in vectors:
        if done >= len(data):
            break
        ctx.mem.write(base, data[done : done + length])
        done += length


def sys_readv(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int) -> int:
    file = readable_file(ctx, fd)
    vectors = _iovecs(ctx, iov, iovcnt)
    data = file.read(min(sum(length for _b, length in vectors), MAX_RW))
    _scatter(ctx, vectors, data)
    return len(data)


def sys_writev(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int) -> int:
    file = writable_file(ctx, fd)
    data = _gather(ctx, iov, iovcnt)
    return file.write(data) if data else 0


def sys_preadv(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int, pos_l: ULong,
               pos_h: ULong) -> int:
    file = readable_file(ctx, fd)
    vectors = _iovecs(ctx, iov, iovcnt)
    data = file.pread(min(sum(length for _b, length in vectors), MAX_RW), pos_l)
    _scatter(ctx, vectors, data)
    return len(data)


def sys_pwritev(ctx: SyscallContext, fd: Fd, iov: Ptr, iovcnt: Int, pos_l: ULong,
                pos_h: ULong) -> int:
    return writable_file(ctx, fd).pwrite(_gather(ctx, iov, iovcnt), pos_l)


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
FIONBIO, FIOCLEX, FIONCLEX = 0x5421, 0x5451, 0x5450


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
        return 0
    raise SyscallError(Errno.ENOTTY)
