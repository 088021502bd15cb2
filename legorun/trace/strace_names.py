"""The symbolic names --strace shows for numbers: flags, commands, signals, clocks.

Values come from the modules that already define them for the handlers and managers (open
flags, mmap flags, fcntl commands, ...); the names no handler needs yet are defined here
with their x86-64 Linux values. An enumeration maps a value to its name; a flag set lists
(bits, name) pairs in the order strace prints them.
"""

from __future__ import annotations

import termios
from types import ModuleType

from legorun.managers import address_space, storage, vma
from legorun.processor import files, process as process_state, signals as delivery
from syscalls import descriptors, flags, fs, misc, paths, process, signals, time

Names = dict[int, str]
FlagNames = tuple[tuple[int, str], ...]


def _named(module: ModuleType, *names: str) -> Names:
    """value -> name for constants the project defines in `module`."""
    return {getattr(module, name): name for name in names}


def _prefixed(module: ModuleType, prefix: str) -> Names:
    """value -> name for every int constant in `module` whose name starts with `prefix`."""
    return {value: name for name, value in vars(module).items()
            if name.startswith(prefix) and type(value) is int}


def _flags(names: Names) -> FlagNames:
    """A flag set shown in ascending order of value."""
    return tuple(sorted((value, name) for value, name in names.items() if value))


def _ordered(module: ModuleType, *names: str) -> FlagNames:
    """A flag set shown in strace's order, with the values `module` defines."""
    return tuple((getattr(module, name), name) for name in names)


# ------------------------------------------------------------------ files

ACCESS_MODES = _named(flags, "O_RDONLY", "O_WRONLY", "O_RDWR")
OPEN_FLAGS = _ordered(
    flags, "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_SYNC",
    "O_DSYNC", "O_ASYNC", "O_DIRECT", "O_LARGEFILE", "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC",
    "O_PATH", "O_TMPFILE", "O_DIRECTORY")
AT_FDCWD = paths.AT_FDCWD
AT_FLAGS = _flags({
    **_named(paths, "AT_SYMLINK_NOFOLLOW", "AT_SYMLINK_FOLLOW", "AT_NO_AUTOMOUNT",
             "AT_EMPTY_PATH"),
    0x2000: "AT_STATX_FORCE_SYNC",
    0x4000: "AT_STATX_DONT_SYNC",
})
# AT_REMOVEDIR and AT_EACCESS share a bit: which one it is depends on the call.
UNLINKAT_FLAGS = _flags(_named(paths, "AT_REMOVEDIR"))
FACCESSAT_FLAGS = _flags(_named(paths, "AT_EACCESS", "AT_SYMLINK_NOFOLLOW", "AT_EMPTY_PATH"))
FILE_ACCESS = _ordered(storage, "R_OK", "W_OK", "X_OK")
RENAME_FLAGS = _flags({**_named(paths, "RENAME_NOREPLACE"), 2: "RENAME_EXCHANGE",
                       4: "RENAME_WHITEOUT"})
WHENCE = {**_named(files, "SEEK_SET", "SEEK_CUR", "SEEK_END"), 3: "SEEK_DATA", 4: "SEEK_HOLE"}
CLOSE_RANGE_FLAGS = _flags(_named(descriptors, "CLOSE_RANGE_UNSHARE", "CLOSE_RANGE_CLOEXEC"))
FCNTL_COMMANDS = {
    **_named(descriptors, "F_DUPFD", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "F_GETLK",
             "F_SETLK", "F_SETLKW", "F_OFD_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW",
             "F_DUPFD_CLOEXEC", "F_SETPIPE_SZ", "F_GETPIPE_SZ"),
    8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 15: "F_SETOWN_EX",
    16: "F_GETOWN_EX", 1024: "F_SETLEASE", 1025: "F_GETLEASE", 1026: "F_NOTIFY",
    1033: "F_ADD_SEALS", 1034: "F_GET_SEALS",
}
FD_FLAGS = _flags(_named(descriptors, "FD_CLOEXEC"))
F_DUPFD, F_GETFD, F_SETFD = descriptors.F_DUPFD, descriptors.F_GETFD, descriptors.F_SETFD
F_GETFL, F_SETFL = descriptors.F_GETFL, descriptors.F_SETFL
F_DUPFD_CLOEXEC, F_SETPIPE_SZ = descriptors.F_DUPFD_CLOEXEC, descriptors.F_SETPIPE_SZ
FCNTL_GETTERS = frozenset({F_GETFD, F_GETFL, 9, 11, 1025, 1034, descriptors.F_GETPIPE_SZ})
IOCTL_REQUESTS = {
    **{getattr(termios, name): name for name in (
        "TCGETS", "TCSETS", "TCSETSW", "TCSETSF", "TCGETA", "TCSETA", "TCSBRK", "TCXONC",
        "TCFLSH", "TIOCEXCL", "TIOCNXCL", "TIOCSCTTY", "TIOCGPGRP", "TIOCSPGRP", "TIOCOUTQ",
        "TIOCSTI", "TIOCGWINSZ", "TIOCSWINSZ", "TIOCMGET", "TIOCMSET", "FIONREAD",
        "TIOCNOTTY", "FIOASYNC") if hasattr(termios, name)},
    **_named(fs, "FIONBIO", "FIOCLEX", "FIONCLEX"),
    0x80045430: "TIOCGPTN", 0x40045431: "TIOCSPTLCK", 0x80045432: "TIOCGDEV",
    0x5429: "TIOCGSID",
}

