"""Processes: fork, vfork, clone (of a process), execve, wait4, waitid, process groups and
sessions, kill (kernel/fork.c, fs/exec.c, kernel/exit.c, kernel/sys.c, kernel/signal.c).

Each emulated process is a host legorun process and the guest's pid is its host pid (see
processor/fork.py), so the calls that name other processes act on the host: wait4 and
waitid wait for the child legorun processes, which end exactly as their guests did;
setpgid, setsid and the getters work on the host's process groups and sessions; kill sends
the host signal. Only what concerns this process's own image goes through the processor:
fork and execve.
"""

from __future__ import annotations

import ctypes
import os
import signal
import stat as stat_module
import struct

from unicorn.x86_const import UC_X86_REG_RSP

from legorun.processor import procfs
from legorun.processor.children import wait_for_child
from legorun.processor.files import host_call
from legorun.processor.hostlib import checked, libc
from legorun.rpc.messages import AccessRequest
from syscalls.args import AT_FDCWD, CStr, Fd, Int, Ptr, Size, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, call_storage, fd_path, read_path, \
    resolve, stat_path
from syscalls.signals import signal_process
from syscalls.threads import clone_thread

# clone(2) flags (include/uapi/linux/sched.h).
CSIGNAL = 0x000000FF
CLONE_VM = 0x00000100
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_THREAD = 0x00010000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_DETACHED = 0x00400000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
# What a child in its own host process can honour. CLONE_VM is one of them only with
# CLONE_VFORK (posix_spawn): the parent is suspended until the child execs or exits, so a
# copy of the memory behaves as the shared one, except for what the child writes into it.
PROCESS_CLONE_FLAGS = (
    CSIGNAL | CLONE_VM | CLONE_PTRACE | CLONE_VFORK | CLONE_SYSVSEM | CLONE_SETTLS
    | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_DETACHED | CLONE_UNTRACED
    | CLONE_CHILD_SETTID
)
CLONE_ARGS = "<QQQQQQQQ"  # struct clone_args, first version: up to tls (64 bytes)
CLONE_ARGS_SIZE_VER0 = 64

MAX_ARG_STRLEN = 32 * 4096  # the longest single argument or environment string
RLIMIT_STACK = 3
X_OK = 1

# waitid(2) id types; the fields of siginfo_t the kernel writes for it.
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3  # P_PGID with id 0: the caller's group
SIGINFO_SIZE = 128
SIGINFO_HEAD = slice(0, 12)  # si_signo, si_errno, si_code
SIGINFO_CHILD = slice(16, 28)  # si_pid, si_uid, si_status
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3  # si_code of a child that ended
WNOHANG, WEXITED, WNOWAIT = 0x00000001, 0x00000004, 0x01000000
RUSAGE_SIZE = 144
NR_WAIT4, NR_WAITID = 61, 247


# ---------------------------------------------------------------- fork, vfork, clone


def sys_fork(ctx: SyscallContext) -> int:
    return ctx.process.fork(vfork=False)


def sys_vfork(ctx: SyscallContext) -> int:
    return ctx.process.fork(vfork=True)


def sys_clone(ctx: SyscallContext, flags: ULong, stack: Ptr, parent_tid: Ptr, child_tid: Ptr,
              tls: ULong) -> int:
    return clone_process(ctx, flags, stack, parent_tid, child_tid, tls)


def sys_clone3(ctx: SyscallContext, cl_args: Ptr, size: Size) -> int:
    if size < CLONE_ARGS_SIZE_VER0:
        raise SyscallError(Errno.EINVAL)
    if size > CLONE_ARGS_SIZE_VER0 and any(ctx.mem.read(cl_args + CLONE_ARGS_SIZE_VER0,
                                                        size - CLONE_ARGS_SIZE_VER0)):
        # Later fields (set_tid, cgroup) ask for what a process here cannot have.
        raise SyscallError(Errno.EINVAL)
    flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = \
        ctx.mem.read_struct(CLONE_ARGS, cl_args)
    if flags & CSIGNAL or exit_signal > CSIGNAL or bool(stack) != bool(stack_size):
        raise SyscallError(Errno.EINVAL)
    return clone_process(ctx, flags | exit_signal, stack + stack_size if stack else 0,
                         parent_tid, child_tid, tls)


