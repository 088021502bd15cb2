"""The pseudo files that describe the process and its processor, served by the processor.

The storage manager would describe itself (its own /proc/self), not the guest, so these are
made here from the processor's own state when the guest opens them (proc(5)):

    /proc/self/maps       the memory manager's VMA layout, as the processor last received it
    /proc/self/cmdline    argv and environ, read from guest memory where exec put them
    /proc/self/environ
    /proc/self/auxv       the auxiliary vector, read from the initial stack
    /proc/self/stat       identity, times, sizes and addresses, with the guest's pid
    /proc/self/statm
    /proc/self/status
    /proc/self/comm       the task name (read-only here)
    /proc/cpuinfo         the one emulated x86-64 core, from the CPUID it answers
    /sys/devices/system/cpu/{online,possible,present}   "0": one core

`self`, `thread-self` and the guest's pid name the process (and `task/<tid>` its only
thread). The links exe, cwd, root and fd/N, and the directory fd listing them, are answered
from the same state. Each file's text is made once, when it is opened, as a Linux seq_file
is filled on the first read.
"""

from __future__ import annotations

import dataclasses
import os
import stat as stat_module
import time
import zlib
from typing import TYPE_CHECKING, Callable

from legorun.managers.vma import (
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Vma,
)
from legorun.processor.cpuid import cpuinfo
from legorun.processor.files import (
    O_ACCMODE,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_RDONLY,
    O_WRONLY,
    SEEK_CUR,
    SEEK_SET,
    Directory,
    HostStream,
    OpenFile,
)
from legorun.processor.pipe import PipeEnd
from legorun.rpc.messages import DirEntry, FileStat, ReaddirReply, StatReply, StatRequest
from syscalls.errno import Errno, SyscallError

if TYPE_CHECKING:
    from syscalls.context import SyscallContext

CLOCK_TICKS = 100  # USER_HZ
PR_GET_NAME = 16  # where prctl(PR_SET_NAME) keeps the task name (syscalls/process.py)
RLIMIT_RSS, RLIMIT_SIGPENDING = 5, 11
SIG_IGN = 1
DT_DIR, DT_LNK = 4, 10  # getdents64 d_type
PROC_DEV = 0x17  # an anonymous device number, as procfs has one
SYSFS_DEV = 0x16
# A /proc/self/maps line is padded to this width before the path (25 + 6 * sizeof(void *)
# - 1), then one space follows.
MAPS_PATH_COLUMN = 72
PR_GET_NO_NEW_PRIVS = 39

ProcText = Callable[["SyscallContext"], bytes]


class ProcFile(OpenFile):
    """An open pseudo file: a snapshot of its text, read like a regular file."""

    def __init__(self, path: str, flags: int, content: bytes, mode: int, dev: int) -> None:
        super().__init__(flags)
        self.path = path
        self.content = content
        self.offset = 0
        self._stat = _pseudo_stat(path, mode, dev)

    def pread(self, size: int, offset: int) -> bytes:
        return self.content[offset : offset + size]

    def read(self, size: int) -> bytes:
        data = self.pread(size, self.offset)
        self.offset += len(data)
        return data

    def seek(self, offset: int, whence: int) -> int:
        # A seq_file seeks from the start or from where it is, never from the end.
        target = offset + (self.offset if whence == SEEK_CUR else 0)
        if whence not in (SEEK_SET, SEEK_CUR) or target < 0:
            raise SyscallError(Errno.EINVAL)
        self.offset = target
        return target

    def stat(self) -> FileStat:
        return self._stat


def _pseudo_stat(path: str, mode: int, dev: int) -> FileStat:
    """The stat of a pseudo file; `mode` without a type is a regular file."""
    now = time.time_ns()
    size = PAGE_SIZE if dev == SYSFS_DEV else 0  # sysfs attributes claim a page
    if not stat_module.S_IFMT(mode):
        mode |= stat_module.S_IFREG
    return FileStat(dev=dev, ino=zlib.crc32(path.encode()), mode=mode,
                    nlink=1, uid=os.geteuid(), gid=os.getegid(), rdev=0, size=size,
                    blksize=PAGE_SIZE if dev == SYSFS_DEV else 1024, blocks=0, atime_ns=now,
                    mtime_ns=now, ctime_ns=now)


# ---------------------------------------------------------------- naming


