"""What each syscall's arguments and result mean, for tracing: one table, name -> kinds.

A kind says how a raw register is shown (a descriptor, a path, a buffer the call reads, a
struct it fills, a set of O_* flags, ...), not how a handler decodes it. Kinds in `OUTPUTS`
are written by the call: a tracer shows them only after the call succeeded, the others are
captured before it runs (the call may change them). A kind that needs another argument names
it by position below (e.g. BUF_IN's length is the next argument). A syscall missing from the
table is shown with its six registers in hex.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto


class Arg(Enum):
    # numbers
    INT = auto()  # int, decimal
    UINT = auto()  # unsigned int, decimal
    LONG = auto()  # long, off_t: signed 64-bit decimal
    ULONG = auto()  # unsigned long, size_t: unsigned 64-bit decimal
    HEX = auto()  # an opaque value (flags nobody decodes, cookies): hex
    PTR = auto()  # a pointer that is not decoded: NULL or its address
    MODE = auto()  # a file mode, octal (0644)
    FD = auto()  # a file descriptor
    DIRFD = auto()  # a directory descriptor for *at calls: AT_FDCWD or the number
    # read by the call: captured before it runs
    PATH = auto()  # a NUL-terminated path, shown whole
    STRING = auto()  # a NUL-terminated string, shown up to the string limit
    BUF_IN = auto()  # bytes the call reads; their count is the next argument
    IOV_IN = auto()  # struct iovec[] the call reads; the count is the next argument
    ARGV = auto()  # a NULL-terminated array of strings
    ENVP = auto()  # a NULL-terminated array of strings, shown as a count
    TIMESPEC_IN = auto()  # struct timespec
    TIMESPEC_PAIR_IN = auto()  # struct timespec[2] (utimensat)
    RLIMIT_IN = auto()  # struct rlimit
    SIGSET_IN = auto()  # sigset_t
    SIGACTION_IN = auto()  # struct kernel_sigaction
    STACK_IN = auto()  # stack_t (sigaltstack)
    # written by the call: shown after it succeeded
    BUF_OUT = auto()  # bytes the call wrote; their count is the result
    STR_OUT = auto()  # a NUL-terminated string (getcwd)
    IOV_OUT = auto()  # struct iovec[] filled with `result` bytes; the count is the next argument
    STAT_OUT = auto()  # struct stat
    STATX_OUT = auto()  # struct statx
    STATFS_OUT = auto()  # struct statfs
    TIMESPEC_OUT = auto()
    TIMEVAL_OUT = auto()
    RLIMIT_OUT = auto()
    UTSNAME_OUT = auto()
    SIGSET_OUT = auto()
    SIGACTION_OUT = auto()
    STACK_OUT = auto()
    FD_PAIR_OUT = auto()  # int[2] (pipe)
    INT_OUT = auto()  # one int or unsigned (getresuid, getcpu)
    DIRENTS_OUT = auto()  # linux_dirent[64] records, `result` bytes
    # symbolic values
    OPEN_FLAGS = auto()  # access mode and O_* flags
    OPEN_MODE = auto()  # the mode, shown only when the flags before it create a file
    FD_FLAGS = auto()  # O_* flags without an access mode (pipe2, dup3)
    ACCESS_MODE = auto()  # F_OK or R_OK|W_OK|X_OK
    AT_FLAGS = auto()  # AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, ...
    UNLINKAT_FLAGS = auto()  # AT_REMOVEDIR
    FACCESSAT_FLAGS = auto()  # AT_EACCESS, ...
    RENAME_FLAGS = auto()
    PROT = auto()  # PROT_*
    MAP_FLAGS = auto()  # mapping type and MAP_*
    MREMAP_FLAGS = auto()
    MREMAP_ADDRESS = auto()  # the new address, shown only when the flags before it fix it
    MSYNC_FLAGS = auto()
    MADVICE = auto()  # MADV_*
    WHENCE = auto()  # SEEK_*
    SIGNAL = auto()  # SIGINT, ...
    SIGMASK_HOW = auto()  # SIG_BLOCK, ...
    CLOCK = auto()  # CLOCK_*
    TIMER_FLAGS = auto()  # TIMER_ABSTIME
    IOCTL_REQUEST = auto()  # TCGETS, FIONBIO, ...
    FCNTL_CMD = auto()  # F_*
    FCNTL_ARG = auto()  # decoded as the command before it says; absent for the getters
    ARCH_PRCTL_CODE = auto()  # ARCH_SET_FS, ...
    PRCTL_OPTION = auto()  # PR_*
    RLIMIT_RESOURCE = auto()  # RLIMIT_*
    GRND_FLAGS = auto()
    CLOSE_RANGE_FLAGS = auto()
    FUTEX_OP = auto()  # FUTEX_WAIT_PRIVATE, ...
    # futex's last three arguments, each shown only when the operation (argument 1) uses it
    FUTEX_TIMEOUT = auto()  # a struct timespec, or the number val2 for the requeue operations
    FUTEX_UADDR2 = auto()
    FUTEX_VAL3 = auto()
    SOCKET_DOMAIN = auto()  # AF_*
    SOCKET_TYPE = auto()  # SOCK_* and SOCK_CLOEXEC/SOCK_NONBLOCK
    WAIT_OPTIONS = auto()  # WNOHANG, ...


OUTPUTS = frozenset({
    Arg.BUF_OUT, Arg.STR_OUT, Arg.IOV_OUT, Arg.STAT_OUT, Arg.STATX_OUT, Arg.STATFS_OUT,
    Arg.TIMESPEC_OUT, Arg.TIMEVAL_OUT, Arg.RLIMIT_OUT, Arg.UTSNAME_OUT, Arg.SIGSET_OUT,
    Arg.SIGACTION_OUT, Arg.STACK_OUT, Arg.FD_PAIR_OUT, Arg.INT_OUT, Arg.DIRENTS_OUT,
})


class Result(Enum):
    DECIMAL = auto()
    ADDRESS = auto()  # mmap, brk, mremap: hex
    MODE = auto()  # umask: the previous mode, octal
    FCNTL = auto()  # F_GETFD/F_GETFL return flags, shown decoded
    NONE = auto()  # exit, exit_group: the call never returns


@dataclass(frozen=True, slots=True)
class Signature:
    args: tuple[Arg, ...]
    result: Result = Result.DECIMAL


def _sig(*args: Arg, result: Result = Result.DECIMAL) -> Signature:
    return Signature(args, result)


A = Arg
SIGNATURES: dict[str, Signature] = {
    # files and descriptors
    "read": _sig(A.FD, A.BUF_OUT, A.ULONG),
    "write": _sig(A.FD, A.BUF_IN, A.ULONG),
    "open": _sig(A.PATH, A.OPEN_FLAGS, A.OPEN_MODE),
    "openat": _sig(A.DIRFD, A.PATH, A.OPEN_FLAGS, A.OPEN_MODE),
    "openat2": _sig(A.DIRFD, A.PATH, A.PTR, A.ULONG),
    "creat": _sig(A.PATH, A.MODE),
    "close": _sig(A.FD),
    "close_range": _sig(A.UINT, A.UINT, A.CLOSE_RANGE_FLAGS),
    "stat": _sig(A.PATH, A.STAT_OUT),
    "fstat": _sig(A.FD, A.STAT_OUT),
    "lstat": _sig(A.PATH, A.STAT_OUT),
    "newfstatat": _sig(A.DIRFD, A.PATH, A.STAT_OUT, A.AT_FLAGS),
    "statx": _sig(A.DIRFD, A.PATH, A.AT_FLAGS, A.HEX, A.STATX_OUT),
    "statfs": _sig(A.PATH, A.STATFS_OUT),
    "fstatfs": _sig(A.FD, A.STATFS_OUT),
    "lseek": _sig(A.FD, A.LONG, A.WHENCE),
    "pread64": _sig(A.FD, A.BUF_OUT, A.ULONG, A.LONG),
    "pwrite64": _sig(A.FD, A.BUF_IN, A.ULONG, A.LONG),
    "readv": _sig(A.FD, A.IOV_OUT, A.INT),
    "writev": _sig(A.FD, A.IOV_IN, A.INT),
    "preadv": _sig(A.FD, A.IOV_OUT, A.INT, A.LONG, A.HEX),
    "pwritev": _sig(A.FD, A.IOV_IN, A.INT, A.LONG, A.HEX),
    "preadv2": _sig(A.FD, A.IOV_OUT, A.INT, A.LONG, A.HEX, A.HEX),
    "pwritev2": _sig(A.FD, A.IOV_IN, A.INT, A.LONG, A.HEX, A.HEX),
    "ioctl": _sig(A.FD, A.IOCTL_REQUEST, A.HEX),
    "fcntl": _sig(A.FD, A.FCNTL_CMD, A.FCNTL_ARG, result=Result.FCNTL),
    "flock": _sig(A.FD, A.INT),
    "dup": _sig(A.FD),
    "dup2": _sig(A.FD, A.FD),
    "dup3": _sig(A.FD, A.FD, A.FD_FLAGS),
    "pipe": _sig(A.FD_PAIR_OUT),
    "pipe2": _sig(A.FD_PAIR_OUT, A.FD_FLAGS),
    "sendfile": _sig(A.FD, A.FD, A.PTR, A.ULONG),
    "copy_file_range": _sig(A.FD, A.PTR, A.FD, A.PTR, A.ULONG, A.HEX),
    "getdents": _sig(A.FD, A.DIRENTS_OUT, A.UINT),
    "getdents64": _sig(A.FD, A.DIRENTS_OUT, A.UINT),
    "fsync": _sig(A.FD),
    "fdatasync": _sig(A.FD),
    "syncfs": _sig(A.FD),
    "sync": _sig(),
    "truncate": _sig(A.PATH, A.LONG),
    "ftruncate": _sig(A.FD, A.LONG),
    "fallocate": _sig(A.FD, A.HEX, A.LONG, A.LONG),
    "fadvise64": _sig(A.FD, A.LONG, A.LONG, A.INT),
    "readahead": _sig(A.FD, A.LONG, A.ULONG),
    "poll": _sig(A.PTR, A.UINT, A.INT),
    "ppoll": _sig(A.PTR, A.UINT, A.TIMESPEC_IN, A.SIGSET_IN, A.ULONG),
    "select": _sig(A.INT, A.PTR, A.PTR, A.PTR, A.PTR),
    "pselect6": _sig(A.INT, A.PTR, A.PTR, A.PTR, A.TIMESPEC_IN, A.PTR),
    "epoll_create": _sig(A.INT),
    "epoll_create1": _sig(A.HEX),
    "epoll_ctl": _sig(A.FD, A.INT, A.FD, A.PTR),
    "epoll_wait": _sig(A.FD, A.PTR, A.INT, A.INT),
    "epoll_pwait": _sig(A.FD, A.PTR, A.INT, A.INT, A.SIGSET_IN, A.ULONG),
    "epoll_pwait2": _sig(A.FD, A.PTR, A.INT, A.TIMESPEC_IN, A.SIGSET_IN, A.ULONG),
    "eventfd": _sig(A.UINT),
    "eventfd2": _sig(A.UINT, A.HEX),
    "inotify_init": _sig(),
    "inotify_init1": _sig(A.HEX),
    "inotify_add_watch": _sig(A.FD, A.PATH, A.HEX),
    "inotify_rm_watch": _sig(A.FD, A.INT),
    "memfd_create": _sig(A.STRING, A.HEX),
    # names in the file system
    "access": _sig(A.PATH, A.ACCESS_MODE),
    "faccessat": _sig(A.DIRFD, A.PATH, A.ACCESS_MODE),
    "faccessat2": _sig(A.DIRFD, A.PATH, A.ACCESS_MODE, A.FACCESSAT_FLAGS),
    "readlink": _sig(A.PATH, A.BUF_OUT, A.INT),
    "readlinkat": _sig(A.DIRFD, A.PATH, A.BUF_OUT, A.INT),
    "getcwd": _sig(A.STR_OUT, A.ULONG),
    "chdir": _sig(A.PATH),
    "fchdir": _sig(A.FD),
    "chroot": _sig(A.PATH),
    "mkdir": _sig(A.PATH, A.MODE),
    "mkdirat": _sig(A.DIRFD, A.PATH, A.MODE),
    "mknod": _sig(A.PATH, A.MODE, A.HEX),
    "mknodat": _sig(A.DIRFD, A.PATH, A.MODE, A.HEX),
    "rmdir": _sig(A.PATH),
    "unlink": _sig(A.PATH),
    "unlinkat": _sig(A.DIRFD, A.PATH, A.UNLINKAT_FLAGS),
    "rename": _sig(A.PATH, A.PATH),
    "renameat": _sig(A.DIRFD, A.PATH, A.DIRFD, A.PATH),
    "renameat2": _sig(A.DIRFD, A.PATH, A.DIRFD, A.PATH, A.RENAME_FLAGS),
    "link": _sig(A.PATH, A.PATH),
    "linkat": _sig(A.DIRFD, A.PATH, A.DIRFD, A.PATH, A.AT_FLAGS),
    "symlink": _sig(A.PATH, A.PATH),
    "symlinkat": _sig(A.PATH, A.DIRFD, A.PATH),
    "chmod": _sig(A.PATH, A.MODE),
    "fchmod": _sig(A.FD, A.MODE),
    "fchmodat": _sig(A.DIRFD, A.PATH, A.MODE),
    "fchmodat2": _sig(A.DIRFD, A.PATH, A.MODE, A.AT_FLAGS),
    "chown": _sig(A.PATH, A.INT, A.INT),
    "fchown": _sig(A.FD, A.INT, A.INT),
    "lchown": _sig(A.PATH, A.INT, A.INT),
    "fchownat": _sig(A.DIRFD, A.PATH, A.INT, A.INT, A.AT_FLAGS),
    "utime": _sig(A.PATH, A.PTR),
    "utimes": _sig(A.PATH, A.PTR),
    "futimesat": _sig(A.DIRFD, A.PATH, A.PTR),
    "utimensat": _sig(A.DIRFD, A.PATH, A.TIMESPEC_PAIR_IN, A.AT_FLAGS),
    "umask": _sig(A.MODE, result=Result.MODE),
    "getxattr": _sig(A.PATH, A.STRING, A.PTR, A.ULONG),
    "lgetxattr": _sig(A.PATH, A.STRING, A.PTR, A.ULONG),
    "fgetxattr": _sig(A.FD, A.STRING, A.PTR, A.ULONG),
    "listxattr": _sig(A.PATH, A.PTR, A.ULONG),
    "llistxattr": _sig(A.PATH, A.PTR, A.ULONG),
    "flistxattr": _sig(A.FD, A.PTR, A.ULONG),
    "setxattr": _sig(A.PATH, A.STRING, A.BUF_IN, A.ULONG, A.HEX),
    "lsetxattr": _sig(A.PATH, A.STRING, A.BUF_IN, A.ULONG, A.HEX),
    "fsetxattr": _sig(A.FD, A.STRING, A.BUF_IN, A.ULONG, A.HEX),
    "removexattr": _sig(A.PATH, A.STRING),
    "lremovexattr": _sig(A.PATH, A.STRING),
    "fremovexattr": _sig(A.FD, A.STRING),
    "mount": _sig(A.STRING, A.PATH, A.STRING, A.HEX, A.PTR),
    "umount2": _sig(A.PATH, A.HEX),
    # memory
    "brk": _sig(A.PTR, result=Result.ADDRESS),
    "mmap": _sig(A.PTR, A.ULONG, A.PROT, A.MAP_FLAGS, A.FD, A.HEX, result=Result.ADDRESS),
    "munmap": _sig(A.PTR, A.ULONG),
    "mprotect": _sig(A.PTR, A.ULONG, A.PROT),
    "pkey_mprotect": _sig(A.PTR, A.ULONG, A.PROT, A.INT),
    "pkey_alloc": _sig(A.HEX, A.HEX),
    "sched_setattr": _sig(A.INT, A.PTR, A.HEX),
    "sched_getattr": _sig(A.INT, A.PTR, A.UINT, A.HEX),
    "ioprio_set": _sig(A.INT, A.INT, A.INT),
    "ioprio_get": _sig(A.INT, A.INT),
    "pkey_free": _sig(A.INT),
    "mremap": _sig(A.PTR, A.ULONG, A.ULONG, A.MREMAP_FLAGS, A.MREMAP_ADDRESS,
                   result=Result.ADDRESS),
    "msync": _sig(A.PTR, A.ULONG, A.MSYNC_FLAGS),
    "mincore": _sig(A.PTR, A.ULONG, A.PTR),
    "madvise": _sig(A.PTR, A.ULONG, A.MADVICE),
    "mlock": _sig(A.PTR, A.ULONG),
    "mlock2": _sig(A.PTR, A.ULONG, A.HEX),
    "munlock": _sig(A.PTR, A.ULONG),
    "mlockall": _sig(A.HEX),
    "munlockall": _sig(),
    "shmget": _sig(A.HEX, A.ULONG, A.HEX),
    "shmat": _sig(A.INT, A.PTR, A.HEX, result=Result.ADDRESS),
    "shmdt": _sig(A.PTR),
    "shmctl": _sig(A.INT, A.INT, A.PTR),
    "membarrier": _sig(A.INT, A.HEX, A.INT),
    "mbind": _sig(A.PTR, A.ULONG, A.INT, A.PTR, A.ULONG, A.HEX),
    "set_mempolicy": _sig(A.INT, A.PTR, A.ULONG),
    "get_mempolicy": _sig(A.INT_OUT, A.PTR, A.ULONG, A.PTR, A.HEX),
    "set_mempolicy_home_node": _sig(A.PTR, A.ULONG, A.ULONG, A.HEX),
    # processes and threads
    "exit": _sig(A.INT, result=Result.NONE),
    "exit_group": _sig(A.INT, result=Result.NONE),
    "execve": _sig(A.PATH, A.ARGV, A.ENVP),
    "execveat": _sig(A.DIRFD, A.PATH, A.ARGV, A.ENVP, A.AT_FLAGS),
    "clone": _sig(A.HEX, A.PTR, A.PTR, A.PTR, A.HEX),
    "clone3": _sig(A.PTR, A.ULONG),
    "fork": _sig(),
    "vfork": _sig(),
    "wait4": _sig(A.INT, A.PTR, A.WAIT_OPTIONS, A.PTR),
    "waitid": _sig(A.INT, A.INT, A.PTR, A.WAIT_OPTIONS, A.PTR),
    "getpid": _sig(),
    "gettid": _sig(),
    "getppid": _sig(),
    "getuid": _sig(),
    "geteuid": _sig(),
    "getgid": _sig(),
    "getegid": _sig(),
    "getpgrp": _sig(),
    "getpgid": _sig(A.INT),
    "setpgid": _sig(A.INT, A.INT),
    "getsid": _sig(A.INT),
    "setsid": _sig(),
    "setuid": _sig(A.INT),
    "setgid": _sig(A.INT),
    "setreuid": _sig(A.INT, A.INT),
    "setregid": _sig(A.INT, A.INT),
    "setresuid": _sig(A.INT, A.INT, A.INT),
    "setresgid": _sig(A.INT, A.INT, A.INT),
    "getresuid": _sig(A.INT_OUT, A.INT_OUT, A.INT_OUT),
    "getresgid": _sig(A.INT_OUT, A.INT_OUT, A.INT_OUT),
    "getgroups": _sig(A.INT, A.PTR),
    "setgroups": _sig(A.INT, A.PTR),
    "setfsuid": _sig(A.INT),
    "setfsgid": _sig(A.INT),
    "getrlimit": _sig(A.RLIMIT_RESOURCE, A.RLIMIT_OUT),
    "setrlimit": _sig(A.RLIMIT_RESOURCE, A.RLIMIT_IN),
    "prlimit64": _sig(A.INT, A.RLIMIT_RESOURCE, A.RLIMIT_IN, A.RLIMIT_OUT),
    "getrusage": _sig(A.INT, A.PTR),
    "getpriority": _sig(A.INT, A.INT),
    "setpriority": _sig(A.INT, A.INT, A.INT),
    "prctl": _sig(A.PRCTL_OPTION, A.HEX, A.HEX, A.HEX, A.HEX),
    "arch_prctl": _sig(A.ARCH_PRCTL_CODE, A.HEX),
    "set_tid_address": _sig(A.PTR),
    "set_robust_list": _sig(A.PTR, A.ULONG),
    "get_robust_list": _sig(A.INT, A.PTR, A.PTR),
    "rseq": _sig(A.PTR, A.HEX, A.INT, A.HEX),
    "futex": _sig(A.PTR, A.FUTEX_OP, A.UINT, A.FUTEX_TIMEOUT, A.FUTEX_UADDR2, A.FUTEX_VAL3),
    "set_thread_area": _sig(A.PTR),
    "get_thread_area": _sig(A.PTR),
    "unshare": _sig(A.HEX),
    "personality": _sig(A.HEX),
    "seccomp": _sig(A.UINT, A.HEX, A.PTR),
    "ptrace": _sig(A.INT, A.INT, A.PTR, A.PTR),
    "capget": _sig(A.PTR, A.PTR),
    "capset": _sig(A.PTR, A.PTR),
    "pidfd_open": _sig(A.INT, A.HEX),
    "pidfd_send_signal": _sig(A.FD, A.SIGNAL, A.PTR, A.HEX),
    "uname": _sig(A.UTSNAME_OUT),
    "sysinfo": _sig(A.PTR),
    "sethostname": _sig(A.BUF_IN, A.ULONG),
    "getrandom": _sig(A.BUF_OUT, A.ULONG, A.GRND_FLAGS),
    "getcpu": _sig(A.INT_OUT, A.INT_OUT, A.PTR),
    "sched_yield": _sig(),
    "sched_getaffinity": _sig(A.INT, A.UINT, A.PTR),
    "sched_setaffinity": _sig(A.INT, A.UINT, A.PTR),
    "sched_getscheduler": _sig(A.INT),
    "sched_setscheduler": _sig(A.INT, A.INT, A.PTR),
    "sched_getparam": _sig(A.INT, A.PTR),
    "sched_setparam": _sig(A.INT, A.PTR),
    "sched_get_priority_max": _sig(A.INT),
    "sched_get_priority_min": _sig(A.INT),
    "sched_rr_get_interval": _sig(A.INT, A.TIMESPEC_OUT),
    # signals
    "kill": _sig(A.INT, A.SIGNAL),
    "tkill": _sig(A.INT, A.SIGNAL),
    "tgkill": _sig(A.INT, A.INT, A.SIGNAL),
    "rt_sigaction": _sig(A.SIGNAL, A.SIGACTION_IN, A.SIGACTION_OUT, A.ULONG),
    "rt_sigprocmask": _sig(A.SIGMASK_HOW, A.SIGSET_IN, A.SIGSET_OUT, A.ULONG),
    "rt_sigpending": _sig(A.SIGSET_OUT, A.ULONG),
    "rt_sigsuspend": _sig(A.SIGSET_IN, A.ULONG),
    "rt_sigtimedwait": _sig(A.SIGSET_IN, A.PTR, A.TIMESPEC_IN, A.ULONG),
    "rt_sigqueueinfo": _sig(A.INT, A.SIGNAL, A.PTR),
    "rt_tgsigqueueinfo": _sig(A.INT, A.INT, A.SIGNAL, A.PTR),
    "rt_sigreturn": _sig(),
    "sigaltstack": _sig(A.STACK_IN, A.STACK_OUT),
    "signalfd": _sig(A.FD, A.SIGSET_IN, A.ULONG),
    "signalfd4": _sig(A.FD, A.SIGSET_IN, A.ULONG, A.HEX),
    "pause": _sig(),
    "alarm": _sig(A.UINT),
    "getitimer": _sig(A.INT, A.PTR),
    "setitimer": _sig(A.INT, A.PTR, A.PTR),
    # time
    "time": _sig(A.PTR),
    "gettimeofday": _sig(A.TIMEVAL_OUT, A.PTR),
    "times": _sig(A.PTR),
    "clock_gettime": _sig(A.CLOCK, A.TIMESPEC_OUT),
    "clock_getres": _sig(A.CLOCK, A.TIMESPEC_OUT),
    "clock_settime": _sig(A.CLOCK, A.TIMESPEC_IN),
    "clock_nanosleep": _sig(A.CLOCK, A.TIMER_FLAGS, A.TIMESPEC_IN, A.PTR),
    "nanosleep": _sig(A.TIMESPEC_IN, A.PTR),
    "timer_create": _sig(A.CLOCK, A.PTR, A.INT_OUT),
    "timer_settime": _sig(A.INT, A.TIMER_FLAGS, A.PTR, A.PTR),
    "timer_gettime": _sig(A.INT, A.PTR),
    "timer_getoverrun": _sig(A.INT),
    "timer_delete": _sig(A.INT),
    "timerfd_create": _sig(A.CLOCK, A.HEX),
    "timerfd_settime": _sig(A.FD, A.HEX, A.PTR, A.PTR),
    "timerfd_gettime": _sig(A.FD, A.PTR),
    # sockets
    "socket": _sig(A.SOCKET_DOMAIN, A.SOCKET_TYPE, A.INT),
    "socketpair": _sig(A.SOCKET_DOMAIN, A.SOCKET_TYPE, A.INT, A.FD_PAIR_OUT),
    "connect": _sig(A.FD, A.PTR, A.UINT),
    "bind": _sig(A.FD, A.PTR, A.UINT),
    "listen": _sig(A.FD, A.INT),
    "accept": _sig(A.FD, A.PTR, A.PTR),
    "accept4": _sig(A.FD, A.PTR, A.PTR, A.HEX),
    "shutdown": _sig(A.FD, A.INT),
    "sendto": _sig(A.FD, A.BUF_IN, A.ULONG, A.HEX, A.PTR, A.UINT),
    "recvfrom": _sig(A.FD, A.BUF_OUT, A.ULONG, A.HEX, A.PTR, A.PTR),
    "sendmsg": _sig(A.FD, A.PTR, A.HEX),
    "recvmsg": _sig(A.FD, A.PTR, A.HEX),
    "sendmmsg": _sig(A.FD, A.PTR, A.UINT, A.HEX),
    "recvmmsg": _sig(A.FD, A.PTR, A.UINT, A.HEX, A.PTR),
    "getsockname": _sig(A.FD, A.PTR, A.PTR),
    "getpeername": _sig(A.FD, A.PTR, A.PTR),
    "setsockopt": _sig(A.FD, A.INT, A.INT, A.PTR, A.UINT),
    "getsockopt": _sig(A.FD, A.INT, A.INT, A.PTR, A.PTR),
}
del A
