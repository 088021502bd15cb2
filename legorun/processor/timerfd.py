"""Timers that notify through a file (timerfd_create(2)) as host timerfds owned by the
processor. The guest sees the host's clocks (syscalls/time.py), so the host's timer expires
exactly when the guest's would; a read returns the number of expirations as 8 bytes and
waits while there are none. Python has no timerfd calls before 3.13: they go through libc.
"""

from __future__ import annotations

import ctypes

from legorun.processor.files import O_NONBLOCK, O_RDWR, host_call
from legorun.processor.hostfile import HostFile
from legorun.processor.hostlib import checked, libc
from syscalls.errno import Errno, SyscallError

TFD_CLOEXEC = 0o2000000
TFD_NONBLOCK = 0o4000
HOST_FLAGS = TFD_CLOEXEC | TFD_NONBLOCK  # every host descriptor here
ITIMERSPEC_SIZE = 32  # struct itimerspec: it_interval, it_value (two struct timespec)


class TimerFd(HostFile):
    @classmethod
    def create(cls, clockid: int, flags: int) -> TimerFd:
        """A disarmed timer on `clockid`; the host checks the clock and the flags."""
        if flags & ~(TFD_CLOEXEC | TFD_NONBLOCK):
            raise SyscallError(Errno.EINVAL)
        fd = host_call(lambda: checked(libc().timerfd_create(clockid, HOST_FLAGS)))
        return cls(fd, O_RDWR | (O_NONBLOCK if flags & TFD_NONBLOCK else 0))

    def settime(self, flags: int, new_value: bytes) -> bytes:
        """Arm or disarm with a struct itimerspec; the previous setting, as one."""
        new = ctypes.create_string_buffer(new_value, ITIMERSPEC_SIZE)
        old = ctypes.create_string_buffer(ITIMERSPEC_SIZE)
        host_call(lambda: checked(libc().timerfd_settime(self.fd, flags, new, old)))
        return old.raw

    def gettime(self) -> bytes:
        """The time to the next expiration and the interval, as a struct itimerspec."""
        current = ctypes.create_string_buffer(ITIMERSPEC_SIZE)
        host_call(lambda: checked(libc().timerfd_gettime(self.fd, current)))
        return current.raw

    def wakeable_by_others(self) -> bool:
        # An armed timer expires by itself; a disarmed one only if the guest arms it.
        return any(self.gettime()[16:])

    def fd_link(self) -> str:
        return "anon_inode:[timerfd]"
