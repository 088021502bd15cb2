"""Open file descriptions held by the processor (the storage manager keeps no state).

A file on the storage manager is remembered by its guest path and offset and every read or
write is a self-contained P2S request. Streams inherited from the host (the guest's stdin,
stdout and stderr) are used directly: they are pipes or terminals, not files to serve.
"""

from __future__ import annotations

import os
import stat as stat_module
from typing import Callable, Protocol, TypeVar

from legorun.processor.wait import POLLIN, POLLOUT, wait_until_ready
from legorun.rpc.messages import (
    DataReply,
    FileStat,
    ReaddirReply,
    ReaddirRequest,
    ReadRequest,
    StatReply,
    StatRequest,
    UnlinkRequest,
    WriteReply,
    WriteRequest,
)
from legorun.rpc.transport import Transport
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
    O_DIRECT,
    O_LARGEFILE,
    O_DIRECTORY,
    O_NOFOLLOW,
    O_CLOEXEC,
    O_PATH,
    O_TMPFILE,
)


SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
T = TypeVar("T")


def host_errno(error: OSError) -> SyscallError:
    try:
        return SyscallError(Errno(error.errno or Errno.EIO))
    except ValueError:
        return SyscallError(Errno.EIO)


def host_call(action: Callable[[], T]) -> T:
    """Run a call on the processor's host; its OSError becomes the guest's SyscallError."""
    try:
        return action()
    except OSError as error:
        raise host_errno(error) from None


class OpenFile:
    """An open file description: shared by every fd dup'ed from the same open()."""

    path: str | None = None
    # The flock(2) lock this description holds: ((st_dev, st_ino) of the file, LOCK_SH or
    # LOCK_EX), or None. Locks belong to open file descriptions, and go with them.
    flock: tuple[tuple[int, int], int] | None = None
    # Set by fork: another process now holds this description too (the far end of a pipe
    # the guest made, say), so a wait on it can be ended by someone else.
    shared_by_fork = False

    def __init__(self, flags: int) -> None:
        self.flags = flags

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    def read(self, size: int) -> bytes:
        raise SyscallError(Errno.EINVAL)

    def write(self, data: bytes) -> int:
        raise SyscallError(Errno.EINVAL)

    def pread(self, size: int, offset: int) -> bytes:
        raise SyscallError(Errno.ESPIPE)

    def pwrite(self, data: bytes, offset: int) -> int:
        raise SyscallError(Errno.ESPIPE)

    def seek(self, offset: int, whence: int) -> int:
        raise SyscallError(Errno.ESPIPE)

    def stat(self) -> FileStat:
        raise SyscallError(Errno.EBADF)

    def isatty(self) -> bool:
        return False

    def host_fd(self) -> int | None:
        """The host descriptor behind this file (its readiness, terminal ioctls); None if
        there is none: such a file is always ready for reading and writing."""
        return None

    def wakeable_by_others(self) -> bool:
        """Whether someone besides this process could make the file ready while it waits
        (see processor/wait.py)."""
        return True

    def fd_link(self) -> str:
        """What /proc/self/fd/N names for this file: its path, or a pseudo name."""
        return self.path or "anon_inode:[unknown]"

    def close(self) -> None:
        pass


class HostStream(OpenFile):
    """A descriptor the guest inherits from legorun's own process (stdin/stdout/stderr)."""

    def __init__(self, fd: int, flags: int) -> None:
        super().__init__(flags)
        self.fd = fd

    def _wait(self, events: int) -> None:
        # The host descriptor is legorun's own and may block: wait first, so that the
        # guest's O_NONBLOCK holds and every blocking wait goes through processor/wait.py.
        timeout = 0 if self.flags & O_NONBLOCK else None
        if not wait_until_ready([(self, events)], timeout)[0]:
            raise SyscallError(Errno.EAGAIN)

    def read(self, size: int) -> bytes:
        self._wait(POLLIN)
        try:
            return os.read(self.fd, size)
        except OSError as error:
            raise host_errno(error) from None

    def write(self, data: bytes) -> int:
        self._wait(POLLOUT)
        try:
            return os.write(self.fd, data)
        except OSError as error:
            raise host_errno(error) from None

    def pread(self, size: int, offset: int) -> bytes:
        try:
            return os.pread(self.fd, size, offset)
        except OSError as error:
            raise host_errno(error) from None

    def pwrite(self, data: bytes, offset: int) -> int:
        try:
            return os.pwrite(self.fd, data, offset)
        except OSError as error:
            raise host_errno(error) from None

    def seek(self, offset: int, whence: int) -> int:
        try:
            return os.lseek(self.fd, offset, whence)
        except OSError as error:
            raise host_errno(error) from None

    def stat(self) -> FileStat:
        return FileStat.from_host(os.fstat(self.fd))

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def host_fd(self) -> int | None:
        return self.fd

    def fd_link(self) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            return f"host:[{self.fd}]"


