"""futex(2) for a process whose only thread is the caller.

With one thread nobody else can be waiting or waking: FUTEX_WAKE wakes no one, a wait whose
word no longer holds the expected value fails with EAGAIN, a wait with a timeout sleeps until
it expires (ETIMEDOUT), and a wait without one can never end, which is reported as the
deadlock it is rather than hanging legorun.
"""

from __future__ import annotations

from legorun.processor.wait import Deadlock
from syscalls.args import Int, Ptr, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.time import clock_ns, read_timespec, sleep_until

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
FUTEX_TID_MASK = 0x3FFFFFFF


def sys_futex(ctx: SyscallContext, uaddr: Ptr, op: Int, val: UInt, timeout: Ptr, uaddr2: Ptr,
              val3: UInt) -> int:
    cmd = op & FUTEX_CMD_MASK
    if uaddr % 4:
        raise SyscallError(Errno.EINVAL)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_REQUEUE):
        ctx.mem.read_u32(uaddr)  # EFAULT for a bad address, as Linux checks the word
        return 0
    if cmd == FUTEX_CMP_REQUEUE:
        if ctx.mem.read_u32(uaddr) != val3:
            raise SyscallError(Errno.EAGAIN)
        return 0
    if cmd == FUTEX_WAKE_OP:
        _wake_op_update(ctx, uaddr2, val3)
        return 0
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if cmd == FUTEX_WAIT_BITSET and val3 == 0:
            raise SyscallError(Errno.EINVAL)
        if ctx.mem.read_u32(uaddr) != val:
            raise SyscallError(Errno.EAGAIN)
        return _wait_alone(ctx, uaddr, op, cmd, timeout)
    if cmd == FUTEX_UNLOCK_PI:
        word = ctx.mem.read_u32(uaddr)
        if word & FUTEX_TID_MASK != ctx.proc.pid:
            raise SyscallError(Errno.EPERM)
        ctx.mem.write_u32(uaddr, 0)
        return 0
    if cmd in (FUTEX_LOCK_PI, FUTEX_TRYLOCK_PI):
        word = ctx.mem.read_u32(uaddr)
        if word & FUTEX_TID_MASK == 0:
            ctx.mem.write_u32(uaddr, ctx.proc.pid)
            return 0
        if word & FUTEX_TID_MASK == ctx.proc.pid:
            raise SyscallError(Errno.EDEADLK)
        raise SyscallError(Errno.ESRCH)  # the owner is not a thread of this process
    raise SyscallError(Errno.ENOSYS)


# FUTEX_WAKE_OP's operations on the second word: set, add, or, andn, xor.
WAKE_OPS = (
    lambda old, arg: arg, lambda old, arg: old + arg, lambda old, arg: old | arg,
    lambda old, arg: old & ~arg, lambda old, arg: old ^ arg,
)
FUTEX_OP_OPARG_SHIFT = 8


def _wake_op_update(ctx: SyscallContext, uaddr2: int, encoded: int) -> None:
    """The atomic update of *uaddr2 that FUTEX_WAKE_OP makes; the conditional second wake
    has nobody to wake."""
    op, oparg = (encoded >> 28) & 15, (encoded >> 12) & 0xFFF
    if op & FUTEX_OP_OPARG_SHIFT:
        op &= ~FUTEX_OP_OPARG_SHIFT
        if oparg > 31:
            raise SyscallError(Errno.EINVAL)
        oparg = 1 << oparg
    if op >= len(WAKE_OPS):
        raise SyscallError(Errno.ENOSYS)
    old = ctx.mem.read_u32(uaddr2)
    ctx.mem.write_u32(uaddr2, WAKE_OPS[op](old, oparg) & 0xFFFFFFFF)


def _wait_alone(ctx: SyscallContext, uaddr: int, op: int, cmd: int, timeout: int) -> int:
    if not timeout:
        raise Deadlock(f"deadlock: the guest's only thread waits forever on futex {uaddr:#x}")
    if cmd == FUTEX_WAIT:  # relative, on CLOCK_MONOTONIC
        clock = CLOCK_MONOTONIC
        deadline = clock_ns(clock) + read_timespec(ctx, timeout)
    else:  # FUTEX_WAIT_BITSET: absolute, on the clock the op names
        clock = CLOCK_REALTIME if op & FUTEX_CLOCK_REALTIME else CLOCK_MONOTONIC
        deadline = read_timespec(ctx, timeout)
    sleep_until(clock, deadline)
    raise SyscallError(Errno.ETIMEDOUT)
