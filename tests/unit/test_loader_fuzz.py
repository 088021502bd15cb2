"""Robustness of the ELF parser (legorun.loader.elf) against malformed program files.

Deterministic mutations of real binaries: every one must yield a LoadedImage that satisfies
the loader's invariants or a LoaderError, quickly. Anything else (IndexError, struct.error,
OverflowError, a hang) is a bug: a hostile file must never crash or stall `execve`.
"""

from __future__ import annotations

import random
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from legorun.errors import LoaderError
from legorun.loader.elf import TASK_SIZE, LoadedImage, parse_elf
from legorun.managers.vma import PAGE_SIZE

SEED = 0x1E60
CASES_PER_KIND = 150
BUDGET_S = 0.5  # per case; a parse of a real binary takes well under a millisecond

MAIN_SOURCE = "int main(void) { return 0; }\n"
TINY_SOURCE = "void _start(void) { for (;;) { } }\n"

PHDR_FIELDS = {"p_type": (0, "<I"), "p_flags": (4, "<I"), "p_offset": (8, "<Q"), "p_vaddr": (16, "<Q"),
               "p_filesz": (32, "<Q"), "p_memsz": (40, "<Q"), "p_align": (48, "<Q")}
EHDR_FIELDS = {"e_type": (16, "<H"), "e_entry": (24, "<Q"), "e_phoff": (32, "<Q"),
               "e_phentsize": (54, "<H"), "e_phnum": (56, "<H")}
SIZE_MASK = {"<H": 0xFFFF, "<I": 0xFFFF_FFFF, "<Q": 0xFFFF_FFFF_FFFF_FFFF}