class MappedFiles(Protocol):
    """Shared mappings of files (shared_memory.py), which read(2) and write(2) must see as
    Linux's page cache makes them see one another."""

    def file_to_read(self, path: str, offset: int, size: int) -> None:
        """Before a read of [offset, offset + size) of the file: stores to mappings of it
        there reach the file."""

    def file_written(self, path: str, offset: int, data: bytes) -> None:
        """After `data` was written at `offset` of the file: mappings of it show it."""


class StorageFile(OpenFile):
    """A regular file (or device) on the storage manager: a path and an offset."""

    def __init__(self, transport: Transport, path: str, flags: int,
                 mapped: MappedFiles | None = None) -> None:
        super().__init__(flags)
        self._transport = transport
        self._mapped = mapped
        self.path = path
        self.offset = 0
        # The process that hid this file when the guest unlinked it removes it on close.
        self.remove_on_close: int | None = None

    def pread(self, size: int, offset: int) -> bytes:
        if self._mapped is not None:
            self._mapped.file_to_read(self.path, offset, size)
        reply: DataReply = self._transport.call(ReadRequest(self.path, offset, size))
        if reply.status:
            raise SyscallError(Errno(reply.status))
        return reply.data

    def _write_at(self, data: bytes, offset: int, append: bool) -> WriteReply:
        reply: WriteReply = self._transport.call(WriteRequest(self.path, offset, data, append))
        if reply.status:
            raise SyscallError(Errno(reply.status))
        if self._mapped is not None:
            self._mapped.file_written(self.path, reply.end - reply.written, data[:reply.written])
        return reply

    def pwrite(self, data: bytes, offset: int) -> int:
        # Linux ignores the offset of pwrite on an O_APPEND file and appends.
        return self._write_at(data, offset, bool(self.flags & O_APPEND)).written

    def read(self, size: int) -> bytes:
        data = self.pread(size, self.offset)
        self.offset += len(data)
        return data

    def write(self, data: bytes) -> int:
        reply = self._write_at(data, self.offset, bool(self.flags & O_APPEND))
        self.offset = reply.end
        return reply.written

    def seek(self, offset: int, whence: int) -> int:
        if whence == SEEK_SET:
            target = offset
        elif whence == SEEK_CUR:
            target = self.offset + offset
        elif whence == SEEK_END:
            target = self.stat().size + offset
        else:
            raise SyscallError(Errno.EINVAL)
        if target < 0:
            raise SyscallError(Errno.EINVAL)
        self.offset = target
        return target

    def stat(self) -> FileStat:
        reply: StatReply = self._transport.call(StatRequest(self.path, True))
        if reply.status or reply.stat is None:
            raise SyscallError(Errno(reply.status or Errno.EIO))
        return reply.stat

    def close(self) -> None:
        if self.remove_on_close == os.getpid():  # unlinked while open (see unlinked.py)
            self.remove_on_close = None
            self._transport.call(UnlinkRequest(self.path))


class Directory(StorageFile):
    """An open directory: getdents64 walks it by entry index (the offset)."""

    def read(self, size: int) -> bytes:
        raise SyscallError(Errno.EISDIR)

    def write(self, data: bytes) -> int:
        raise SyscallError(Errno.EISDIR)

    def entries(self, count: int) -> ReaddirReply:
        reply: ReaddirReply = self._transport.call(ReaddirRequest(self.path, self.offset, count))
        if reply.status:
            raise SyscallError(Errno(reply.status))
        return reply

    def seek(self, offset: int, whence: int) -> int:
        if whence != SEEK_SET or offset < 0:
            raise SyscallError(Errno.EINVAL)
        self.offset = offset
        return offset


def is_directory(mode: int) -> bool:
    return stat_module.S_ISDIR(mode)
