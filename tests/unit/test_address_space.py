"""Tests of AddressSpace against Linux semantics (mm/mmap.c, mm/mprotect.c, mm/mremap.c,
mm/madvise.c, man 2 mmap): VMA splits and merges, placement, sparse pages, and errors."""

from __future__ import annotations

import pytest

from legorun.managers.address_space import (
    MADV_DONTNEED,
    MADV_FREE,
    MADV_HUGEPAGE,
    MADV_NORMAL,
    MADV_WILLNEED,
    STACK_GUARD_GAP,
    AddressSpace,
)
from legorun.managers.vma import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Vma,
)
from syscalls.errno import Errno, SyscallError

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
BASE = 0x7FFFF7FFF000
TIB = 1 << 40


class FakeFiles:
    """A read_file callback over in-memory files that records every read."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = files or {}
        self.reads: list[tuple[str, int, int]] = []

    def __call__(self, path: str, offset: int, length: int) -> bytes:
        self.reads.append((path, offset, length))
        return self.files[path][offset : offset + length]


def page(fill: int) -> bytes:
    return bytes([fill]) * P


def make(files: dict[str, bytes] | None = None, **kwargs: int) -> tuple[AddressSpace, FakeFiles]:
    fake = FakeFiles(files)
    return AddressSpace(fake, **kwargs), fake


def spans(space: AddressSpace) -> list[tuple[int, int, int]]:
    return [(v.start, v.end, v.prot) for v in space.layout()]


def errno_of(call: object, *args: object) -> Errno:
    with pytest.raises(SyscallError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.errno


# ---------------------------------------------------------------- mmap placement


def test_mmap_places_top_down_from_mmap_base() -> None:
    space, _ = make()
    first = space.mmap(0, 2 * P, PROT_READ, ANON)
    second = space.mmap(0, P, RW, ANON)
    assert first == BASE - 2 * P
    assert second == first - P
    assert spans(space) == [(second, first, RW), (first, BASE, PROT_READ)]


def test_adjacent_identical_anonymous_mappings_merge() -> None:
    space, _ = make()
    first = space.mmap(0, P, RW, ANON)
    second = space.mmap(0, 3 * P, RW, ANON)
    assert second == first - 3 * P
    assert spans(space) == [(second, BASE, RW)]


def test_free_hint_is_used_and_unaligned_hint_rounds_down() -> None:
    space, _ = make()
    assert space.mmap(0x40000000, P, RW, ANON) == 0x40000000
    assert space.mmap(0x50000123, P, RW, ANON) == 0x50000000


def test_occupied_hint_falls_back_to_top_down_search() -> None:
    space, _ = make()
    space.mmap(0x40000000, 2 * P, RW, ANON)
    assert space.mmap(0x40000000 + P, P, PROT_READ, ANON) == BASE - P


def test_hint_below_mmap_min_addr_is_raised_to_it() -> None:
    space, _ = make()
    assert space.mmap(0x2000, P, RW, ANON) == 0x10000


def test_hint_must_leave_stack_guard_gap_below_growsdown_area() -> None:
    space, _ = make()
    stack = space.mmap(0x70000000, 16 * P, RW, ANON | MAP_GROWSDOWN)
    assert stack == 0x70000000
    # A hint ending right under the stack is refused: the guard gap must stay free.
    placed = space.mmap(stack - P, P, RW, ANON)
    assert placed != stack - P
    assert space.mmap(stack - STACK_GUARD_GAP - P, P, RW, ANON) == stack - STACK_GUARD_GAP - P


def test_top_down_skips_gaps_too_small() -> None:
    space, _ = make()
    space.mmap(BASE - P, P, RW, ANON | MAP_FIXED)
    space.mmap(BASE - 3 * P, P, PROT_READ, ANON | MAP_FIXED)  # leaves a one-page hole
    assert space.mmap(0, 2 * P, RW, ANON) == BASE - 5 * P
    assert space.mmap(0, P, PROT_EXEC, ANON) == BASE - 2 * P


def test_top_down_falls_back_to_bottom_up_then_enomem() -> None:
    space, _ = make(mmap_base=0x100000, mmap_min_addr=0x10000, task_size=0x400000)
    # Below mmap_base only 0xF0000 bytes are free: the search continues above task_size / 3.
    assert space.mmap(0, 0x100000, RW, ANON) == 0x156000
    assert errno_of(space.mmap, 0, 0x300000, RW, ANON) == Errno.ENOMEM
    assert errno_of(space.mmap, 0, 0x500000, RW, ANON) == Errno.ENOMEM


# ---------------------------------------------------------------- mmap fixed


def test_map_fixed_replaces_overlapped_mappings_and_drops_their_pages() -> None:
    space, _ = make()
    space.mmap(0x10000000, 4 * P, RW, ANON | MAP_FIXED)
    space.write_page(0x10000000 + P, page(7))
    space.write_page(0x10000000 + 3 * P, page(9))
    assert space.mmap(0x10000000 + P, P, PROT_READ, ANON | MAP_FIXED) == 0x10000000 + P
    assert spans(space) == [
        (0x10000000, 0x10001000, RW),
        (0x10001000, 0x10002000, PROT_READ),
        (0x10002000, 0x10004000, RW),
    ]
    assert space.read_page(0x10000000 + P) == bytes(P)
    assert space.read_page(0x10000000 + 3 * P) == page(9)


def test_map_fixed_noreplace() -> None:
    space, _ = make()
    space.mmap(0x10000000, 2 * P, RW, ANON | MAP_FIXED)
    assert errno_of(space.mmap, 0x10000000 + P, 2 * P, RW, ANON | MAP_FIXED_NOREPLACE) == (
        Errno.EEXIST
    )
    assert spans(space) == [(0x10000000, 0x10002000, RW)]
    assert space.mmap(0x10002000, P, RW, ANON | MAP_FIXED_NOREPLACE) == 0x10002000
    assert errno_of(space.mmap, 0x10003001, P, RW, ANON | MAP_FIXED_NOREPLACE) == Errno.EINVAL


def test_map_fixed_address_errors() -> None:
    space, _ = make()
    assert errno_of(space.mmap, 0x10000001, P, RW, ANON | MAP_FIXED) == Errno.EINVAL
    assert errno_of(space.mmap, 0x1000, P, RW, ANON | MAP_FIXED) == Errno.EPERM
    assert errno_of(space.mmap, 0x7FFFFFFFF000, P, RW, ANON | MAP_FIXED) == Errno.ENOMEM


def test_mmap_argument_errors() -> None:
    space, _ = make({"/f": b"x"})
    assert errno_of(space.mmap, 0, 0, RW, ANON) == Errno.EINVAL
    assert errno_of(space.mmap, 0, P, RW, MAP_ANONYMOUS) == Errno.EINVAL  # no mapping type
    assert errno_of(space.mmap, 0, P, RW, 0x0F | MAP_ANONYMOUS) == Errno.EINVAL
    assert errno_of(space.mmap, 0, P, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS) == Errno.EINVAL
    assert errno_of(space.mmap, 0, P, RW, MAP_PRIVATE, "/f", 100) == Errno.EINVAL
    assert errno_of(space.mmap, 0, P, RW, MAP_PRIVATE) == Errno.EBADF
    assert errno_of(space.mmap, 0, (1 << 64) - 1, RW, ANON) == Errno.ENOMEM
    assert errno_of(space.mmap, 0, 1 << 47, RW, ANON) == Errno.ENOMEM
    assert errno_of(space.mmap, 0, P, RW, MAP_SHARED_VALIDATE | 0x80000, "/f") == (
        Errno.EOPNOTSUPP
    )
    assert space.layout() == ()


def test_mmap_stores_area_flags_and_rounds_length() -> None:
    space, _ = make({"/f": b"x"})
    stack = space.mmap(0, 10, RW, ANON | MAP_STACK | MAP_GROWSDOWN | MAP_POPULATE)
    vma = space.find(stack)
    assert vma == Vma(stack, stack + P, RW, ANON | MAP_STACK | MAP_GROWSDOWN)
    shared = space.mmap(0, P, PROT_READ, MAP_SHARED_VALIDATE, "/f")
    found = space.find(shared)
    assert found is not None and found.flags == MAP_SHARED and found.path == "/f"


def test_anonymous_mmap_ignores_path_and_offset() -> None:
    space, fake = make()
    addr = space.mmap(0, P, RW, ANON, "/ignored", 0x5000)
    vma = space.find(addr)
    assert vma is not None and vma.path is None and vma.offset == 0
    assert space.read_page(addr) == bytes(P)
    assert fake.reads == []


# ---------------------------------------------------------------- pages


def test_sparse_terabyte_mapping_touched_in_three_pages() -> None:
    space, _ = make()
    start = space.mmap(0, TIB, RW, MAP_PRIVATE | MAP_ANONYMOUS | 0x4000)
    assert start == BASE - TIB
    touched = [start, start + TIB // 2, start + TIB - P]
    for i, addr in enumerate(touched):
        space.write_page(addr, page(i + 1))
    assert space.read_page(start + 12345 * P) == bytes(P)  # reading does not allocate
    assert list(space.populated()) == touched
    # Whole-range operations scale with the stored pages, not with the 2**28 pages mapped.
    space.mprotect(start, TIB, PROT_READ)
    space.madvise(start, TIB // 2, MADV_DONTNEED)
    assert list(space.populated()) == touched[1:]
    moved = space.mremap(start, TIB, TIB, MREMAP_MAYMOVE | MREMAP_FIXED, 0x100000000)
    assert moved == 0x100000000
    assert space.read_page(moved + TIB - P) == page(3)
    space.munmap(moved, TIB)
    assert space.layout() == () and list(space.populated()) == []


def test_untouched_anonymous_read_does_not_allocate() -> None:
    space, _ = make()
    addr = space.mmap(0, 4 * P, RW, ANON)
    assert space.read_page(addr + 2 * P + 17) == bytes(P)
    assert list(space.populated()) == []


def test_read_and_write_outside_any_mapping_fault() -> None:
    space, _ = make()
    addr = space.mmap(0, P, RW, ANON)
    assert errno_of(space.read_page, addr + P) == Errno.EFAULT
    assert errno_of(space.write_page, addr - P, page(1)) == Errno.EFAULT
    assert errno_of(space.write_page, addr, b"short") == Errno.EINVAL


def test_write_page_is_whole_page_of_the_address() -> None:
    space, _ = make()
    addr = space.mmap(0, 2 * P, RW, ANON)
    space.write_page(addr + P + 100, page(5))
    assert space.read_page(addr + P) == page(5)
    assert list(space.populated()) == [addr + P]


def test_file_backed_read_page_reads_at_offset_pads_and_caches() -> None:
    content = bytes(range(256)) * 48  # 3 pages
    space, fake = make({"/lib.so": content})
    addr = space.mmap(0, 3 * P, PROT_READ, MAP_PRIVATE, "/lib.so", P)
    assert space.read_page(addr) == content[P : 2 * P]
    assert space.read_page(addr + P) == content[2 * P :]
    # The third page lies wholly past EOF: Linux raises SIGBUS on its access.
    with pytest.raises(SyscallError) as past_eof:
        space.read_page(addr + 2 * P)
    assert past_eof.value.errno == Errno.ENXIO
    tail_addr = space.mmap(0, P, PROT_READ, MAP_PRIVATE, "/lib.so", 2 * P)
    assert space.read_page(tail_addr) == content[2 * P : 3 * P]
    short_space, _ = make({"/short": b"abc"})
    short = short_space.mmap(0, P, PROT_READ, MAP_PRIVATE, "/short")
    assert short_space.read_page(short) == b"abc" + bytes(P - 3)
    before = len(fake.reads)
    assert space.read_page(addr) == content[P : 2 * P]
    assert len(fake.reads) == before  # served from the store
    assert fake.reads[0] == ("/lib.so", P, P)
    assert addr in list(space.populated())


def test_copy_is_deep() -> None:
    space, _ = make()
    addr = space.mmap(0, P, RW, ANON)
    space.write_page(addr, page(1))
    space.set_brk_base(0x600000)
    space.brk(0x601000)
    child = space.copy()
    child.write_page(addr, page(2))
    child.munmap(addr, P)
    assert space.read_page(addr) == page(1)
    assert space.find(addr) is not None
    assert child.brk(0) == 0x601000
    assert child.layout() == tuple(v for v in space.layout() if v.start != addr)


# ---------------------------------------------------------------- munmap


def test_munmap_splits_and_drops_pages() -> None:
    space, _ = make({"/f": bytes(8 * P)})
    addr = space.mmap(0x20000000, 4 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, "/f", P)
    space.write_page(addr + P, page(1))
    space.write_page(addr + 2 * P, page(2))
    space.munmap(addr + P, P)
    assert [(v.start, v.end, v.offset) for v in space.layout()] == [
        (addr, addr + P, P),
        (addr + 2 * P, addr + 4 * P, 3 * P),
    ]
    assert list(space.populated()) == [addr + 2 * P]
    # Remapping the hole gives a fresh page, not the dropped one.
    space.mmap(addr + P, P, PROT_READ, ANON | MAP_FIXED)
    assert space.read_page(addr + P) == bytes(P)


def test_munmap_over_holes_and_errors() -> None:
    space, _ = make()
    a = space.mmap(0x30000000, P, RW, ANON | MAP_FIXED)
    b = space.mmap(0x30004000, P, RW, ANON | MAP_FIXED)
    space.munmap(0x2FFFF000, 0x10000)
    assert space.layout() == ()
    space.munmap(a, P)  # unmapping nothing is fine
    assert errno_of(space.munmap, b + 1, P) == Errno.EINVAL
    assert errno_of(space.munmap, b, 0) == Errno.EINVAL
    assert errno_of(space.munmap, 0x7FFFFFFFF000, 2 * P) == Errno.EINVAL


# ---------------------------------------------------------------- mprotect


def test_mprotect_splits_then_merges_back() -> None:
    space, _ = make()
    addr = space.mmap(0, 4 * P, RW, ANON)
    space.mprotect(addr + P, 2 * P, PROT_READ)
    assert spans(space) == [
        (addr, addr + P, RW),
        (addr + P, addr + 3 * P, PROT_READ),
        (addr + 3 * P, addr + 4 * P, RW),
    ]
    space.mprotect(addr + P, P + 1, RW)  # length rounds up to pages
    assert spans(space) == [(addr, addr + 4 * P, RW)]


def test_guard_page_with_prot_none() -> None:
    space, _ = make()
    # A thread stack as glibc makes it: map, then turn the lowest page into a guard.
    stack = space.mmap(0, 16 * P, RW, ANON | MAP_STACK)
    space.write_page(stack + 8 * P, page(3))
    space.mprotect(stack, P, PROT_NONE)
    assert spans(space) == [(stack, stack + P, PROT_NONE), (stack + P, stack + 16 * P, RW)]
    assert space.read_page(stack + 8 * P) == page(3)
    # The guard keeps its own VMA while the neighbour is unmapped and remapped the same way.
    below = space.mmap(0, P, PROT_NONE, ANON | MAP_STACK)
    assert below == stack - P
    assert spans(space)[0] == (below, stack + P, PROT_NONE)


def test_mprotect_with_hole_fails_and_changes_nothing() -> None:
    space, _ = make()
    space.mmap(0x40000000, P, RW, ANON | MAP_FIXED)
    space.mmap(0x40002000, P, RW, ANON | MAP_FIXED)
    before = space.layout()
    assert errno_of(space.mprotect, 0x40000000, 3 * P, PROT_READ) == Errno.ENOMEM
    assert errno_of(space.mprotect, 0x3FFFF000, 2 * P, PROT_READ) == Errno.ENOMEM
    assert errno_of(space.mprotect, 0x40002000, 2 * P, PROT_READ) == Errno.ENOMEM
    assert errno_of(space.mprotect, 0x50000000, P, PROT_READ) == Errno.ENOMEM
    assert space.layout() == before


def test_mprotect_argument_errors_and_zero_length() -> None:
    space, _ = make()
    addr = space.mmap(0, P, RW, ANON)
    assert errno_of(space.mprotect, addr + 8, P, PROT_READ) == Errno.EINVAL
    assert errno_of(space.mprotect, addr, P, 0x10) == Errno.EINVAL
    space.mprotect(addr, 0, PROT_READ)
    space.mprotect(0x1230000, 0, PROT_READ)  # nothing to do, even unmapped
    assert spans(space) == [(addr, addr + P, RW)]


def test_file_mappings_merge_only_with_contiguous_offsets() -> None:
    files = {"/f": bytes(16 * P), "/g": bytes(16 * P)}
    space, _ = make(files)
    space.mmap(0x50000000, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, "/f", 0)
    space.mmap(0x50001000, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, "/f", P)
    assert [(v.start, v.end, v.offset) for v in space.layout()] == [(0x50000000, 0x50002000, 0)]
    space.mmap(0x50002000, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, "/f", 5 * P)
    space.mmap(0x50003000, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, "/g", 6 * P)
    assert len(space.layout()) == 3
    # Splitting a file area by mprotect keeps offsets right, and merging restores it.
    space.mprotect(0x50001000, P, PROT_READ | PROT_EXEC)
    assert [(v.start, v.offset, v.prot) for v in space.layout()[:2]] == [
        (0x50000000, 0, PROT_READ),
        (0x50001000, P, PROT_READ | PROT_EXEC),
    ]
    space.mprotect(0x50001000, P, PROT_READ)
    assert space.layout()[0] == Vma(0x50000000, 0x50002000, PROT_READ, MAP_PRIVATE, "/f", 0)


def test_mprotect_growsdown_extends_to_area_start() -> None:
    space, _ = make()
    stack = space.mmap(0x60000000, 4 * P, RW, ANON | MAP_GROWSDOWN | MAP_FIXED)
    space.mprotect(stack + 2 * P, P, PROT_READ | PROT_WRITE | PROT_EXEC | 0x01000000)
    assert spans(space) == [
        (stack, stack + 3 * P, PROT_READ | PROT_WRITE | PROT_EXEC),
        (stack + 3 * P, stack + 4 * P, RW),
    ]
    plain = space.mmap(0, P, RW, ANON)
    assert errno_of(space.mprotect, plain, P, PROT_READ | 0x01000000) == Errno.EINVAL


# ---------------------------------------------------------------- mremap


def test_mremap_shrinks_in_place_and_drops_the_tail() -> None:
    space, _ = make()
    addr = space.mmap(0, 4 * P, RW, ANON)
    space.write_page(addr, page(1))
    space.write_page(addr + 3 * P, page(4))
    assert space.mremap(addr, 4 * P, P, 0) == addr
    assert spans(space) == [(addr, addr + P, RW)]
    assert list(space.populated()) == [addr]


def test_mremap_grows_in_place_when_next_range_is_free() -> None:
    space, _ = make()
    addr = space.mmap(0x70000000, P, RW, ANON | MAP_FIXED)
    space.write_page(addr, page(1))
    assert space.mremap(addr, P, 3 * P, 0) == addr
    assert spans(space) == [(addr, addr + 3 * P, RW)]
    assert space.read_page(addr) == page(1)


def test_mremap_grow_merges_with_identical_neighbour() -> None:
    space, _ = make()
    space.mmap(0x70000000, P, RW, ANON | MAP_FIXED)
    space.mmap(0x70003000, P, RW, ANON | MAP_FIXED)
    assert space.mremap(0x70000000, P, 3 * P, 0) == 0x70000000
    assert spans(space) == [(0x70000000, 0x70004000, RW)]


def test_mremap_blocked_growth_needs_maymove() -> None:
    space, _ = make()
    addr = space.mmap(0x70000000, 2 * P, RW, ANON | MAP_FIXED)
    space.mmap(0x70002000, P, PROT_READ, ANON | MAP_FIXED)
    space.write_page(addr, page(1))
    space.write_page(addr + P, page(2))
    assert errno_of(space.mremap, addr, 2 * P, 4 * P, 0) == Errno.ENOMEM
    moved = space.mremap(addr, 2 * P, 4 * P, MREMAP_MAYMOVE)
    assert moved == BASE - 4 * P
    assert space.read_page(moved) == page(1)
    assert space.read_page(moved + P) == page(2)
    assert space.read_page(moved + 3 * P) == bytes(P)
    assert space.find(addr) is None
    assert spans(space) == [(0x70002000, 0x70003000, PROT_READ), (moved, BASE, RW)]


def test_mremap_of_part_of_an_area_moves_that_part() -> None:
    space, _ = make({"/f": bytes(range(256)) * 64})
    addr = space.mmap(0x70000000, 4 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, "/f", 0)
    moved = space.mremap(addr + P, P, 2 * P, MREMAP_MAYMOVE)
    assert [(v.start, v.end, v.offset) for v in space.layout()] == [
        (addr, addr + P, 0),
        (addr + 2 * P, addr + 4 * P, 2 * P),
        (moved, moved + 2 * P, P),
    ]
    assert space.read_page(moved + P) == (bytes(range(256)) * 64)[2 * P : 3 * P]


def test_mremap_fixed_moves_over_an_existing_mapping() -> None:
    space, _ = make()
    addr = space.mmap(0x70000000, 2 * P, RW, ANON | MAP_FIXED)
    space.write_page(addr + P, page(6))
    target = space.mmap(0x71000000, 4 * P, PROT_READ, ANON | MAP_FIXED)
    space.write_page(target, page(9))
    flags = MREMAP_MAYMOVE | MREMAP_FIXED
    assert space.mremap(addr, 2 * P, 2 * P, flags, target) == target
    assert spans(space) == [
        (target, target + 2 * P, RW),
        (target + 2 * P, target + 4 * P, PROT_READ),
    ]
    assert space.read_page(target) == bytes(P)
    assert space.read_page(target + P) == page(6)
    assert list(space.populated()) == [target + P]


def test_mremap_fixed_with_shrink() -> None:
    space, _ = make()
    addr = space.mmap(0x70000000, 4 * P, RW, ANON | MAP_FIXED)
    for i in range(4):
        space.write_page(addr + i * P, page(i + 1))
    new = space.mremap(addr, 4 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, 0x72000000)
    assert new == 0x72000000
    assert spans(space) == [(new, new + 2 * P, RW)]
    assert list(space.populated()) == [new, new + P]
    assert space.read_page(new + P) == page(2)


def test_mremap_dontunmap_leaves_an_empty_source() -> None:
    space, _ = make()
    addr = space.mmap(0x70000000, P, RW, ANON | MAP_FIXED)
    space.write_page(addr, page(8))
    new = space.mremap(addr, P, P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP)
    assert new != addr
    assert space.read_page(new) == page(8)
    assert space.find(addr) is not None
    assert space.read_page(addr) == bytes(P)
    assert errno_of(space.mremap, addr, P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP) == (
        Errno.EINVAL
    )


def test_mremap_moved_heap_loses_its_name() -> None:
    space, _ = make()
    space.set_brk_base(0x600000)
    space.brk(0x602000)
    moved = space.mremap(0x600000, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, 0x700000)
    vma = space.find(moved)
    assert vma is not None and vma.name == ""


def test_mremap_duplicates_only_shared_mappings() -> None:
    space, _ = make()
    private = space.mmap(0, P, RW, ANON)
    assert errno_of(space.mremap, private, 0, P, MREMAP_MAYMOVE) == Errno.EINVAL
    shared = space.mmap(0x70000000, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    space.write_page(shared, page(4))
    dup = space.mremap(shared, 0, P, MREMAP_MAYMOVE)
    assert dup != shared
    assert space.read_page(dup) == page(4)
    assert space.read_page(shared) == page(4)


def test_mremap_errors() -> None:
    space, _ = make()
    addr = space.mmap(0x70000000, 2 * P, RW, ANON | MAP_FIXED)
    space.mmap(0x70002000, P, PROT_READ, ANON | MAP_FIXED)
    assert errno_of(space.mremap, addr + 1, P, P, 0) == Errno.EINVAL
    assert errno_of(space.mremap, addr, P, 0, 0) == Errno.EINVAL
    assert errno_of(space.mremap, addr, P, P, 8) == Errno.EINVAL
    assert errno_of(space.mremap, addr, P, P, MREMAP_FIXED, 0x71000000) == Errno.EINVAL
    assert errno_of(space.mremap, 0x60000000, P, 2 * P, MREMAP_MAYMOVE) == Errno.EFAULT
    # The old range spans two areas.
    assert errno_of(space.mremap, addr, 3 * P, 4 * P, MREMAP_MAYMOVE) == Errno.EFAULT
    overlap = MREMAP_MAYMOVE | MREMAP_FIXED
    assert errno_of(space.mremap, addr, 2 * P, 2 * P, overlap, addr + P) == Errno.EINVAL
    assert errno_of(space.mremap, addr, 2 * P, 2 * P, overlap, addr + 5) == Errno.EINVAL
    assert spans(space) == [(addr, addr + 2 * P, RW), (addr + 2 * P, addr + 3 * P, PROT_READ)]


# ---------------------------------------------------------------- madvise


def test_madvise_dontneed_zeroes_anonymous_and_rereads_file_pages() -> None:
    content = page(0x11) + page(0x22)
    space, fake = make({"/f": content})
    anon = space.mmap(0, 2 * P, RW, ANON)
    space.write_page(anon, page(1))
    space.write_page(anon + P, page(2))
    space.madvise(anon, P, MADV_DONTNEED)
    assert space.read_page(anon) == bytes(P)
    assert space.read_page(anon + P) == page(2)
    mapped = space.mmap(0, 2 * P, RW, MAP_PRIVATE, "/f")
    space.write_page(mapped + P, page(0x99))  # a private copy-on-write page
    space.madvise(mapped, 2 * P, MADV_DONTNEED)
    assert space.read_page(mapped + P) == page(0x22)
    assert fake.reads[-1] == ("/f", P, P)


def test_madvise_free_only_for_private_anonymous_memory() -> None:
    space, _ = make({"/f": bytes(P)})
    anon = space.mmap(0, P, RW, ANON)
    space.write_page(anon, page(3))
    space.madvise(anon, P, MADV_FREE)
    assert space.read_page(anon) == bytes(P)
    mapped = space.mmap(0, P, RW, MAP_PRIVATE, "/f")
    assert errno_of(space.madvise, mapped, P, MADV_FREE) == Errno.EINVAL


def test_madvise_dontneed_keeps_shared_contents() -> None:
    space, _ = make()
    shared = space.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS)
    space.write_page(shared, page(5))
    space.madvise(shared, P, MADV_DONTNEED)
    assert space.read_page(shared) == page(5)


def test_madvise_applies_to_mapped_parts_then_reports_hole() -> None:
    space, _ = make()
    space.mmap(0x40000000, P, RW, ANON | MAP_FIXED)
    space.mmap(0x40002000, P, RW, ANON | MAP_FIXED)
    space.write_page(0x40000000, page(1))
    space.write_page(0x40002000, page(2))
    assert errno_of(space.madvise, 0x40000000, 3 * P, MADV_DONTNEED) == Errno.ENOMEM
    assert list(space.populated()) == []
    assert errno_of(space.madvise, 0x50000000, P, MADV_WILLNEED) == Errno.ENOMEM


def test_madvise_hints_are_no_ops_and_errors() -> None:
    space, _ = make()
    addr = space.mmap(0, 2 * P, RW, ANON)
    space.write_page(addr, page(1))
    for advice in (MADV_NORMAL, 1, 2, MADV_WILLNEED, 10, 11, 12, MADV_HUGEPAGE, 15, 16, 17):
        space.madvise(addr, 2 * P, advice)
    assert space.read_page(addr) == page(1)
    assert spans(space) == [(addr, addr + 2 * P, RW)]
    assert errno_of(space.madvise, addr, P, 5) == Errno.EINVAL
    assert errno_of(space.madvise, addr, P, 999) == Errno.EINVAL
    assert errno_of(space.madvise, addr + 1, P, MADV_DONTNEED) == Errno.EINVAL
    space.madvise(addr, 0, MADV_DONTNEED)
    assert space.read_page(addr) == page(1)


# ---------------------------------------------------------------- brk


def test_brk_grows_and_shrinks_the_heap() -> None:
    space, _ = make()
    space.set_brk_base(0x600123)
    assert space.brk(0) == 0x601000  # the base is page aligned, as load_elf_binary does
    assert space.brk(0x601010) == 0x601010  # exact value, not page aligned
    heap = space.find(0x601000)
    assert heap == Vma(0x601000, 0x602000, RW, ANON, name="[heap]")
    assert space.brk(0x604000) == 0x604000
    assert [(v.start, v.end, v.name) for v in space.layout()] == [(0x601000, 0x604000, "[heap]")]
    space.write_page(0x603000, page(1))
    space.write_page(0x601000, page(2))
    assert space.brk(0x602800) == 0x602800
    assert [(v.start, v.end) for v in space.layout()] == [(0x601000, 0x603000)]
    assert list(space.populated()) == [0x601000]
    assert space.brk(0x604000) == 0x604000
    assert space.read_page(0x603000) == bytes(P)
    assert space.brk(0x601000) == 0x601000
    assert space.layout() == ()


def test_brk_refuses_too_low_and_before_base() -> None:
    space, _ = make()
    assert space.brk(0x600000) == 0  # no heap yet
    space.set_brk_base(0x600000)
    space.brk(0x602000)
    assert space.brk(0x500000) == 0x602000
    assert space.brk(0) == 0x602000
    assert space.brk(1 << 48) == 0x602000


def test_brk_cannot_grow_into_another_mapping() -> None:
    space, _ = make()
    space.set_brk_base(0x600000)
    space.mmap(0x608000, P, RW, ANON | MAP_FIXED)
    assert space.brk(0x609000) == 0x600000
    # Linux keeps a page free between the heap and the next mapping.
    assert space.brk(0x607001) == 0x600000
    assert space.brk(0x607000) == 0x607000
    assert [(v.start, v.end, v.name) for v in space.layout()] == [
        (0x600000, 0x607000, "[heap]"),
        (0x608000, 0x609000, ""),
    ]


# ---------------------------------------------------------------- exec


def test_map_fixed_stores_data_and_zeroes_the_rest_of_touched_pages() -> None:
    files = {"/bin": bytes([0xEE]) * (4 * P)}
    space, _ = make(files)
    space.map_fixed(Vma(0x400000, 0x402000, PROT_READ, MAP_PRIVATE, "/bin", 0), b"\x7fELF" * 300)
    assert space.read_page(0x400000) == b"\x7fELF" * 300 + bytes(P - 1200)
    assert space.read_page(0x401000) == bytes([0xEE]) * P  # untouched: from the file
    stack = Vma(0x7FFFFF000000, 0x7FFFFFFFF000, RW, ANON | MAP_GROWSDOWN, name="[stack]")
    space.map_fixed(stack, b"argv", stack.length - 10)
    assert space.read_page(0x7FFFFFFFE000)[-10:] == b"argv" + bytes(6)
    assert [v.start for v in space.layout()] == [0x400000, 0x7FFFFF000000]


def test_map_fixed_replaces_and_rejects_bad_areas() -> None:
    space, _ = make()
    space.mmap(0x400000, 4 * P, RW, ANON | MAP_FIXED)
    space.write_page(0x401000, page(1))
    space.map_fixed(Vma(0x401000, 0x402000, PROT_READ, ANON))
    assert space.read_page(0x401000) == bytes(P)
    assert len(space.layout()) == 3
    assert errno_of(space.map_fixed, Vma(0x400100, 0x402000, PROT_READ, ANON)) == Errno.EINVAL
    assert errno_of(space.map_fixed, Vma(0x400000, 0x401000, PROT_READ, ANON), b"x" * (P + 1)) == (
        Errno.EINVAL
    )
