"""Process identity, exit_group, limits, arch_prctl, prctl and rseq (kernel/exit.c,
kernel/sys.c); threads are in threads.py, signals in signals.py."""

from __future__ import annotations

import struct

from legorun.processor.process import FD_LIMIT_CAP, RLIM_INFINITY, RLIMIT_NOFILE, ProcessExit
from legorun.processor.sigframe import SI_USER, SigInfo
from syscalls.args import Int, Ptr, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

ARCH_SET_GS = 0x1001
ARCH_SET_FS = 0x1002
ARCH_GET_FS = 0x1003
ARCH_GET_GS = 0x1004
ARCH_GET_CPUID = 0x1011
ARCH_SET_CPUID = 0x1012

RSEQ_CPU_ID_OFFSET = 4  # struct rseq: u32 cpu_id_start, u32 cpu_id, ...
RLIMIT_COUNT = 16


def sys_exit_group(ctx: SyscallContext, status: Int) -> int:
    raise ProcessExit(status & 0xFF)


def sys_getpid(ctx: SyscallContext) -> int:
    return ctx.proc.pid


def sys_getppid(ctx: SyscallContext) -> int:
    return ctx.proc.ppid









def sys_umask(ctx: SyscallContext, mask: UInt) -> int:
    old, ctx.proc.umask = ctx.proc.umask, mask & 0o777
    return old


def sys_arch_prctl(ctx: SyscallContext, code: Int, addr: ULong) -> int:
    if code == ARCH_SET_FS:
        ctx.cpu.set_fs_base(addr)
    elif code == ARCH_SET_GS:
        ctx.cpu.set_gs_base(addr)
    elif code == ARCH_GET_FS:
        ctx.mem.write_u64(addr, ctx.cpu.fs_base())
    elif code == ARCH_GET_GS:
        ctx.mem.write_u64(addr, ctx.cpu.gs_base())
    else:
        raise SyscallError(Errno.EINVAL)
    return 0


def sys_rseq(ctx: SyscallContext, rseq: Ptr, rseq_len: UInt, flags: Int, sig: UInt) -> int:
    """Registration only: the area reports CPU 0, the one emulated core. No abort is ever
    delivered: glibc registers an area but runs no restartable sequence of its own."""
    if flags & ~1 or rseq_len < 32 or rseq % 32:
        raise SyscallError(Errno.EINVAL)
    if flags & 1:  # RSEQ_FLAG_UNREGISTER
        return 0
    ctx.mem.write(rseq, struct.pack("<II", 0, 0))
    return 0


def _rlimit_resource(resource: int) -> int:
    if not 0 <= resource < RLIMIT_COUNT:
        raise SyscallError(Errno.EINVAL)
    return resource


def sys_prlimit64(ctx: SyscallContext, pid: Int, resource: UInt, new_limit: Ptr,
                  old_limit: Ptr) -> int:
    if pid not in (0, ctx.proc.pid):
        raise SyscallError(Errno.ESRCH)
    resource = _rlimit_resource(resource)
    current = ctx.proc.rlimits[resource]
    if new_limit:
        soft, hard = ctx.mem.read_struct("<QQ", new_limit)
        if soft > hard or hard > current[1] and ctx.proc.euid != 0:
            raise SyscallError(Errno.EINVAL if soft > hard else Errno.EPERM)
    if old_limit:
        ctx.mem.write_struct("<QQ", old_limit, *current)
    if new_limit:
        ctx.proc.rlimits[resource] = (soft, hard)
        if resource == RLIMIT_NOFILE:
            ctx.fds.limit = min(soft, FD_LIMIT_CAP)
    return 0


def sys_getrlimit(ctx: SyscallContext, resource: UInt, rlim: Ptr) -> int:
    return sys_prlimit64(ctx, 0, resource, 0, rlim)


def sys_setrlimit(ctx: SyscallContext, resource: UInt, rlim: Ptr) -> int:
    return sys_prlimit64(ctx, 0, resource, rlim, 0)


def signal_self(ctx: SyscallContext, sig: int) -> int:
    """The kernel sends the calling thread `sig` (SIGPIPE for a write to a broken pipe); it
    is delivered, or kills the process, before the call returns to the guest."""
    if not 0 <= sig <= 64:
        raise SyscallError(Errno.EINVAL)
    if sig:
        ctx.signals.send_thread(ctx.threads.current,
                                SigInfo(sig, SI_USER, pid=ctx.proc.pid, uid=ctx.proc.uid))
    return 0


__all__ = ["RLIM_INFINITY"]


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG = 1, 2
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
TASK_COMM_LEN = 16
PRCTL_GETTER = {PR_SET_PDEATHSIG: PR_GET_PDEATHSIG, PR_SET_DUMPABLE: PR_GET_DUMPABLE,
                PR_SET_NO_NEW_PRIVS: PR_GET_NO_NEW_PRIVS}


def sys_prctl(ctx: SyscallContext, option: Int, arg2: ULong, arg3: ULong, arg4: ULong,
              arg5: ULong) -> int:
    """The process attributes a single process can meaningfully have; anything else is
    EINVAL, as Linux answers an option it does not know."""
    settings = ctx.proc.prctl
    if option == PR_SET_NAME:
        settings[PR_GET_NAME] = ctx.mem.read_cstr(arg2, TASK_COMM_LEN - 1)
        return 0
    if option == PR_GET_NAME:
        name = settings.get(PR_GET_NAME, ctx.proc.comm)
        ctx.mem.write(arg2, bytes(name).ljust(TASK_COMM_LEN, b"\0"))
        return 0
    if option in PRCTL_GETTER:
        if option == PR_SET_PDEATHSIG and not 0 <= arg2 <= 64:
            raise SyscallError(Errno.EINVAL)
        if option == PR_SET_DUMPABLE and arg2 not in (0, 1):
            raise SyscallError(Errno.EINVAL)
        if option == PR_SET_NO_NEW_PRIVS and arg2 != 1:
            raise SyscallError(Errno.EINVAL)
        settings[PRCTL_GETTER[option]] = arg2
        return 0
    if option == PR_GET_PDEATHSIG:
        ctx.mem.write_u32(arg2, int(settings.get(PR_GET_PDEATHSIG, 0)))
        return 0
    if option == PR_GET_DUMPABLE:
        return int(settings.get(PR_GET_DUMPABLE, 1))
    if option == PR_GET_NO_NEW_PRIVS:
        return int(settings.get(PR_GET_NO_NEW_PRIVS, 0))
    raise SyscallError(Errno.EINVAL)