# The host's /dev links into its /proc/self/fd, which would name legorun's descriptors.
DEV_FD_LINKS = {"fd": "fd", "stdin": "fd/0", "stdout": "fd/1", "stderr": "fd/2"}
DEV_LINK_TARGETS = {f"/dev/{name}": f"/proc/self/{target}".encode()
                    for name, target in DEV_FD_LINKS.items()}


def _process_part(ctx: SyscallContext, path: str) -> str | None:
    """What follows /proc/<this process>/ (or its only task) in `path`, or None; /dev/fd,
    /dev/stdin, /dev/stdout and /dev/stderr name the process's descriptors as on Linux."""
    parts = os.path.normpath(path).split("/")[1:]
    if len(parts) >= 2 and parts[0] == "dev" and parts[1] in DEV_FD_LINKS:
        return "/".join([DEV_FD_LINKS[parts[1]], *parts[2:]])
    if len(parts) < 3 or parts[0] != "proc":
        return None
    me = str(ctx.proc.pid)
    if parts[1] not in ("self", "thread-self", me):
        return None
    rest = parts[2:]
    if parts[1] != "thread-self" and len(rest) >= 3 and rest[0] == "task" and rest[1] == me:
        rest = rest[2:]
    return "/".join(rest)


def link_target(ctx: SyscallContext, path: str) -> bytes | None:
    """The target of a /proc link that describes the process (exe, cwd, root, fd/N), or
    None when `path` is not one."""
    name = _process_part(ctx, path)
    if name == "exe":
        return os.fsencode(ctx.proc.exe)
    if name == "cwd":
        return os.fsencode(ctx.proc.cwd)
    if name == "root":
        return b"/"
    if os.path.normpath(path) in DEV_LINK_TARGETS:
        return DEV_LINK_TARGETS[os.path.normpath(path)]
    if name is not None and name.startswith("fd/") and name[3:].isdigit():
        return os.fsencode(ctx.fds.get(int(name[3:])).fd_link())
    return None


def described_file(ctx: SyscallContext, path: str) -> OpenFile | None:
    """The open file a /proc/self/fd/N path (followed) names, or None for other paths: stat
    through the link describes the descriptor's file, pipes and sockets included."""
    name = _process_part(ctx, path)
    if name is not None and name.startswith("fd/") and name[3:].isdigit():
        return ctx.fds.get(int(name[3:]))
    return None


def follow_links(ctx: SyscallContext, path: str) -> str:
    """`path` with a leading /proc link of the process (exe, cwd, root, fd/N) replaced by
    what it names, for calls that follow it; the storage manager would follow its own."""
    name = _process_part(ctx, path)
    if name is None:
        return path
    link, _, rest = name.partition("/")
    if link == "fd":
        number, _, rest = rest.partition("/")
        link = f"fd/{number}"
        if number.isdigit():
            file = ctx.fds.get(int(number))
            host = file.host_fd()
            if isinstance(file, HostStream) and host is not None:
                # Inherited from legorun's own process, where the same link names it.
                return f"/proc/self/fd/{host}" + ("/" + rest if rest else "")
            if file.path is None:
                raise SyscallError(Errno.ENXIO)  # a socket or eventfd: not to be reopened
    target = link_target(ctx, f"/proc/self/{link}")
    if target is None:
        return path
    return os.fsdecode(target).rstrip("/") + ("/" + rest if rest else "")


class FdDirectory(Directory):
    """/proc/self/fd: one symbolic link per descriptor of the guest, named by its number."""

    def __init__(self, ctx: SyscallContext, path: str, flags: int) -> None:
        super().__init__(ctx.storage, path, flags)
        self._fds = ctx.fds
        self._stat = _pseudo_stat(path, stat_module.S_IFDIR | 0o500, PROC_DEV)

    def entries(self, count: int) -> ReaddirReply:
        inode = self._stat.ino
        listing = [DirEntry(b".", inode, DT_DIR), DirEntry(b"..", inode, DT_DIR)]
        listing += [DirEntry(str(fd).encode(), inode + 1 + fd, DT_LNK) for fd in self._fds.fds()]
        return ReaddirReply(entries=tuple(listing[self.offset : self.offset + count]))

    def stat(self) -> FileStat:
        return self._stat


