"""Process file descriptors (pidfd_open(2)): a guest pid is the host pid of its legorun
process (fork.py), so a pidfd is the host's pidfd of that process, which becomes readable
for poll, select and epoll when the process ends."""

from __future__ import annotations

from legorun.processor.hostfile import HostFile
from syscalls.errno import Errno, SyscallError


class PidFile(HostFile):
    def __init__(self, fd: int, flags: int, pid: int) -> None:
        super().__init__(fd, flags)
        self.pid = pid

    def fd_link(self) -> str:
        return "anon_inode:[pidfd]"

    def read(self, size: int) -> bytes:
        raise SyscallError(Errno.EINVAL)

    def write(self, data: bytes) -> int:
        raise SyscallError(Errno.EINVAL)
