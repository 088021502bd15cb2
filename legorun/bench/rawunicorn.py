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
from dataclasses import dataclass
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

PAGE_SIZE = 4096
STACK_TOP = 0x7FFFFFFFF000  # where Linux puts the main stack without randomisation
STACK_SIZE = 8 << 20
DEFAULT_HEAP_SIZE = 1 << 30  # host memory is only committed when touched
STATIC_PIE_BASE = 0x555555554000  # ELF_ET_DYN_BASE, as the kernel loads a static-pie

ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")
ET_EXEC, ET_DYN = 2, 3
EM_X86_64 = 62
PT_LOAD, PT_INTERP, PT_PHDR = 1, 3, 6

# Auxiliary vector keys (include/uapi/linux/auxvec.h) that static glibc reads at start-up.
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_ENTRY = 0, 3, 4, 5, 6, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP = 11, 12, 13, 14, 15, 16
AT_CLKTCK, AT_SECURE, AT_RANDOM, AT_EXECFN = 17, 23, 25, 31
HWCAP_X86 = 0x078BFBFF

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


def page_down(value: int) -> int:
    return value & ~(PAGE_SIZE - 1)


def page_up(value: int) -> int:
    return (value + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass(frozen=True, slots=True)
class Segment:
    vaddr: int
    memsz: int
    data: bytes  # the file bytes; the rest up to memsz is zero (bss)


@dataclass(frozen=True, slots=True)
class StaticImage:
    entry: int
    phdr: int  # where the program headers are in guest memory (AT_PHDR)
    phent: int
    phnum: int
    segments: tuple[Segment, ...]

    @property
    def end(self) -> int:
        """The first page above every segment: the initial program break."""
        return page_up(max(s.vaddr + s.memsz for s in self.segments))

    def page_ranges(self) -> list[tuple[int, int]]:
        """The segments' pages as merged [start, end) ranges: two segments may share a page,
        and Unicorn refuses to map a page twice."""
        ranges = sorted((page_down(s.vaddr), page_up(s.vaddr + s.memsz)) for s in self.segments)
        merged: list[tuple[int, int]] = []
        for start, end in ranges:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def load_static_elf(data: bytes) -> StaticImage:
    """Parse a static x86-64 executable (ET_EXEC, or ET_DYN without an interpreter)."""
    if len(data) < ELF_HEADER.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise RawUnicornError("not a 64-bit little-endian ELF file")
    (_, e_type, e_machine, _, e_entry, e_phoff, _, _, _, e_phentsize, e_phnum,
     *_rest) = ELF_HEADER.unpack_from(data)
    if e_machine != EM_X86_64 or e_type not in (ET_EXEC, ET_DYN):
        raise RawUnicornError("not an x86-64 executable")
    bias = STATIC_PIE_BASE if e_type == ET_DYN else 0
    headers = [PROGRAM_HEADER.unpack_from(data, e_phoff + i * e_phentsize) for i in range(e_phnum)]
    segments: list[Segment] = []
    phdr: int | None = None
    for p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align in headers:
        if p_type == PT_INTERP:
            raise RawUnicornError("dynamically linked: only static programs are supported")
        if p_type == PT_PHDR:
            phdr = p_vaddr + bias
        if p_type == PT_LOAD and p_memsz:
            segments.append(Segment(p_vaddr + bias, p_memsz, data[p_offset : p_offset + p_filesz]))
            if phdr is None and p_offset <= e_phoff < p_offset + p_filesz:
                phdr = p_vaddr + bias + (e_phoff - p_offset)
    if not segments:
        raise RawUnicornError("no loadable segments")
    return StaticImage(e_entry + bias, phdr or 0, e_phentsize, e_phnum, tuple(segments))


def build_stack(image: StaticImage, argv: Sequence[bytes], envp: Sequence[bytes],
                top: int) -> tuple[int, bytes]:
    """The initial stack (argc, argv, envp, auxv and the strings they point to) as it must
    sit below `top`; returns (sp, bytes from sp to top)."""
    strings = bytearray()
    offsets: list[int] = []
    for item in (*argv, *envp, b"x86_64"):
        offsets.append(len(strings))
        strings += item + b"\0"
    random_offset = len(strings)
    strings += os.urandom(16)
    strings_base = (top - len(strings) - 16) & ~0xF
    addrs = [strings_base + off for off in offsets]
    argv_addrs, envp_addrs = addrs[: len(argv)], addrs[len(argv) : len(argv) + len(envp)]
    auxv = [
        (AT_PHDR, image.phdr), (AT_PHENT, image.phent), (AT_PHNUM, image.phnum),
        (AT_PAGESZ, PAGE_SIZE), (AT_ENTRY, image.entry), (AT_UID, os.getuid()),
        (AT_EUID, os.geteuid()), (AT_GID, os.getgid()), (AT_EGID, os.getegid()),
        (AT_PLATFORM, addrs[-1]), (AT_HWCAP, HWCAP_X86), (AT_CLKTCK, 100), (AT_SECURE, 0),
        (AT_RANDOM, strings_base + random_offset), (AT_EXECFN, argv_addrs[0] if argv else 0),
        (AT_NULL, 0),
    ]
    words = [len(argv), *argv_addrs, 0, *envp_addrs, 0, *(w for pair in auxv for w in pair)]
    tables = struct.pack(f"<{len(words)}Q", *words)
    sp = (strings_base - len(tables)) & ~0xF  # the ABI wants rsp 16-byte aligned at entry
    blob = bytearray(top - sp)
    blob[: len(tables)] = tables
    blob[strings_base - sp : strings_base - sp + len(strings)] = strings
    return sp, bytes(blob)


class RawMachine:
    """One guest on one Unicorn instance, all memory mapped before the first instruction."""

    def __init__(self, image: StaticImage, argv: Sequence[bytes], envp: Sequence[bytes],
                 heap_size: int = DEFAULT_HEAP_SIZE) -> None:
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.image = image
        self.exit_status: int | None = None
        self.unimplemented: set[int] = set()
        for start, end in image.page_ranges():
            self.uc.mem_map(start, end - start, UC_PROT_ALL)
        for segment in image.segments:
            self.uc.mem_write(segment.vaddr, segment.data)
        self.uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, UC_PROT_ALL)
        self.sp, stack = build_stack(image, argv, envp, STACK_TOP)
        self.uc.mem_write(self.sp, stack)

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
        image = load_static_elf(program.read_bytes())
        guest_argv = [os.fsencode(arg) for arg in args]
        envp = [os.fsencode(f"{k}={v}") for k, v in os.environ.items()]
        return RawMachine(image, guest_argv, envp).run()
    except (OSError, RawUnicornError) as error:
        sys.stderr.write(f"rawunicorn: {program}: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
