"""Threads: the thread half of clone and clone3 (procs.py parses both and makes processes),
exit, gettid, set_tid_address, robust futex lists, yielding and CPU affinity
(kernel/fork.c, kernel/exit.c, kernel/futex/core.c, kernel/sched/).

A thread (CLONE_VM | CLONE_THREAD) is a new entry in the processor's thread group that
starts from the parent's registers after the syscall, with rax = 0, its own stack pointer
and TLS base.
"""

from __future__ import annotations

from unicorn.x86_const import UC_X86_REG_FS_BASE, UC_X86_REG_RAX, UC_X86_REG_RIP, UC_X86_REG_RSP

from legorun.processor.cpu import SYSCALL_INSN_SIZE
from legorun.processor.futexes import FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS
from legorun.processor.futexes import walk_robust_list
from legorun.processor.threads import Thread, ThreadExit
from legorun.cache.excache import GuestFault
from syscalls.args import Int, Ptr, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

CLONE_VM, CLONE_SIGHAND, CLONE_THREAD, CLONE_SETTLS = 0x100, 0x800, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
CSIGNAL = 0xFF
ROBUST_LIST_HEAD_SIZE = 24
EMULATED_CPUS = 1  # the processor has one core


def clone_thread(ctx: SyscallContext, flags: int, stack: int, parent_tid: int,
                 child_tid: int, tls: int) -> int:
    """clone (or clone3) with CLONE_THREAD: `flags` as clone takes them (the exit signal in
    CSIGNAL, which a thread may not have), `stack` the child's initial stack pointer."""
    if flags & CSIGNAL or not flags & CLONE_SIGHAND or not flags & CLONE_VM:
        raise SyscallError(Errno.EINVAL)  # copy_process's consistency rules
    parent = ctx.threads.current
    # Inside the syscall hook rip still points at the syscall instruction.
    context = ctx.cpu.save_context(None)
    context.reg_write(UC_X86_REG_RIP, ctx.cpu.pc + SYSCALL_INSN_SIZE)
    context.reg_write(UC_X86_REG_RAX, 0)
    if stack:
        context.reg_write(UC_X86_REG_RSP, stack)
    if flags & CLONE_SETTLS:
        context.reg_write(UC_X86_REG_FS_BASE, tls)
    child = ctx.threads.spawn(parent, context)
    try:
        if flags & CLONE_PARENT_SETTID:
            ctx.mem.write_u32(parent_tid, child.tid)
        if flags & CLONE_CHILD_SETTID:  # the same memory: the child's view is the parent's
            ctx.mem.write_u32(child_tid, child.tid)
    except GuestFault:
        ctx.threads.remove(child)
        raise
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    return child.tid


def sys_exit(ctx: SyscallContext, status: Int) -> int:
    """The calling thread ends (mm_release): its robust futexes are marked dead, its
    clear_child_tid word zeroed and woken (pthread_join waits on it)."""
    thread = ctx.threads.current
    release_robust_list(ctx, thread)
    if thread.clear_child_tid:
        try:
            ctx.mem.write_u32(thread.clear_child_tid, 0)
            ctx.futexes.wake(thread.clear_child_tid, 1)
        except GuestFault:
            pass
    raise ThreadExit(status & 0xFF)


def release_robust_list(ctx: SyscallContext, thread: Thread) -> None:
    """handle_futex_death for each lock the thread still holds."""
    head, _length = thread.robust_list
    if not head:
        return
    try:
        for word_addr in walk_robust_list(ctx.mem.read_u64, head):
            word = ctx.mem.read_u32(word_addr)
            if word & FUTEX_TID_MASK != thread.tid:
                continue
            ctx.mem.write_u32(word_addr, word & FUTEX_WAITERS | FUTEX_OWNER_DIED)
            if word & FUTEX_WAITERS:
                ctx.futexes.wake(word_addr, 1)
    except GuestFault:
        pass  # a broken list ends the walk, as the kernel gives up on a fault


def sys_gettid(ctx: SyscallContext) -> int:
    return ctx.threads.current.tid


def sys_set_tid_address(ctx: SyscallContext, tidptr: Ptr) -> int:
    thread = ctx.threads.current
    thread.clear_child_tid = tidptr
    return thread.tid


def sys_set_robust_list(ctx: SyscallContext, head: Ptr, len: ULong) -> int:
    if len != ROBUST_LIST_HEAD_SIZE:
        raise SyscallError(Errno.EINVAL)
    ctx.threads.current.robust_list = (head, len)
    return 0


def sys_get_robust_list(ctx: SyscallContext, pid: Int, head_ptr: Ptr, len_ptr: Ptr) -> int:
    thread = _thread(ctx, pid)
    head, length = thread.robust_list
    ctx.mem.write_u64(head_ptr, head)
    ctx.mem.write_u64(len_ptr, length or ROBUST_LIST_HEAD_SIZE)
    return 0


def sys_sched_yield(ctx: SyscallContext) -> int:
    ctx.threads.current.yielding = True
    return 0


def _thread(ctx: SyscallContext, tid: int) -> Thread:
    """The thread a scheduling call names: 0 for the caller, else any thread's tid."""
    if tid < 0:
        raise SyscallError(Errno.EINVAL)
    thread = ctx.threads.current if tid == 0 else ctx.threads.get(tid)
    if thread is None:
        raise SyscallError(Errno.ESRCH)
    return thread


def sys_sched_getaffinity(ctx: SyscallContext, pid: Int, cpusetsize: UInt, mask: Ptr) -> int:
    _thread(ctx, pid)
    size = 8  # the kernel's cpumask: nr_cpu_ids bits rounded up to a long
    if cpusetsize < size or cpusetsize % 8:
        raise SyscallError(Errno.EINVAL)
    ctx.mem.write(mask, ((1 << EMULATED_CPUS) - 1).to_bytes(size, "little"))
    return size


def sys_sched_setaffinity(ctx: SyscallContext, pid: Int, cpusetsize: UInt, mask: Ptr) -> int:
    _thread(ctx, pid)
    requested = int.from_bytes(ctx.mem.read(mask, min(cpusetsize, 128)), "little")
    if not requested & ((1 << EMULATED_CPUS) - 1):
        raise SyscallError(Errno.EINVAL)
    return 0
