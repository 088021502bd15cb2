"""Copying between regular files without a user buffer: copy_file_range. See
copy_file_range(2).

Both files live at the storage manager, so the copy is a series of P2S reads and writes of
at most COPY_CHUNK bytes, with the checks of fs/read_write.c (generic_copy_file_checks) done
first, in its order.
"""

from __future__ import annotations

import stat as stat_module
import struct

from legorun.processor.files import O_APPEND, Directory, OpenFile, StorageFile
from syscalls.args import Fd, Ptr, Size, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.fs import MAX_RW

COPY_CHUNK = 1 << 20


def _regular(file: OpenFile) -> StorageFile:
    if isinstance(file, Directory):
        raise SyscallError(Errno.EISDIR)
    if not isinstance(file, StorageFile) or not stat_module.S_ISREG(file.stat().mode):
        raise SyscallError(Errno.EINVAL)
    return file


def _offset(ctx: SyscallContext, pointer: int, file: StorageFile) -> int:
    if not pointer:
        return file.offset
    return struct.unpack("<q", ctx.mem.read(pointer, 8))[0]


def sys_copy_file_range(ctx: SyscallContext, fd_in: Fd, off_in: Ptr, fd_out: Fd, off_out: Ptr,
                        size: Size, flags: UInt) -> int:
    if flags:
        raise SyscallError(Errno.EINVAL)
    source_file, sink_file = ctx.fds.get(fd_in), ctx.fds.get(fd_out)
    source, sink = _regular(source_file), _regular(sink_file)
    if not source.readable or not sink.writable or sink.flags & O_APPEND:
        raise SyscallError(Errno.EBADF)
    source_start, sink_start = _offset(ctx, off_in, source), _offset(ctx, off_out, sink)
    count = min(size, MAX_RW)
    if any((start % (1 << 64)) + count >= 1 << 64 for start in (source_start, sink_start)):
        raise SyscallError(Errno.EOVERFLOW)  # a negative offset wraps, as unsigned
    source_stat, sink_stat = source.stat(), sink.stat()
    count = max(0, min(count, source_stat.size - source_start))  # shortened to the end
    same = (source_stat.dev, source_stat.ino) == (sink_stat.dev, sink_stat.ino)
    if same and source_start < sink_start + count and sink_start < source_start + count:
        raise SyscallError(Errno.EINVAL)  # overlapping ranges of one file
    done = 0
    while done < count:
        data = source.pread(min(COPY_CHUNK, count - done), source_start + done)
        if not data:
            break
        written = sink.pwrite(data, sink_start + done)
        done += written
        if written < len(data):
            break
    for pointer, file, start in ((off_in, source, source_start), (off_out, sink, sink_start)):
        if pointer:
            ctx.mem.write(pointer, struct.pack("<q", start + done))
        else:
            file.offset = start + done
    return done