def link_stat(ctx: SyscallContext, path: str) -> FileStat | None:
    """lstat of a /proc link of the process: a symbolic link whose permission bits say
    how the descriptor is open (rwx for exe, cwd and root); None when `path` is none."""
    target = link_target(ctx, path)
    if target is None:
        return None
    name = _process_part(ctx, path) or ""
    mode = 0o777
    if name.startswith("fd/"):
        access = ctx.fds.get(int(name[3:])).flags & O_ACCMODE
        mode = {O_RDONLY: 0o500, O_WRONLY: 0o300}.get(access, 0o700)
    st = _pseudo_stat(os.path.normpath(path), stat_module.S_IFLNK | mode, PROC_DEV)
    return dataclasses.replace(st, size=64)


def open_file(ctx: SyscallContext, path: str, flags: int, kept: int) -> OpenFile | None:
    """The pseudo file at `path`, opened with open(2) `flags` (`kept`: those its open file
    description keeps), or a pipe reopened through /proc/self/fd/N; None when the processor
    does not serve `path`."""
    name = _process_part(ctx, path)
    if name == "fd":
        return FdDirectory(ctx, os.path.normpath(path), kept)
    if name is not None and name.startswith("fd/") and name[3:].isdigit():
        file = ctx.fds.get(int(name[3:]))
        if isinstance(file, PipeEnd):
            return file.reopen(kept)
    served = _served(ctx, path)
    if served is None:
        return None
    text, mode, dev = served
    if flags & O_DIRECTORY:
        raise SyscallError(Errno.ENOTDIR)
    if flags & O_CREAT and flags & O_EXCL:
        raise SyscallError(Errno.EEXIST)
    if flags & O_ACCMODE != O_RDONLY and ctx.proc.euid != 0:
        raise SyscallError(Errno.EACCES)  # read-only; root may open it, but not write
    return ProcFile(os.path.normpath(path), kept, text(ctx), mode, dev)


def _served(ctx: SyscallContext, path: str) -> tuple[ProcText, int, int] | None:
    name = _process_part(ctx, path)
    if name is not None:
        entry = PROCESS_FILES.get(name)
        return None if entry is None else (entry[0], entry[1], PROC_DEV)
    normal = os.path.normpath(path)
    if normal == "/proc/cpuinfo":
        return _cpuinfo, 0o444, PROC_DEV
    if normal in ("/sys/devices/system/cpu/online", "/sys/devices/system/cpu/possible",
                  "/sys/devices/system/cpu/present"):
        return (lambda _ctx: b"0\n"), 0o444, SYSFS_DEV
    return None


# ---------------------------------------------------------------- the initial stack


def _initial_stack(ctx: SyscallContext) -> tuple[list[int], list[int], int]:
    """(argv pointers, envp pointers, auxv address), from the stack exec built."""
    sp = ctx.proc.stack_start
    # argc, then argv and envp, each ended by NULL: the arrays, not argc, say where they end.
    argv = ctx.mem.read_pointer_array(sp + 8)
    envp = ctx.mem.read_pointer_array(sp + 8 * (len(argv) + 2))
    return argv, envp, sp + 8 * (len(argv) + len(envp) + 3)


def _strings_area(ctx: SyscallContext, pointers: list[int]) -> tuple[int, int]:
    """[start, end) of the NUL-terminated strings exec laid out one after another."""
    if not pointers:
        return 0, 0
    last = pointers[-1]
    return pointers[0], last + len(ctx.mem.read_cstr(last)) + 1


def _cmdline(ctx: SyscallContext) -> bytes:
    start, end = _strings_area(ctx, _initial_stack(ctx)[0])
    return ctx.mem.read(start, end - start)


def _environ(ctx: SyscallContext) -> bytes:
    start, end = _strings_area(ctx, _initial_stack(ctx)[1])
    return ctx.mem.read(start, end - start)


def _auxv(ctx: SyscallContext) -> bytes:
    address = _initial_stack(ctx)[2]
    pairs = bytearray()
    while True:
        pair = ctx.mem.read(address, 16)
        pairs += pair
        if not int.from_bytes(pair[:8], "little"):  # AT_NULL ends it, and is included
            return bytes(pairs)
        address += 16


# ---------------------------------------------------------------- the address space


