"""ELF executable parsing (legorun.loader.elf) against binaries built by the host toolchain.

pyelftools reads the same files independently and serves as the reference for every value;
rejections are exercised on byte-patched copies of a real `gcc -static` binary.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from legorun.errors import LoaderError
from legorun.loader.elf import (
    ELF_ET_DYN_BASE,
    ET_DYN,
    ET_EXEC,
    PT_GNU_STACK,
    PT_INTERP,
    PT_LOAD,
    PT_NULL,
    PT_PHDR,
    PT_TLS,
    TASK_SIZE,
    LoadedImage,
    parse_elf,
)
from legorun.managers.vma import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, page_up

SOURCE = r"""
#include <stdio.h>
__thread int counter = 7;
int main(int argc, char **argv) {
    (void)argv;
    printf("%d\n", argc + counter);
    return 0;
}
"""

PHDR_FIELDS = {"p_type": (0, "<I"), "p_flags": (4, "<I"), "p_offset": (8, "<Q"), "p_vaddr": (16, "<Q"),
               "p_filesz": (32, "<Q"), "p_memsz": (40, "<Q"), "p_align": (48, "<Q")}
EHDR_FIELDS = {"e_type": (16, "<H"), "e_machine": (18, "<H"), "e_entry": (24, "<Q"), "e_phoff": (32, "<Q"),
               "e_phentsize": (54, "<H"), "e_phnum": (56, "<H")}


def build(tmp: Path, compiler: str, *flags: str, name: str = "prog") -> bytes:
    """Compile SOURCE with `compiler flags`; skip when the toolchain (or its static libc) is absent."""
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    src = tmp / f"{name}.c"
    src.write_text(SOURCE)
    out = tmp / name
    result = subprocess.run([compiler, *flags, "-o", str(out), str(src)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"{compiler} {' '.join(flags)} failed: {result.stderr.strip()[:200]}")
    return out.read_bytes()


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loader")


@pytest.fixture(scope="module")
def static_bin(build_dir: Path) -> bytes:
    return build(build_dir, "gcc", "-static", "-O1", name="static")


@pytest.fixture(scope="module")
def static_pie_bin(build_dir: Path) -> bytes:
    return build(build_dir, "gcc", "-static-pie", "-O1", name="static_pie")


@pytest.fixture(scope="module")
def musl_bin(build_dir: Path) -> bytes:
    return build(build_dir, "musl-gcc", "-static", "-O1", name="musl")


@pytest.fixture(scope="module")
def dynamic_bin(build_dir: Path) -> bytes:
    return build(build_dir, "gcc", "-O1", name="dynamic")


# --- reference reading and patching -------------------------------------------------------------


def reference(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def phdr_offset(data: bytes, index: int) -> int:
    e_phoff = struct.unpack_from("<Q", data, 32)[0]
    return e_phoff + 56 * index


def phdr_indices(data: bytes, p_type: int) -> list[int]:
    e_phnum = struct.unpack_from("<H", data, 56)[0]
    return [i for i in range(e_phnum) if struct.unpack_from("<I", data, phdr_offset(data, i))[0] == p_type]


def get_phdr(data: bytes, index: int, field: str) -> int:
    off, fmt = PHDR_FIELDS[field]
    return struct.unpack_from(fmt, data, phdr_offset(data, index) + off)[0]


def set_phdr(data: bytes, index: int, **fields: int) -> bytes:
    buf = bytearray(data)
    for field, value in fields.items():
        off, fmt = PHDR_FIELDS[field]
        struct.pack_into(fmt, buf, phdr_offset(data, index) + off, value)
    return bytes(buf)


def set_ehdr(data: bytes, **fields: int) -> bytes:
    buf = bytearray(data)
    for field, value in fields.items():
        off, fmt = EHDR_FIELDS[field]
        struct.pack_into(fmt, buf, off, value)
    return bytes(buf)


def set_byte(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1 :]


def check_against_reference(image: LoadedImage, data: bytes, bias: int) -> None:
    elf = reference(data)
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_memsz"] > 0]
    assert image.load_bias == bias
    assert image.entry == elf.header["e_entry"] + bias
    assert image.phent == 56
    assert image.phnum == elf.header["e_phnum"]
    assert len(image.segments) == len(loads)
    for seg, ref in zip(image.segments, sorted(loads, key=lambda s: s["p_vaddr"])):
        assert seg.vaddr == ref["p_vaddr"] + bias
        assert seg.memsz == ref["p_memsz"]
        assert seg.filesz == ref["p_filesz"]
        assert seg.offset == ref["p_offset"]
        assert seg.data == ref.data()
        flags = ref["p_flags"]
        expected_prot = (PROT_READ if flags & 4 else 0) | (PROT_WRITE if flags & 2 else 0) | (
            PROT_EXEC if flags & 1 else 0
        )
        assert seg.prot == expected_prot
    assert image.end == page_up(max(s["p_vaddr"] + s["p_memsz"] for s in loads) + bias)
    assert image.end % PAGE_SIZE == 0
    # AT_PHDR must point at a copy of the program header table inside a loaded segment.
    table = data[elf.header["e_phoff"] : elf.header["e_phoff"] + 56 * elf.header["e_phnum"]]
    holder = next(s for s in image.segments if s.vaddr <= image.phdr < s.vaddr + s.filesz)
    assert holder.data[image.phdr - holder.vaddr : image.phdr - holder.vaddr + len(table)] == table
    tls = [s for s in elf.iter_segments() if s["p_type"] == "PT_TLS"]
    if tls:
        assert image.tls is not None
        assert image.tls.vaddr == tls[0]["p_vaddr"] + bias
        assert image.tls.filesz == tls[0]["p_filesz"]
        assert image.tls.memsz == tls[0]["p_memsz"]
        assert image.tls.align == tls[0]["p_align"]
    else:
        assert image.tls is None


# --- real binaries ------------------------------------------------------------------------------


def test_static_glibc(static_bin: bytes) -> None:
    image = parse_elf(static_bin, "static")
    assert image.e_type == ET_EXEC
    check_against_reference(image, static_bin, 0)
    assert image.interp is None
    assert image.tls is not None and image.tls.memsz >= 4
    assert image.stack_executable is False
    assert any(s.prot & PROT_EXEC for s in image.segments)
    assert any(s.prot & PROT_WRITE and s.memsz > s.filesz for s in image.segments)  # .bss


def test_static_pie_is_biased_to_elf_et_dyn_base(static_pie_bin: bytes) -> None:
    image = parse_elf(static_pie_bin, "static-pie")
    assert image.e_type == ET_DYN
    assert ELF_ET_DYN_BASE == 0x555555554000
    check_against_reference(image, static_pie_bin, 0x555555554000)
    assert image.interp is None
    assert image.tls is not None
    assert image.stack_executable is False


def test_explicit_bias_for_et_dyn(static_pie_bin: bytes) -> None:
    image = parse_elf(static_pie_bin, "static-pie", bias=0x7FFFF7FC0000)
    check_against_reference(image, static_pie_bin, 0x7FFFF7FC0000)


def test_et_exec_ignores_bias(static_bin: bytes) -> None:
    assert parse_elf(static_bin, "static", bias=0x10000000) == parse_elf(static_bin, "static")


def test_unaligned_bias_is_a_programming_error(static_pie_bin: bytes) -> None:
    with pytest.raises(ValueError):
        parse_elf(static_pie_bin, "static-pie", bias=0x1234)


def test_static_musl(musl_bin: bytes) -> None:
    image = parse_elf(musl_bin, "musl")
    assert image.e_type in (ET_EXEC, ET_DYN)
    check_against_reference(image, musl_bin, image.load_bias)
    assert image.interp is None
    assert image.tls is not None
    assert image.stack_executable is False


def test_dynamic_has_interpreter(dynamic_bin: bytes) -> None:
    image = parse_elf(dynamic_bin, "dynamic")
    assert image.interp == "/lib64/ld-linux-x86-64.so.2"
    bias = ELF_ET_DYN_BASE if image.e_type == ET_DYN else 0
    check_against_reference(image, dynamic_bin, bias)
    # gcc emits PT_PHDR for dynamic programs; AT_PHDR must follow it.
    (pt_phdr,) = phdr_indices(dynamic_bin, PT_PHDR)
    assert image.phdr == get_phdr(dynamic_bin, pt_phdr, "p_vaddr") + bias


def test_host_interpreter_parses_as_et_dyn() -> None:
    interp = Path("/lib64/ld-linux-x86-64.so.2")
    if not interp.exists():
        pytest.skip("no x86-64 glibc dynamic loader on this host")
    data = interp.read_bytes()
    image = parse_elf(data, str(interp), bias=0x7FFFF7FC3000)
    assert image.e_type == ET_DYN
    assert image.interp is None
    check_against_reference(image, data, 0x7FFFF7FC3000)


def test_execstack(build_dir: Path) -> None:
    data = build(build_dir, "gcc", "-static", "-z", "execstack", name="execstack")
    assert parse_elf(data, "execstack").stack_executable is True


def test_missing_gnu_stack_defaults_to_executable(static_bin: bytes) -> None:
    (index,) = phdr_indices(static_bin, PT_GNU_STACK)
    patched = set_phdr(static_bin, index, p_type=PT_NULL)
    assert parse_elf(patched, "nostack").stack_executable is True


def test_accepts_bytearray_and_memoryview(static_bin: bytes) -> None:
    expected = parse_elf(static_bin, "static")
    assert parse_elf(bytearray(static_bin), "static") == expected
    assert parse_elf(memoryview(static_bin), "static") == expected  # type: ignore[arg-type]


def test_phdr_falls_back_to_covering_pt_load(dynamic_bin: bytes) -> None:
    (pt_phdr,) = phdr_indices(dynamic_bin, PT_PHDR)
    with_phdr = parse_elf(dynamic_bin, "dynamic")
    without = parse_elf(set_phdr(dynamic_bin, pt_phdr, p_type=PT_NULL), "dynamic")
    assert without.phdr == with_phdr.phdr


# --- rejections ---------------------------------------------------------------------------------


def first_load(data: bytes) -> int:
    return phdr_indices(data, PT_LOAD)[0]


def last_load(data: bytes) -> int:
    return phdr_indices(data, PT_LOAD)[-1]


def last_file_end(data: bytes) -> int:
    i = last_load(data)
    return get_phdr(data, i, "p_offset") + get_phdr(data, i, "p_filesz")


REJECTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "empty": (lambda d: b"", "not an ELF executable"),
    "three bytes": (lambda d: d[:3], "not an ELF executable"),
    "shell script": (lambda d: b"#!/bin/sh\necho hi\n", "not an ELF executable"),
    "bad magic": (lambda d: b"\x7fELG" + d[4:], "not an ELF executable"),
    "magic only": (lambda d: d[:4], "not an ELF executable"),
    "truncated ehdr": (lambda d: d[:40], "truncated ELF header"),
    "elfclass32": (lambda d: set_byte(d, 4, 1), "32-bit ELF is not supported"),
    "elfclassnone": (lambda d: set_byte(d, 4, 0), "invalid ELF class 0"),
    "big-endian": (lambda d: set_byte(d, 5, 2), "big-endian"),
    "bad data encoding": (lambda d: set_byte(d, 5, 9), "invalid data encoding 9"),
    "aarch64": (lambda d: set_ehdr(d, e_machine=183), "foreign architecture EM_AARCH64 (183)"),
    "i386": (lambda d: set_ehdr(d, e_machine=3), "foreign architecture EM_386 (3)"),
    "arm": (lambda d: set_ehdr(d, e_machine=40), "foreign architecture EM_ARM (40)"),
    "riscv": (lambda d: set_ehdr(d, e_machine=243), "foreign architecture EM_RISCV (243)"),
    "unknown machine": (lambda d: set_ehdr(d, e_machine=0x1234), "foreign architecture e_machine 4660"),
    "et_rel": (lambda d: set_ehdr(d, e_type=1), "not an executable (ET_REL)"),
    "et_core": (lambda d: set_ehdr(d, e_type=4), "not an executable (ET_CORE)"),
    "et_none": (lambda d: set_ehdr(d, e_type=0), "not an executable (ET_NONE)"),
    "e_phentsize": (lambda d: set_ehdr(d, e_phentsize=32), "bad e_phentsize 32"),
    "no phdrs": (lambda d: set_ehdr(d, e_phnum=0), "no program headers"),
    "absurd e_phnum": (lambda d: set_ehdr(d, e_phnum=0xFFFF), "absurd e_phnum"),
    "phdrs past eof": (lambda d: set_ehdr(d, e_phoff=len(d) - 100), "truncated"),
    "huge e_phoff": (lambda d: set_ehdr(d, e_phoff=2**64 - 1), "truncated"),
    "phdr table cut": (lambda d: d[: phdr_offset(d, 2) + 10], "truncated"),
    "segment data cut": (lambda d: d[: last_file_end(d) - 1], "truncated"),
    "p_offset past eof": (lambda d: set_phdr(d, last_load(d), p_offset=len(d) + 0x1000 * 16), "truncated"),
    "filesz > memsz": (
        lambda d: set_phdr(d, last_load(d), p_memsz=get_phdr(d, last_load(d), "p_filesz") - 1),
        "p_filesz",
    ),
    "incongruent": (
        lambda d: set_phdr(d, first_load(d), p_vaddr=get_phdr(d, first_load(d), "p_vaddr") + 8),
        "not congruent modulo the page size",
    ),
    "vaddr beyond 47 bits": (
        lambda d: set_phdr(d, last_load(d), p_vaddr=(1 << 60) + get_phdr(d, last_load(d), "p_offset")),
        "47-bit user address space",
    ),
    "end beyond 47 bits": (
        lambda d: set_phdr(
            d, last_load(d), p_vaddr=TASK_SIZE - PAGE_SIZE + get_phdr(d, last_load(d), "p_offset") % PAGE_SIZE
        ),
        "47-bit user address space",
    ),
    "absurd memsz": (lambda d: set_phdr(d, last_load(d), p_memsz=2**63), "absurd p_memsz"),
    "overlap": (
        lambda d: set_phdr(
            d, last_load(d),
            p_vaddr=get_phdr(d, first_load(d), "p_vaddr") + get_phdr(d, last_load(d), "p_offset") % PAGE_SIZE,
        ),
        "overlap",
    ),
    "no pt_load": (
        lambda d: set_phdrs_type(d, PT_LOAD, PT_NULL),
        "no PT_LOAD",
    ),
    "entry beyond 47 bits": (lambda d: set_ehdr(d, e_entry=1 << 63), "entry point"),
    "bad tls align": (lambda d: set_phdr(d, phdr_indices(d, PT_TLS)[0], p_align=24), "PT_TLS"),
    "tls filesz > memsz": (
        lambda d: set_phdr(d, phdr_indices(d, PT_TLS)[0], p_filesz=1 << 20, p_memsz=16),
        "PT_TLS",
    ),
}


def set_phdrs_type(data: bytes, old: int, new: int) -> bytes:
    for index in phdr_indices(data, old):
        data = set_phdr(data, index, p_type=new)
    return data


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejects(static_bin: bytes, case: str) -> None:
    patch, reason = REJECTIONS[case]
    patched = patch(static_bin)
    with pytest.raises(LoaderError) as info:
        parse_elf(patched, "/bin/victim")
    message = str(info.value)
    assert message.startswith("/bin/victim: "), message
    assert reason in message, message
    assert info.value.exit_status == 126


def test_rejects_et_dyn_pushed_beyond_user_space(static_pie_bin: bytes) -> None:
    with pytest.raises(LoaderError, match="47-bit user address space"):
        parse_elf(static_pie_bin, "pie", bias=TASK_SIZE - PAGE_SIZE)


def interp_cases(data: bytes) -> dict[str, tuple[bytes, str]]:
    (index,) = phdr_indices(data, PT_INTERP)
    off = get_phdr(data, index, "p_offset")
    size = get_phdr(data, index, "p_filesz")
    return {
        "unterminated": (set_byte(data, off + size - 1, ord("x")), "not NUL-terminated"),
        "too short": (set_phdr(data, index, p_filesz=1), "bad PT_INTERP size"),
        "too long": (set_phdr(data, index, p_filesz=5000), "bad PT_INTERP size"),
        "past eof": (set_phdr(data, index, p_offset=len(data) - 4), "truncated"),
    }


@pytest.mark.parametrize("case", ["unterminated", "too short", "too long", "past eof"])
def test_rejects_bad_interp(dynamic_bin: bytes, case: str) -> None:
    patched, reason = interp_cases(dynamic_bin)[case]
    with pytest.raises(LoaderError, match=reason):
        parse_elf(patched, "dynamic")


def test_rejects_pt_phdr_outside_segments(dynamic_bin: bytes) -> None:
    (index,) = phdr_indices(dynamic_bin, PT_PHDR)
    patched = set_phdr(dynamic_bin, index, p_vaddr=0x7FFF00000000)
    with pytest.raises(LoaderError, match="PT_PHDR"):
        parse_elf(patched, "dynamic")


def test_zero_sized_pt_load_is_ignored(static_bin: bytes) -> None:
    # Turn PT_GNU_STACK (all zero sizes) into an empty PT_LOAD: it maps nothing.
    (index,) = phdr_indices(static_bin, PT_GNU_STACK)
    patched = set_phdr(static_bin, index, p_type=PT_LOAD)
    def layout(image: LoadedImage) -> list[tuple[int, int, int, int, int]]:
        # Not `data`: the first segment holds the (patched) program headers themselves.
        return [(s.vaddr, s.memsz, s.filesz, s.offset, s.prot) for s in image.segments]

    assert layout(parse_elf(patched, "static")) == layout(parse_elf(static_bin, "static"))
