"""The ELF executable image: what `execve` needs to know about a program file.

Follows the System V ABI (gABI 4.1, "Object Files" and "Program Loading") with the AMD64
supplement, and validates the way Linux fs/binfmt_elf.c load_elf_binary() does, plus the
checks an emulator needs so that no later stage ever sees an impossible value.

`parse_elf` reads only the ELF header and the program header table (sections are irrelevant
to loading). It is pure: no CPU, no memory, no I/O. The headers are decoded with `struct`
rather than a general ELF library because every size in a hostile file must be checked
against the file length before it is trusted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from legorun.errors import LoaderError
from legorun.managers.vma import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, page_down, page_up

# e_ident (gABI, "ELF Identification")
ELFMAG = b"\x7fELF"
EI_CLASS = 4
EI_DATA = 5
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

# e_type
ET_NONE = 0
ET_REL = 1
ET_EXEC = 2
ET_DYN = 3
ET_CORE = 4

# e_machine: x86-64 is the only one we run; the others exist to name what we refuse.
EM_X86_64 = 62
EM_NAMES: dict[int, str] = {
    0: "EM_NONE",
    2: "EM_SPARC",
    3: "EM_386",
    4: "EM_68K",
    8: "EM_MIPS",
    10: "EM_MIPS_RS3_LE",
    15: "EM_PARISC",
    18: "EM_SPARC32PLUS",
    20: "EM_PPC",
    21: "EM_PPC64",
    22: "EM_S390",
    40: "EM_ARM",
    41: "EM_ALPHA",
    42: "EM_SH",
    43: "EM_SPARCV9",
    50: "EM_IA_64",
    62: "EM_X86_64",
    92: "EM_OPENRISC",
    93: "EM_ARCOMPACT",
    94: "EM_XTENSA",
    106: "EM_BLACKFIN",
    164: "EM_HEXAGON",
    167: "EM_NDS32",
    183: "EM_AARCH64",
    189: "EM_MICROBLAZE",
    190: "EM_CUDA",
    195: "EM_ARCV2",
    224: "EM_AMDGPU",
    243: "EM_RISCV",
    247: "EM_BPF",
    252: "EM_CSKY",
    258: "EM_LOONGARCH",
}

# p_type
PT_NULL = 0
PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PT_NOTE = 4
PT_SHLIB = 5
PT_PHDR = 6
PT_TLS = 7
PT_GNU_EH_FRAME = 0x6474E550
PT_GNU_STACK = 0x6474E551
PT_GNU_RELRO = 0x6474E552
PT_GNU_PROPERTY = 0x6474E553

# p_flags
PF_X = 1
PF_W = 2
PF_R = 4

# Elf64_Ehdr after e_ident, and Elf64_Phdr; little-endian is the only data encoding accepted.
EHDR_SIZE = 64
_EHDR = struct.Struct("<HHIQQQIHHHHHH")  # e_type .. e_shstrndx, starting at offset 16
PHDR_SIZE = 56
_PHDR = struct.Struct("<IIQQQQQQ")  # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align

# Linux caps the program header table at one ELF_MIN_ALIGN page (binfmt_elf.c load_elf_phdrs),
# which bounds all the per-header work below no matter what e_phnum claims.
MAX_PHNUM = PAGE_SIZE // PHDR_SIZE

# x86-64 TASK_SIZE_MAX with 4-level paging: the top of the 47-bit user address space, less the
# guard page Linux keeps below the non-canonical hole.
TASK_SIZE = 0x7FFFFFFFF000

# ELF_ET_DYN_BASE (arch/x86/include/asm/elf.h, 2/3 of TASK_SIZE) rounded to a page, which is
# where a PIE lands when ASLR is off.
ELF_ET_DYN_BASE = 0x555555554000

# No real PT_TLS asks for more than a page or so; a larger one is garbage, not a request.
MAX_TLS_ALIGN = 1 << 22

# PATH_MAX: Linux refuses a longer PT_INTERP with ENOEXEC.
PATH_MAX = 4096


@dataclass(frozen=True, slots=True)
class Segment:
    """One PT_LOAD, with the load bias already added to `vaddr`.

    [vaddr, vaddr + filesz) comes from the file (`data`); [vaddr + filesz, vaddr + memsz) is
    zero (.bss). `vaddr` need not be page aligned, but `vaddr - offset` is, so the segment can be
    mapped page by page from the file. Two segments never share a byte, but may share a page at
    their boundary; whoever maps them must give that page both segments' contents.
    """

    vaddr: int
    memsz: int
    filesz: int
    offset: int
    prot: int
    data: bytes

    @property
    def end(self) -> int:
        return self.vaddr + self.memsz


@dataclass(frozen=True, slots=True)
class TlsTemplate:
    """PT_TLS: the initialisation image of the main thread's static TLS block (biased).

    Informational: the C library itself copies it into the thread control block.
    """

    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An ELF executable as a loader sees it, with every address biased.

    `phdr` is 0 when the program headers are not part of any loaded segment (the auxv then
    has nothing to point at). `end` is where the program break starts.
    """

    e_type: int
    load_bias: int
    entry: int
    phdr: int
    phent: int
    phnum: int
    segments: tuple[Segment, ...]
    interp: str | None
    tls: TlsTemplate | None
    stack_executable: bool
    end: int


