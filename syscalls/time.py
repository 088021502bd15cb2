"""Clocks and sleeping (kernel/time/). The guest sees the host's clocks."""

from __future__ import annotations

import time

from legorun.processor.wait import Interrupted, sleep
from syscalls.args import Int, Ptr
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

CLOCKS = {
    0: time.CLOCK_REALTIME,
    1: time.CLOCK_MONOTONIC,
    2: time.CLOCK_PROCESS_CPUTIME_ID,
    3: time.CLOCK_THREAD_CPUTIME_ID,
    4: time.CLOCK_MONOTONIC_RAW,
    5: getattr(time, "CLOCK_REALTIME_COARSE", time.CLOCK_REALTIME),
    6: getattr(time, "CLOCK_MONOTONIC_COARSE", time.CLOCK_MONOTONIC),
    7: getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC),
}
TIMER_ABSTIME = 1


def clock_ns(clock: int) -> int:
    host = CLOCKS.get(clock)
    if host is None:
        raise SyscallError(Errno.EINVAL)
    return time.clock_gettime_ns(host)


def _write_timespec(ctx: SyscallContext, addr: int, ns: int) -> None:
    ctx.mem.write_struct("<qq", addr, ns // 1_000_000_000, ns % 1_000_000_000)


def read_timespec(ctx: SyscallContext, addr: int) -> int:
    sec, nsec = ctx.mem.read_struct("<qq", addr)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SyscallError(Errno.EINVAL)
    return sec * 1_000_000_000 + nsec


def sys_clock_gettime(ctx: SyscallContext, clockid: Int, tp: Ptr) -> int:
    _write_timespec(ctx, tp, clock_ns(clockid))
    return 0


def sys_clock_getres(ctx: SyscallContext, clockid: Int, res: Ptr) -> int:
    clock_ns(clockid)
    if res:
        _write_timespec(ctx, res, 1 if clockid in (0, 1, 2, 3, 4, 7) else 4_000_000)
    return 0


def sys_gettimeofday(ctx: SyscallContext, tv: Ptr, tz: Ptr) -> int:
    if tv:
        ns = time.time_ns()
        ctx.mem.write_struct("<qq", tv, ns // 1_000_000_000, ns % 1_000_000_000 // 1000)
    if tz:
        ctx.mem.write_struct("<ii", tz, 0, 0)
    return 0


def sys_time(ctx: SyscallContext, tloc: Ptr) -> int:
    now = time.time_ns() // 1_000_000_000
    if tloc:
        ctx.mem.write_u64(tloc, now)
    return now


def sleep_until(clock: int, deadline_ns: int) -> None:
    """Sleep (the calling thread only) until `clock` reads `deadline_ns`; a signal with a
    handler cuts it short (Interrupted)."""
    while (remaining := deadline_ns - clock_ns(clock)) > 0:
        sleep(remaining)


def _sleep_reporting_rest(ctx: SyscallContext, clock: int, deadline_ns: int, rem: int) -> None:
    """sleep_until, writing what was left of the sleep to `rem` when a signal ends it."""
    try:
        sleep_until(clock, deadline_ns)
    except Interrupted:
        if rem:
            _write_timespec(ctx, rem, max(0, deadline_ns - clock_ns(clock)))
        raise


def sys_nanosleep(ctx: SyscallContext, req: Ptr, rem: Ptr) -> int:
    duration = read_timespec(ctx, req)
    _sleep_reporting_rest(ctx, 1, clock_ns(1) + duration, rem)
    return 0


def sys_clock_nanosleep(ctx: SyscallContext, clockid: Int, flags: Int, req: Ptr,
                        rem: Ptr) -> int:
    target = read_timespec(ctx, req)
    if flags & TIMER_ABSTIME:
        sleep_until(clockid, target)
    else:
        _sleep_reporting_rest(ctx, clockid, clock_ns(clockid) + target, rem)
    return 0


def sys_times(ctx: SyscallContext, buf: Ptr) -> int:
    cpu = time.process_time_ns() // 10_000_000  # clock ticks at 100 Hz
    if buf:
        ctx.mem.write_struct("<qqqq", buf, cpu, 0, 0, 0)
    return time.monotonic_ns() // 10_000_000
