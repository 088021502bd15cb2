"""Scheduling policy and priority: sched_setparam, sched_getparam, sched_setscheduler,
sched_getscheduler, sched_get_priority_max, sched_get_priority_min, sched_rr_get_interval,
sched_setattr, sched_getattr, getpriority, setpriority, ioprio_set and ioprio_get. See
sched(7), sched_setscheduler(2), sched_setparam(2), sched_get_priority_max(2),
sched_rr_get_interval(2), sched_setattr(2), getpriority(2) and ioprio_set(2).

The emulated core runs on the processor's host process, whose pid the guest has, so the
guest's scheduling attributes are that host process's: reading and changing them acts on it,
and the host kernel checks policies, priorities and privileges as Linux does. No other
process exists for the guest: any other pid is ESRCH.
"""

from __future__ import annotations

import ctypes
import os

from legorun.managers.vma import PAGE_SIZE
from legorun.processor.files import host_call
from legorun.processor.hostlib import checked, libc
from syscalls.args import Int, Ptr, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
NICE_TO_PRIO = 20  # the raw syscall returns 20 - nice, so that it is never negative


def _self(ctx: SyscallContext, pid: int) -> None:
    """Check that `pid` names the guest (0 or its pid), as find_process_by_pid does."""
    if pid < 0:
        raise SyscallError(Errno.EINVAL)
    if pid not in (0, ctx.proc.pid):
        raise SyscallError(Errno.ESRCH)


def sys_sched_getparam(ctx: SyscallContext, pid: Int, param: Ptr) -> int:
    if not param:
        raise SyscallError(Errno.EINVAL)
    _self(ctx, pid)
    ctx.mem.write_u32(param, host_call(lambda: os.sched_getparam(0).sched_priority))
    return 0


def sys_sched_setparam(ctx: SyscallContext, pid: Int, param: Ptr) -> int:
    if not param or pid < 0:
        raise SyscallError(Errno.EINVAL)
    priority = int.from_bytes(ctx.mem.read(param, 4), "little", signed=True)
    _self(ctx, pid)
    host_call(lambda: os.sched_setparam(0, os.sched_param(priority)))
    return 0


def sys_sched_getscheduler(ctx: SyscallContext, pid: Int) -> int:
    _self(ctx, pid)
    return host_call(lambda: os.sched_getscheduler(0))


def sys_sched_setscheduler(ctx: SyscallContext, pid: Int, policy: Int, param: Ptr) -> int:
    if not param or pid < 0:
        raise SyscallError(Errno.EINVAL)
    priority = int.from_bytes(ctx.mem.read(param, 4), "little", signed=True)
    _self(ctx, pid)
    host_call(lambda: os.sched_setscheduler(0, policy, os.sched_param(priority)))
    return 0


def sys_sched_get_priority_max(ctx: SyscallContext, policy: Int) -> int:
    return host_call(lambda: os.sched_get_priority_max(policy))


def sys_sched_get_priority_min(ctx: SyscallContext, policy: Int) -> int:
    return host_call(lambda: os.sched_get_priority_min(policy))


def sys_sched_rr_get_interval(ctx: SyscallContext, pid: Int, tp: Ptr) -> int:
    _self(ctx, pid)
    interval_ns = round(host_call(lambda: os.sched_rr_get_interval(0)) * 1e9)
    ctx.mem.write_struct("<qq", tp, interval_ns // 10**9, interval_ns % 10**9)
    return 0


def _who(ctx: SyscallContext, which: int, who: int,
         kinds: tuple[int, int, int] = (PRIO_PROCESS, PRIO_PGRP, PRIO_USER)) -> None:
    """Check that (which, who) names the guest: itself, its process group (its pid) or its
    user, as `kinds` number them; the guest's world holds no other process."""
    process, group, user = kinds
    own = {process: ctx.proc.pid, group: ctx.proc.pid, user: ctx.proc.uid}
    if which not in own:
        raise SyscallError(Errno.EINVAL)
    if who not in (0, own[which]):
        raise SyscallError(Errno.ESRCH)


def sys_getpriority(ctx: SyscallContext, which: Int, who: Int) -> int:
    _who(ctx, which, who)
    return NICE_TO_PRIO - host_call(lambda: os.getpriority(os.PRIO_PROCESS, 0))


def sys_setpriority(ctx: SyscallContext, which: Int, who: Int, prio: Int) -> int:
    _who(ctx, which, who)
    host_call(lambda: os.setpriority(os.PRIO_PROCESS, 0, prio))
    return 0


# sched_getattr(2) and sched_setattr(2): struct sched_attr as this kernel ABI knows it.
SYS_SCHED_SETATTR, SYS_SCHED_GETATTR = 314, 315
SCHED_ATTR_SIZE_VER0 = 48
SCHED_ATTR_SIZE = 56  # VER1: with the utilization clamps


def sys_sched_getattr(ctx: SyscallContext, pid: Int, attr: Ptr, size: UInt, flags: UInt) -> int:
    if not attr or size < SCHED_ATTR_SIZE_VER0 or flags:
        raise SyscallError(Errno.EINVAL)
    _self(ctx, pid)
    buffer = ctypes.create_string_buffer(SCHED_ATTR_SIZE)
    host_call(lambda: checked(libc().syscall(SYS_SCHED_GETATTR, 0, buffer, SCHED_ATTR_SIZE, 0)))
    length = min(size, SCHED_ATTR_SIZE)
    # As copy_struct_to_user: the fields this kernel knows, then zeros to the caller's size.
    ctx.mem.write(attr, length.to_bytes(4, "little") + buffer.raw[4:length]
                  + bytes(min(size, PAGE_SIZE) - length))
    return 0


def sys_sched_setattr(ctx: SyscallContext, pid: Int, attr: Ptr, flags: UInt) -> int:
    if not attr or pid < 0:
        raise SyscallError(Errno.EINVAL)
    size = ctx.mem.read_u32(attr) or SCHED_ATTR_SIZE_VER0
    if size < SCHED_ATTR_SIZE_VER0 or size > PAGE_SIZE:
        ctx.mem.write_u32(attr, SCHED_ATTR_SIZE)
        raise SyscallError(Errno.E2BIG)
    raw = ctx.mem.read(attr, size)
    if any(raw[SCHED_ATTR_SIZE:]):  # fields this kernel does not know, set
        ctx.mem.write_u32(attr, SCHED_ATTR_SIZE)
        raise SyscallError(Errno.E2BIG)
    _self(ctx, pid)
    known = min(size, SCHED_ATTR_SIZE)
    buffer = ctypes.create_string_buffer(known.to_bytes(4, "little") + raw[4:known], known)
    host_call(lambda: checked(libc().syscall(SYS_SCHED_SETATTR, 0, buffer, flags)))
    return 0


# ioprio_get(2) and ioprio_set(2): the I/O priority of the guest, its host process's.
SYS_IOPRIO_SET, SYS_IOPRIO_GET = 251, 252
IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3


IOPRIO_WHO = (IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER)


def sys_ioprio_get(ctx: SyscallContext, which: Int, who: Int) -> int:
    _who(ctx, which, who, IOPRIO_WHO)
    return host_call(lambda: checked(libc().syscall(SYS_IOPRIO_GET, IOPRIO_WHO_PROCESS, 0)))


def sys_ioprio_set(ctx: SyscallContext, which: Int, who: Int, ioprio: Int) -> int:
    _who(ctx, which, who, IOPRIO_WHO)
    return host_call(lambda: checked(libc().syscall(SYS_IOPRIO_SET, IOPRIO_WHO_PROCESS, 0,
                                                    ioprio)))
