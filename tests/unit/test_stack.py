"""The initial process stack (legorun.loader.stack), decoded back word by word.

The layout is checked against System V ABI AMD64 3.4.1 and against addresses observed on a
real Linux x86-64 kernel with randomisation off (`setarch -R env -i A=1 BB=22 ./dump x yy`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from legorun.loader.elf import ET_EXEC, LoadedImage, Segment
from legorun.loader.stack import (
    AT_BASE,
    AT_CLKTCK,
    AT_EGID,
    AT_ENTRY,
    AT_EUID,
    AT_EXECFN,
    AT_FLAGS,
    AT_GID,
    AT_HWCAP,
    AT_HWCAP2,
    AT_NULL,
    AT_PAGESZ,
    AT_PHDR,
    AT_PHENT,
    AT_PHNUM,
    AT_PLATFORM,
    AT_RANDOM,
    AT_SECURE,
    AT_SYSINFO_EHDR,
    AT_UID,
    STACK_TOP,
    AuxvInputs,
    InitialStack,
    build_stack,
)

IMAGE = LoadedImage(
    e_type=ET_EXEC,
    load_bias=0,
    entry=0x4014F0,
    phdr=0x400040,
    phent=56,
    phnum=10,
    segments=(Segment(vaddr=0x400000, memsz=0x1000, filesz=0x1000, offset=0, prot=5, data=bytes(0x1000)),),
    interp=None,
    tls=None,
    stack_executable=False,
    end=0x401000,
)

RANDOM = bytes(range(0xA0, 0xB0))

AUX = AuxvInputs(
    uid=1000, euid=1001, gid=100, egid=101, hwcap=0x178BFBFF, platform=b"x86_64", random=RANDOM,
    base=0x7FFFF7FC3000,
)

# create_elf_tables() order, without the optional AT_SYSINFO_EHDR.
LINUX_ORDER = [
    AT_HWCAP, AT_PAGESZ, AT_CLKTCK, AT_PHDR, AT_PHENT, AT_PHNUM, AT_BASE, AT_FLAGS, AT_ENTRY,
    AT_UID, AT_EUID, AT_GID, AT_EGID, AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_PLATFORM,
]


@dataclass(frozen=True, slots=True)
class Decoded:
    argc: int
    argv: list[bytes]
    envp: list[bytes]
    argv_ptrs: list[int]
    envp_ptrs: list[int]
    auxv: list[tuple[int, int]]
    auxv_end: int  # address just past AT_NULL


class Memory:
    """Reads guest addresses out of an InitialStack as the program would."""

    def __init__(self, stack: InitialStack, top: int) -> None:
        self.stack = stack
        self.top = top
        assert len(stack.data) == top - stack.sp

    def word(self, addr: int) -> int:
        assert self.stack.sp <= addr <= self.top - 8, hex(addr)
        return struct.unpack_from("<Q", self.stack.data, addr - self.stack.sp)[0]

    def read(self, addr: int, n: int) -> bytes:
        assert self.stack.sp <= addr and addr + n <= self.top, hex(addr)
        return self.stack.data[addr - self.stack.sp : addr - self.stack.sp + n]

    def cstring(self, addr: int) -> bytes:
        assert self.stack.sp <= addr < self.top, hex(addr)
        off = addr - self.stack.sp
        end = self.stack.data.index(b"\0", off)
        return self.stack.data[off:end]


def decode(stack: InitialStack, top: int) -> tuple[Decoded, Memory]:
    mem = Memory(stack, top)
    addr = stack.sp
    argc = mem.word(addr)
    addr += 8

    def pointers() -> list[int]:
        nonlocal addr
        out = []
        while (p := mem.word(addr)) != 0:
            out.append(p)
            addr += 8
        addr += 8
        return out

    argv_ptrs = pointers()
    envp_ptrs = pointers()
    auxv = []
    while True:
        key, value = mem.word(addr), mem.word(addr + 8)
        addr += 16
        auxv.append((key, value))
        if key == AT_NULL:
            break
    return (
        Decoded(
            argc=argc,
            argv=[mem.cstring(p) for p in argv_ptrs],
            envp=[mem.cstring(p) for p in envp_ptrs],
            argv_ptrs=argv_ptrs,
            envp_ptrs=envp_ptrs,
            auxv=auxv,
            auxv_end=addr,
        ),
        mem,
    )


def build(
    argv: Sequence[bytes] = (b"./prog", b"x", b"yy"),
    envp: Sequence[bytes] = (b"A=1", b"BB=22"),
    execfn: bytes = b"./prog",
    aux: AuxvInputs = AUX,
    top: int = STACK_TOP,
) -> tuple[InitialStack, Decoded, Memory]:
    stack = build_stack(IMAGE, argv, envp, execfn, aux, top)
    decoded, mem = decode(stack, top)
    return stack, decoded, mem


def test_argc_argv_envp() -> None:
    stack, d, _ = build()
    assert d.argc == 3
    assert d.argv == [b"./prog", b"x", b"yy"]
    assert d.envp == [b"A=1", b"BB=22"]


def test_sp_is_16_byte_aligned_and_at_argc() -> None:
    stack, d, mem = build()
    assert stack.sp % 16 == 0
    assert mem.word(stack.sp) == d.argc


def test_auxv_values_and_linux_order() -> None:
    _, d, _ = build()
    keys = [k for k, _ in d.auxv]
    assert keys == LINUX_ORDER + [AT_NULL]
    values = dict(d.auxv)
    assert values[AT_PAGESZ] == 4096
    assert values[AT_CLKTCK] == 100
    assert values[AT_HWCAP] == 0x178BFBFF
    assert values[AT_HWCAP2] == 0
    assert values[AT_PHDR] == IMAGE.phdr
    assert values[AT_PHENT] == 56
    assert values[AT_PHNUM] == IMAGE.phnum
    assert values[AT_BASE] == 0x7FFFF7FC3000
    assert values[AT_FLAGS] == 0
    assert values[AT_ENTRY] == IMAGE.entry
    assert (values[AT_UID], values[AT_EUID], values[AT_GID], values[AT_EGID]) == (1000, 1001, 100, 101)
    assert values[AT_SECURE] == 0
    assert values[AT_NULL] == 0


def test_sysinfo_ehdr_comes_first_when_given() -> None:
    aux = replace(AUX, sysinfo_ehdr=0x7FFFF7FFD000)
    _, d, _ = build(aux=aux)
    assert d.auxv[0] == (AT_SYSINFO_EHDR, 0x7FFFF7FFD000)
    assert [k for k, _ in d.auxv[1:]] == LINUX_ORDER + [AT_NULL]


def test_no_platform_means_no_at_platform() -> None:
    aux = replace(AUX, platform=b"")
    _, d, _ = build(aux=aux)
    assert AT_PLATFORM not in dict(d.auxv)


def test_pointers_land_on_the_right_bytes() -> None:
    stack, d, mem = build()
    values = dict(d.auxv)
    assert mem.read(values[AT_RANDOM], 16) == RANDOM
    assert mem.cstring(values[AT_EXECFN]) == b"./prog"
    assert mem.cstring(values[AT_PLATFORM]) == b"x86_64"


def test_string_area_layout() -> None:
    stack, d, mem = build()
    values = dict(d.auxv)
    top = STACK_TOP
    # The top word is the zero end marker, execfn sits right under it.
    assert mem.read(top - 8, 8) == bytes(8)
    assert values[AT_EXECFN] == top - 8 - len(b"./prog\0")
    # argv then envp strings, contiguous and in order, ending at execfn.
    strings = [*d.argv_ptrs, *d.envp_ptrs]
    assert strings == sorted(strings)
    blob = b"./prog\0x\0yy\0A=1\0BB=22\0"
    assert mem.read(strings[0], len(blob)) == blob
    assert strings[0] + len(blob) == values[AT_EXECFN]
    # Platform just below the 16-aligned string start, AT_RANDOM just below the platform.
    assert values[AT_PLATFORM] == (strings[0] & ~0xF) - len(b"x86_64\0")
    assert values[AT_RANDOM] == values[AT_PLATFORM] - 16
    # Only alignment padding separates the auxv from the random bytes.
    assert 0 <= values[AT_RANDOM] - d.auxv_end < 16


def test_matches_linux_kernel_layout() -> None:
    # Observed on Linux x86-64, randomize_va_space off, for a static glibc program run as
    # `env -i A=1 BB=22 ./dump x yy`: argv[0]=0x7fffffffefdb, envp[0]=0x7fffffffefe7,
    # AT_RANDOM=0x7fffffffefb9, AT_PLATFORM=0x7fffffffefc9, AT_EXECFN=0x7fffffffeff1 and
    # sp=0x7fffffffee00 with AT_SYSINFO_EHDR plus three more auxv pairs (AT_MINSIGSTKSZ,
    # AT_RSEQ_FEATURE_SIZE, AT_RSEQ_ALIGN) than we emit: 0x30 bytes lower.
    aux = replace(AUX, sysinfo_ehdr=0x7FFFF7FFD000)
    stack, d, _ = build(argv=(b"./dump", b"x", b"yy"), execfn=b"./dump", aux=aux, top=0x7FFFFFFFF000)
    values = dict(d.auxv)
    assert d.argv_ptrs == [0x7FFFFFFFEFDB, 0x7FFFFFFFEFE2, 0x7FFFFFFFEFE4]
    assert d.envp_ptrs == [0x7FFFFFFFEFE7, 0x7FFFFFFFEFEB]
    assert values[AT_RANDOM] == 0x7FFFFFFFEFB9
    assert values[AT_PLATFORM] == 0x7FFFFFFFEFC9
    assert values[AT_EXECFN] == 0x7FFFFFFFEFF1
    assert stack.sp == 0x7FFFFFFFEE00 + 0x30


@pytest.mark.parametrize("nargs", range(0, 6))
@pytest.mark.parametrize("extra", range(0, 17))
def test_alignment_for_every_padding(nargs: int, extra: int) -> None:
    argv = [b"a" * (i + extra) for i in range(nargs)]
    envp = [b"E" * extra] if extra % 2 else []
    stack, d, _ = build(argv=argv, envp=envp, execfn=b"p" * (extra + 1))
    assert stack.sp % 16 == 0
    assert d.argc == nargs
    assert d.argv == argv
    assert d.envp == envp
    assert stack.sp + len(stack.data) == STACK_TOP


def test_non_default_stack_top() -> None:
    top = 0x7FFF00000000
    stack, d, mem = build(top=top)
    assert stack.sp + len(stack.data) == top
    assert mem.cstring(dict(d.auxv)[AT_EXECFN]) == b"./prog"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"argv": [b"a\0b"]},
        {"envp": [b"X=\0"]},
        {"execfn": b"/bin/\0sh"},
        {"aux": replace(AUX, random=bytes(15))},
        {"top": STACK_TOP - 8},
    ],
)
def test_rejects_bad_inputs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build(**kwargs)  # type: ignore[arg-type]