def clone_process(ctx: SyscallContext, flags: int, stack: int, parent_tid: int,
                  child_tid: int, tls: int) -> int:
    """clone: a thread of this process (CLONE_THREAD, see threads.py), or a new process: a
    fork (vfork with CLONE_VFORK) that then applies the flags' requests in the parent and
    in the child."""
    if flags & CLONE_THREAD:
        return clone_thread(ctx, flags, stack, parent_tid, child_tid, tls)
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        ctx.warn("clone: a process sharing memory (CLONE_VM without CLONE_VFORK or "
                 "CLONE_THREAD) is not supported: returning ENOSYS")
        raise SyscallError(Errno.ENOSYS)
    if flags & ~PROCESS_CLONE_FLAGS:
        ctx.warn(f"clone: flags {flags & ~PROCESS_CLONE_FLAGS:#x} need state shared with the "
                 "parent or namespaces, which separate processes do not have: returning EINVAL")
        raise SyscallError(Errno.EINVAL)
    child = ctx.process.fork(vfork=bool(flags & CLONE_VFORK))
    if child:
        if flags & CLONE_PARENT_SETTID:
            ctx.mem.write_u32(parent_tid, child)
        return child
    if stack:
        ctx.cpu.uc.reg_write(UC_X86_REG_RSP, stack)
    if flags & CLONE_SETTLS:
        ctx.cpu.set_fs_base(tls)
    if flags & CLONE_CHILD_SETTID:
        ctx.mem.write_u32(child_tid, ctx.threads.current.tid)
    if flags & CLONE_CHILD_CLEARTID:
        ctx.threads.current.clear_child_tid = child_tid
    return 0


# ---------------------------------------------------------------- execve


def sys_execve(ctx: SyscallContext, filename: CStr, argv: Ptr, envp: Ptr) -> int:
    return execute_at(ctx, AT_FDCWD, filename, argv, envp, 0)


def sys_execveat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, argv: Ptr, envp: Ptr,
                 flags: Int) -> int:
    return execute_at(ctx, dirfd, pathname, argv, envp, flags)


def execute_at(ctx: SyscallContext, dirfd: int, pathname: int, argv: int, envp: int,
               flags: int) -> int:
    """Check the file as do_open_execat() does, then have the processor replace the
    program; returns only with an errno, to the old program."""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        raise SyscallError(Errno.EINVAL)
    name = read_path(ctx, pathname, empty_ok=bool(flags & AT_EMPTY_PATH))
    path = resolve(ctx, dirfd, name) if name else fd_path(ctx, dirfd)
    # AT_EXECFN: the name as given; relative to a directory fd, Linux shows /dev/fd/N/...
    if name.startswith("/") or dirfd == AT_FDCWD:
        execfn = os.fsencode(name)
    else:
        execfn = os.fsencode(f"/dev/fd/{dirfd}" + (f"/{name}" if name else ""))
    arguments = _string_array(ctx, argv)
    environment = _string_array(ctx, envp)
    # bprm_stack_limits(): strings and pointers may take a quarter of the stack limit.
    strings = [*arguments, *environment]
    if sum(len(text) + 1 + 8 for text in strings) > ctx.proc.rlimits[RLIMIT_STACK][0] // 4:
        raise SyscallError(Errno.E2BIG)
    if flags & AT_SYMLINK_NOFOLLOW and stat_module.S_ISLNK(stat_path(ctx, path, False).mode):
        raise SyscallError(Errno.ELOOP)
    target = procfs.follow_links(ctx, path)  # /proc/self/exe is the running program
    mode = stat_path(ctx, target).mode
    if not stat_module.S_ISREG(mode):
        raise SyscallError(Errno.EACCES)
    call_storage(ctx, AccessRequest(target, X_OK))
    ctx.process.execve(target, arguments, environment, execfn)


def _string_array(ctx: SyscallContext, addr: int) -> list[bytes]:
    """A NULL-terminated array of strings (argv, envp); a NULL array is an empty one."""
    strings: list[bytes] = []
    if not addr:
        return strings
    while pointer := ctx.mem.read_u64(addr + 8 * len(strings)):
        text = ctx.mem.read_cstr(pointer, MAX_ARG_STRLEN)
        if len(text) >= MAX_ARG_STRLEN:
            raise SyscallError(Errno.E2BIG)
        strings.append(text)
    return strings


# ---------------------------------------------------------------- wait4, waitid


def _wait_syscall(number: int, *args: object) -> int:
    """A host wait call with raw arguments, so that its semantics are the kernel's own; a
    wait the host interrupts is reported to the guest as interrupted too."""
    function = libc().syscall
    function.restype = ctypes.c_long
    return host_call(lambda: checked(function(ctypes.c_long(number), *args)))


