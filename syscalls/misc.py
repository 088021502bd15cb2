"""System information and randomness: uname, sysinfo, getrandom, getcpu."""

from __future__ import annotations

import os
import time

from syscalls.args import Ptr, Size, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

UTS_FIELD = 65
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


def sys_uname(ctx: SyscallContext, buf: Ptr) -> int:
    host = os.uname()
    fields = (host.sysname, host.nodename, host.release, host.version, "x86_64", "(none)")
    ctx.mem.write(buf, b"".join(f.encode()[: UTS_FIELD - 1].ljust(UTS_FIELD, b"\0")
                                for f in fields))
    return 0


def sys_sysinfo(ctx: SyscallContext, info: Ptr) -> int:
    uptime = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    loads = [int(load * 65536) for load in os.getloadavg()]
    pages = os.sysconf("SC_PHYS_PAGES")
    free = os.sysconf("SC_AVPHYS_PAGES")
    page = os.sysconf("SC_PAGE_SIZE")
    # struct sysinfo: long uptime; ulong loads[3]; ulong totalram, freeram, sharedram,
    # bufferram, totalswap, freeswap; ushort procs; pad; ulong totalhigh, freehigh; uint mem_unit
    ctx.mem.write_struct(
        "<q3Q6QHxxxxxxQQI4x", info, uptime, *loads, pages * page, free * page, 0, 0, 0, 0,
        1, 0, 0, 1,
    )
    return 0


def sys_getrandom(ctx: SyscallContext, buf: Ptr, buflen: Size, flags: UInt) -> int:
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE):
        raise SyscallError(Errno.EINVAL)
    count = min(buflen, 33554431)
    ctx.mem.write(buf, os.urandom(count))
    return count


def sys_getcpu(ctx: SyscallContext, cpu: Ptr, node: Ptr, tcache: Ptr) -> int:
    if cpu:
        ctx.mem.write_u32(cpu, 0)
    if node:
        ctx.mem.write_u32(node, 0)
    return 0
