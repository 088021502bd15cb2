"""Timers that notify through a descriptor: timerfd_create, timerfd_settime and
timerfd_gettime. See timerfd_create(2). The timer is a host timerfd owned by the processor
(processor/timerfd.py); struct itimerspec crosses as the guest wrote it."""

from __future__ import annotations

from legorun.processor.timerfd import ITIMERSPEC_SIZE, TFD_CLOEXEC, TimerFd
from syscalls.args import Fd, Int, Ptr
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import fd_file


def sys_timerfd_create(ctx: SyscallContext, clockid: Int, flags: Int) -> int:
    return ctx.fds.allocate_new(TimerFd.create(clockid, flags), bool(flags & TFD_CLOEXEC))


def _timer(ctx: SyscallContext, fd: int) -> TimerFd:
    file = fd_file(ctx, fd)
    if not isinstance(file, TimerFd):
        raise SyscallError(Errno.EINVAL)
    return file


def sys_timerfd_settime(ctx: SyscallContext, fd: Fd, flags: Int, new_value: Ptr,
                        old_value: Ptr) -> int:
    setting = ctx.mem.read(new_value, ITIMERSPEC_SIZE)
    old = _timer(ctx, fd).settime(flags, setting)
    if old_value:
        ctx.mem.write(old_value, old)
    return 0


def sys_timerfd_gettime(ctx: SyscallContext, fd: Fd, curr_value: Ptr) -> int:
    ctx.mem.write(curr_value, _timer(ctx, fd).gettime())
    return 0
