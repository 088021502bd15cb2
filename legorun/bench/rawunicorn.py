"""The raw Unicorn baseline: a static x86-64 ELF run on plain Unicorn, with no ExCache.

This is what legorun's ExCache is measured against: the cheapest way to run the same guest on
the same emulator. Everything is mapped up front with `uc.mem_map` (the ELF segments, an
8 MiB stack and one large heap region), Unicorn keeps its default TLB mode, and the only hook
is a Python syscall hook that implements just what a static glibc program needs to start,
allocate memory, print and exit. brk grows up from the bottom of the heap region and
anonymous mmap bumps down from its top; nothing is ever reused, so nothing has to be zeroed
except brk memory that was given back and taken again.

Run it as `python -m legorun.bench.rawunicorn PROGRAM [ARGS...]`: the guest's stdout and
stderr are this process's, and the exit status is the guest's.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, UC_PROT_ALL, Uc, UcError
from unicorn.x86_const import (
    UC_X86_INS_SYSCALL,
    UC_X86_REG_FS_BASE,
    UC_X86_REG_GS_BASE,
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_RAX,
    UC_X86_REG_RDI,
    UC_X86_REG_RDX,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
)

from legorun.errors import LoaderError
from legorun.loader.elf import LoadedImage, parse_elf
from legorun.loader.stack import AuxvInputs, build_stack
from legorun.managers.vma import page_down, page_up
from legorun.processor.processor import HWCAP_X86

STACK_TOP = 0x7FFFFFFFF000  # where Linux puts the main stack without randomisation
STACK_SIZE = 8 << 20
DEFAULT_HEAP_SIZE = 1 << 30  # host memory is only committed when touched

# Syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) and the errno values returned.
SYS_WRITE, SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_BRK = 1, 9, 10, 11, 12
SYS_WRITEV, SYS_MADVISE, SYS_GETPID, SYS_EXIT, SYS_UNAME = 20, 28, 39, 60, 63
SYS_READLINK, SYS_GETPPID, SYS_ARCH_PRCTL, SYS_GETTID, SYS_FUTEX = 89, 110, 158, 186, 202
SYS_SET_TID_ADDRESS, SYS_CLOCK_GETTIME, SYS_EXIT_GROUP = 218, 228, 231
SYS_NEWFSTATAT, SYS_FSTAT, SYS_SET_ROBUST_LIST, SYS_PRLIMIT64 = 262, 5, 273, 302
SYS_GETRANDOM, SYS_RSEQ = 318, 334
EBADF, ENOMEM, EFAULT, EINVAL, ENODEV, ENOSYS = 9, 12, 14, 22, 19, 38
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
MAP_FIXED, MAP_ANONYMOUS = 0x10, 0x20
RLIMIT_STACK = 3
RLIM_INFINITY = (1 << 64) - 1
MASK64 = (1 << 64) - 1


class RawUnicornError(Exception):
    """The program cannot be run by this baseline (not a static x86-64 ELF, or it stopped)."""


def load_static(data: bytes, path: str) -> LoadedImage:
    """The program as legorun's loader parses it; only static programs run here."""
    try:
        image = parse_elf(data, path)
    except LoaderError as error:
        raise RawUnicornError(str(error)) from None
    if image.interp is not None:
        raise RawUnicornError("dynamically linked: only static programs are supported")
    return image


