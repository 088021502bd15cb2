"""Pipes inside one process (pipe(7)): a bounded byte buffer between a read end and a write
end, both open file descriptions in the processor's fd table. Nothing reaches the memory or
storage manager: a pipe is processor-local state, like the fd table itself.

The buffer holds 64 KiB, Linux's default, and writes of at most PIPE_BUF bytes are atomic.
Reading an empty pipe whose writer is gone is end of file; writing to a pipe whose reader
is gone is EPIPE, after the `broken` callback has raised SIGPIPE.

The guest is one single-threaded process, so an operation that would block can never be
woken: nobody else holds the other end. With O_NONBLOCK that is EAGAIN, as on Linux.
Without it Linux would hang forever; here the deadlock is reported once per pipe and
direction through `warn`, and then:
  - a read returns end of file (0), which every reader must handle anyway and which ends
    the usual read-until-EOF loop, where EAGAIN on a blocking descriptor would be
    unexpected and often retried forever;
  - a write stores what fits and returns that short count; when nothing fits it fails
    with EAGAIN, since end of file has no counterpart for a writer and EPIPE would claim
    that the reader is gone.
"""

from __future__ import annotations

import itertools
import stat as stat_module
import time
from typing import Callable

from legorun.processor.files import O_ACCMODE, O_NONBLOCK, O_RDONLY, O_WRONLY, OpenFile
from legorun.rpc.messages import FileStat
from syscalls.errno import Errno, SyscallError

PAGE_SIZE = 4096
PIPE_CAPACITY = 16 * PAGE_SIZE  # Linux's default pipe buffer
PIPE_BUF = PAGE_SIZE  # writes up to this size are atomic (pipe(7))
PIPE_MAX_SIZE = 1 << 20  # /proc/sys/fs/pipe-max-size default, F_SETPIPE_SZ's limit
PIPEFS_DEV = 0xC  # an anonymous device number, as pipefs has

_inodes = itertools.count(1)


class Pipe:
    """The buffer both ends share, and whether each end is still open."""

    def __init__(self, warn: Callable[[str], None], broken: Callable[[], None], uid: int = 0,
                 gid: int = 0) -> None:
        self.buffer = bytearray()
        self.capacity = PIPE_CAPACITY
        self.reader_open = True
        self.writer_open = True
        self.broken = broken  # raises SIGPIPE in the process writing to a readerless pipe
        self._warn = warn
        self._deadlocks_reported: set[str] = set()
        now = time.time_ns()
        self.stat = FileStat(
            dev=PIPEFS_DEV, ino=next(_inodes), mode=stat_module.S_IFIFO | 0o600, nlink=1,
            uid=uid, gid=gid, rdev=0, size=0, blksize=PAGE_SIZE, blocks=0, atime_ns=now,
            mtime_ns=now, ctime_ns=now,
        )

    def deadlock(self, operation: str, outcome: str) -> None:
        if operation not in self._deadlocks_reported:
            self._deadlocks_reported.add(operation)
            self._warn(f"deadlock: a blocking {operation} on a pipe that no other thread or "
                       f"process can service would wait forever; the guest sees {outcome}")

    def resize(self, size: int) -> int:
        """F_SETPIPE_SZ: round up to a power-of-two number of pages; the new size."""
        if size > PIPE_MAX_SIZE:
            raise SyscallError(Errno.EPERM)  # beyond the limit needs CAP_SYS_RESOURCE
        pages = max(1, -(-size // PAGE_SIZE))
        capacity = PAGE_SIZE * (1 << (pages - 1).bit_length())
        if capacity < len(self.buffer):
            raise SyscallError(Errno.EBUSY)
        self.capacity = capacity
        return capacity


class PipeEnd(OpenFile):
    """One end of a pipe: O_RDONLY for the read end, O_WRONLY for the write end."""

    def __init__(self, pipe: Pipe, flags: int) -> None:
        super().__init__(flags)
        self.pipe = pipe

    def read(self, size: int) -> bytes:
        pipe = self.pipe
        if size == 0:
            return b""
        if pipe.buffer:
            data = bytes(pipe.buffer[:size])
            del pipe.buffer[:size]
            return data
        if not pipe.writer_open:
            return b""
        if self.flags & O_NONBLOCK:
            raise SyscallError(Errno.EAGAIN)
        pipe.deadlock("read", "end of file")
        return b""

    def write(self, data: bytes) -> int:
        pipe = self.pipe
        if not pipe.reader_open:
            pipe.broken()
            raise SyscallError(Errno.EPIPE)
        room = pipe.capacity - len(pipe.buffer)
        # A write of at most PIPE_BUF bytes goes in whole or not at all.
        fits = len(data) if len(data) <= room else (0 if len(data) <= PIPE_BUF else room)
        if fits < len(data) and not self.flags & O_NONBLOCK:
            pipe.deadlock("write", "a short write or EAGAIN")
        if fits == 0 and data:
            raise SyscallError(Errno.EAGAIN)
        pipe.buffer += data[:fits]
        return fits

    def stat(self) -> FileStat:
        return self.pipe.stat

    def close(self) -> None:
        if self.flags & O_ACCMODE == O_RDONLY:
            self.pipe.reader_open = False
            self.pipe.buffer.clear()  # nobody can read it any more
        else:
            self.pipe.writer_open = False


def make_pipe(flags: int, warn: Callable[[str], None], broken: Callable[[], None], uid: int,
              gid: int) -> tuple[PipeEnd, PipeEnd]:
    """The (read end, write end) of a new pipe; `flags` may hold O_NONBLOCK for both."""
    pipe = Pipe(warn, broken, uid, gid)
    shared = flags & O_NONBLOCK
    return PipeEnd(pipe, O_RDONLY | shared), PipeEnd(pipe, O_WRONLY | shared)
