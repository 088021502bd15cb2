"""POSIX per-process timers: timer_create, timer_settime, timer_gettime, timer_getoverrun
and timer_delete. See timer_create(2). The table of timers is the processor's
(processor/posix_timers.py); a struct itimerspec crosses as the guest wrote it, once
checked.
"""

from __future__ import annotations

import struct

from legorun.processor.hostsignals import (
    ITIMERSPEC_SIZE,
    SIGEV_NONE,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    SIGEV_THREAD_ID,
    SIGEVENT,
    SIGEVENT_SIZE,
)
from legorun.processor.posix_timers import Notification
from syscalls.args import Int, Ptr
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

SIGRTMAX = 64
NSEC_PER_SEC = 1_000_000_000
ITIMERSPEC = struct.Struct("<qq")  # each of it_interval, it_value: tv_sec, tv_nsec
# Clocks by id (the negative ones are below): those with timers, those without (Linux has
# no timers on CLOCK_MONOTONIC_RAW and the coarse clocks); other ids name no clock.
TIMER_CLOCKS = frozenset({0, 1, 2, 3, 7, 8, 9, 11})
CLOCKS_WITHOUT_TIMERS = frozenset({4, 5, 6})
# A CPU-time clock of a given process or thread (clock_getcpuclockid(3)) has a negative id:
# ~pid << 3, the per-thread flag, and which of its clocks (CPUCLOCK_PROF, _VIRT, _SCHED);
# CLOCKFD marks a dynamic clock opened as a file instead.
CPUCLOCK_PERTHREAD, CPUCLOCK_CLOCK_MASK, CLOCKFD = 4, 3, 3


def host_clock(ctx: SyscallContext, clockid: int) -> int:
    """The host clock that times a guest timer on `clockid`, or the error Linux gives
    before it takes a timer id. The guest's clocks are the host's and its pids are host
    pids (the host checks the CPU clock of a process when it makes the timer, as Linux
    does); the guest's threads all run on the host thread that emulates them, so a thread
    CPU clock of any of them is that host thread's."""
    if clockid >= 0:
        if clockid in CLOCKS_WITHOUT_TIMERS:
            raise SyscallError(Errno.EOPNOTSUPP)
        if clockid not in TIMER_CLOCKS:
            raise SyscallError(Errno.EINVAL)
        return clockid
    if clockid & CPUCLOCK_CLOCK_MASK == CLOCKFD:
        raise SyscallError(Errno.EOPNOTSUPP)  # no device here has a dynamic clock
    if clockid & CPUCLOCK_PERTHREAD and ctx.threads.get(~(clockid >> 3)) is not None:
        # The calling host thread's clock of the same kind.
        return (~0 << 3) | clockid & (CPUCLOCK_PERTHREAD | CPUCLOCK_CLOCK_MASK)
    return clockid  # thread 0 is the calling one; the host refuses a thread not its own


def check_notification(ctx: SyscallContext, event: bytes) -> Notification:
    """A struct sigevent, checked as Linux's good_sigevent does."""
    value, signo, notify, tid = SIGEVENT.unpack_from(event)
    if notify == SIGEV_THREAD_ID:
        if ctx.threads.get(tid) is None:  # not a thread of this process
            raise SyscallError(Errno.EINVAL)
    elif notify not in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_NONE):
        raise SyscallError(Errno.EINVAL)
    if notify != SIGEV_NONE and not 1 <= signo <= SIGRTMAX:
        raise SyscallError(Errno.EINVAL)
    return Notification(notify, signo, value, tid if notify == SIGEV_THREAD_ID else None)


def sys_timer_create(ctx: SyscallContext, which_clock: Int, timer_event_spec: Ptr,
                     created_timer_id: Ptr) -> int:
    event = ctx.mem.read(timer_event_spec, SIGEVENT_SIZE) if timer_event_spec else None
    clock = host_clock(ctx, which_clock)
    timers = ctx.signals.timers
    timer_id = timers.new_id()
    notification = check_notification(ctx, event) if event is not None else None
    ctx.mem.write_u32(created_timer_id, timer_id)
    timers.create(timer_id, clock, notification)
    return 0


def read_itimerspec(ctx: SyscallContext, addr: int) -> bytes:
    """A struct itimerspec whose two times are valid (timespec64_valid)."""
    setting = ctx.mem.read(addr, ITIMERSPEC_SIZE)
    for sec, nsec in ITIMERSPEC.iter_unpack(setting):
        if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
            raise SyscallError(Errno.EINVAL)
    return setting


def sys_timer_settime(ctx: SyscallContext, timer_id: Int, flags: Int, new_setting: Ptr,
                      old_setting: Ptr) -> int:
    if not new_setting:
        raise SyscallError(Errno.EINVAL)
    old = ctx.signals.timers.settime(timer_id, flags, read_itimerspec(ctx, new_setting))
    if old_setting:
        ctx.mem.write(old_setting, old)
    return 0


def sys_timer_gettime(ctx: SyscallContext, timer_id: Int, setting: Ptr) -> int:
    ctx.mem.write(setting, ctx.signals.timers.gettime(timer_id))
    return 0


def sys_timer_getoverrun(ctx: SyscallContext, timer_id: Int) -> int:
    return ctx.signals.timers.getoverrun(timer_id)


def sys_timer_delete(ctx: SyscallContext, timer_id: Int) -> int:
    ctx.signals.timers.delete(timer_id)
    return 0
