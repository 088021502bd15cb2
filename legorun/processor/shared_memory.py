"""MAP_SHARED memory: pages that every process mapping them sees at once.

The ExCache holds one process's lines, and each emulated process has its own (fork.py), so a
page two processes share cannot live there: a store in one would stay in its cache while
the other read its own copy. A MAP_SHARED mapping is therefore backed by a segment of host
shared memory (mmap MAP_SHARED|MAP_ANONYMOUS), mapped into Unicorn's physical address space
at an address of its own; the ExCache's fill hook maps the guest's pages of it straight onto
the segment (ExCache.direct), so loads and stores to it never miss and never write back:
coherent shared memory beside the cache. The host fork that makes a child process keeps the
segment shared, so a parent and its children (Python's multiprocessing, a shell's shared
counters, pshared semaphores and mutexes) see each other's stores as on Linux.

A file's shared mapping reads each page from the storage manager when any of the processes
sharing it first touches it (a byte per page in the segment, shared too, says which are
loaded; a page wholly past the end of the file is a SIGBUS), and writes the loaded pages back
to the file at msync, munmap, exec and exit when the file was opened for writing.

Futex words in shared memory are waited on and woken from different processes: each segment
also holds wake counters (one per word address, hashed), which a FUTEX_WAKE bumps; a waiter
in another process polls its word and counter (see syscalls/futex.py).
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
from dataclasses import dataclass
from typing import Callable

from unicorn import UC_PROT_ALL

from legorun.cache.excache import MEM_READ, GuestFault
from legorun.managers.vma import PAGE_SHIFT, PAGE_SIZE, file_at, page_up
from legorun.rpc.messages import DataReply, ReadRequest, StatReply, StatRequest, WriteRequest
from legorun.rpc.transport import Transport
from legorun.processor.cpu import Cpu
from syscalls.errno import Errno, SyscallError

# Unicorn's physical addresses for segments: far above the ExCache's slots (excache.py).
SHARED_BASE = 1 << 40
WAKE_COUNTERS = 1024  # per segment: futex words hash onto them
WRITE_BACK_CHUNK = 1 << 20  # bytes per storage write
MAP_NORESERVE = 0x4000  # a large mapping costs only the pages touched
_U32 = 0xFFFFFFFF


class SharedSegment:
    """Host shared memory behind one MAP_SHARED mapping: `length` bytes of guest pages, then
    the loaded-page bytes and the wake counters."""

    def __init__(self, length: int, path: str | None, file_offset: int,
                 write_back: bool) -> None:
        self.length = length
        self.path = path
        self.file_offset = file_offset
        self.write_back = write_back  # the file was opened for writing
        # Stores may happen (anonymous memory, or a file opened for writing), and another
        # process may see them (the segment existed at a fork): see core_turn.py.
        self.writable = path is None or write_back
        self.forked = False
        self.pages = length >> PAGE_SHIFT
        meta = page_up(self.pages + 4 * WAKE_COUNTERS)
        self._host = mmap.mmap(-1, length + meta,
                               flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
        anchor = ctypes.c_char.from_buffer(self._host)
        self.host_address = ctypes.addressof(anchor)
        del anchor  # the address stays valid while _host is open; no export pins it
        view = memoryview(self._host)
        self.memory = view[:length]
        self.loaded = view[length : length + self.pages]
        counters_at = length + meta - 4 * WAKE_COUNTERS
        self.wakes = view[counters_at : counters_at + 4 * WAKE_COUNTERS].cast("I")
        self.physical = 0  # Unicorn address, once mapped there

    def wake_slot(self, offset: int) -> int:
        return (offset >> 2) % WAKE_COUNTERS


@dataclass(slots=True)
class SharedRange:
    """Guest pages [start, end) backed by `segment` from byte `offset` of it."""

    start: int
    end: int
    segment: SharedSegment
    offset: int

    def segment_offset(self, addr: int) -> int:
        return self.offset + (addr - self.start)


@dataclass(frozen=True, slots=True)
class SharedWord:
    """A futex word in shared memory and the wake counter it hashes onto."""

    word: memoryview
    wakes: memoryview
    index: int

    @property
    def value(self) -> int:
        return self.word[0]

    @property
    def wake_count(self) -> int:
        return self.wakes[self.index]

    def note_wake(self) -> None:
        """A FUTEX_WAKE on the word: waiters in other processes see the counter move (two
        processes bumping it at once still move it, which is all a waiter looks for)."""
        self.wakes[self.index] = (self.wakes[self.index] + 1) & _U32


class SharedMappings:
    """The MAP_SHARED ranges of one process and the segments behind them."""

    def __init__(self, cpu: Cpu, transport: Transport, flush_tlb: Callable[[], None]) -> None:
        self._cpu = cpu
        self._transport = transport
        self._flush_tlb = flush_tlb
        self._ranges: list[SharedRange] = []
        self._starts: list[int] = []
        self._next_physical = SHARED_BASE

    def __bool__(self) -> bool:
        return bool(self._ranges)

    @property
    def writable(self) -> bool:
        """Whether stores may change any of this process's shared memory."""
        return any(shared.segment.writable for shared in self._ranges)

    @property
    def shared_with_others(self) -> bool:
        """Whether another process may store to memory this one maps (core_turn.py)."""
        return any(shared.segment.writable and shared.segment.forked
                   for shared in self._ranges)

    def forking(self) -> None:
        """The process forks: its child shares every segment from now on."""
        for shared in self._ranges:
            shared.segment.forked = True

    # ------------------------------------------------------------ lookups

    def _find(self, addr: int) -> SharedRange | None:
        index = bisect.bisect_right(self._starts, addr) - 1
        if index >= 0 and addr < self._ranges[index].end:
            return self._ranges[index]
        return None

    def page(self, vaddr: int) -> tuple[int, memoryview] | None:
        """(Unicorn address, host memory) of the shared page at vaddr, a file's page read in
        on first touch; None when no shared mapping covers vaddr."""
        found = self._find(vaddr)
        if found is None:
            return None
        offset = found.segment_offset(vaddr & ~(PAGE_SIZE - 1))
        segment = found.segment
        if offset >= segment.length:
            raise GuestFault(vaddr, MEM_READ, bus=True)
        if segment.path is not None and not segment.loaded[offset >> PAGE_SHIFT]:
            self._load(segment, offset, vaddr)
        return segment.physical + offset, segment.memory[offset : offset + PAGE_SIZE]

    def futex_word(self, addr: int) -> SharedWord | None:
        """The futex word at addr if it is in shared memory (None for a private one)."""
        found = self._find(addr)
        if found is None:
            return None
        offset = found.segment_offset(addr)
        segment = found.segment
        if offset >= segment.length:
            return None  # no memory behind it: the read of the word has faulted already
        if segment.path is not None and not segment.loaded[offset >> PAGE_SHIFT]:
            self._load(segment, offset & ~(PAGE_SIZE - 1), addr)
        return SharedWord(segment.memory[offset : offset + 4].cast("I"), segment.wakes,
                          segment.wake_slot(offset))

    # ------------------------------------------------------------ address-space changes

    def map(self, start: int, length: int, path: str | None, file_offset: int,
            write_back: bool) -> None:
        """A new MAP_SHARED mapping of [start, start + length) (anonymous when no path)."""
        length = page_up(length)
        if path is not None:  # the same pages of a file mapped again: the same memory
            for shared in self._ranges:
                segment = shared.segment
                offset = file_offset - segment.file_offset
                if segment.path == path and 0 <= offset and offset + length <= segment.length:
                    segment.write_back |= write_back
                    segment.writable |= write_back
                    self._insert(SharedRange(start, start + length, segment, offset))
                    return
        segment = SharedSegment(length, path, file_offset, write_back)
        segment.physical = self._next_physical
        self._cpu.uc.mem_map_ptr(segment.physical, length, UC_PROT_ALL, segment.host_address)
        self._next_physical += length + PAGE_SIZE
        self._insert(SharedRange(start, start + length, segment, 0))

    def unmap(self, start: int, end: int) -> None:
        """[start, end) is unmapped (munmap, a fixed mmap over it, exec, exit): its file
        pages are written back, and a segment no range uses any more goes."""
        cut = self._cut(start, end)
        for piece in cut:
            self._write_back(piece)
        self._release_unused(cut)

    def move(self, old: int, old_size: int, new: int, new_size: int) -> None:
        """mremap moved or resized the mapping at `old`. Grown past its segment, it has pages
        that nothing backs: a SIGBUS, as Linux's shared memory object does not grow."""
        found = self._find(old)
        if found is None:
            return
        segment, offset = found.segment, found.segment_offset(old)
        old_size, new_size = page_up(old_size), page_up(new_size)
        if new == old and new_size <= old_size:
            self.unmap(old + new_size, old + old_size)
            return
        self._cut(old, old + old_size)
        self._insert(SharedRange(new, new + new_size, segment, offset))
        self._flush_tlb()

    def _release_unused(self, cut: list[SharedRange]) -> None:
        """After `cut` left the ranges: unmap the segments no range uses any more (their
        host memory goes with the last reference, in this process)."""
        if not cut:
            return
        self._flush_tlb()
        in_use = {id(shared.segment) for shared in self._ranges}
        for segment in {id(piece.segment): piece.segment for piece in cut}.values():
            if id(segment) not in in_use:
                self._cpu.when_stopped(
                    lambda segment=segment: self._cpu.uc.mem_unmap(segment.physical,
                                                                   segment.length))

    def sync(self, start: int, end: int) -> None:
        """msync: write the file pages of [start, end) back."""
        for shared in list(self._ranges):
            low, high = max(start, shared.start), min(end, shared.end)
            if low < high:
                self._write_back(SharedRange(low, high, shared.segment,
                                             shared.segment_offset(low)))

    def keep_file_pages(self, path: str) -> None:
        """The file at `path` is about to go (unlink, rename): read in what is mapped of it."""
        for shared in self._ranges:
            segment = shared.segment
            if segment.path is None or not file_at(segment.path, path):
                continue
            for addr in range(shared.start, shared.end, PAGE_SIZE):
                offset = shared.segment_offset(addr)
                if offset >= segment.length:
                    break  # grown by mremap past its memory
                if not segment.loaded[offset >> PAGE_SHIFT]:
                    try:
                        self._load(segment, offset, addr)
                    except GuestFault:
                        break  # past the end of the file

    # ------------------------------------------------------------ read(2) and write(2)

    def _segments_of(self, path: str) -> list[SharedSegment]:
        found = {id(shared.segment): shared.segment for shared in self._ranges
                 if shared.segment.path == path}
        return list(found.values())

    def file_to_read(self, path: str, offset: int, size: int) -> None:
        """A read of [offset, offset + size) of the file at `path` comes: what was stored
        to its shared mappings there reaches the file first."""
        for segment in self._segments_of(path):
            low = max(offset - segment.file_offset, 0)
            high = min(offset + size - segment.file_offset, segment.length)
            if low < high:
                start = low & ~(PAGE_SIZE - 1)
                self._write_back(SharedRange(start, page_up(high), segment, start))

    def file_written(self, path: str, offset: int, data: bytes) -> None:
        """`data` was written at `offset` of the file at `path`: its shared mappings show it
        in the pages they read in already (the others will read the file)."""
        for segment in self._segments_of(path):
            low = max(offset - segment.file_offset, 0)
            high = min(offset + len(data) - segment.file_offset, segment.length)
            for page in range(low & ~(PAGE_SIZE - 1), high, PAGE_SIZE):
                if segment.loaded[page >> PAGE_SHIFT]:
                    start, end = max(low, page), min(high, page + PAGE_SIZE)
                    at = segment.file_offset + start - offset
                    segment.memory[start:end] = data[at : at + end - start]

    # ------------------------------------------------------------ the range list

    def _insert(self, shared: SharedRange) -> None:
        index = bisect.bisect_left(self._starts, shared.start)
        self._ranges.insert(index, shared)
        self._starts.insert(index, shared.start)

    def _cut(self, start: int, end: int) -> list[SharedRange]:
        """Take [start, end) out of the ranges; the pieces taken out."""
        taken: list[SharedRange] = []
        kept: list[SharedRange] = []
        for shared in self._ranges:
            if shared.end <= start or shared.start >= end:
                kept.append(shared)
                continue
            low, high = max(start, shared.start), min(end, shared.end)
            taken.append(SharedRange(low, high, shared.segment, shared.segment_offset(low)))
            if shared.start < low:
                kept.append(SharedRange(shared.start, low, shared.segment, shared.offset))
            if high < shared.end:
                kept.append(SharedRange(high, shared.end, shared.segment,
                                        shared.segment_offset(high)))
        kept.sort(key=lambda shared: shared.start)
        self._ranges = kept
        self._starts = [shared.start for shared in kept]
        return taken

    # ------------------------------------------------------------ the file behind a segment

    def _load(self, segment: SharedSegment, offset: int, vaddr: int) -> None:
        assert segment.path is not None
        reply: DataReply = self._transport.call(
            ReadRequest(segment.path, segment.file_offset + offset, PAGE_SIZE))
        if reply.status or not reply.data:  # gone, or wholly past its end: SIGBUS
            raise GuestFault(vaddr, MEM_READ, bus=True)
        segment.memory[offset : offset + len(reply.data)] = reply.data
        segment.loaded[offset >> PAGE_SHIFT] = 1

    def _write_back(self, piece: SharedRange) -> None:
        segment = piece.segment
        if segment.path is None or not segment.write_back:
            return
        stat: StatReply = self._transport.call(StatRequest(segment.path))
        if stat.status or stat.stat is None:
            return  # the file is gone: its pages have nowhere to go, as on Linux
        file_end = stat.stat.size - segment.file_offset  # bytes past it are not written
        first = piece.offset
        last = min(piece.offset + (piece.end - piece.start), max(0, file_end), segment.length)
        run_start = None
        for offset in range(first, last + PAGE_SIZE, PAGE_SIZE):
            inside = offset < last and segment.loaded[offset >> PAGE_SHIFT]
            if inside and run_start is None:
                run_start = offset
            if run_start is not None and (not inside or offset - run_start >= WRITE_BACK_CHUNK):
                self._write(segment, run_start, min(offset, last))
                run_start = offset if inside else None

    def _write(self, segment: SharedSegment, start: int, end: int) -> None:
        assert segment.path is not None
        reply = self._transport.call(WriteRequest(
            segment.path, segment.file_offset + start, bytes(segment.memory[start:end])))
        if reply.status:
            raise SyscallError(Errno(reply.status))
