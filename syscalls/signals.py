"""Signal bookkeeping (kernel/signal.c): actions and masks are recorded and reported back;
delivery of asynchronous signals is not modelled yet."""

from __future__ import annotations

import struct

from legorun.processor.process import SignalAction
from syscalls.args import Int, Ptr, Size
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

SIGKILL, SIGSTOP = 9, 19
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
KERNEL_SIGACTION = "<QQQQ"  # handler, flags, restorer, mask (struct kernel_sigaction)


def sys_rt_sigaction(ctx: SyscallContext, sig: Int, act: Ptr, oact: Ptr, sigsetsize: Size) -> int:
    if sigsetsize != 8 or not 1 <= sig <= 64:
        raise SyscallError(Errno.EINVAL)
    if act and sig in (SIGKILL, SIGSTOP):
        raise SyscallError(Errno.EINVAL)
    new = None
    if act:
        handler, flags, restorer, mask = ctx.mem.read_struct(KERNEL_SIGACTION, act)
        new = SignalAction(handler, flags, restorer, mask)
    old = ctx.proc.sigactions.get(sig, SignalAction())
    if oact:
        ctx.mem.write(oact, struct.pack(KERNEL_SIGACTION, old.handler, old.flags, old.restorer,
                                        old.mask))
    if new is not None:
        ctx.proc.sigactions[sig] = new
    return 0


def sys_rt_sigprocmask(ctx: SyscallContext, how: Int, set: Ptr, oset: Ptr, sigsetsize: Size) -> int:
    if sigsetsize != 8:
        raise SyscallError(Errno.EINVAL)
    old = ctx.proc.sigmask
    if set:
        value = ctx.mem.read_u64(set)
        if how == SIG_BLOCK:
            mask = old | value
        elif how == SIG_UNBLOCK:
            mask = old & ~value
        elif how == SIG_SETMASK:
            mask = value
        else:
            raise SyscallError(Errno.EINVAL)
        ctx.proc.sigmask = mask & ~UNBLOCKABLE
    if oset:
        ctx.mem.write_u64(oset, old)
    return 0


SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
STACK_T = "<QIIQ"  # ss_sp, ss_flags, padding, ss_size


def sys_sigaltstack(ctx: SyscallContext, ss: Ptr, old_ss: Ptr) -> int:
    new = None
    if ss:
        sp, flags, _pad, size = ctx.mem.read_struct(STACK_T, ss)
        if flags & ~(SS_DISABLE | SS_AUTODISARM):
            raise SyscallError(Errno.EINVAL)
        if flags & SS_DISABLE:
            new = (0, SS_DISABLE, 0)
        elif size < MINSIGSTKSZ:
            raise SyscallError(Errno.ENOMEM)
        else:
            new = (sp, flags, size)
    if old_ss:
        sp, flags, size = ctx.proc.altstack
        ctx.mem.write_struct(STACK_T, old_ss, sp, flags, 0, size)
    if new is not None:
        ctx.proc.altstack = new
    return 0
