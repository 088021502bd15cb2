"""Resource usage: getrusage. See getrusage(2).

The guest's processor time is that of the processor's host process, which runs the
emulated core; its page faults are the ExCache misses (the processor's local DRAM missing a
line), and its resident set the lines the ExCache holds. The guest has no children.
"""

from __future__ import annotations

import os
import struct

from legorun.managers.vma import PAGE_SIZE
from syscalls.args import Int, Ptr
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
# struct rusage: ru_utime, ru_stime (struct timeval), then 14 longs from ru_maxrss on.
RUSAGE = struct.Struct("<qqqq14q")


def _timeval(seconds: float) -> tuple[int, int]:
    micros = int(seconds * 1_000_000)
    return micros // 1_000_000, micros % 1_000_000


def sys_getrusage(ctx: SyscallContext, who: Int, usage: Ptr) -> int:
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise SyscallError(Errno.EINVAL)
    if who == RUSAGE_CHILDREN:
        ctx.mem.write(usage, bytes(RUSAGE.size))
        return 0
    times = os.times()
    excache = ctx.vm.excache
    resident_kb = (excache.resident_lines if excache else 0) * PAGE_SIZE // 1024
    faults = excache.stats.misses if excache else 0
    longs = [resident_kb, 0, 0, 0, faults, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    ctx.mem.write(usage, RUSAGE.pack(*_timeval(times.user), *_timeval(times.system), *longs))
    return 0
