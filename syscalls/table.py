"""The syscall table: every x86-64 number, in order, with what legorun does for it.

An entry is implemented (a handler), deliberately ignored (IGNORED: succeeds with no effect
because the effect has no meaning on this machine, e.g. mlock with no swap), or missing
(ENOSYS and one warning). `legorun --list-syscalls` prints this table.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from syscalls import (
    caching,
    capabilities,
    copy_range,
    credentials,
    descriptors,
    epoll,
    eventfd,
    fs,
    futex,
    locks,
    membarrier,
    memfd,
    mempolicy,
    misc,
    mm,
    ownership,
    paths,
    personality,
    pidfd,
    pkeys,
    poll,
    process,
    procs,
    residency,
    rusage,
    sched,
    signalfd,
    signals,
    sockets,
    threads,
    time,
    timerfd,
    timers,
    utimes,
    xattr,
)
from syscalls.args import CONVERTERS
from syscalls.numbers import SYSCALL_NAMES


class _Ignored:
    def __repr__(self) -> str:
        return "IGNORED"


IGNORED: Any = _Ignored()


@dataclass(frozen=True, slots=True)
class SyscallEntry:
    nr: int
    name: str
    handler: Callable[..., int] | None  # None: missing; IGNORED: ignored
    converters: tuple[Callable[[int], int], ...] = ()
    parameters: tuple[tuple[str, object], ...] = ()  # (name, arg type), for tracing

    @property
    def status(self) -> str:
        if self.handler is None:
            return "missing"
        return "ignored" if self.handler is IGNORED else "implemented"


IMPLEMENTED: dict[int, Callable[..., int] | Any] = {
    0: fs.sys_read,
    1: fs.sys_write,
    2: paths.sys_open,
    3: fs.sys_close,
    4: paths.sys_stat,
    5: fs.sys_fstat,
    6: paths.sys_lstat,
    7: poll.sys_poll,
    8: fs.sys_lseek,
    9: mm.sys_mmap,
    10: mm.sys_mprotect,
    11: mm.sys_munmap,
    12: mm.sys_brk,
    13: signals.sys_rt_sigaction,
    14: signals.sys_rt_sigprocmask,
    15: signals.sys_rt_sigreturn,
    16: fs.sys_ioctl,
    17: fs.sys_pread64,
    18: fs.sys_pwrite64,
    19: fs.sys_readv,
    20: fs.sys_writev,
    21: paths.sys_access,
    22: descriptors.sys_pipe,
    23: poll.sys_select,
    24: threads.sys_sched_yield,
    25: mm.sys_mremap,
    26: mm.sys_msync,
    27: residency.sys_mincore,
    28: mm.sys_madvise,
    32: descriptors.sys_dup,
    33: descriptors.sys_dup2,
    34: signals.sys_pause,
    35: time.sys_nanosleep,
    36: signals.sys_getitimer,
    37: signals.sys_alarm,
    38: signals.sys_setitimer,
    39: process.sys_getpid,
    40: descriptors.sys_sendfile,
    41: sockets.sys_socket,
    42: sockets.sys_connect,
    43: sockets.sys_accept,
    44: sockets.sys_sendto,
    45: sockets.sys_recvfrom,
    46: sockets.sys_sendmsg,
    47: sockets.sys_recvmsg,
    48: sockets.sys_shutdown,
    49: sockets.sys_bind,
    50: sockets.sys_listen,
    51: sockets.sys_getsockname,
    52: sockets.sys_getpeername,
    53: sockets.sys_socketpair,
    54: sockets.sys_setsockopt,
    55: sockets.sys_getsockopt,
    56: procs.sys_clone,
    57: procs.sys_fork,
    58: procs.sys_vfork,
    59: procs.sys_execve,
    60: threads.sys_exit,
    61: procs.sys_wait4,
    62: procs.sys_kill,
    63: misc.sys_uname,
    72: descriptors.sys_fcntl,
    73: locks.sys_flock,
    74: descriptors.sys_fsync,
    75: descriptors.sys_fdatasync,
    76: paths.sys_truncate,
    77: descriptors.sys_ftruncate,
    79: paths.sys_getcwd,
    80: paths.sys_chdir,
    81: paths.sys_fchdir,
    82: paths.sys_rename,
    83: paths.sys_mkdir,
    84: paths.sys_rmdir,
    85: paths.sys_creat,
    86: paths.sys_link,
    87: paths.sys_unlink,
    88: paths.sys_symlink,
    89: paths.sys_readlink,
    90: paths.sys_chmod,
    91: descriptors.sys_fchmod,
    92: ownership.sys_chown,
    93: ownership.sys_fchown,
    94: ownership.sys_lchown,
    95: process.sys_umask,
    96: time.sys_gettimeofday,
    97: process.sys_getrlimit,
    98: rusage.sys_getrusage,
    99: misc.sys_sysinfo,
    100: time.sys_times,
    102: credentials.sys_getuid,
    104: credentials.sys_getgid,
    107: credentials.sys_geteuid,
    108: credentials.sys_getegid,
    110: process.sys_getppid,
    109: procs.sys_setpgid,
    111: procs.sys_getpgrp,
    112: procs.sys_setsid,
    105: credentials.sys_setuid,
    106: credentials.sys_setgid,
    113: credentials.sys_setreuid,
    114: credentials.sys_setregid,
    115: credentials.sys_getgroups,
    116: credentials.sys_setgroups,
    117: credentials.sys_setresuid,
    118: credentials.sys_getresuid,
    119: credentials.sys_setresgid,
    120: credentials.sys_getresgid,
    121: procs.sys_getpgid,
    122: credentials.sys_setfsuid,
    123: credentials.sys_setfsgid,
    124: procs.sys_getsid,
    125: capabilities.sys_capget,
    127: signals.sys_rt_sigpending,
    128: signals.sys_rt_sigtimedwait,
    129: signals.sys_rt_sigqueueinfo,
    130: signals.sys_rt_sigsuspend,
    131: signals.sys_sigaltstack,
    132: utimes.sys_utime,
    133: paths.sys_mknod,
    135: personality.sys_personality,
    137: paths.sys_statfs,
    138: paths.sys_fstatfs,
    140: sched.sys_getpriority,
    141: sched.sys_setpriority,
    142: sched.sys_sched_setparam,
    143: sched.sys_sched_getparam,
    144: sched.sys_sched_setscheduler,
    145: sched.sys_sched_getscheduler,
    146: sched.sys_sched_get_priority_max,
    147: sched.sys_sched_get_priority_min,
    148: sched.sys_sched_rr_get_interval,
    149: IGNORED,  # mlock: there is no swap to pin pages against
    150: IGNORED,  # munlock
    151: IGNORED,  # mlockall
    152: IGNORED,  # munlockall
    157: process.sys_prctl,
    158: process.sys_arch_prctl,
    160: process.sys_setrlimit,
    162: caching.sys_sync,
    186: threads.sys_gettid,
    187: caching.sys_readahead,
    188: xattr.sys_setxattr,
    189: xattr.sys_lsetxattr,
    190: xattr.sys_fsetxattr,
    191: xattr.sys_getxattr,
    192: xattr.sys_lgetxattr,
    193: xattr.sys_fgetxattr,
    194: xattr.sys_listxattr,
    195: xattr.sys_llistxattr,
    196: xattr.sys_flistxattr,
    197: xattr.sys_removexattr,
    198: xattr.sys_lremovexattr,
    199: xattr.sys_fremovexattr,
    200: signals.sys_tkill,
    201: time.sys_time,
    202: futex.sys_futex,
    203: threads.sys_sched_setaffinity,
    204: threads.sys_sched_getaffinity,
    213: epoll.sys_epoll_create,
    217: descriptors.sys_getdents64,
    218: threads.sys_set_tid_address,
    221: IGNORED,  # fadvise64: advice only
    222: timers.sys_timer_create,
    223: timers.sys_timer_settime,
    224: timers.sys_timer_gettime,
    225: timers.sys_timer_getoverrun,
    226: timers.sys_timer_delete,
    228: time.sys_clock_gettime,
    229: time.sys_clock_getres,
    230: time.sys_clock_nanosleep,
    231: process.sys_exit_group,
    232: epoll.sys_epoll_wait,
    233: epoll.sys_epoll_ctl,
    234: signals.sys_tgkill,
    235: utimes.sys_utimes,
    237: mempolicy.sys_mbind,
    238: mempolicy.sys_set_mempolicy,
    239: mempolicy.sys_get_mempolicy,
    247: procs.sys_waitid,
    251: sched.sys_ioprio_set,
    252: sched.sys_ioprio_get,
    257: paths.sys_openat,
    258: paths.sys_mkdirat,
    259: paths.sys_mknodat,
    260: ownership.sys_fchownat,
    261: utimes.sys_futimesat,
    262: paths.sys_newfstatat,
    263: paths.sys_unlinkat,
    264: paths.sys_renameat,
    265: paths.sys_linkat,
    266: paths.sys_symlinkat,
    267: paths.sys_readlinkat,
    268: paths.sys_fchmodat,
    269: paths.sys_faccessat,
    270: poll.sys_pselect6,
    271: poll.sys_ppoll,
    273: threads.sys_set_robust_list,
    274: threads.sys_get_robust_list,
    280: paths.sys_utimensat,
    281: epoll.sys_epoll_pwait,
    282: signalfd.sys_signalfd,
    283: timerfd.sys_timerfd_create,
    284: eventfd.sys_eventfd,
    285: descriptors.sys_fallocate,
    286: timerfd.sys_timerfd_settime,
    287: timerfd.sys_timerfd_gettime,
    288: sockets.sys_accept4,
    289: signalfd.sys_signalfd4,
    290: eventfd.sys_eventfd2,
    291: epoll.sys_epoll_create1,
    292: descriptors.sys_dup3,
    293: descriptors.sys_pipe2,
    295: fs.sys_preadv,
    296: fs.sys_pwritev,
    297: signals.sys_rt_tgsigqueueinfo,
    299: sockets.sys_recvmmsg,
    302: process.sys_prlimit64,
    306: descriptors.sys_syncfs,
    307: sockets.sys_sendmmsg,
    309: misc.sys_getcpu,
    314: sched.sys_sched_setattr,
    315: sched.sys_sched_getattr,
    316: paths.sys_renameat2,
    318: misc.sys_getrandom,
    322: procs.sys_execveat,
    319: memfd.sys_memfd_create,
    324: membarrier.sys_membarrier,
    326: copy_range.sys_copy_file_range,
    329: pkeys.sys_pkey_mprotect,
    330: pkeys.sys_pkey_alloc,
    331: pkeys.sys_pkey_free,
    332: paths.sys_statx,
    334: process.sys_rseq,
    424: pidfd.sys_pidfd_send_signal,
    434: pidfd.sys_pidfd_open,
    435: procs.sys_clone3,
    436: descriptors.sys_close_range,
    439: paths.sys_faccessat2,
    441: epoll.sys_epoll_pwait2,
    450: mempolicy.sys_set_mempolicy_home_node,
}


def _entry(nr: int, name: str, handler: Callable[..., int] | None) -> SyscallEntry:
    if handler is None or handler is IGNORED:
        return SyscallEntry(nr, name, handler)
    hints = typing.get_type_hints(handler)
    params = list(inspect.signature(handler).parameters)[1:]  # after the context
    types = tuple((param, hints[param]) for param in params)
    missing = [param for param, kind in types if kind not in CONVERTERS]
    if missing:
        raise TypeError(f"{handler.__name__}: parameters {missing} lack an argument type")
    return SyscallEntry(nr, name, handler, tuple(CONVERTERS[kind] for _p, kind in types), types)


@dataclass(frozen=True, slots=True)
class SyscallTable:
    entries: dict[int, SyscallEntry]

    @classmethod
    def build(cls) -> SyscallTable:
        unknown = set(IMPLEMENTED) - set(SYSCALL_NAMES)
        if unknown:
            raise ValueError(f"handlers for unknown syscall numbers {sorted(unknown)}")
        return cls({nr: _entry(nr, name, IMPLEMENTED.get(nr))
                    for nr, name in SYSCALL_NAMES.items()})

    def format(self) -> str:
        return "".join(f"{e.nr:3d} {e.name} {e.status}\n" for e in self.entries.values())
