"""The initial process stack: argc, argv, envp and the auxiliary vector.

Follows System V ABI AMD64, 3.4.1 "Initial Stack and Register State", laid out byte for byte
as Linux builds it: fs/exec.c (the strings, copied at the top of the stack) and
fs/binfmt_elf.c create_elf_tables() (platform string, AT_RANDOM bytes, auxv, pointer arrays),
with address randomisation off.

From stack_top downwards:

    8 zero bytes                  the end marker (bprm->p starts one word below the top)
    execfn NUL                    AT_EXECFN points here
    envp strings, argv strings    each NUL-terminated, argv[0] lowest
    (align down to 16)
    platform NUL                  AT_PLATFORM points here
    16 random bytes               AT_RANDOM points here
    (padding)                     so that sp ends up 16-byte aligned
    auxv pairs ... AT_NULL 0
    envp[0] ... NULL
    argv[0] ... NULL
    argc                          <- sp
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from legorun.loader.elf import TASK_SIZE, LoadedImage
from legorun.managers.vma import PAGE_SIZE

# Auxiliary vector types (include/uapi/linux/auxvec.h, arch/x86/include/uapi/asm/auxvec.h).
AT_NULL = 0
AT_IGNORE = 1
AT_EXECFD = 2
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_PAGESZ = 6
AT_BASE = 7
AT_FLAGS = 8
AT_ENTRY = 9
AT_NOTELF = 10
AT_UID = 11
AT_EUID = 12
AT_GID = 13
AT_EGID = 14
AT_PLATFORM = 15
AT_HWCAP = 16
AT_CLKTCK = 17
AT_SECURE = 23
AT_BASE_PLATFORM = 24
AT_RANDOM = 25
AT_HWCAP2 = 26
AT_RSEQ_FEATURE_SIZE = 27
AT_RSEQ_ALIGN = 28
AT_EXECFN = 31
AT_SYSINFO = 32
AT_SYSINFO_EHDR = 33
AT_MINSIGSTKSZ = 51

# x86-64 STACK_TOP is TASK_SIZE_LOW: the main thread's stack ends where user space does.
STACK_TOP = TASK_SIZE

AT_RANDOM_SIZE = 16
_WORD = 8


@dataclass(frozen=True, slots=True)
class AuxvInputs:
    """The auxv values that come from the process's credentials and the machine, not the ELF."""

    uid: int
    euid: int
    gid: int
    egid: int
    hwcap: int
    platform: bytes  # without NUL, e.g. b"x86_64"; empty means no AT_PLATFORM
    random: bytes  # the 16 AT_RANDOM bytes (glibc seeds the stack protector and pointer guard)
    clktck: int = 100
    secure: int = 0
    base: int = 0  # AT_BASE: interpreter load address, 0 when static
    sysinfo_ehdr: int | None = None  # vDSO ELF header; None when there is no vDSO


@dataclass(frozen=True, slots=True)
class InitialStack:
    """The bytes that occupy [sp, stack_top) at the program's first instruction."""

    sp: int
    data: bytes


def _cstring(s: bytes, what: str) -> bytes:
    if b"\0" in s:
        raise ValueError(f"{what} contains a NUL byte: {s!r}")
    return bytes(s) + b"\0"


def _auxv(
    image: LoadedImage, aux: AuxvInputs, execfn: int, platform: int | None, random: int
) -> list[tuple[int, int]]:
    # The order of create_elf_tables(); ARCH_DLINFO (x86-64: AT_SYSINFO_EHDR) comes first.
    pairs: list[tuple[int, int]] = []
    if aux.sysinfo_ehdr is not None:
        pairs.append((AT_SYSINFO_EHDR, aux.sysinfo_ehdr))
    pairs += [
        (AT_HWCAP, aux.hwcap),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_CLKTCK, aux.clktck),
        (AT_PHDR, image.phdr),
        (AT_PHENT, image.phent),
        (AT_PHNUM, image.phnum),
        (AT_BASE, aux.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, image.entry),
        (AT_UID, aux.uid),
        (AT_EUID, aux.euid),
        (AT_GID, aux.gid),
        (AT_EGID, aux.egid),
        (AT_SECURE, aux.secure),
        (AT_RANDOM, random),
        (AT_HWCAP2, 0),
        (AT_EXECFN, execfn),
    ]
    if platform is not None:
        pairs.append((AT_PLATFORM, platform))
    pairs.append((AT_NULL, 0))
    return pairs


def build_stack(
    image: LoadedImage,
    argv: Sequence[bytes],
    envp: Sequence[bytes],
    execfn: bytes,
    aux: AuxvInputs,
    stack_top: int,
) -> InitialStack:
    """Lay out the initial stack of `image` below `stack_top` (16-byte aligned).

    Strings must not contain NUL (execve splits at it); ValueError otherwise. Limits such as
    ARG_MAX are the caller's (execve's) business: this only builds what it is given.
    """
    if stack_top % 16 or not 0 < stack_top <= 1 << 64:
        raise ValueError(f"stack_top {stack_top:#x} is not a 16-byte aligned address")
    if len(aux.random) != AT_RANDOM_SIZE:
        raise ValueError(f"AT_RANDOM needs {AT_RANDOM_SIZE} bytes, got {len(aux.random)}")

    argv_c = [_cstring(a, "argv string") for a in argv]
    envp_c = [_cstring(e, "envp string") for e in envp]
    execfn_c = _cstring(execfn, "execfn")

    # fs/exec.c: bprm->p starts one word below the top, then execfn, envp and argv strings
    # are pushed in that order, each array copied last-to-first so element 0 ends up lowest.
    p = stack_top - _WORD
    p -= len(execfn_c)
    execfn_addr = p
    p -= sum(map(len, envp_c)) + sum(map(len, argv_c))
    strings_start = p
    argv_addrs: list[int] = []
    envp_addrs: list[int] = []
    cursor = strings_start
    for addrs, strings in ((argv_addrs, argv_c), (envp_addrs, envp_c)):
        for s in strings:
            addrs.append(cursor)
            cursor += len(s)

    # create_elf_tables(): arch_align_stack() (no randomisation: just & ~15), then the
    # platform string and the AT_RANDOM bytes, unaligned, directly below.
    p &= ~0xF
    platform_addr: int | None = None
    platform_c = _cstring(aux.platform, "platform") if aux.platform else b""
    if platform_c:
        p -= len(platform_c)
        platform_addr = p
    p -= AT_RANDOM_SIZE
    random_addr = p

    auxv = _auxv(image, aux, execfn_addr, platform_addr, random_addr)
    items = (len(argv_c) + 1) + (len(envp_c) + 1) + 1
    # STACK_ROUND(sp - auxv, items): the 16-byte alignment is taken by the gap above auxv.
    sp = (p - len(auxv) * 2 * _WORD - items * _WORD) & ~0xF
    if sp < 0:
        raise ValueError("arguments and environment do not fit below stack_top")

    words = [len(argv_c), *argv_addrs, 0, *envp_addrs, 0]
    for key, value in auxv:
        words += [key, value]
    tables = struct.pack(f"<{len(words)}Q", *(w & 0xFFFF_FFFF_FFFF_FFFF for w in words))

    buf = bytearray(stack_top - sp)

    def put(addr: int, blob: bytes) -> None:
        buf[addr - sp : addr - sp + len(blob)] = blob

    put(sp, tables)
    put(random_addr, aux.random)
    if platform_addr is not None:
        put(platform_addr, platform_c)
    put(strings_start, b"".join(argv_c) + b"".join(envp_c))
    put(execfn_addr, execfn_c)
    return InitialStack(sp=sp, data=bytes(buf))
