"""Address space: one process's virtual memory as its memory manager owns it.

In LegoOS the memory manager (mComponent) holds all virtual-memory state of a process: the
list of virtual memory areas and the page contents; a processor only caches pages. This is
that state and the calls that change it, with the semantics of Linux on x86-64 with 4 KiB
pages: mm/mmap.c (do_mmap, get_unmapped_area and its top-down search, do_munmap, brk,
vma_merge), mm/mprotect.c, mm/mremap.c, mm/madvise.c, and man 2 mmap, mprotect, mremap,
madvise and brk.

Page contents are sparse: only pages that were written, or read from a file, are stored, so
a 1 TiB mapping costs what it touches. No operation loops over every page of a range; each
walks the stored pages instead when the range is larger than the store.

Stored pages are immutable `bytes`: a write replaces a page, never changes it in place. So a
copy of the address space (fork) shares every page with the original until one of the two
writes it, as Linux shares anonymous pages copy-on-write; the copy costs one dictionary
entry per stored page and no page data.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from legorun.managers.page_account import CountedPages, PageAccount
from legorun.managers.vma import (
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MAP_TYPE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Vma,
    page_down,
    page_up,
)
from syscalls.errno import Errno, SyscallError

# madvise(2) advice values (asm-generic/mman-common.h).
MADV_NORMAL = 0
MADV_RANDOM = 1
MADV_SEQUENTIAL = 2
MADV_WILLNEED = 3
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_DONTDUMP = 16
MADV_DODUMP = 17
MADV_WIPEONFORK = 18
MADV_KEEPONFORK = 19
MADV_COLD = 20
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23
MADV_DONTNEED_LOCKED = 24
MADV_COLLAPSE = 25

# madvise_behavior_valid(): everything else (including the CAP_SYS_ADMIN-only HWPOISON and
# SOFT_OFFLINE) is EINVAL here.
_KNOWN_ADVICE = frozenset(
    {
        MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
        MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_MERGEABLE, MADV_UNMERGEABLE,
        MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK,
        MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
        MADV_DONTNEED_LOCKED, MADV_COLLAPSE,
    }
)

# Flags vma.py does not name but the x86-64 ABI has.
MAP_32BIT = 0x40
MAP_UNINITIALIZED = 0x4000000

# include/linux/mman.h LEGACY_MAP_MASK: what MAP_SHARED_VALIDATE accepts for an ordinary file.
_LEGACY_MAP_MASK = (
    MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE
    | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE
    | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB
)

# Flags that steer one mmap call but are not a property of the area (Linux has no VM_ flag for
# them, and ignores DENYWRITE/EXECUTABLE entirely). Keeping them in Vma.flags would stop
# areas from merging that Linux merges, e.g. ld.so's MAP_FIXED pieces of one library.
_CALL_ONLY_FLAGS = (
    MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_POPULATE | MAP_NONBLOCK | MAP_DENYWRITE
    | MAP_EXECUTABLE | MAP_32BIT
)

_PROT_MASK = PROT_READ | PROT_WRITE | PROT_EXEC
_PROT_SEM = 0x8
_PROT_GROWSDOWN = 0x01000000
_PROT_GROWSUP = 0x02000000

# mm/mmap.c stack_guard_gap: 256 pages kept free below a MAP_GROWSDOWN area so it can grow.
STACK_GUARD_GAP = 256 << PAGE_SHIFT

# x86-64 MAP_32BIT window (arch/x86/kernel/sys_x86_64.c find_start_end).
_MAP_32BIT_BEGIN = 0x40000000
_MAP_32BIT_END = 0x80000000

_U64 = 1 << 64
_PAGE_MASK = PAGE_SIZE - 1

# Pages of a file keep_file_pages reads in one storage read: 256 KiB.
KEEP_BATCH = 64


def _start(vma: Vma) -> int:
    return vma.start


def _end(vma: Vma) -> int:
    return vma.end


def _is_shared(vma: Vma) -> bool:
    return vma.flags & MAP_TYPE == MAP_SHARED


def _start_gap(vma: Vma) -> int:
    """Linux vm_start_gap(): where the free space below `vma` must end."""
    if vma.flags & MAP_GROWSDOWN:
        return max(vma.start - STACK_GUARD_GAP, 0)
    return vma.start


def _area_flags(flags: int) -> int:
    """The flags an area keeps: call-only flags dropped, MAP_SHARED_VALIDATE as MAP_SHARED
    (so that `flags & MAP_PRIVATE` is never true of a shared area)."""
    flags &= ~_CALL_ONLY_FLAGS
    if flags & MAP_TYPE == MAP_SHARED_VALIDATE:
        flags = (flags & ~MAP_TYPE) | MAP_SHARED
    return flags


def _mergeable(left: Vma, right: Vma) -> bool:
    """vma_merge()'s test: adjacent, same attributes and, for a file, contiguous offsets."""
    return (
        left.end == right.start
        and left.prot == right.prot
        and left.flags == right.flags
        and left.name == right.name
        and left.path == right.path
        and (left.path is None or left.offset + left.length == right.offset)
    )