def _prot(p_flags: int) -> int:
    return (
        (PROT_READ if p_flags & PF_R else 0)
        | (PROT_WRITE if p_flags & PF_W else 0)
        | (PROT_EXEC if p_flags & PF_X else 0)
    )


def _machine_name(e_machine: int) -> str:
    name = EM_NAMES.get(e_machine)
    return f"{name} ({e_machine})" if name else f"e_machine {e_machine}"


@dataclass(frozen=True, slots=True)
class _Phdr:
    index: int
    p_type: int
    p_flags: int
    p_offset: int
    p_vaddr: int
    p_filesz: int
    p_memsz: int
    p_align: int


def _check_ident(data: bytes, path: str) -> None:
    if len(data) < 4 or data[:4] != ELFMAG:
        raise LoaderError(f"{path}: not an ELF executable")
    ei_class = data[EI_CLASS] if len(data) > EI_CLASS else 0
    if ei_class == ELFCLASS32:
        raise LoaderError(f"{path}: 32-bit ELF is not supported")
    if ei_class != ELFCLASS64:
        raise LoaderError(f"{path}: not an ELF executable (invalid ELF class {ei_class})")
    ei_data = data[EI_DATA] if len(data) > EI_DATA else 0
    if ei_data == ELFDATA2MSB:
        raise LoaderError(f"{path}: big-endian ELF is not supported")
    if ei_data != ELFDATA2LSB:
        raise LoaderError(f"{path}: not an ELF executable (invalid data encoding {ei_data})")
    if len(data) < EHDR_SIZE:
        raise LoaderError(
            f"{path}: not an ELF executable (truncated ELF header: {len(data)} of {EHDR_SIZE} bytes)"
        )


def _read_phdrs(data: bytes, path: str, e_phoff: int, e_phentsize: int, e_phnum: int) -> list[_Phdr]:
    if e_phentsize != PHDR_SIZE:
        raise LoaderError(f"{path}: bad e_phentsize {e_phentsize} (expected {PHDR_SIZE})")
    if e_phnum == 0:
        raise LoaderError(f"{path}: no program headers (e_phnum 0)")
    if e_phnum > MAX_PHNUM:
        raise LoaderError(f"{path}: absurd e_phnum {e_phnum} (at most {MAX_PHNUM})")
    table_end = e_phoff + e_phnum * PHDR_SIZE
    if table_end > len(data):
        raise LoaderError(
            f"{path}: truncated: program headers [{e_phoff:#x}, {table_end:#x}) extend beyond "
            f"the end of the file ({len(data):#x} bytes)"
        )
    return [
        _Phdr(i, p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align)
        for i, (p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align) in enumerate(
            _PHDR.iter_unpack(data[e_phoff:table_end])
        )
    ]


def _check_file_range(ph: _Phdr, what: str, data: bytes, path: str) -> None:
    end = ph.p_offset + ph.p_filesz
    if end > len(data):
        raise LoaderError(
            f"{path}: truncated: {what} (program header {ph.index}) file range "
            f"[{ph.p_offset:#x}, {end:#x}) extends beyond the end of the file ({len(data):#x} bytes)"
        )


