"""pidfd_open and pidfd_send_signal: see processor/pidfd.py."""

from __future__ import annotations

import os

from legorun.processor.files import O_NONBLOCK, O_RDWR, host_call
from legorun.processor.hostlib import checked, libc
from legorun.processor.pidfd import PidFile
from syscalls.args import Fd, Int, Ptr, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.signals import signal_process

PIDFD_NONBLOCK = O_NONBLOCK
SYS_PIDFD_SEND_SIGNAL = 424
# Whom pidfd_send_signal signals (Linux 6.9): at most one of them.
PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP = 1, 2, 4
SIGNAL_SCOPES = (0, PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP)
SIGINFO_SIZE = 128


def sys_pidfd_open(ctx: SyscallContext, pid: Int, flags: UInt) -> int:
    if flags & ~PIDFD_NONBLOCK or pid <= 0:
        raise SyscallError(Errno.EINVAL)
    fd = host_call(lambda: os.pidfd_open(pid, os.O_NONBLOCK))
    return ctx.fds.allocate(PidFile(fd, O_RDWR | flags & PIDFD_NONBLOCK, pid), cloexec=True)


def sys_pidfd_send_signal(ctx: SyscallContext, pidfd: Fd, sig: Int, info: Ptr,
                          flags: UInt) -> int:
    file = ctx.fds.get(pidfd)
    if not isinstance(file, PidFile):
        raise SyscallError(Errno.EBADF)
    if flags not in SIGNAL_SCOPES or not 0 <= sig <= 64:
        raise SyscallError(Errno.EINVAL)
    if file.pid == ctx.proc.pid and not info and flags != PIDFD_SIGNAL_PROCESS_GROUP:
        return signal_process(ctx, sig)  # its own handlers and mask, as kill(2) to itself
    raw = ctx.mem.read(info, SIGINFO_SIZE) if info else None
    host_call(lambda: checked(libc().syscall(SYS_PIDFD_SEND_SIGNAL, file.fd, sig, raw,
                                             flags)))
    return 0
