"""Signals (kernel/signal.c, kernel/time/itimer.c): actions, per-thread masks, sending to
the process or one of its threads, waiting for signals, the alternate stack, rt_sigreturn
and the interval timers. Delivery itself is the processor's (processor/signals.py).
"""

from __future__ import annotations

import struct

from legorun.processor.process import SignalAction
from legorun.processor.sigframe import (
    SI_TKILL,
    SI_USER,
    SIGINFO_SIZE,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    AltStack,
    SigInfo,
)
from legorun.processor.signals import UNBLOCKABLE
from legorun.processor.threads import Thread
from legorun.processor.wait import SleepWait, Wait, block, monotonic_deadline
from syscalls.args import Int, Ptr, Size, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.time import read_timespec

SIGKILL, SIGSTOP = 9, 19
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGSET_SIZE = 8
KERNEL_SIGACTION = "<QQQQ"  # handler, flags, restorer, mask (struct kernel_sigaction)
ALL_SIGNALS = (1 << 64) - 1


def _signal_number(sig: int) -> int:
    if not 0 <= sig <= 64:
        raise SyscallError(Errno.EINVAL)
    return sig


def _read_sigset(ctx: SyscallContext, addr: int, size: int) -> int:
    if size != SIGSET_SIZE:
        raise SyscallError(Errno.EINVAL)
    return ctx.mem.read_u64(addr)


# ------------------------------------------------------------ actions and masks


def sys_rt_sigaction(ctx: SyscallContext, sig: Int, act: Ptr, oact: Ptr, sigsetsize: Size) -> int:
    if sigsetsize != SIGSET_SIZE or not 1 <= sig <= 64:
        raise SyscallError(Errno.EINVAL)
    if act and sig in (SIGKILL, SIGSTOP):
        raise SyscallError(Errno.EINVAL)
    new = None
    if act:
        handler, flags, restorer, mask = ctx.mem.read_struct(KERNEL_SIGACTION, act)
        new = SignalAction(handler, flags, restorer, mask & ~UNBLOCKABLE)
    old = ctx.signals.action(sig)
    if oact:
        ctx.mem.write(oact, struct.pack(KERNEL_SIGACTION, old.handler, old.flags, old.restorer,
                                        old.mask))
    if new is not None:
        ctx.signals.set_action(sig, new)
    return 0


def sys_rt_sigprocmask(ctx: SyscallContext, how: Int, set: Ptr, oset: Ptr, sigsetsize: Size) -> int:
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(Errno.EINVAL)
    thread = ctx.threads.current
    old = thread.sigmask
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
        thread.sigmask = mask & ~UNBLOCKABLE
        if thread.sigmask != old:
            ctx.signals.mask_changed(thread.sigmask ^ old)
    if oset:
        ctx.mem.write_u64(oset, old)
    return 0


def sys_rt_sigpending(ctx: SyscallContext, set: Ptr, sigsetsize: Size) -> int:
    if sigsetsize > SIGSET_SIZE:
        raise SyscallError(Errno.EINVAL)
    thread = ctx.threads.current
    pending = ctx.signals.pending_mask(thread) & thread.sigmask
    ctx.mem.write(set, pending.to_bytes(SIGSET_SIZE, "little")[:sigsetsize])
    return 0


# ------------------------------------------------------------ sending


def signal_process(ctx: SyscallContext, sig: int) -> int:
    """The guest sends its own process `sig` (kill(getpid(), sig), raise in one thread):
    any of its threads that does not block it takes it."""
    sig = _signal_number(sig)
    if sig:
        ctx.signals.send_process(_sent(ctx, sig, SI_USER))
    return 0


def sys_tgkill(ctx: SyscallContext, tgid: Int, tid: Int, sig: Int) -> int:
    if tgid <= 0 or tid <= 0:
        raise SyscallError(Errno.EINVAL)
    if tgid != ctx.proc.pid:
        raise SyscallError(Errno.ESRCH)
    return sys_tkill(ctx, tid, sig)