def _interp(ph: _Phdr, data: bytes, path: str) -> str:
    # Same rules as load_elf_binary(): 2..PATH_MAX bytes, the last one NUL.
    if ph.p_filesz < 2 or ph.p_filesz > PATH_MAX:
        raise LoaderError(f"{path}: bad PT_INTERP size {ph.p_filesz}")
    _check_file_range(ph, "PT_INTERP", data, path)
    raw = data[ph.p_offset : ph.p_offset + ph.p_filesz]
    if raw[-1] != 0:
        raise LoaderError(f"{path}: PT_INTERP path is not NUL-terminated")
    # Paths are bytes to the kernel; surrogateescape keeps any byte sequence representable.
    return raw[: raw.index(0)].decode("utf-8", "surrogateescape")


def _check_load(ph: _Phdr, data: bytes, path: str) -> None:
    if ph.p_filesz > ph.p_memsz:
        raise LoaderError(
            f"{path}: PT_LOAD (program header {ph.index}) has p_filesz {ph.p_filesz:#x} "
            f"> p_memsz {ph.p_memsz:#x}"
        )
    # Checked before the file range so that an absurd size is named as such, not as truncation.
    if ph.p_memsz >= TASK_SIZE:
        raise LoaderError(
            f"{path}: absurd p_memsz {ph.p_memsz:#x} in PT_LOAD (program header {ph.index}), "
            f"larger than the 47-bit user address space"
        )
    if ph.p_vaddr >= TASK_SIZE:
        raise LoaderError(
            f"{path}: PT_LOAD (program header {ph.index}) p_vaddr {ph.p_vaddr:#x} is beyond the "
            f"47-bit user address space ({TASK_SIZE:#x})"
        )
    _check_file_range(ph, "PT_LOAD", data, path)
    # mmap maps whole pages, so file offset and address must agree below the page size.
    if (ph.p_vaddr - ph.p_offset) % PAGE_SIZE:
        raise LoaderError(
            f"{path}: PT_LOAD (program header {ph.index}) p_vaddr {ph.p_vaddr:#x} and p_offset "
            f"{ph.p_offset:#x} are not congruent modulo the page size"
        )


def _choose_bias(e_type: int, loads: list[_Phdr], bias: int | None) -> int:
    if e_type == ET_EXEC:
        # An ET_EXEC is linked for fixed addresses; like Linux (for programs and interpreters
        # alike) we never move it.
        return 0
    if bias is None:
        # load_elf_binary(): ELF_PAGESTART(ELF_ET_DYN_BASE - first p_vaddr). A PIE linked
        # above ELF_ET_DYN_BASE gets a negative bias: it still lands at ELF_ET_DYN_BASE.
        return page_down(ELF_ET_DYN_BASE - page_down(min(ph.p_vaddr for ph in loads)))
    if bias < 0 or bias % PAGE_SIZE:
        raise ValueError(f"load bias {bias:#x} is not a non-negative page-aligned address")
    return bias


def _phdr_address(
    phdrs: list[_Phdr], loads: list[_Phdr], e_phoff: int, e_phnum: int, bias: int, path: str
) -> int:
    table_size = e_phnum * PHDR_SIZE
    pt_phdr = next((ph for ph in phdrs if ph.p_type == PT_PHDR), None)
    if pt_phdr is not None:
        start = pt_phdr.p_vaddr
        if not any(ph.p_vaddr <= start and start + table_size <= ph.p_vaddr + ph.p_filesz for ph in loads):
            raise LoaderError(f"{path}: PT_PHDR at {start:#x} is not inside any PT_LOAD segment")
        return start + bias
    for ph in loads:
        if ph.p_offset <= e_phoff and e_phoff + table_size <= ph.p_offset + ph.p_filesz:
            return ph.p_vaddr + (e_phoff - ph.p_offset) + bias
    return 0


def _tls(ph: _Phdr, bias: int, path: str) -> TlsTemplate:
    if ph.p_filesz > ph.p_memsz:
        raise LoaderError(f"{path}: PT_TLS has p_filesz {ph.p_filesz:#x} > p_memsz {ph.p_memsz:#x}")
    # gABI: 0, 1 or a power of two. The upper bound keeps a libc's aligned TLS allocation sane.
    if ph.p_align & (ph.p_align - 1) or ph.p_align > MAX_TLS_ALIGN:
        raise LoaderError(f"{path}: PT_TLS has bad p_align {ph.p_align:#x}")
    if not 0 <= ph.p_vaddr + bias <= ph.p_vaddr + bias + ph.p_memsz <= TASK_SIZE:
        raise LoaderError(f"{path}: PT_TLS lies outside the user address space")
    return TlsTemplate(ph.p_vaddr + bias, ph.p_filesz, ph.p_memsz, ph.p_align)


