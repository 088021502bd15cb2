"""signalfd(2): the process's pending signals, read as a file.

A signalfd holds a set of signals (its mask); a read takes pending signals of the set for
the reading thread (its own first, then the process's), as sigtimedwait does, and returns
each as a struct signalfd_siginfo. The pending sets live in signals.py, so a signalfd has
no host object to poll; its readiness for poll, select and epoll is a host eventfd, its
doorbell, which Signals rings whenever the pending sets change: it is readable while a
signal of the mask is pending for the process or any of its threads.
"""

from __future__ import annotations

import os
import struct

from legorun.processor.files import O_NONBLOCK
from legorun.processor.hostfile import HostFile
from legorun.processor.sigframe import SigInfo
from legorun.processor.signals import Signals
from legorun.processor.threads import ThreadGroup
from legorun.processor.wait import POLLIN, wait_until_ready
from syscalls.errno import Errno, SyscallError

# struct signalfd_siginfo (include/uapi/linux/signalfd.h): 128 bytes.
SIGNALFD_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQHHiQI28x")
# siginfo_t's sender and value, after signo, errno and code (and padding).
SIGINFO_SENDER = struct.Struct("<16xIIQ")


def pack_siginfo(info: SigInfo) -> bytes:
    """ssi_int and ssi_ptr are both sigqueue's value, as the kernel copies it."""
    pid, uid, value = info.pid, info.uid, info.value
    if info.raw is not None:  # a siginfo the guest queued whole (rt_sigqueueinfo)
        pid, uid, value = SIGINFO_SENDER.unpack_from(info.raw.ljust(SIGINFO_SENDER.size, b"\0"))
    value_int = value & 0xFFFFFFFF
    if value_int & 0x80000000:
        value_int -= 1 << 32
    return SIGNALFD_SIGINFO.pack(
        info.signo, info.errno, info.code, pid, uid, 0, 0, 0, 0, info.trap[0],
        info.status or 0, value_int, value & 0xFFFFFFFFFFFFFFFF, 0, 0, info.addr or 0,
        0, 0, 0, 0, 0)


class SignalFile(HostFile):
    def __init__(self, signals: Signals, threads: ThreadGroup, mask: int, flags: int) -> None:
        super().__init__(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC), flags & O_NONBLOCK)
        self._signals = signals
        self._threads = threads
        self._rung = False
        self.mask = mask
        signals.doorbells.append(self)
        self.ring(signals.pending_anywhere())

    def fd_link(self) -> str:
        return "anon_inode:[signalfd]"

    def set_mask(self, mask: int) -> None:
        self.mask = mask
        self.ring(self._signals.pending_anywhere())

    def ring(self, pending: int) -> None:
        ready = bool(pending & self.mask)
        if ready and not self._rung:
            os.eventfd_write(self.fd, 1)
        elif self._rung and not ready:
            os.eventfd_read(self.fd)
        self._rung = ready

    def read(self, size: int) -> bytes:
        if size < SIGNALFD_SIGINFO.size:
            raise SyscallError(Errno.EINVAL)
        while True:
            taken = []
            while len(taken) < size // SIGNALFD_SIGINFO.size:
                info = self._signals.take(self._threads.current, self.mask)
                if info is None:
                    break
                taken.append(pack_siginfo(info))
            if taken:
                return b"".join(taken)
            if self.nonblocking:
                raise SyscallError(Errno.EAGAIN)
            wait_until_ready([(self, POLLIN)], None)

    def write(self, data: bytes) -> int:
        raise SyscallError(Errno.EINVAL)

    def close(self) -> None:
        if self in self._signals.doorbells:
            self._signals.doorbells.remove(self)
        super().close()
