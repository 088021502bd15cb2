"""Pipes (pipe(7)) as host pipes owned by the processor.

Each end is an open file description in the processor's fd table wrapping one end of a host
pipe, so the host kernel provides the buffer (64 KiB by default, resizable with
F_SETPIPE_SZ), the atomicity of writes up to PIPE_BUF bytes, end of file once every write
end is closed, EPIPE once every read end is, and readiness for poll, select and epoll. The
guest's O_NONBLOCK decides whether an operation that cannot go on fails or waits: see
`hostfile.HostFile`.

Until a fork shares it, only this process holds the host pipe, so while the guest itself
holds the other end nobody else can ever empty or fill it: an endless wait on it is a
deadlock (see `wait`).
"""

from __future__ import annotations

import fcntl
import os

from legorun.processor.files import O_ACCMODE, O_NONBLOCK, O_RDONLY, O_WRONLY, host_call
from legorun.processor.hostfile import HostFile


class PipeEnd(HostFile):
    """One end of a pipe: O_RDONLY for the read end, O_WRONLY for the write end."""

    def wakeable_by_others(self) -> bool:
        return self.shared_by_fork

    def fd_link(self) -> str:
        return f"pipe:[{os.fstat(self.fd).st_ino}]"

    def reopen(self, flags: int) -> PipeEnd:
        """A new open file description of this pipe with the access mode of `flags`, as
        opening /proc/self/fd/N gives."""
        access = flags & O_ACCMODE
        host_flags = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY}.get(access, os.O_RDWR)
        fd = host_call(lambda: os.open(f"/proc/self/fd/{self.fd}",
                                       host_flags | os.O_NONBLOCK | os.O_CLOEXEC))
        reopened = PipeEnd(fd, access | flags & O_NONBLOCK)
        reopened.shared_by_fork = self.shared_by_fork  # the same pipe, as widely held
        return reopened

    def pipe_size(self) -> int:
        """F_GETPIPE_SZ: the capacity of the pipe's buffer."""
        return host_call(lambda: fcntl.fcntl(self.fd, fcntl.F_GETPIPE_SZ))

    def resize(self, size: int) -> int:
        """F_SETPIPE_SZ: the host rounds up to a power-of-two number of pages, refuses a
        size below what the pipe holds (EBUSY) or above its limit (EPERM); the new size."""
        as_int = size - (1 << 32) if size >= 1 << 31 else size  # the kernel reads it unsigned
        return host_call(lambda: fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, as_int))


def make_pipe(flags: int) -> tuple[PipeEnd, PipeEnd]:
    """The (read end, write end) of a new pipe; `flags` may hold O_NONBLOCK for both."""
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    shared = flags & O_NONBLOCK
    return PipeEnd(read_fd, O_RDONLY | shared), PipeEnd(write_fd, O_WRONLY | shared)
