"""Named pipes (fifo(7)): the node on the storage manager, the pipe at the processor.

A FIFO's name lives in the file system (mknod, mkfifo), but its data never touches a disk:
it flows between the processes that open it. So the storage manager keeps the node and
answers its stat, and the processor makes the pipe itself: a host FIFO in a directory of
its own, named by the node's device and inode numbers, so that every process of the run
(and every legorun run of this user on this host) that opens the same node, by whatever
path, meets the same pipe. Its ends are pipe ends (pipe.py) with the host kernel's buffer,
atomicity and readiness.

Opening follows fifo(7), with waits that go through wait.py like every other:
- for writing, a blocking open waits until there is a reader; O_NONBLOCK fails with ENXIO;
- for reading, open returns at once, and a blocking read waits until a writer has written or
  come and gone (Linux waits for the writer in open instead; what the reader then reads is
  the same);
- O_RDWR never waits.
"""

from __future__ import annotations

import errno
import os
import tempfile
from typing import Callable

from legorun.hostpipes import is_fifo_node
from legorun.processor.files import (
    O_ACCMODE,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    host_call,
    host_errno,
)
from legorun.processor.pipe import PipeEnd
from legorun.processor.wait import POLLHUP, POLLIN, Wait, block, poll_host, wait_until_ready
from legorun.rpc.messages import FileStat
from syscalls.errno import Errno, SyscallError

HOST_ACCESS = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY, O_RDWR: os.O_RDWR}


class ReaderWait(Wait):
    """Until a writer's open of a FIFO finds a reader. Nothing signals a reader's arrival
    to a process that has no end of the pipe yet, so the idle scheduler tries again every
    RECHECK_NS."""

    recheck_ns = 5_000_000

    def __init__(self, attempt: Callable[[], bool], path: str) -> None:
        self._attempt = attempt
        self._path = path

    def satisfied(self) -> bool:
        return self._attempt()

    def wakeable_from_outside(self) -> bool:
        return True

    def describe(self) -> str:
        return f"for a reader of the FIFO {self._path}"


class FifoEnd(PipeEnd):
    """An end of a named pipe."""

    def __init__(self, fd: int, flags: int, node: FileStat, path: str) -> None:
        super().__init__(fd, flags)
        self._node = node
        self.path = path

    def wakeable_by_others(self) -> bool:
        return True  # anyone may open the name

    def fd_link(self) -> str:
        return self.path

    def stat(self) -> FileStat:
        return self._node

    def read(self, size: int) -> bytes:
        while True:
            data = super().read(size)
            if data or self.nonblocking or self._writer_came():
                return data
            # End of file before any writer opened: a blocking reader waits for one.
            wait_until_ready([(self, POLLIN)], None)

    def _writer_came(self) -> bool:
        """Whether a writer opened (and closed) the pipe since this end was opened, which
        the host reports as a hang-up only then."""
        return bool(poll_host([(self, POLLIN)], 0)[0] & POLLHUP)


def is_named_fifo(node: FileStat) -> bool:
    """Whether `node` is a FIFO in a file system, not a pipe reached through /proc."""
    return is_fifo_node(node.mode, node.dev)


def open_fifo(node: FileStat, path: str, flags: int) -> FifoEnd:
    """Open the pipe of the FIFO node `node` (found at guest path `path`) with the guest's
    open `flags` (its access mode, O_NONBLOCK)."""
    host = _host_fifo(node)
    access = flags & O_ACCMODE
    host_flags = HOST_ACCESS.get(access, os.O_RDWR) | os.O_NONBLOCK | os.O_CLOEXEC
    opened: list[int] = []

    def attempt() -> bool:
        if opened:
            return True
        try:
            opened.append(os.open(host, host_flags))
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: a writer and no reader yet
                raise host_errno(error) from None
            return False
        return True

    if not attempt():
        if flags & O_NONBLOCK:
            raise SyscallError(Errno.ENXIO)
        block(ReaderWait(attempt, path))
    return FifoEnd(opened[0], access | flags & O_NONBLOCK, node, path)


def _host_fifo(node: FileStat) -> str:
    directory = os.path.join(tempfile.gettempdir(), f"legorun-fifos-{os.getuid()}")
    host_call(lambda: os.makedirs(directory, mode=0o700, exist_ok=True))
    host = os.path.join(directory, f"{node.dev}-{node.ino}")
    try:
        os.mkfifo(host, 0o600)
    except FileExistsError:
        pass
    except OSError as error:
        raise host_errno(error) from None
    return host