def sys_tkill(ctx: SyscallContext, tid: Int, sig: Int) -> int:
    sig = _signal_number(sig)
    if tid <= 0:
        raise SyscallError(Errno.EINVAL)
    thread = ctx.threads.get(tid)
    if thread is None:
        raise SyscallError(Errno.ESRCH)
    if sig:
        ctx.signals.send_thread(thread, _sent(ctx, sig, SI_TKILL))
    return 0


def _sent(ctx: SyscallContext, sig: int, code: int) -> SigInfo:
    return SigInfo(sig, code, pid=ctx.proc.pid, uid=ctx.proc.uid)


def _queued_info(ctx: SyscallContext, sig: int, uinfo: int, target_is_self: bool) -> SigInfo:
    raw = bytearray(ctx.mem.read(uinfo, SIGINFO_SIZE))
    code = struct.unpack_from("<i", raw, 8)[0]
    # Only the kernel may claim to be the kernel or kill(2), unless it is sent to oneself.
    if (code >= 0 or code == SI_TKILL) and not target_is_self:
        raise SyscallError(Errno.EPERM)
    struct.pack_into("<i", raw, 0, sig)
    return SigInfo(sig, code, raw=bytes(raw))


def sys_rt_sigqueueinfo(ctx: SyscallContext, tgid: Int, sig: Int, uinfo: Ptr) -> int:
    sig = _signal_number(sig)
    if tgid != ctx.proc.pid:
        raise SyscallError(Errno.ESRCH)
    info = _queued_info(ctx, sig, uinfo, True)
    if sig:
        ctx.signals.send_process(info)
    return 0


def sys_rt_tgsigqueueinfo(ctx: SyscallContext, tgid: Int, tid: Int, sig: Int,
                          uinfo: Ptr) -> int:
    sig = _signal_number(sig)
    thread = ctx.threads.get(tid)
    if tgid != ctx.proc.pid or thread is None:
        raise SyscallError(Errno.ESRCH)
    info = _queued_info(ctx, sig, uinfo, thread is ctx.threads.current)
    if sig:
        ctx.signals.send_thread(thread, info)
    return 0


# ------------------------------------------------------------ waiting for signals


def sys_pause(ctx: SyscallContext) -> int:
    block(SleepWait(None))  # only a signal ends it: EINTR
    raise SyscallError(Errno.EINTR)


def sys_rt_sigsuspend(ctx: SyscallContext, unewset: Ptr, sigsetsize: Size) -> int:
    mask = _read_sigset(ctx, unewset, sigsetsize)
    thread = ctx.threads.current
    # The handler runs with the temporary mask; the frame restores the old one after it.
    thread.temporary_mask, thread.sigmask = thread.sigmask, mask & ~UNBLOCKABLE
    block(SleepWait(None))
    raise SyscallError(Errno.EINTR)


class SignalSetWait(Wait):
    """Until a signal of a set is pending for the thread (sigtimedwait)."""

    def __init__(self, ctx: SyscallContext, thread: Thread, wanted: int,
                 deadline: int | None) -> None:
        self._signals = ctx.signals
        self._thread = thread
        self._wanted = wanted
        self.deadline = deadline

    def satisfied(self) -> bool:
        return bool(self._signals.pending_mask(self._thread) & self._wanted)

    def wakeable_from_outside(self) -> bool:
        return True  # another process may send one

    def describe(self) -> str:
        return "for a signal"


def sys_rt_sigtimedwait(ctx: SyscallContext, uthese: Ptr, uinfo: Ptr, uts: Ptr,
                        sigsetsize: Size) -> int:
    wanted = _read_sigset(ctx, uthese, sigsetsize) & ~UNBLOCKABLE
    timeout = read_timespec(ctx, uts) if uts else None
    thread = ctx.threads.current
    info = ctx.signals.take(thread, wanted)
    if info is None and timeout != 0:
        block(SignalSetWait(ctx, thread, wanted, monotonic_deadline(timeout)))
        info = ctx.signals.take(thread, wanted)
    if info is None:
        raise SyscallError(Errno.EAGAIN)
    if uinfo:
        ctx.mem.write(uinfo, info.pack())
    return info.signo


