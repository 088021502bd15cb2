"""The processor's side of its memory manager: RPCs for address-space calls and ExCache
traffic, plus the two facts the ExCache needs to avoid RPCs.

It keeps the VMA list from the last mm reply (so a miss on an unmapped or protected page
faults locally) and the set of pages the memory manager holds data for (so a first touch of
an anonymous page is zero-filled without an RPC). Before an address-space call changes a
range it keeps the ExCache coherent: lines of unmapped ranges are dropped, lines of moved
ranges are written back first, protections of resident lines follow mprotect. MAP_SHARED
ranges are not cached at all: their pages live in shared memory beside the ExCache
(shared_memory.py), which each address-space call keeps up to date too.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from legorun.managers.vma import (
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Vma,
    page_up,
)
from legorun.rpc.messages import (
    BrkRequest,
    ExecReply,
    KeepFilePagesRequest,
    MadviseRequest,
    MmapRequest,
    MmReply,
    MprotectRequest,
    MremapRequest,
    MunmapRequest,
    PageMissRequest,
    PageReply,
    WritebackRequest,
)
from legorun.cache.excache import GuestFault
from legorun.rpc.transport import Transport
from syscalls.errno import Errno, SyscallError

if TYPE_CHECKING:
    from legorun.cache.excache import ExCache
    from legorun.processor.shared_memory import SharedMappings

SHARED_TYPES = (MAP_SHARED, MAP_SHARED_VALIDATE)
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9


def line_prot(prot: int) -> int:
    """x86 pages cannot be write- or execute-only: either implies read."""
    return prot | PROT_READ if prot & (PROT_WRITE | PROT_EXEC) else prot


class MemoryClient:
    def __init__(self, transport: Transport, pid: int) -> None:
        self._transport = transport
        self.pid = pid
        self.excache: ExCache | None = None
        self.shared: SharedMappings | None = None
        self.brk_value = 0
        self._layout: tuple[Vma, ...] = ()
        self._starts: list[int] = []
        self._remote: set[int] = set()  # page numbers the memory manager holds data for

    def attach(self, excache: ExCache, shared: SharedMappings) -> None:
        self.excache = excache
        self.shared = shared

    # ------------------------------------------------------------ Pager (for the ExCache)

    def lookup(self, addr: int) -> tuple[int, bool] | None:
        vma = self.find(addr)
        if vma is None:
            return None
        zero_fill = vma.anonymous and (addr >> PAGE_SHIFT) not in self._remote
        return line_prot(vma.prot), zero_fill

    def fetch(self, addr: int, writeback: tuple[tuple[int, bytes], ...]) -> bytes:
        reply: PageReply = self._transport.call(PageMissRequest(self.pid, addr, writeback))
        self._note_written(writeback)
        if reply.status:
            # A mapped page the memory manager cannot fill: its file vanished or shrank.
            raise GuestFault(addr, 0, bus=True)
        return reply.data

    def write_back(self, lines: tuple[tuple[int, bytes], ...]) -> None:
        self._transport.call(WritebackRequest(self.pid, lines))
        self._note_written(lines)

    def _note_written(self, lines: tuple[tuple[int, bytes], ...]) -> None:
        for addr, _data in lines:
            self._remote.add(addr >> PAGE_SHIFT)

    # ------------------------------------------------------------ the VMA copy

    def find(self, addr: int) -> Vma | None:
        index = bisect.bisect_right(self._starts, addr) - 1
        if index >= 0 and addr < self._layout[index].end:
            return self._layout[index]
        return None

    def covered(self, start: int, end: int) -> bool:
        """Whether mappings cover all of [start, end), without a hole."""
        at = start
        index = max(0, bisect.bisect_right(self._starts, start) - 1)
        for vma in self._layout[index:]:
            if at >= end or vma.start > at:
                break
            at = max(at, vma.end)
        return at >= end

    @property
    def layout(self) -> tuple[Vma, ...]:
        return self._layout

    def _set_layout(self, layout: tuple[Vma, ...]) -> None:
        self._layout = layout
        self._starts = [vma.start for vma in layout]

    def _forget(self, start: int, end: int) -> None:
        """The memory manager dropped the data of [start, end): forget it here too."""
        first, last = start >> PAGE_SHIFT, page_up(end) >> PAGE_SHIFT
        if last - first < len(self._remote):
            self._remote.difference_update(range(first, last))
        else:
            self._remote = {page for page in self._remote if not first <= page < last}

    def _discard(self, start: int, end: int) -> None:
        assert self.excache is not None
        self.excache.invalidate(start, end, write_back=False)
        self._forget(start, end)

    def _mm(self, request: object) -> int:
        reply: MmReply = self._transport.call(request)  # type: ignore[arg-type]
        if reply.layout:
            self._set_layout(reply.layout)
        if reply.status:
            raise SyscallError(Errno(reply.status))
        return reply.result

    # ------------------------------------------------------------ exec and address-space calls

    def exec_done(self, reply: ExecReply) -> None:
        """Adopt a fresh address space: nothing of the old one may stay cached."""
        if self.excache is not None:
            self.excache.invalidate(0, 1 << 64, write_back=False)
        self.unmap_shared()
        self._set_layout(reply.layout)
        self._remote = {addr >> PAGE_SHIFT for addr in reply.populated}
        self.brk_value = reply.brk

    def brk(self, addr: int) -> int:
        old = self.brk_value
        if addr and page_up(addr) < page_up(old):
            # Shrinking: the memory manager drops the pages; so do we, before it reuses them.
            self._discard(page_up(addr), page_up(old))
        self.brk_value = self._mm(BrkRequest(self.pid, addr))
        return self.brk_value

    def mmap(self, addr: int, length: int, prot: int, flags: int, path: str | None,
             offset: int, writable_file: bool = False) -> int:
        """`writable_file`: the file was opened for writing (a shared mapping of it writes
        its pages back)."""
        assert self.excache is not None and self.shared is not None
        if flags & MAP_FIXED and not flags & MAP_FIXED_NOREPLACE and length:
            # The old contents of a fixed range are replaced; keep no stale lines. A call
            # that then fails with EINVAL leaves the old mapping, whose data was written back.
            self.excache.invalidate(addr, addr + length, write_back=True)
            self.shared.unmap(addr, addr + length)
        result = self._mm(MmapRequest(self.pid, addr, length, prot, flags, path, offset))
        self._forget(result, result + length)
        if flags & MAP_TYPE in SHARED_TYPES:
            self.shared.map(result, length, path, offset, writable_file)
        return result

    def munmap(self, addr: int, length: int) -> None:
        self._mm(MunmapRequest(self.pid, addr, length))
        self._discard(addr, addr + length)
        assert self.shared is not None
        self.shared.unmap(addr, addr + page_up(length))

    def msync(self, addr: int, length: int) -> None:
        """Write the shared file pages of the range back to their files."""
        assert self.shared is not None
        self.shared.sync(addr, addr + page_up(length))

    def unmap_shared(self) -> None:
        """The address space ends (exit, exec): shared file pages go back to their files."""
        if self.shared is not None:
            self.shared.unmap(0, 1 << 64)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        self._mm(MprotectRequest(self.pid, addr, length, prot))
        assert self.excache is not None
        self.excache.protect(addr, addr + length, line_prot(prot))

    def mremap(self, old_addr: int, old_size: int, new_size: int, flags: int,
               new_addr: int) -> int:
        # The pages may move: let the memory manager hold their current data first.
        assert self.excache is not None
        self.excache.invalidate(old_addr, old_addr + max(old_size, new_size), write_back=True)
        result = self._mm(MremapRequest(self.pid, old_addr, old_size, new_size, flags, new_addr))
        moved = {page for page in self._remote
                 if old_addr >> PAGE_SHIFT <= page < page_up(old_addr + old_size) >> PAGE_SHIFT}
        if result != old_addr:
            self._forget(old_addr, old_addr + old_size)
            shift = (result - old_addr) >> PAGE_SHIFT
            self._forget(result, result + new_size)
            self._remote.update(page + shift for page in moved
                                if (page - (old_addr >> PAGE_SHIFT)) << PAGE_SHIFT < new_size)
        elif new_size < old_size:
            self._forget(old_addr + page_up(new_size), old_addr + old_size)
        assert self.shared is not None
        self.shared.move(old_addr, old_size, result, new_size)
        return result

    def madvise(self, addr: int, length: int, advice: int) -> None:
        self._mm(MadviseRequest(self.pid, addr, length, advice))
        if advice in (MADV_DONTNEED, MADV_FREE, MADV_REMOVE):
            self._discard(addr, addr + page_up(length))

    def keep_file_pages(self, path: str) -> None:
        """The file at `path`, or a directory holding files, is about to be unlinked,
        renamed or replaced: the memory manager reads in what this process maps of it first
        (an RPC only when something is mapped from there)."""
        if any(vma.maps_file_at(path) and vma.flags & MAP_TYPE not in SHARED_TYPES
               for vma in self._layout):
            self._mm(KeepFilePagesRequest(self.pid, path))
        assert self.shared is not None
        self.shared.keep_file_pages(path)

    def page_count(self) -> int:
        return sum((vma.end - vma.start) // PAGE_SIZE for vma in self._layout)