def _tail(vma: Vma, at: int) -> Vma:
    """The part of `vma` from `at` on; a file offset follows the start."""
    offset = vma.offset + (at - vma.start) if vma.path is not None else vma.offset
    return replace(vma, start=at, offset=offset)


class AddressSpace:
    """One process's virtual memory at the memory manager: a sorted, non-overlapping VMA list
    and sparse page contents."""

    def __init__(
        self,
        read_file: Callable[[str, int, int], bytes],
        mmap_base: int = 0x7FFFF7FFF000,
        mmap_min_addr: int = 0x10000,
        task_size: int = 0x7FFFFFFFF000,
    ) -> None:
        """`read_file(path, offset, length)` returns up to `length` bytes of a file (fewer at
        EOF); it backs file mappings. `mmap_base` is where the top-down search starts,
        `mmap_min_addr` the lowest address a mapping may have, `task_size` the end of user
        space."""
        self._read_file = read_file
        self._mmap_base = page_down(mmap_base)
        self._mmap_min_addr = page_up(mmap_min_addr)
        self._task_size = task_size
        self._vmas: list[Vma] = []
        # Keyed by page number; an untouched page is absent, whatever its mapping. Never
        # modified in place: copies of this address space share the values.
        self._pages: dict[int, bytes] = {}
        self._brk_base: int | None = None
        self._brk = 0

    # ------------------------------------------------------------------ queries

    def layout(self) -> tuple[Vma, ...]:
        return tuple(self._vmas)

    def find(self, addr: int) -> Vma | None:
        i = bisect_right(self._vmas, addr, key=_end)
        if i < len(self._vmas) and self._vmas[i].start <= addr:
            return self._vmas[i]
        return None

    def populated(self) -> Iterable[int]:
        return [number << PAGE_SHIFT for number in sorted(self._pages)]

    def copy(self) -> AddressSpace:
        """A copy-on-write duplicate (fork): VMAs and pages are immutable values, so both
        spaces share them until one replaces its own."""
        other = AddressSpace(self._read_file, self._mmap_base, self._mmap_min_addr, self._task_size)
        other._vmas = list(self._vmas)
        other._pages = self._pages.copy()  # counted pages stay counted (page_account.py)
        other._brk_base = self._brk_base
        other._brk = self._brk
        return other

    # ------------------------------------------------------------------ pages

    def read_page(self, addr: int) -> bytes:
        vma = self.find(addr)
        if vma is None:
            raise SyscallError(Errno.EFAULT, f"no mapping at {addr:#x}")
        number = addr >> PAGE_SHIFT
        page = self._pages.get(number)
        if page is not None:
            return page
        if vma.path is None:
            # Untouched anonymous memory is the zero page; storing it would make reading a
            # huge sparse mapping cost memory.
            return bytes(PAGE_SIZE)
        page = self._file_page(vma, number << PAGE_SHIFT)
        try:
            self._pages[number] = page
        except SyscallError:
            pass  # a full memory server serves the file's page without keeping it
        return page

    def write_page(self, addr: int, data: bytes) -> None:
        if len(data) != PAGE_SIZE:
            raise SyscallError(Errno.EINVAL, f"write-back of {len(data)} bytes, not a page")
        if self.find(addr) is None:
            raise SyscallError(Errno.EFAULT, f"no mapping at {addr:#x}")
        self._pages[addr >> PAGE_SHIFT] = bytes(data)

    def _file_page(self, vma: Vma, page_addr: int) -> bytes:
        assert vma.path is not None
        chunk = self._read_file(vma.path, vma.offset + (page_addr - vma.start), PAGE_SIZE)
        if not chunk:  # wholly past EOF: Linux raises SIGBUS on the access
            raise SyscallError(Errno.ENXIO, f"{vma.path}: page {page_addr:#x} is past EOF")
        # Past EOF the rest of the page reads as zeros, as Linux fills the last file page.
        return bytes(chunk[:PAGE_SIZE]).ljust(PAGE_SIZE, b"\0")

    def keep_file_pages(self, path: str) -> None:
        """The file at `path` (or any file below the directory `path`) is about to be
        unlinked, renamed or replaced: read in every page this space maps of it and has not
        stored yet, so that its mappings keep their contents, as Linux's mappings keep the
        inode (sem_open(3) maps a file and unlinks it). Pages wholly past the file's end
        stay unstored: they are still a SIGBUS."""
        for vma in self._vmas:
            if not vma.maps_file_at(path) or _is_shared(vma):
                continue  # a shared area's pages live with the processors that share it
            for start, end in self._unstored_runs(vma.start, vma.end):
                if not self._read_in(vma, start, end):
                    break  # the file ends before `end`

    def _unstored_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """The runs of unstored pages in [start, end), each at most KEEP_BATCH pages."""
        run_start = None
        for number in range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            if number in self._pages:
                if run_start is not None:
                    yield run_start << PAGE_SHIFT, number << PAGE_SHIFT
                    run_start = None
            elif run_start is None:
                run_start = number
            elif number - run_start == KEEP_BATCH:
                yield run_start << PAGE_SHIFT, number << PAGE_SHIFT
                run_start = number
        if run_start is not None:
            yield run_start << PAGE_SHIFT, end

    def _read_in(self, vma: Vma, start: int, end: int) -> bool:
        """Store the file's pages for [start, end) of `vma` (one read); False when the file
        ends before `end`."""
        assert vma.path is not None
        data = self._read_file(vma.path, vma.offset + (start - vma.start), end - start)
        for at in range(0, len(data), PAGE_SIZE):
            self._pages[(start + at) >> PAGE_SHIFT] = bytes(data[at : at + PAGE_SIZE]).ljust(
                PAGE_SIZE, b"\0")
        return len(data) == end - start

    def _stored_in(self, start: int, end: int) -> list[int]:
        """Page numbers with stored data in [start, end), in no particular order."""
        first, last = start >> PAGE_SHIFT, page_up(end) >> PAGE_SHIFT
        if last - first <= len(self._pages):
            return [number for number in range(first, last) if number in self._pages]
        return [number for number in self._pages if first <= number < last]

    def take_pages(self, addrs: Iterable[int], keep: bool) -> list[tuple[int, bytes]]:
        """Remove the stored pages at `addrs` (those that are stored) and return them as
        (address, contents) when `keep`; the mappings stay."""
        taken = []
        for addr in addrs:
            page = self._pages.pop(addr >> PAGE_SHIFT, None)
            if page is not None and keep:
                taken.append((addr & ~_PAGE_MASK, page))
        return taken

    def _drop_pages(self, start: int, end: int) -> None:
        for number in self._stored_in(start, end):
            del self._pages[number]

    # ------------------------------------------------------------------ capacity

    def charge(self, account: PageAccount) -> None:
        """Count this space's pages against a memory server's `account` from now on;
        ENOMEM, with nothing counted, when they do not fit."""
        self._pages = CountedPages.holding(account, self._pages)

    def release(self) -> None:
        """The space is gone (its process exited or exec'ed, its snapshot was released):
        counted pages go back to the server's account at once. Uncounted ones (the embedded
        memory manager) are left to the memory manager, which defers freeing them."""
        if isinstance(self._pages, CountedPages):
            self._pages.clear()

    # ------------------------------------------------------------------ VMA list primitives

    def _split_at(self, addr: int) -> None:
        """Make `addr` a VMA boundary if it falls strictly inside one."""
        i = bisect_right(self._vmas, addr, key=_end)
        if i < len(self._vmas) and self._vmas[i].start < addr:
            vma = self._vmas[i]
            self._vmas[i : i + 1] = [replace(vma, end=addr), _tail(vma, addr)]

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Split at both ends and return the slice of the list lying in [start, end)."""
        self._split_at(start)
        self._split_at(end)
        return bisect_right(self._vmas, start, key=_end), bisect_left(self._vmas, end, key=_start)

    def _intersects(self, start: int, end: int) -> bool:
        i = bisect_right(self._vmas, start, key=_end)
        return i < len(self._vmas) and self._vmas[i].start < end

    def _unmap(self, start: int, end: int) -> None:
        i, j = self._span(start, end)
        del self._vmas[i:j]
        self._drop_pages(start, end)

    def _insert(self, vma: Vma) -> None:
        """Add `vma` to a free range and merge it with its neighbours."""
        i = bisect_left(self._vmas, vma.start, key=_start)
        self._vmas.insert(i, vma)
        self._merge(i - 1, i + 1)

    def _merge(self, lo: int, hi: int) -> None:
        """Merge mergeable neighbours among the areas at indices lo..hi (inclusive)."""
        k = max(lo, 0)
        hi = min(hi, len(self._vmas) - 1)
        while k < hi:
            left, right = self._vmas[k], self._vmas[k + 1]
            if _mergeable(left, right):
                self._vmas[k : k + 2] = [replace(left, end=right.end)]
                hi -= 1
            else:
                k += 1

    # ------------------------------------------------------------------ placement

    def _gaps(self, descending: bool) -> Iterator[tuple[int, int]]:
        """Free ranges [start, end) between areas, honouring stack guard gaps."""
        vmas = self._vmas
        n = len(vmas)
        for k in range(n, -1, -1) if descending else range(n + 1):
            gap_start = vmas[k - 1].end if k > 0 else 0
            gap_end = _start_gap(vmas[k]) if k < n else _U64
            if gap_end > gap_start:
                yield gap_start, gap_end

    def _top_down(self, length: int, low: int, high: int) -> int | None:
        """unmapped_area_topdown(): the highest free range of `length` inside [low, high)."""
        for gap_start, gap_end in self._gaps(descending=True):
            if gap_end <= low:
                break  # every lower gap ends lower still
            top, bottom = min(gap_end, high), max(gap_start, low)
            if top - bottom >= length:
                return top - length
        return None

    def _bottom_up(self, length: int, low: int, high: int) -> int | None:
        """unmapped_area(): the lowest free range of `length` inside [low, high)."""
        for gap_start, gap_end in self._gaps(descending=False):
            if gap_start >= high:
                break
            top, bottom = min(gap_end, high), max(gap_start, low)
            if top - bottom >= length:
                return bottom
        return None

    def _hint_fits(self, addr: int, length: int) -> bool:
        if addr < self._mmap_min_addr or addr + length > self._task_size:
            return False
        i = bisect_right(self._vmas, addr, key=_end)
        return i == len(self._vmas) or addr + length <= _start_gap(self._vmas[i])

    def _get_unmapped_area(self, addr: int, length: int, flags: int) -> int:
        """get_unmapped_area() with x86-64's arch_get_unmapped_area_topdown()."""
        if length > self._task_size:
            raise SyscallError(Errno.ENOMEM)
        if flags & MAP_FIXED:
            if addr > self._task_size - length:
                raise SyscallError(Errno.ENOMEM)
            if addr & _PAGE_MASK:
                raise SyscallError(Errno.EINVAL)
            # security_mmap_addr(): only CAP_SYS_RAWIO may map below mmap_min_addr.
            if addr < self._mmap_min_addr:
                raise SyscallError(Errno.EPERM)
            return addr
        if addr:
            addr = page_down(addr)
            if self._hint_fits(addr, length):
                return addr
        found: int | None
        if flags & MAP_32BIT:
            found = self._bottom_up(length, _MAP_32BIT_BEGIN, _MAP_32BIT_END)
        else:
            low = max(PAGE_SIZE, self._mmap_min_addr)
            found = self._top_down(length, low, self._mmap_base)
            if found is None:
                # Like Linux, fall back to a bottom-up search above TASK_UNMAPPED_BASE.
                found = self._bottom_up(length, page_up(self._task_size // 3), self._task_size)
        if found is None:
            raise SyscallError(Errno.ENOMEM)
        return found

    # ------------------------------------------------------------------ exec

    def map_fixed(self, vma: Vma, data: bytes = b"", data_offset: int = 0) -> None:
        """Map `vma` over whatever was there and store `data` at vma.start + data_offset.

        The pages `data` touches are stored whole, zero outside `data`: like the ELF loader's
        padzero(), the bytes after a segment's p_filesz in its last file page read as zero.
        """
        if (
            vma.start & _PAGE_MASK
            or vma.end & _PAGE_MASK
            or vma.end <= vma.start
            or vma.end > self._task_size
        ):
            raise SyscallError(Errno.EINVAL, f"bad area {vma.start:#x}-{vma.end:#x}")
        if data_offset < 0 or data_offset + len(data) > vma.length:
            raise SyscallError(Errno.EINVAL, "data outside the area")
        vma = replace(vma, flags=_area_flags(vma.flags))
        self._unmap(vma.start, vma.end)
        self._insert(vma)
        view = memoryview(data)
        addr = vma.start + data_offset
        done = 0
        while done < len(data):
            number, within = divmod(addr + done, PAGE_SIZE)
            count = min(PAGE_SIZE - within, len(data) - done)
            page = bytearray(self._pages.get(number, bytes(PAGE_SIZE)))
            page[within : within + count] = view[done : done + count]
            self._pages[number] = bytes(page)
            done += count

    def set_brk_base(self, addr: int) -> None:
        """Start the heap at `addr`, page aligned up as load_elf_binary() sets start_brk.

        Called once by exec, before any brk; the break starts equal to the base."""
        self._brk_base = page_up(addr)
        self._brk = self._brk_base

    # ------------------------------------------------------------------ syscalls

    def brk(self, addr: int) -> int:
        """sys_brk: the new break, or the current one when the request cannot be met."""
        if self._brk_base is None or addr < self._brk_base or addr > self._task_size:
            return self._brk
        new_top, old_top = page_up(addr), page_up(self._brk)
        if new_top == old_top:
            self._brk = addr
            return addr
        if addr <= self._brk:
            self._unmap(new_top, old_top)
            self._brk = addr
            return addr
        i = bisect_right(self._vmas, old_top, key=_end)
        # Linux keeps one page free between the heap and the next mapping.
        if i < len(self._vmas) and new_top + PAGE_SIZE > _start_gap(self._vmas[i]):
            return self._brk
        self._insert(
            Vma(old_top, new_top, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                name="[heap]")
        )
        self._brk = addr
        return addr

    def mmap(
        self,
        addr: int,
        length: int,
        prot: int,
        flags: int,
        path: str | None = None,
        offset: int = 0,
    ) -> int:
        if offset & _PAGE_MASK:
            raise SyscallError(Errno.EINVAL, "offset not page aligned")
        anonymous = bool(flags & MAP_ANONYMOUS)
        if not anonymous and path is None:
            raise SyscallError(Errno.EBADF)
        if length == 0:
            raise SyscallError(Errno.EINVAL, "length 0")
        if flags & MAP_FIXED_NOREPLACE:
            flags |= MAP_FIXED
        if not flags & MAP_FIXED:
            # round_hint_to_min(): a hint below mmap_min_addr becomes mmap_min_addr.
            addr = page_down(addr)
            if addr and addr < self._mmap_min_addr:
                addr = self._mmap_min_addr
        length = page_up(length)
        if length >= _U64:  # PAGE_ALIGN wrapped to 0 in the kernel
            raise SyscallError(Errno.ENOMEM)
        map_type = flags & MAP_TYPE
        if anonymous:
            # An anonymous MAP_SHARED_VALIDATE falls to do_mmap()'s default case: EINVAL.
            if map_type not in (MAP_SHARED, MAP_PRIVATE):
                raise SyscallError(Errno.EINVAL, "bad mapping type")
            if map_type == MAP_SHARED and flags & MAP_GROWSDOWN:
                raise SyscallError(Errno.EINVAL, "shared MAP_GROWSDOWN")
            path, offset = None, 0
        else:
            if map_type not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
                raise SyscallError(Errno.EINVAL, "bad mapping type")
            if map_type == MAP_SHARED_VALIDATE and flags & ~_LEGACY_MAP_MASK:
                raise SyscallError(Errno.EOPNOTSUPP, "unknown flag with MAP_SHARED_VALIDATE")
        start = self._get_unmapped_area(addr, length, flags)
        end = start + length
        if flags & MAP_FIXED_NOREPLACE and self._intersects(start, end):
            raise SyscallError(Errno.EEXIST)
        if flags & MAP_FIXED:
            self._unmap(start, end)
        self._insert(Vma(start, end, prot & _PROT_MASK, _area_flags(flags), path, offset))
        return start

    def munmap(self, addr: int, length: int) -> None:
        if addr & _PAGE_MASK or addr > self._task_size or length > self._task_size - addr:
            raise SyscallError(Errno.EINVAL)
        length = page_up(length)
        if length == 0:
            raise SyscallError(Errno.EINVAL, "length 0")
        self._unmap(addr, addr + length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        if addr & _PAGE_MASK:
            raise SyscallError(Errno.EINVAL, "address not page aligned")
        if length == 0:
            return
        end = addr + page_up(length)
        if end >= _U64:
            raise SyscallError(Errno.ENOMEM)
        grows = prot & (_PROT_GROWSDOWN | _PROT_GROWSUP)
        prot &= ~grows
        if grows == _PROT_GROWSDOWN | _PROT_GROWSUP:
            raise SyscallError(Errno.EINVAL)
        if prot & ~(_PROT_MASK | _PROT_SEM):
            raise SyscallError(Errno.EINVAL, "unknown protection bits")
        i = bisect_right(self._vmas, addr, key=_end)
        if i == len(self._vmas) or self._vmas[i].start >= end:
            raise SyscallError(Errno.ENOMEM)
        first = self._vmas[i]
        if grows & _PROT_GROWSDOWN:
            if not first.flags & MAP_GROWSDOWN:
                raise SyscallError(Errno.EINVAL)
            addr = first.start  # PROT_GROWSDOWN extends the change to the area's start
        elif first.start > addr:
            raise SyscallError(Errno.ENOMEM)
        if grows & _PROT_GROWSUP:
            raise SyscallError(Errno.EINVAL)  # x86 has no VM_GROWSUP areas
        # Check the whole range first so that a hole leaves everything unchanged.
        cursor, k = addr, i
        while cursor < end:
            if k == len(self._vmas) or self._vmas[k].start > cursor:
                raise SyscallError(Errno.ENOMEM)
            cursor = self._vmas[k].end
            k += 1
        i, j = self._span(addr, end)
        for k in range(i, j):
            self._vmas[k] = replace(self._vmas[k], prot=prot & _PROT_MASK)
        self._merge(i - 1, j)

    def mremap(
        self, old_addr: int, old_size: int, new_size: int, flags: int, new_addr: int = 0
    ) -> int:
        if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
            raise SyscallError(Errno.EINVAL, "unknown flags")
        if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
            raise SyscallError(Errno.EINVAL, "MREMAP_FIXED without MREMAP_MAYMOVE")
        # MREMAP_DONTUNMAP is always a move, and never a resize.
        if flags & MREMAP_DONTUNMAP and (not flags & MREMAP_MAYMOVE or old_size != new_size):
            raise SyscallError(Errno.EINVAL, "bad MREMAP_DONTUNMAP")
        if old_addr & _PAGE_MASK:
            raise SyscallError(Errno.EINVAL, "address not page aligned")
        # PAGE_ALIGN wraps in the kernel: a huge size becomes 0.
        old_len = page_up(old_size) % _U64
        new_len = page_up(new_size) % _U64
        if new_len == 0:
            raise SyscallError(Errno.EINVAL, "new size 0")
        if self.find(old_addr) is None:
            raise SyscallError(Errno.EFAULT)
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
            return self._mremap_to(old_addr, old_len, new_addr, new_len, flags)
        if old_len >= new_len:
            # Shrinking just unmaps the tail, whatever it covers.
            if old_len > new_len:
                self.munmap(old_addr + new_len, old_len - new_len)
            return old_addr
        vma = self._vma_to_resize(old_addr, old_len)
        if old_len == vma.end - old_addr:
            grown_end = vma.end + (new_len - old_len)
            if grown_end <= self._task_size and not self._intersects(vma.end, grown_end):
                i = bisect_left(self._vmas, vma.start, key=_start)
                self._vmas[i] = replace(vma, end=grown_end)
                self._merge(i, i + 1)
                return old_addr
        if not flags & MREMAP_MAYMOVE:
            raise SyscallError(Errno.ENOMEM)
        dest = self._get_unmapped_area(0, new_len, MAP_SHARED if _is_shared(vma) else 0)
        return self._move(vma, old_addr, old_len, new_len, dest, flags)

    def _vma_to_resize(self, addr: int, old_len: int) -> Vma:
        vma = self.find(addr)
        if vma is None:
            raise SyscallError(Errno.EFAULT)
        # old_len 0 asks for a second mapping of the same object, which only means something
        # for a shared one.
        if old_len == 0 and not _is_shared(vma):
            raise SyscallError(Errno.EINVAL, "duplicating a private mapping")
        if old_len > vma.end - addr:
            raise SyscallError(Errno.EFAULT, "old range crosses areas")
        return vma

    def _mremap_to(self, addr: int, old_len: int, new_addr: int, new_len: int, flags: int) -> int:
        if new_addr & _PAGE_MASK:
            raise SyscallError(Errno.EINVAL, "new address not page aligned")
        if new_len > self._task_size or new_addr > self._task_size - new_len:
            raise SyscallError(Errno.EINVAL)
        if addr + old_len > new_addr and new_addr + new_len > addr:
            raise SyscallError(Errno.EINVAL, "old and new ranges overlap")
        if flags & MREMAP_FIXED:
            self._unmap(new_addr, new_addr + new_len)
        if old_len > new_len:
            self._unmap(addr + new_len, addr + old_len)
            old_len = new_len
        vma = self._vma_to_resize(addr, old_len)
        map_flags = (MAP_FIXED if flags & MREMAP_FIXED else 0) | (
            MAP_SHARED if _is_shared(vma) else 0
        )
        dest = self._get_unmapped_area(new_addr, new_len, map_flags)
        return self._move(vma, addr, old_len, new_len, dest, flags)

    def _move(
        self, vma: Vma, addr: int, old_len: int, new_len: int, dest: int, flags: int
    ) -> int:
        """move_vma(): a copy of `vma`'s attributes at `dest`, taking the old range's pages."""
        # Linux names [heap] and [stack] by position, so a moved piece loses the name.
        name = "" if vma.name in ("[heap]", "[stack]") else vma.name
        moved = replace(_tail(vma, addr), start=dest, end=dest + new_len, name=name)
        shift = (dest - addr) >> PAGE_SHIFT
        if old_len == 0:
            # A duplicate of a shared mapping starts with the source's contents; with one
            # process the two then diverge, as MAP_SHARED anonymous memory does here.
            source_end = min(addr + new_len, vma.end)
            pages = {n + shift: self._pages[n] for n in self._stored_in(addr, source_end)}
        else:
            pages = {n + shift: self._pages.pop(n) for n in self._stored_in(addr, addr + old_len)}
            if not flags & MREMAP_DONTUNMAP:
                self._unmap(addr, addr + old_len)
        self._insert(moved)
        self._pages.update(pages)
        return dest

    def madvise(self, addr: int, length: int, advice: int) -> None:
        if advice not in _KNOWN_ADVICE:
            raise SyscallError(Errno.EINVAL, f"unknown advice {advice}")
        if addr & _PAGE_MASK:
            raise SyscallError(Errno.EINVAL, "address not page aligned")
        aligned = page_up(length) % _U64
        if length and not aligned:
            raise SyscallError(Errno.EINVAL)
        end = addr + aligned
        if end >= _U64:
            raise SyscallError(Errno.EINVAL)
        if end == addr:
            return
        # madvise_walk_vmas(): apply to the mapped parts, then report any hole with ENOMEM.
        hole = False
        cursor = addr
        i = bisect_right(self._vmas, addr, key=_end)
        while True:
            if i == len(self._vmas):
                raise SyscallError(Errno.ENOMEM)
            vma = self._vmas[i]
            if cursor < vma.start:
                hole = True
                cursor = vma.start
                if cursor >= end:
                    break
            stop = min(vma.end, end)
            self._advise(vma, cursor, stop, advice)
            cursor = stop
            if cursor >= end:
                break
            i += 1
        if hole:
            raise SyscallError(Errno.ENOMEM)

    def _advise(self, vma: Vma, start: int, end: int, advice: int) -> None:
        if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE):
            if vma.flags & MAP_LOCKED and advice != MADV_DONTNEED_LOCKED:
                raise SyscallError(Errno.EINVAL, "locked area")
            if advice == MADV_FREE and (vma.path is not None or _is_shared(vma)):
                raise SyscallError(Errno.EINVAL, "MADV_FREE needs private anonymous memory")
            # Dropping a private page makes it read back as zeros or as the file again; a
            # shared page lives in the page cache (our store) and survives, as in Linux.
            if not _is_shared(vma):
                self._drop_pages(start, end)
        elif advice == MADV_REMOVE:
            if vma.flags & MAP_LOCKED or not _is_shared(vma):
                raise SyscallError(Errno.EINVAL, "MADV_REMOVE needs a shared mapping")
            if not vma.prot & PROT_WRITE:
                raise SyscallError(Errno.EACCES)
            if vma.path is not None:
                # Punching a hole in the file is the storage manager's business; Linux gives
                # this errno for a file system that cannot punch holes.
                raise SyscallError(Errno.EOPNOTSUPP, "hole punching")
            self._drop_pages(start, end)
        # Every other known advice is a hint that does not change contents.
