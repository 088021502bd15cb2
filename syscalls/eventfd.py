"""Event counters: eventfd and eventfd2. See eventfd(2). The counter is a host eventfd owned
by the processor (processor/eventfd.py)."""

from __future__ import annotations

from legorun.processor.eventfd import EFD_CLOEXEC, make_eventfd
from syscalls.args import Int, UInt
from syscalls.context import SyscallContext


def sys_eventfd2(ctx: SyscallContext, initval: UInt, flags: Int) -> int:
    return ctx.fds.allocate_new(make_eventfd(initval, flags), bool(flags & EFD_CLOEXEC))


def sys_eventfd(ctx: SyscallContext, initval: UInt) -> int:
    return sys_eventfd2(ctx, initval, 0)