def page_ranges(image: LoadedImage) -> list[tuple[int, int]]:
    """The segments' pages as merged [start, end) ranges: two segments may share a page,
    and Unicorn refuses to map a page twice."""
    ranges = sorted((page_down(s.vaddr), page_up(s.vaddr + s.memsz)) for s in image.segments)
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class RawMachine:
    """One guest on one Unicorn instance, all memory mapped before the first instruction."""

    def __init__(self, image: LoadedImage, argv: Sequence[bytes], envp: Sequence[bytes],
                 heap_size: int = DEFAULT_HEAP_SIZE) -> None:
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.image = image
        self.exit_status: int | None = None
        self.unimplemented: set[int] = set()
        for start, end in page_ranges(image):
            self.uc.mem_map(start, end - start, UC_PROT_ALL)
        for segment in image.segments:
            self.uc.mem_write(segment.vaddr, segment.data)
        self.uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, UC_PROT_ALL)
        aux = AuxvInputs(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(),
                         egid=os.getegid(), hwcap=HWCAP_X86, platform=b"x86_64",
                         random=os.urandom(16))
        stack = build_stack(image, argv, envp, argv[0] if argv else b"", aux, STACK_TOP)
        self.sp = stack.sp
        self.uc.mem_write(self.sp, stack.data)

        self.heap_start = image.end
        self.heap_end = self.heap_start + heap_size
        self.uc.mem_map(self.heap_start, heap_size, UC_PROT_ALL)
        self.brk = self.brk_high = self.heap_start
        self.mmap_low = self.heap_end
        self.uc.hook_add(UC_HOOK_INSN, self._on_syscall, None, 1, 0, UC_X86_INS_SYSCALL)

    def run(self) -> int:
        """Run to exit_group; returns the exit status."""
        self.uc.reg_write(UC_X86_REG_RSP, self.sp)
        try:
            self.uc.emu_start(self.image.entry, MASK64)
        except UcError as error:
            rip = self.uc.reg_read(UC_X86_REG_RIP)
            raise RawUnicornError(f"guest stopped at {rip:#x}: {error}") from None
        if self.exit_status is None:
            raise RawUnicornError("guest stopped without calling exit")
        return self.exit_status

    # ------------------------------------------------------------ the syscall hook

    def _on_syscall(self, uc: Uc, _user: object) -> None:
        nr = uc.reg_read(UC_X86_REG_RAX)
        args = [uc.reg_read(reg) for reg in (UC_X86_REG_RDI, UC_X86_REG_RSI, UC_X86_REG_RDX,
                                             UC_X86_REG_R10, UC_X86_REG_R8, UC_X86_REG_R9)]
        result = self._syscall(nr, args)
        uc.reg_write(UC_X86_REG_RAX, result & MASK64)

    def _syscall(self, nr: int, a: list[int]) -> int:
        uc = self.uc
        if nr == SYS_WRITE:
            return self._write(a[0], bytes(uc.mem_read(a[1], a[2])))
        if nr == SYS_WRITEV:
            iovs = struct.unpack(f"<{2 * a[2]}Q", uc.mem_read(a[1], 16 * a[2]))
            chunks = (bytes(uc.mem_read(iovs[i], iovs[i + 1])) for i in range(0, len(iovs), 2))
            return self._write(a[0], b"".join(chunks))
        if nr == SYS_BRK:
            return self._brk(a[0])
        if nr == SYS_MMAP:
            return self._mmap(a[1], a[3])
        if nr in (SYS_MUNMAP, SYS_MPROTECT, SYS_MADVISE, SYS_FUTEX, SYS_SET_ROBUST_LIST):
            return 0  # the bump allocator never reuses, and there is only one thread
        if nr in (SYS_EXIT_GROUP, SYS_EXIT):
            self.exit_status = a[0] & 0xFF
            uc.emu_stop()
            return 0
        if nr == SYS_ARCH_PRCTL:
            return self._arch_prctl(a[0], a[1])
        if nr in (SYS_SET_TID_ADDRESS, SYS_GETPID, SYS_GETTID):
            return os.getpid()
        if nr == SYS_GETPPID:
            return os.getppid()
        if nr == SYS_PRLIMIT64:
            if a[3]:
                soft = STACK_SIZE if a[1] == RLIMIT_STACK else RLIM_INFINITY
                uc.mem_write(a[3], struct.pack("<QQ", soft, RLIM_INFINITY))
            return 0
        if nr == SYS_UNAME:
            fields = (*os.uname(), "(none)")
            uc.mem_write(a[0], b"".join(f.encode()[:64].ljust(65, b"\0") for f in fields))
            return 0
        if nr == SYS_GETRANDOM:
            uc.mem_write(a[0], os.urandom(a[1]))
            return a[1]
        if nr == SYS_CLOCK_GETTIME:
            ns = time.clock_gettime_ns(a[0])
            uc.mem_write(a[1], struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000))
            return 0
        # rseq, readlink, fstat, newfstatat and anything else: glibc copes with ENOSYS.
        if nr not in self.unimplemented and nr not in (SYS_RSEQ, SYS_READLINK, SYS_FSTAT,
                                                       SYS_NEWFSTATAT):
            self.unimplemented.add(nr)
            os.write(2, f"rawunicorn: syscall {nr} not implemented: ENOSYS\n".encode())
        return -ENOSYS

    def _write(self, fd: int, data: bytes) -> int:
        if fd not in (1, 2):
            return -EBADF
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return len(data)

    def _brk(self, want: int) -> int:
        if not self.heap_start <= want <= self.mmap_low:
            return self.brk
        # glibc assumes fresh brk memory reads as zero, also after it trimmed the heap.
        if want > self.brk and self.brk < self.brk_high:
            reused_end = min(want, self.brk_high)
            self.uc.mem_write(self.brk, bytes(reused_end - self.brk))
        self.brk = want
        self.brk_high = max(self.brk_high, want)
        return want

    def _mmap(self, length: int, flags: int) -> int:
        if not flags & MAP_ANONYMOUS:
            return -ENODEV
        if flags & MAP_FIXED or length == 0:
            return -EINVAL
        low = page_down(self.mmap_low - page_up(length))
        if low < page_up(self.brk_high):
            return -ENOMEM
        self.mmap_low = low
        return low

    def _arch_prctl(self, code: int, addr: int) -> int:
        if code == ARCH_SET_FS:
            self.uc.reg_write(UC_X86_REG_FS_BASE, addr)
        elif code == ARCH_SET_GS:
            self.uc.reg_write(UC_X86_REG_GS_BASE, addr)
        elif code in (ARCH_GET_FS, ARCH_GET_GS):
            reg = UC_X86_REG_FS_BASE if code == ARCH_GET_FS else UC_X86_REG_GS_BASE
            self.uc.mem_write(addr, struct.pack("<Q", self.uc.reg_read(reg)))
        else:
            return -EINVAL  # e.g. the CET status query: no CET here
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write("usage: python -m legorun.bench.rawunicorn PROGRAM [ARGS...]\n")
        return 2
    program = Path(args[0])
    try:
        image = load_static(program.read_bytes(), str(program))
        guest_argv = [os.fsencode(arg) for arg in args]
        envp = [os.fsencode(f"{k}={v}") for k, v in os.environ.items()]
        return RawMachine(image, guest_argv, envp).run()
    except (OSError, RawUnicornError) as error:
        sys.stderr.write(f"rawunicorn: {program}: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