def _maps(ctx: SyscallContext) -> bytes:
    files: dict[str, FileStat | None] = {}
    lines = []
    for vma in ctx.vm.layout:
        dev = ino = 0
        name = vma.name
        if vma.path is not None:
            if vma.path not in files:
                reply: StatReply = ctx.storage.call(StatRequest(vma.path, True))
                files[vma.path] = reply.stat if not reply.status else None
            st = files[vma.path]
            if st is not None:
                dev, ino = st.dev, st.ino
            name = vma.path
        perms = "".join((
            "r" if vma.prot & PROT_READ else "-", "w" if vma.prot & PROT_WRITE else "-",
            "x" if vma.prot & PROT_EXEC else "-", "s" if _shared(vma) else "p",
        ))
        offset = vma.offset if vma.path is not None else 0
        header = (f"{vma.start:08x}-{vma.end:08x} {perms} {offset:08x} "
                  f"{os.major(dev):02x}:{os.minor(dev):02x} {ino} ")
        lines.append(header.ljust(MAPS_PATH_COLUMN) + " " + name if name else header)
    return "".join(line + "\n" for line in lines).encode()


def _shared(vma: Vma) -> bool:
    return vma.flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE)


class _Sizes:
    """The sizes /proc/self/stat, statm and status report, in pages, from the layout."""

    def __init__(self, ctx: SyscallContext) -> None:
        layout = ctx.vm.layout
        self.total = sum(v.length for v in layout) // PAGE_SIZE
        self.stack = sum(v.length for v in layout if v.name == "[stack]") // PAGE_SIZE
        self.exe_text = [v for v in layout if v.path == ctx.proc.exe and v.prot & PROT_EXEC]
        self.exe_data = [v for v in layout if v.path == ctx.proc.exe and v.prot & PROT_WRITE]
        self.text = sum(v.length for v in self.exe_text) // PAGE_SIZE
        self.libs = sum(v.length for v in layout if v.prot & PROT_EXEC and v.path
                        and v.path != ctx.proc.exe) // PAGE_SIZE
        self.data = sum(v.length for v in layout if v.prot & PROT_WRITE
                        and not _shared(v) and v.name != "[stack]") // PAGE_SIZE
        self.resident = ctx.vm.excache.resident_lines if ctx.vm.excache else 0
        heap = [v for v in layout if v.name == "[heap]"]
        self.start_brk = heap[0].start if heap else ctx.vm.brk_value


def _span(vmas: list[Vma]) -> tuple[int, int]:
    return (min(v.start for v in vmas), max(v.end for v in vmas)) if vmas else (0, 0)


def _name(ctx: SyscallContext) -> bytes:
    return bytes(ctx.proc.prctl.get(PR_GET_NAME, ctx.proc.comm))


def _signal_sets(ctx: SyscallContext) -> tuple[int, int]:
    """(ignored, caught): the signals whose action is SIG_IGN, and those with a handler."""
    ignored = caught = 0
    for sig, action in ctx.proc.sigactions.items():
        if action.handler == SIG_IGN:
            ignored |= 1 << (sig - 1)
        elif action.handler:
            caught |= 1 << (sig - 1)
    return ignored, caught


def _start_ticks(ctx: SyscallContext) -> int:
    """When the process started, in clock ticks since the host booted."""
    boot_now = time.clock_gettime(time.CLOCK_BOOTTIME)
    return int((boot_now - (time.monotonic() - ctx.proc.start_monotonic)) * CLOCK_TICKS)


def _stat(ctx: SyscallContext) -> bytes:
    sizes = _Sizes(ctx)
    argv, envp, _auxv_at = _initial_stack(ctx)
    arg_start, arg_end = _strings_area(ctx, argv)
    env_start, env_end = _strings_area(ctx, envp)
    code_start, code_end = _span(sizes.exe_text)
    data_start, data_end = _span(sizes.exe_data)
    ignored, caught = _signal_sets(ctx)
    times = os.times()
    misses = ctx.vm.excache.stats.misses if ctx.vm.excache else 0
    pid = ctx.proc.pid
    fields = [
        pid, 0, "R", ctx.proc.ppid, pid, pid, 0, -1, 0, misses, 0, 0, 0,
        int(times.user * CLOCK_TICKS), int(times.system * CLOCK_TICKS), 0, 0, 20, 0, 1, 0,
        _start_ticks(ctx), sizes.total * PAGE_SIZE, sizes.resident,
        ctx.proc.rlimits[RLIMIT_RSS][0], code_start, code_end, ctx.proc.stack_start, 0, 0,
        0, ctx.threads.current.sigmask, ignored, caught, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0,
        data_start, data_end, sizes.start_brk, arg_start, arg_end, env_start, env_end, 0,
    ]
    text = " ".join(str(field) for field in fields[2:])
    return f"{pid} (".encode() + _name(ctx) + f") {text}\n".encode()


