"""futex(2): waits and wakes on 32-bit words of guest memory (kernel/futex/).

The waiters live in the processor's futex table (processor/futexes.py); this module checks
and updates the words and turns timeouts into deadlines. A wait blocks the calling thread
only (the scheduler runs the others); one that nothing can ever end (the only thread
waiting, no timeout) is reported as a deadlock.
"""

from __future__ import annotations

import time

from legorun.processor.futexes import (
    FUTEX_BITSET_MATCH_ANY,
    FUTEX_OWNER_DIED,
    FUTEX_TID_MASK,
    FUTEX_WAITERS,
    FutexWaiter,
    SharedFutexWaiter,
)
from legorun.processor.wait import block
from syscalls.args import Int, Ptr, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.time import clock_ns, read_timespec

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_LOCK_PI2 = 13
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1


def sys_futex(ctx: SyscallContext, uaddr: Ptr, op: Int, val: UInt, timeout: Ptr, uaddr2: Ptr,
              val3: UInt) -> int:
    cmd = op & FUTEX_CMD_MASK
    if uaddr % 4:
        raise SyscallError(Errno.EINVAL)
    val2 = timeout & 0xFFFFFFFF  # REQUEUE and WAKE_OP pass a count in the timeout slot
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = FUTEX_BITSET_MATCH_ANY if cmd == FUTEX_WAIT else val3
        if bitset == 0:
            raise SyscallError(Errno.EINVAL)
        deadline = _deadline(ctx, timeout, relative=cmd == FUTEX_WAIT,
                             realtime=bool(op & FUTEX_CLOCK_REALTIME))
        if ctx.mem.read_u32(uaddr) != val:
            raise SyscallError(Errno.EAGAIN)
        shared = ctx.vm.shared.futex_word(uaddr) if ctx.vm.shared else None
        if shared is not None:
            return _wait(ctx, SharedFutexWaiter(ctx.threads.current, uaddr, bitset, deadline,
                                                shared, val))
        return _wait(ctx, FutexWaiter(ctx.threads.current, uaddr, bitset, deadline))
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = FUTEX_BITSET_MATCH_ANY if cmd == FUTEX_WAKE else val3
        if bitset == 0:
            raise SyscallError(Errno.EINVAL)
        ctx.mem.read_u32(uaddr)  # EFAULT for a bad address, as Linux checks the word
        _wake_other_processes(ctx, uaddr)
        return ctx.futexes.wake(uaddr, val, bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if uaddr2 % 4 or val > 0x7FFFFFFF or val2 > 0x7FFFFFFF:
            raise SyscallError(Errno.EINVAL)
        if cmd == FUTEX_CMP_REQUEUE and ctx.mem.read_u32(uaddr) != val3:
            raise SyscallError(Errno.EAGAIN)
        _wake_other_processes(ctx, uaddr)  # their waiters cannot move: they wake instead
        return ctx.futexes.requeue(uaddr, val, uaddr2, val2)
    if cmd == FUTEX_WAKE_OP:
        if uaddr2 % 4:
            raise SyscallError(Errno.EINVAL)
        old, condition = _wake_op_update(ctx, uaddr2, val3)
        _wake_other_processes(ctx, uaddr)
        woken = ctx.futexes.wake(uaddr, val)
        if condition(old):
            _wake_other_processes(ctx, uaddr2)
            woken += ctx.futexes.wake(uaddr2, val2)
        return woken
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI):
        # LOCK_PI's timeout is absolute on CLOCK_REALTIME, LOCK_PI2's on the op's clock.
        realtime = cmd == FUTEX_LOCK_PI or bool(op & FUTEX_CLOCK_REALTIME)
        return _lock_pi(ctx, uaddr, cmd == FUTEX_TRYLOCK_PI,
                        _deadline(ctx, timeout, relative=False, realtime=realtime))
    if cmd == FUTEX_UNLOCK_PI:
        return _unlock_pi(ctx, uaddr)
    raise SyscallError(Errno.ENOSYS)


def _deadline(ctx: SyscallContext, timeout: int, relative: bool, realtime: bool) -> int | None:
    """A futex timeout as a CLOCK_MONOTONIC deadline (ns); None without one."""
    if not timeout:
        return None
    value = read_timespec(ctx, timeout)
    now = time.monotonic_ns()
    if relative:
        return now + value
    clock = CLOCK_REALTIME if realtime else CLOCK_MONOTONIC
    return now + (value - clock_ns(clock))