# ------------------------------------------------------------ the alternate stack, return


MINSIGSTKSZ = 2048
STACK_T = "<QIIQ"  # ss_sp, ss_flags, padding, ss_size


def sys_sigaltstack(ctx: SyscallContext, ss: Ptr, old_ss: Ptr) -> int:
    thread = ctx.threads.current
    current = thread.altstack
    on_it = not current.flags & SS_DISABLE and current.contains(ctx.cpu.sp())
    new = None
    if ss:
        sp, flags, _pad, size = ctx.mem.read_struct(STACK_T, ss)
        mode = flags & ~SS_AUTODISARM
        if mode not in (0, SS_ONSTACK, SS_DISABLE):
            raise SyscallError(Errno.EINVAL)
        if on_it:
            raise SyscallError(Errno.EPERM)
        if mode == SS_DISABLE:
            new = AltStack()
        elif size < MINSIGSTKSZ:
            raise SyscallError(Errno.ENOMEM)
        else:
            new = AltStack(sp, flags & SS_AUTODISARM, size)
    if old_ss:
        if current.flags & SS_DISABLE:
            flags = SS_DISABLE
        else:
            flags = (SS_ONSTACK if on_it else 0) | current.flags & SS_AUTODISARM
        ctx.mem.write_struct(STACK_T, old_ss, current.sp, flags, 0, current.size)
    if new is not None:
        thread.altstack = new
    return 0


def sys_rt_sigreturn(ctx: SyscallContext) -> int:
    """Read the frame now; the registers are restored once the CPU stopped (the value
    returned here is overwritten by the restored rax)."""
    ctx.signals.read_sigreturn(ctx.threads.current)
    return 0


# ------------------------------------------------------------ interval timers

ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
ITIMERVAL = "<qqqq"  # it_interval (tv_sec, tv_usec), it_value (tv_sec, tv_usec)


def _timeval_s(sec: int, usec: int) -> float:
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise SyscallError(Errno.EINVAL)
    return sec + usec / 1e6


def _timeval(seconds: float) -> tuple[int, int]:
    usec = round(seconds * 1e6)
    return usec // 1_000_000, usec % 1_000_000


def sys_setitimer(ctx: SyscallContext, which: Int, value: Ptr, ovalue: Ptr) -> int:
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise SyscallError(Errno.EINVAL)
    interval = initial = 0.0
    if value:
        i_sec, i_usec, v_sec, v_usec = ctx.mem.read_struct(ITIMERVAL, value)
        interval, initial = _timeval_s(i_sec, i_usec), _timeval_s(v_sec, v_usec)
    old_value, old_interval = ctx.signals.set_timer(which, initial, interval)
    if ovalue:
        ctx.mem.write_struct(ITIMERVAL, ovalue, *_timeval(old_interval), *_timeval(old_value))
    return 0


def sys_getitimer(ctx: SyscallContext, which: Int, value: Ptr) -> int:
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise SyscallError(Errno.EINVAL)
    remaining, interval = ctx.signals.host.get_timer(which)
    ctx.mem.write_struct(ITIMERVAL, value, *_timeval(interval), *_timeval(remaining))
    return 0


def sys_alarm(ctx: SyscallContext, seconds: UInt) -> int:
    old_value, _interval = ctx.signals.set_timer(ITIMER_REAL, float(seconds), 0.0)
    # alarm(2) rounds what was left to the nearest second, and never reports 0 for a
    # pending alarm.
    return max(1, int(old_value + 0.5)) if old_value > 0 else 0