def _statm(ctx: SyscallContext) -> bytes:
    sizes = _Sizes(ctx)
    return f"{sizes.total} {sizes.resident} 0 {sizes.text} 0 {sizes.data} 0\n".encode()


def _host_capabilities() -> list[str]:
    """The Cap* lines of the processor's own process: the guest runs with its credentials."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            return [line.rstrip("\n") for line in status if line.startswith("Cap")]
    except OSError:
        return []


def _status(ctx: SyscallContext) -> bytes:
    sizes = _Sizes(ctx)
    proc = ctx.proc
    ignored, caught = _signal_sets(ctx)

    def kb(pages: int) -> str:
        return f"{pages * PAGE_SIZE // 1024:8d} kB"

    fd_size = max(64, 1 << (max(ctx.fds.fds(), default=0)).bit_length())
    lines = [
        f"Name:\t{_name(ctx).decode(errors='replace')}", f"Umask:\t{proc.umask:04o}",
        "State:\tR (running)", f"Tgid:\t{proc.pid}", "Ngid:\t0", f"Pid:\t{proc.pid}",
        f"PPid:\t{proc.ppid}", "TracerPid:\t0",
        "Uid:\t{0.real}\t{0.effective}\t{0.saved}\t{0.fs}".format(proc.uids),
        "Gid:\t{0.real}\t{0.effective}\t{0.saved}\t{0.fs}".format(proc.gids),
        f"FDSize:\t{fd_size}", "Groups:\t" + "".join(f"{gid} " for gid in proc.groups), f"NStgid:\t{proc.pid}",
        f"NSpid:\t{proc.pid}", f"NSpgid:\t{proc.pid}", f"NSsid:\t{proc.pid}",
        f"VmPeak:\t{kb(sizes.total)}", f"VmSize:\t{kb(sizes.total)}", f"VmLck:\t{kb(0)}",
        f"VmPin:\t{kb(0)}", f"VmHWM:\t{kb(sizes.resident)}", f"VmRSS:\t{kb(sizes.resident)}",
        f"VmData:\t{kb(sizes.data)}", f"VmStk:\t{kb(sizes.stack)}",
        f"VmExe:\t{kb(sizes.text)}", f"VmLib:\t{kb(sizes.libs)}", f"VmPTE:\t{kb(0)}",
        f"VmSwap:\t{kb(0)}", f"Threads:\t{len(ctx.threads)}",
        f"SigQ:\t0/{proc.rlimits[RLIMIT_SIGPENDING][0]}",
        f"SigPnd:\t{ctx.threads.current.pending.mask:016x}",
        f"ShdPnd:\t{ctx.signals.shared.mask:016x}",
        f"SigBlk:\t{ctx.threads.current.sigmask:016x}",
        f"SigIgn:\t{ignored:016x}", f"SigCgt:\t{caught:016x}", *_host_capabilities(),
        f"NoNewPrivs:\t{int(proc.prctl.get(PR_GET_NO_NEW_PRIVS, 0))}", "Seccomp:\t0",
        "Cpus_allowed:\t1", "Cpus_allowed_list:\t0", "Mems_allowed_list:\t0",
        "voluntary_ctxt_switches:\t0", "nonvoluntary_ctxt_switches:\t0",
    ]
    return "".join(line + "\n" for line in lines).encode()


def _comm(ctx: SyscallContext) -> bytes:
    return _name(ctx) + b"\n"


def _cpuinfo(ctx: SyscallContext) -> bytes:
    return cpuinfo(ctx.cpu.uc.ctl_get_cpu_model())


# name under /proc/self -> (text, permission bits)
PROCESS_FILES: dict[str, tuple[ProcText, int]] = {
    "maps": (_maps, 0o444),
    "cmdline": (_cmdline, 0o444),
    "environ": (_environ, 0o400),
    "auxv": (_auxv, 0o400),
    "stat": (_stat, 0o444),
    "statm": (_statm, 0o444),
    "status": (_status, 0o444),
    "comm": (_comm, 0o444),
}
