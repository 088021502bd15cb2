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


def sys_sigaltstack(ctx: SyscallContext, ss: Ptr, old_ss: Ptr) -> int:
    if old_ss:
        ctx.mem.write_struct("<QiiQ", old_ss, 0, 2, 0, 0)  # SS_DISABLE
    if ss:
        ctx.mem.read_struct("<QiiQ", ss)
    return 0
