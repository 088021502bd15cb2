"""Event counters (eventfd(2)) as host eventfds owned by the processor.

The host keeps the 64-bit counter and its semantics: a read takes the whole count (or one,
with EFD_SEMAPHORE) and waits while it is zero; a write adds and waits while the sum would
overflow; reads and writes of fewer than 8 bytes fail with EINVAL. Only this process holds
the counter, so an endless wait on it can never end (see processor/wait.py).
"""

from __future__ import annotations

import os

from legorun.processor.files import O_NONBLOCK, O_RDWR, host_errno
from legorun.processor.hostfile import HostFile
from syscalls.errno import Errno, SyscallError

EFD_SEMAPHORE = 1
EFD_CLOEXEC = 0o2000000
EFD_NONBLOCK = 0o4000


class EventFd(HostFile):
    def wakeable_by_others(self) -> bool:
        return self.shared_by_fork

    def fd_link(self) -> str:
        return "anon_inode:[eventfd]"


def make_eventfd(initval: int, flags: int) -> EventFd:
    """A new counter starting at `initval`; `flags` are eventfd2's EFD_* flags (EFD_CLOEXEC
    is left to the fd table)."""
    if flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK):
        raise SyscallError(Errno.EINVAL)
    semaphore = os.EFD_SEMAPHORE if flags & EFD_SEMAPHORE else 0
    try:
        fd = os.eventfd(initval, os.EFD_CLOEXEC | os.EFD_NONBLOCK | semaphore)
    except OSError as error:
        raise host_errno(error) from None
    return EventFd(fd, O_RDWR | (O_NONBLOCK if flags & EFD_NONBLOCK else 0))