def _wake_other_processes(ctx: SyscallContext, uaddr: int) -> None:
    """A wake of a word in shared memory also reaches the waiters of other processes
    (SharedFutexWaiter); the count returned is of this process's waiters only."""
    shared = ctx.vm.shared.futex_word(uaddr) if ctx.vm.shared else None
    if shared is not None:
        shared.note_wake()


def _wait(ctx: SyscallContext, waiter: FutexWaiter) -> int:
    ctx.futexes.enqueue(waiter)
    try:
        block(waiter)
    finally:
        ctx.futexes.dequeue(waiter)
    if waiter.satisfied():
        return 0
    raise SyscallError(Errno.ETIMEDOUT)


# FUTEX_WAKE_OP's operations on the second word (set, add, or, andn, xor) and comparisons
# of its old value (eq, ne, lt, le, gt, ge).
WAKE_OPS = (
    lambda old, arg: arg, lambda old, arg: old + arg, lambda old, arg: old | arg,
    lambda old, arg: old & ~arg, lambda old, arg: old ^ arg,
)
WAKE_CMPS = (
    lambda old, arg: old == arg, lambda old, arg: old != arg, lambda old, arg: old < arg,
    lambda old, arg: old <= arg, lambda old, arg: old > arg, lambda old, arg: old >= arg,
)
FUTEX_OP_OPARG_SHIFT = 8


def _sign12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


def _wake_op_update(ctx: SyscallContext, uaddr2: int, encoded: int):  # type: ignore[no-untyped-def]
    """The atomic update of *uaddr2 that FUTEX_WAKE_OP makes: its old value and the test
    that decides the second wake."""
    op, cmp = (encoded >> 28) & 15, (encoded >> 24) & 15
    oparg, cmparg = _sign12((encoded >> 12) & 0xFFF), _sign12(encoded & 0xFFF)
    if op & FUTEX_OP_OPARG_SHIFT:
        op &= ~FUTEX_OP_OPARG_SHIFT
        if not 0 <= oparg <= 31:
            raise SyscallError(Errno.EINVAL)
        oparg = 1 << oparg
    if op >= len(WAKE_OPS) or cmp >= len(WAKE_CMPS):
        raise SyscallError(Errno.ENOSYS)
    old = ctx.mem.read_u32(uaddr2)
    ctx.mem.write_u32(uaddr2, WAKE_OPS[op](old, oparg) & 0xFFFFFFFF)
    signed_old = old - (1 << 32) if old & 0x80000000 else old
    return signed_old, lambda value: WAKE_CMPS[cmp](value, cmparg)


def _lock_pi(ctx: SyscallContext, uaddr: int, trylock: bool, deadline: int | None) -> int:
    thread = ctx.threads.current
    word = ctx.mem.read_u32(uaddr)
    owner = word & FUTEX_TID_MASK
    if owner == 0 or (word & FUTEX_OWNER_DIED and ctx.threads.get(owner) is None):
        waiters = FUTEX_WAITERS if ctx.futexes.has_waiters(uaddr) else 0
        ctx.mem.write_u32(uaddr, thread.tid | waiters | word & FUTEX_OWNER_DIED)
        return 0
    if owner == thread.tid:
        raise SyscallError(Errno.EDEADLK)
    if ctx.threads.get(owner) is None:
        raise SyscallError(Errno.ESRCH)  # the owner is no thread of this process
    if trylock:
        raise SyscallError(Errno.EAGAIN)
    ctx.mem.write_u32(uaddr, word | FUTEX_WAITERS)
    return _wait(ctx, FutexWaiter(thread, uaddr, FUTEX_BITSET_MATCH_ANY, deadline, pi=True))


def _unlock_pi(ctx: SyscallContext, uaddr: int) -> int:
    word = ctx.mem.read_u32(uaddr)
    if word & FUTEX_TID_MASK != ctx.threads.current.tid:
        raise SyscallError(Errno.EPERM)
    if not ctx.futexes.hand_over(uaddr, lambda value: ctx.mem.write_u32(uaddr, value)):
        ctx.mem.write_u32(uaddr, 0)
    return 0