def build(tmp: Path, source: str, *flags: str, name: str) -> bytes:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / name
    result = subprocess.run(["gcc", *flags, "-o", str(out), str(src)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"gcc {' '.join(flags)} failed: {result.stderr.strip()[:200]}")
    return out.read_bytes()


@pytest.fixture(scope="module")
def static_bin(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build(tmp_path_factory.mktemp("fuzz"), MAIN_SOURCE, "-static", name="static")


@pytest.fixture(scope="module")
def tiny_bin(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # Small enough that the whole file is "the first few KiB", so mutations of it often
    # still parse and reach the deeper checks.
    return build(tmp_path_factory.mktemp("fuzz"), TINY_SOURCE, "-static", "-nostdlib", "-O1", name="tiny")


class Timeout(Exception):
    pass


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Interrupt a hang with SIGALRM where possible; always check the elapsed time."""
    use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if use_alarm:

        def expire(signum: int, frame: object) -> None:
            raise Timeout()

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds * 4)
    start = time.perf_counter()
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"parse took {elapsed:.3f}s"


def check_invariants(image: LoadedImage, data: bytes) -> None:
    assert image.segments
    previous_end = 0
    for seg in image.segments:
        assert 0 <= seg.vaddr and seg.vaddr + seg.memsz <= TASK_SIZE
        assert seg.vaddr >= previous_end  # sorted, disjoint
        previous_end = seg.vaddr + seg.memsz
        assert 0 <= seg.filesz <= seg.memsz
        assert len(seg.data) == seg.filesz
        assert seg.offset + seg.filesz <= len(data)
        assert (seg.vaddr - seg.offset) % PAGE_SIZE == 0
    assert image.end % PAGE_SIZE == 0 and previous_end <= image.end <= TASK_SIZE
    assert 0 <= image.entry < TASK_SIZE
    assert 0 < image.phnum and image.phent == 56
    assert image.tls is None or 0 <= image.tls.vaddr <= TASK_SIZE


def parse_one(data: bytes, label: str) -> str:
    """Parse within the budget; return "ok" or "rejected", fail on anything else."""
    try:
        with time_budget(BUDGET_S):
            image = parse_elf(data, "fuzz")
    except LoaderError as err:
        assert str(err).startswith("fuzz: "), label
        return "rejected"
    except Timeout:
        pytest.fail(f"{label}: parse did not finish within its budget")
    except Exception as err:  # noqa: BLE001 - the point is to catch every other exception
        pytest.fail(f"{label}: {type(err).__name__}: {err}")
    check_invariants(image, data)
    return "ok"


# --- mutators -----------------------------------------------------------------------------------


def interesting_value(rng: random.Random, data: bytes, mask: int) -> int:
    choices: list[Callable[[], int]] = [
        lambda: 0,
        lambda: 1,
        lambda: mask,
        lambda: mask >> 1,
        lambda: (mask >> 1) + 1,
        lambda: len(data),
        lambda: len(data) - rng.randrange(1, 64),
        lambda: rng.randrange(0, len(data)),
        lambda: rng.randrange(0, 0x10000) * PAGE_SIZE + rng.randrange(0, 2) * rng.randrange(PAGE_SIZE),
        lambda: TASK_SIZE - rng.randrange(0, 3) * PAGE_SIZE,
        lambda: 0x555555554000,
        lambda: rng.getrandbits(64),
    ]
    return rng.choice(choices)() & mask


def phnum(data: bytes) -> int:
    return struct.unpack_from("<H", data, 56)[0]


def phoff(data: bytes) -> int:
    return struct.unpack_from("<Q", data, 32)[0]


def mutate_fields(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    n_phdrs = phnum(data)
    table = phoff(data)
    for _ in range(rng.randrange(1, 4)):
        if rng.random() < 0.3:
            field = rng.choice(sorted(EHDR_FIELDS))
            off, fmt = EHDR_FIELDS[field]
            struct.pack_into(fmt, buf, off, interesting_value(rng, data, SIZE_MASK[fmt]))
        else:
            field = rng.choice(sorted(PHDR_FIELDS))
            off, fmt = PHDR_FIELDS[field]
            where = table + 56 * rng.randrange(n_phdrs) + off
            struct.pack_into(fmt, buf, where, interesting_value(rng, data, SIZE_MASK[fmt]))
    return bytes(buf)


def flip_bits(rng: random.Random, data: bytes, window: int) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        bit = rng.randrange(min(window, len(buf)) * 8)
        buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


def scribble_headers(rng: random.Random, data: bytes) -> bytes:
    # Random bytes over a stretch of the ELF header or the program header table.
    buf = bytearray(data)
    start = rng.choice([0, phoff(data)]) + rng.randrange(0, 56)
    length = rng.randrange(1, 24)
    buf[start : start + length] = rng.randbytes(length)
    return bytes(buf)


def truncate(rng: random.Random, data: bytes, window: int) -> bytes:
    return data[: rng.randrange(0, min(window, len(data)))]


KINDS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "fields": mutate_fields,
    "bitflip": lambda rng, d: flip_bits(rng, d, 4096),
    "scribble": scribble_headers,
    "truncate": lambda rng, d: truncate(rng, d, 8192),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mutated_static_binary(static_bin: bytes, kind: str) -> None:
    rng = random.Random(f"{SEED}-{kind}-static")
    outcomes = [parse_one(KINDS[kind](rng, static_bin), f"{kind} #{i}") for i in range(CASES_PER_KIND)]
    assert len(outcomes) == CASES_PER_KIND
    assert "rejected" in outcomes


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mutated_tiny_binary(tiny_bin: bytes, kind: str) -> None:
    rng = random.Random(f"{SEED}-{kind}-tiny")
    outcomes = [parse_one(KINDS[kind](rng, tiny_bin), f"{kind} #{i}") for i in range(CASES_PER_KIND)]
    assert len(outcomes) == CASES_PER_KIND
    assert "rejected" in outcomes


def test_prefix_of_a_real_binary_always_parses_or_rejects(static_bin: bytes) -> None:
    # Every length of the first 2 KiB: all the header-truncation boundaries at once.
    outcomes = {parse_one(static_bin[:n], f"prefix {n}") for n in range(0, 2048)}
    assert outcomes == {"rejected"}


def test_unmutated_binaries_parse(static_bin: bytes, tiny_bin: bytes) -> None:
    assert parse_one(static_bin, "static") == "ok"
    assert parse_one(tiny_bin, "tiny") == "ok"