# ------------------------------------------------------------------ memory

PROT = _flags(_prefixed(vma, "PROT_"))
MAP_TYPES = _named(vma, "MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE")
MAP_TYPE_MASK = vma.MAP_TYPE
MAP_FLAGS = _flags({
    **{value: name for value, name in _prefixed(vma, "MAP_").items()
       if value & MAP_TYPE_MASK == 0},
    **_named(address_space, "MAP_32BIT", "MAP_UNINITIALIZED"),
})
MREMAP_FLAGS = _flags(_prefixed(vma, "MREMAP_"))
MREMAP_FIXED = vma.MREMAP_FIXED
MSYNC_FLAGS = _flags({1: "MS_ASYNC", 2: "MS_INVALIDATE", 4: "MS_SYNC"})
MADVICE = _prefixed(address_space, "MADV_")

# ------------------------------------------------------------------ signals

# Linux x86-64 numbering (arch/x86/include/uapi/asm/signal.h).
SIGNALS = {number: "SIG" + name for number, name in enumerate((
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"), start=1)}
SIGRTMIN, SIGRTMAX = 32, 64
SIGMASK_HOW = _named(signals, "SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK")
SA_FLAGS = _flags({
    0x00000001: "SA_NOCLDSTOP", 0x00000002: "SA_NOCLDWAIT", 0x00000004: "SA_SIGINFO",
    0x04000000: "SA_RESTORER", 0x08000000: "SA_ONSTACK", 0x10000000: "SA_RESTART",
    0x40000000: "SA_NODEFER", 0x80000000: "SA_RESETHAND",
})
SA_RESTORER = 0x04000000
SIG_HANDLERS = {0: "SIG_DFL", delivery.SIG_IGN: "SIG_IGN"}
SS_FLAGS = _flags(_named(signals, "SS_ONSTACK", "SS_DISABLE", "SS_AUTODISARM"))

# ------------------------------------------------------------------ processes, time, misc

ARCH_PRCTL_CODES = _prefixed(process, "ARCH_")
PRCTL_OPTIONS = {
    **_prefixed(process, "PR_"),
    21: "PR_GET_SECCOMP", 22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ", 35: "PR_SET_MM",
    41: "PR_SET_THP_DISABLE", 42: "PR_GET_THP_DISABLE", 0x59616D61: "PR_SET_PTRACER",
    0x53564D41: "PR_SET_VMA",
}
RLIMIT_RESOURCES = dict(enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME")))
RLIM_INFINITY = process_state.RLIM_INFINITY
WAIT_OPTIONS = _flags({1: "WNOHANG", 2: "WUNTRACED", 4: "WEXITED", 8: "WCONTINUED",
                       0x01000000: "WNOWAIT", 0x20000000: "__WNOTHREAD", 0x40000000: "__WALL",
                       0x80000000: "__WCLONE"})
CLOCKS = dict(enumerate((
    "CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
    "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME",
    "CLOCK_REALTIME_ALARM", "CLOCK_BOOTTIME_ALARM", "CLOCK_SGI_CYCLE", "CLOCK_TAI")))
TIMER_FLAGS = _flags(_named(time, "TIMER_ABSTIME"))
GRND_FLAGS = _flags(_prefixed(misc, "GRND_"))
FUTEX_COMMANDS = dict(enumerate((
    "FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_FD", "FUTEX_REQUEUE", "FUTEX_CMP_REQUEUE",
    "FUTEX_WAKE_OP", "FUTEX_LOCK_PI", "FUTEX_UNLOCK_PI", "FUTEX_TRYLOCK_PI",
    "FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET", "FUTEX_WAIT_REQUEUE_PI", "FUTEX_CMP_REQUEUE_PI",
    "FUTEX_LOCK_PI2")))
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME, FUTEX_CMD_MASK = 128, 256, 0x7F
# Which operations use futex's later arguments (futex(2)).
FUTEX_WITH_TIMEOUT = frozenset({0, 6, 9, 11, 13})  # WAIT, LOCK_PI, WAIT_BITSET, ...
FUTEX_WITH_VAL2 = frozenset({3, 4, 5, 12})  # REQUEUE, CMP_REQUEUE, WAKE_OP, CMP_REQUEUE_PI
FUTEX_WITH_UADDR2 = frozenset({3, 4, 5, 11, 12})
FUTEX_WITH_VAL3 = frozenset({4, 5, 9, 10, 12})
FUTEX_WITH_BITSET = frozenset({9, 10})  # WAIT_BITSET, WAKE_BITSET: val3 is the bit mask
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
SOCKET_DOMAINS = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
SOCKET_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
                5: "SOCK_SEQPACKET", 6: "SOCK_DCCP", 10: "SOCK_PACKET"}
SOCKET_TYPE_MASK = 0xF
SOCKET_FLAGS = _flags({flags.O_NONBLOCK: "SOCK_NONBLOCK", flags.O_CLOEXEC: "SOCK_CLOEXEC"})