def sys_wait4(ctx: SyscallContext, pid: Int, wstatus: Ptr, options: Int, rusage: Ptr) -> int:
    if not options & WNOHANG:
        # wait4's pid as waitid names the same children; wait4 always waits for an exit.
        idtype, id = (P_ALL, 0) if pid == -1 else (P_PID, pid) if pid > 0 else (P_PGID, -pid)
        wait_for_child(ctx.process.children, idtype, id, options | WEXITED)
    status = ctypes.c_int()
    usage = ctypes.create_string_buffer(RUSAGE_SIZE)
    child = _wait_syscall(NR_WAIT4, ctypes.c_int(pid), ctypes.byref(status),
                          ctypes.c_int(options), usage if rusage else None)
    if child > 0:
        if os.WIFEXITED(status.value) or os.WIFSIGNALED(status.value):
            ctx.process.children.reaped(child)
        if wstatus:
            ctx.mem.write_u32(wstatus, status.value & 0xFFFFFFFF)
        if rusage:
            ctx.mem.write(rusage, usage.raw)
    return child


def sys_waitid(ctx: SyscallContext, idtype: Int, id: Int, infop: Ptr, options: Int,
               rusage: Ptr) -> int:
    if idtype == P_PIDFD:
        raise SyscallError(Errno.EBADF)  # there are no pidfds on this processor
    if not options & WNOHANG:
        wait_for_child(ctx.process.children, idtype, id, options)
    info = ctypes.create_string_buffer(SIGINFO_SIZE)
    usage = ctypes.create_string_buffer(RUSAGE_SIZE)
    # The child is needed even when the caller passed no siginfo: to know whom it reaped.
    _wait_syscall(NR_WAITID, ctypes.c_int(idtype), ctypes.c_int(id), info,
                  ctypes.c_int(options), usage if rusage else None)
    (code,), (child,) = struct.unpack_from("<i", info, 8), struct.unpack_from("<i", info, 16)
    if child and code in (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and not options & WNOWAIT:
        ctx.process.children.reaped(child)
    if infop:
        ctx.mem.write(infop, info.raw[SIGINFO_HEAD])
        ctx.mem.write(infop + SIGINFO_CHILD.start, info.raw[SIGINFO_CHILD])
    if rusage:
        ctx.mem.write(rusage, usage.raw)
    return 0


# ---------------------------------------------------------------- process groups, sessions


def sys_setpgid(ctx: SyscallContext, pid: Int, pgid: Int) -> int:
    if pgid < 0:
        raise SyscallError(Errno.EINVAL)
    host_call(lambda: os.setpgid(pid, pgid))
    return 0


def sys_getpgid(ctx: SyscallContext, pid: Int) -> int:
    return host_call(lambda: os.getpgid(pid))


def sys_getpgrp(ctx: SyscallContext) -> int:
    return os.getpgrp()


def sys_setsid(ctx: SyscallContext) -> int:
    host_call(os.setsid)
    return os.getpid()  # the new session's id


def sys_getsid(ctx: SyscallContext, pid: Int) -> int:
    return host_call(lambda: os.getsid(pid))


# ---------------------------------------------------------------- kill


def sys_kill(ctx: SyscallContext, pid: Int, sig: Int) -> int:
    if not 0 <= sig <= 64:
        raise SyscallError(Errno.EINVAL)
    if pid == ctx.proc.pid:
        return signal_process(ctx, sig)
    if pid > 0 or pid == -1:
        # -1: every process this one may signal but itself, as the host does it.
        host_call(lambda: os.kill(pid, sig))
        return 0
    group = os.getpgrp() if pid == 0 else -pid
    if group != os.getpgrp():
        host_call(lambda: os.killpg(group, sig))
        return 0
    return _kill_own_group(ctx, group, sig)


def _kill_own_group(ctx: SyscallContext, group: int, sig: int) -> int:
    """The host sends the signal to the others in the group; this process takes it as its
    guest would (its handlers, its mask), not with legorun's host disposition."""
    if sig in (0, signal.SIGKILL, signal.SIGSTOP):
        host_call(lambda: os.killpg(group, sig))
        return 0
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        host_call(lambda: os.killpg(group, sig))
        signal.sigtimedwait({sig}, 0)  # take back the copy the host sent this process
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return signal_process(ctx, sig)