def parse_elf(data: bytes, path: str, bias: int | None = None) -> LoadedImage:
    """Parse and validate an x86-64 ELF64 executable (`path` only names it in errors).

    `bias` is the load bias of an ET_DYN image (default ELF_ET_DYN_BASE, as with ASLR off; an
    interpreter's caller passes where it put it). An ET_EXEC is always at its link addresses.
    Raises LoaderError for anything Linux would refuse to execute or that cannot be mapped.
    """
    data = bytes(data)
    _check_ident(data, path)
    (
        e_type,
        e_machine,
        _e_version,
        e_entry,
        e_phoff,
        _e_shoff,
        _e_flags,
        _e_ehsize,
        e_phentsize,
        e_phnum,
        _e_shentsize,
        _e_shnum,
        _e_shstrndx,
    ) = _EHDR.unpack_from(data, 16)

    if e_machine != EM_X86_64:
        raise LoaderError(f"{path}: foreign architecture {_machine_name(e_machine)}")
    if e_type not in (ET_EXEC, ET_DYN):
        names = {ET_NONE: "ET_NONE", ET_REL: "ET_REL", ET_CORE: "ET_CORE"}
        raise LoaderError(f"{path}: not an executable ({names.get(e_type, f'e_type {e_type:#x}')})")

    phdrs = _read_phdrs(data, path, e_phoff, e_phentsize, e_phnum)

    loads = [ph for ph in phdrs if ph.p_type == PT_LOAD]
    for ph in loads:
        _check_load(ph, data, path)
    # A zero-sized PT_LOAD maps nothing (elf_map() skips it), so it takes no part in the layout.
    loads = [ph for ph in loads if ph.p_memsz > 0]
    if not loads:
        raise LoaderError(f"{path}: no PT_LOAD segment")

    # gABI requires ascending p_vaddr; sorting lets a byte-level overlap show up between
    # neighbours. Sharing a page is legal (and common); sharing a byte is not.
    loads.sort(key=lambda ph: ph.p_vaddr)
    for lower, upper in zip(loads, loads[1:]):
        if lower.p_vaddr + lower.p_memsz > upper.p_vaddr:
            raise LoaderError(
                f"{path}: PT_LOAD segments (program headers {lower.index} and {upper.index}) overlap"
            )

    load_bias = _choose_bias(e_type, loads, bias)
    highest = max(ph.p_vaddr + ph.p_memsz for ph in loads) + load_bias
    if page_up(highest) > TASK_SIZE:
        raise LoaderError(
            f"{path}: PT_LOAD segments end at {highest:#x}, beyond the 47-bit user address "
            f"space ({TASK_SIZE:#x})"
        )
    entry = e_entry + load_bias
    if not 0 <= entry < TASK_SIZE:
        raise LoaderError(f"{path}: entry point {entry:#x} is outside the user address space")

    interp: str | None = None
    tls: TlsTemplate | None = None
    stack_executable = True
    # Linux honours the first PT_INTERP and the last PT_GNU_STACK; PT_TLS can appear once.
    for ph in phdrs:
        if ph.p_type == PT_INTERP and interp is None:
            interp = _interp(ph, data, path)
        elif ph.p_type == PT_TLS and tls is None:
            tls = _tls(ph, load_bias, path)
        elif ph.p_type == PT_GNU_STACK:
            stack_executable = bool(ph.p_flags & PF_X)

    segments = tuple(
        Segment(
            vaddr=ph.p_vaddr + load_bias,
            memsz=ph.p_memsz,
            filesz=ph.p_filesz,
            offset=ph.p_offset,
            prot=_prot(ph.p_flags),
            data=data[ph.p_offset : ph.p_offset + ph.p_filesz],
        )
        for ph in loads
    )
    return LoadedImage(
        e_type=e_type,
        load_bias=load_bias,
        entry=entry,
        phdr=_phdr_address(phdrs, loads, e_phoff, e_phnum, load_bias, path),
        phent=e_phentsize,
        phnum=e_phnum,
        segments=segments,
        interp=interp,
        tls=tls,
        stack_executable=stack_executable,
        end=page_up(highest),
    )
