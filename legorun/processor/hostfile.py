"""Open files backed by a host descriptor that the processor owns: pipes, sockets, eventfds,
timerfds and epoll instances. They are processor-local I/O, not storage: nothing about
them reaches the memory or storage manager.

The host descriptor is always non-blocking and close-on-exec. The guest's O_NONBLOCK (kept
in `flags`, changed by fcntl F_SETFL and ioctl FIONBIO) decides whether an operation that
would block fails with EAGAIN or waits through `wait.wait_until_ready` and tries again. The
guest never sees the host's number: the fd table maps its own numbers to these files, and
readiness comes from the host kernel, so poll, select and epoll treat all of them alike.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from legorun.processor.files import O_NONBLOCK, OpenFile, host_errno
from legorun.processor.wait import POLLIN, POLLOUT, wait_until_ready
from legorun.rpc.messages import FileStat
from syscalls.errno import Errno, SyscallError

T = TypeVar("T")
# Bounds what one read asks the host for (and so allocates); a short read is always valid,
# and no host pipe or socket queue holds this much at once anyway.
READ_MAX = 16 << 20


class HostFile(OpenFile):
    """An open file description whose data and readiness live in a host descriptor."""

    def __init__(self, fd: int, flags: int) -> None:
        super().__init__(flags)
        self.fd = fd
        # Called with this file when it closes: an epoll instance drops it then, as Linux
        # removes a file from every epoll set when its last descriptor closes.
        self.close_listeners: list[Callable[[HostFile], None]] = []

    def host_fd(self) -> int | None:
        return self.fd

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & O_NONBLOCK)

    def wakeable_by_others(self) -> bool:
        return True

    def fd_link(self) -> str:
        return "anon_inode:[unknown]"

    def retry(self, attempt: Callable[[], T], events: int, nonblocking: bool | None = None) -> T:
        """Run a non-blocking host operation; when it would block, fail with EAGAIN if the
        caller does not block, else wait until the file has `events` and try again."""
        if nonblocking is None:
            nonblocking = self.nonblocking
        while True:
            try:
                return attempt()
            except BlockingIOError:
                if nonblocking:
                    raise SyscallError(Errno.EAGAIN) from None
            except OSError as error:
                raise host_errno(error) from None
            wait_until_ready([(self, events)], None)

    def read(self, size: int) -> bytes:
        return self.retry(lambda: os.read(self.fd, min(size, READ_MAX)), POLLIN)

    def write(self, data: bytes) -> int:
        """A blocking write goes out whole, as Linux writes to pipes and stream sockets; a
        non-blocking one takes what fits. After some progress an error is a short count."""
        return self.send_all(lambda chunk: os.write(self.fd, chunk), data, self.nonblocking)

    def send_all(self, send: Callable[[memoryview], int], data: bytes, nonblocking: bool) -> int:
        view = memoryview(data)
        done = 0
        while True:
            try:
                done += send(view[done:])
            except BlockingIOError:
                if nonblocking:
                    if done:
                        return done
                    raise SyscallError(Errno.EAGAIN) from None
            except OSError as error:
                if done:
                    return done
                raise host_errno(error) from None
            else:
                if done >= len(view) or nonblocking:
                    return done
            wait_until_ready([(self, POLLOUT)], None)

    def stat(self) -> FileStat:
        return FileStat.from_host(os.fstat(self.fd))

    def close(self) -> None:
        for listener in list(self.close_listeners):
            listener(self)
        self.release_host()
        self.fd = -1

    def release_host(self) -> None:
        """Close the host descriptor."""
        os.close(self.fd)
