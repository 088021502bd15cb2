"""The ExCache: the processor's software-managed DRAM last-level cache (LegoOS pcache).

One flat region of 4 KiB slots is mapped into Unicorn as "physical" memory, and Unicorn runs
in virtual-TLB mode: every QEMU TLB miss calls the compiled fill hook (native/excache.c),
which finds the guest page's slot by its virtual tag. Only a real ExCache miss reaches
`_on_miss` here: it asks the pager whether the page may be touched, picks a victim with the
eviction policy, writes the victim back if dirty (piggybacked on the miss RPC), and loads the
line (or zero-fills an untouched anonymous page locally, without any RPC).

Sets are indexed by virtual page number; lines are virtually tagged, so there is no TLB or
page table on the processor side.
"""

from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass
from typing import Protocol

from unicorn import UC_HOOK_TLB_FILL, UC_PROT_ALL, Uc
from unicorn.unicorn_py3.unicorn import uclib

from legorun.cache.lines import EMPTY_TAG, LINE_DIRTY, LINE_PROT_MASK
from legorun.cache.policy import make_policy
from legorun.errors import LegorunError
from legorun.managers.vma import PAGE_SHIFT, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE
from legorun.native import native_library

# Where slot 0 lives in Unicorn's physical address space (anything outside guest reach).
SLOT_BASE = 1 << 32
# Flush QEMU's TLB every so many fills: it only grows when flushed (see DESIGN.md).
TLB_FLUSH_PERIOD = 65536
UC_CTL_TLB_FLUSH_WRITE = (1 << 30) | 11

MEM_READ, MEM_WRITE, MEM_FETCH = 16, 17, 18
ACCESS_PROT = {MEM_READ: PROT_READ, MEM_WRITE: PROT_WRITE, MEM_FETCH: PROT_EXEC}

MISS_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_int32)
# A miss answered by direct memory returns DIRECT_PAGE - (physical page number << 3 | prot)
# (native/excache.c): a page mapped straight, without a line.
DIRECT_PAGE = -2
ZERO_PAGE = bytes(PAGE_SIZE)


class Pager(Protocol):
    """The processor's view of its memory manager, as the ExCache needs it."""

    def lookup(self, addr: int) -> tuple[int, bool] | None:
        """(prot, zero_fill) for the page at addr, or None if it is not mapped."""

    def fetch(self, addr: int, writeback: tuple[tuple[int, bytes], ...]) -> bytes: ...

    def write_back(self, lines: tuple[tuple[int, bytes], ...]) -> None: ...


class DirectMemory(Protocol):
    """Guest pages that bypass the ExCache (MAP_SHARED memory: processor/shared_memory.py)."""

    def page(self, vaddr: int) -> tuple[int, memoryview] | None:
        """(Unicorn address, contents) of the page at vaddr if it is direct memory."""


class ExCacheListener(Protocol):
    """Sees the ExCache's events as they happen (for traces and per-instruction attribution)."""

    def miss(self, vaddr: int, zero_fill: bool) -> None: ...

    def evicted(self, vaddr: int, dirty: bool) -> None: ...


class _NativeState(ctypes.Structure):
    _fields_ = [
        ("slot_base", ctypes.c_uint64),
        ("set_mask", ctypes.c_uint64),
        ("assoc", ctypes.c_uint64),
        ("tags", ctypes.POINTER(ctypes.c_uint64)),
        ("flags", ctypes.POINTER(ctypes.c_uint8)),
        ("miss", MISS_FN),
        ("uc_ctl", ctypes.c_void_p),
        ("flush_period", ctypes.c_uint64),
        ("fills_since_flush", ctypes.c_uint64),
        ("fills", ctypes.c_uint64),
        ("fill_hits", ctypes.c_uint64),
        ("dirty_marks", ctypes.c_uint64),
    ]


@dataclass(slots=True)
class ExCacheStats:
    misses: int = 0  # lines not resident when touched (includes zero-fills)
    zero_fills: int = 0  # misses served locally: untouched anonymous pages, no RPC
    evictions: int = 0  # valid lines replaced to make room
    writebacks: int = 0  # dirty lines sent back to the memory manager
    invalidations: int = 0  # lines dropped by munmap/mremap/madvise/exec


class GuestFault(Exception):
    """An access the guest may not make: becomes SIGSEGV (or EFAULT inside a syscall).
    `bus`: the page is mapped but its contents cannot be had (the file behind it is gone or
    too short), which Linux reports as SIGBUS."""

    def __init__(self, addr: int, access: int, bus: bool = False) -> None:
        super().__init__(f"fault at {addr:#x}")
        self.addr = addr
        self.access = access
        self.bus = bus


class ExCache:
    def __init__(
        self, uc: Uc, pager: Pager, size: int, assoc: int, policy: str, seed: int = 0
    ) -> None:
        slots = size // PAGE_SIZE
        # A cache smaller than one set is simply fully associative.
        assoc = min(assoc, slots)
        if size % PAGE_SIZE or slots == 0 or assoc <= 0 or slots % assoc:
            raise LegorunError(f"ExCache of {size} bytes cannot be split into {assoc}-way sets")
        sets = slots // assoc
        if sets & (sets - 1):
            raise LegorunError(
                f"ExCache of {size} bytes with {assoc} ways gives {sets} sets; "
                "the number of sets must be a power of two"
            )
        self.size, self.assoc, self.sets, self.slots = size, assoc, sets, slots
        self.policy_name = policy
        self.stats = ExCacheStats()
        self.fault: GuestFault | None = None
        self.error: BaseException | None = None
        self.listeners: list[ExCacheListener] = []
        self.direct: DirectMemory | None = None
        self._uc = uc
        self._pager = pager
        self._policy = make_policy(policy, sets, assoc, seed)
        self._resident: dict[int, int] = {}  # virtual page number -> slot
        self._free: list[list[int]] = [list(range(assoc - 1, -1, -1)) for _ in range(sets)]

        # Private: a forked process gets its own copy of the cache, not a shared one.
        self._region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.memory = memoryview(self._region)
        region_addr = ctypes.addressof(ctypes.c_char.from_buffer(self._region))
        uc.mem_map_ptr(SLOT_BASE, size, UC_PROT_ALL, region_addr)

        self._tags = (ctypes.c_uint64 * slots)(*([EMPTY_TAG] * slots))
        self._flags = (ctypes.c_uint8 * slots)()
        self.tags = memoryview(self._tags).cast("B").cast("Q")
        self.flags = memoryview(self._flags).cast("B")
        self._miss_fn = MISS_FN(self._on_miss)  # kept alive: C holds the pointer
        self._native = _NativeState(
            slot_base=SLOT_BASE,
            set_mask=sets - 1,
            assoc=assoc,
            tags=self._tags,
            flags=self._flags,
            miss=self._miss_fn,
            uc_ctl=ctypes.cast(uclib.uc_ctl, ctypes.c_void_p),
            flush_period=TLB_FLUSH_PERIOD,
        )
        self._install_hook(uc)

    def _install_hook(self, uc: Uc) -> None:
        lib = native_library()
        fill = ctypes.cast(lib.excache_tlb_fill, ctypes.c_void_p)
        uc.ctl_set_tlb_mode(1)  # UC_TLB_VIRTUAL
        handle = ctypes.c_size_t()
        status = uclib.uc_hook_add(
            uc._uch, ctypes.byref(handle), UC_HOOK_TLB_FILL, fill,
            ctypes.cast(ctypes.pointer(self._native), ctypes.c_void_p),
            ctypes.c_uint64(1), ctypes.c_uint64(0),
        )
        if status != 0:
            raise LegorunError(f"cannot install the ExCache hook (unicorn error {status})")

    # ------------------------------------------------------------ the miss path

    def _on_miss(self, vaddr: int, access: int) -> int:
        """Called from the fill hook on a miss; returns the slot, a direct page (see
        DIRECT_PAGE) or -1 to fault."""
        try:
            prot, zero_fill = self._permitted(vaddr, access)
            direct = self.direct.page(vaddr) if self.direct is not None else None
            if direct is not None:
                return DIRECT_PAGE - ((direct[0] >> PAGE_SHIFT) << 3 | (prot & LINE_PROT_MASK))
            return self._fill(vaddr, prot, zero_fill)
        except GuestFault as fault:
            # The first fault is the guest's; Unicorn may touch more pages on its way out.
            if self.fault is None:
                self.fault = fault
        except BaseException as error:  # re-raised by the CPU once Unicorn has stopped
            self.error = error
        return -1

    def _permitted(self, vaddr: int, access: int) -> tuple[int, bool]:
        """(prot, zero_fill) of the page at vaddr; GuestFault unless `access` may touch it."""
        info = self._pager.lookup(vaddr)
        if info is None or not info[0] & ACCESS_PROT.get(access, PROT_READ):
            raise GuestFault(vaddr, access)
        return info

    def _fill(self, vaddr: int, prot: int, zero_fill: bool) -> int:
        """Bring the page at vaddr into the cache (it is not resident); returns its slot."""
        vpn = vaddr >> PAGE_SHIFT
        set_index = vpn & (self.sets - 1)
        first = set_index * self.assoc
        free = self._free[set_index]
        writeback: tuple[tuple[int, bytes], ...] = ()
        if free:
            way = free.pop()
            slot = first + way
        else:
            way = self._policy.victim(set_index, self.flags, first)
            slot = first + way
            writeback = self._evict(slot)
        self.stats.misses += 1
        for listener in self.listeners:
            listener.miss(vaddr, zero_fill)
        offset = slot << PAGE_SHIFT
        if zero_fill:
            self.stats.zero_fills += 1
            self.memory[offset : offset + PAGE_SIZE] = ZERO_PAGE
            if writeback:
                self._pager.write_back(writeback)
        else:
            self.memory[offset : offset + PAGE_SIZE] = self._pager.fetch(
                vpn << PAGE_SHIFT, writeback
            )
        self.tags[slot] = vpn
        self.flags[slot] = prot & LINE_PROT_MASK
        self._resident[vpn] = slot
        self._policy.inserted(set_index, way)
        return slot

    def _evict(self, slot: int) -> tuple[tuple[int, bytes], ...]:
        """Empty a valid slot; returns its line for write-back if it was dirty."""
        vpn = self.tags[slot]
        self.stats.evictions += 1
        for listener in self.listeners:
            listener.evicted(vpn << PAGE_SHIFT, bool(self.flags[slot] & LINE_DIRTY))
        line = self._drop(slot, vpn)
        self.flush_tlb()
        return line

    def _drop(self, slot: int, vpn: int, keep: bool = True) -> tuple[tuple[int, bytes], ...]:
        """Empty the slot; returns its line for write-back if it was dirty and `keep`."""
        dirty = self.flags[slot] & LINE_DIRTY
        del self._resident[vpn]
        self.tags[slot] = EMPTY_TAG
        self.flags[slot] = 0
        if not dirty or not keep:
            return ()
        self.stats.writebacks += 1
        offset = slot << PAGE_SHIFT
        return ((vpn << PAGE_SHIFT, bytes(self.memory[offset : offset + PAGE_SIZE])),)

    def flush_tlb(self) -> None:
        uclib.uc_ctl(self._uc._uch, UC_CTL_TLB_FLUSH_WRITE)

    # ------------------------------------------------------------ processor-side access

    def slot(self, vaddr: int, access: int,
             permitted: tuple[int, bool] | None = None) -> int:
        """The slot holding vaddr's page, loaded on a miss and marked dirty for a write;
        `permitted`: the page's (prot, zero_fill), when the caller has looked them up."""
        slot = self._resident.get(vaddr >> PAGE_SHIFT)
        if slot is None:
            slot = self._fill(vaddr, *(permitted or self._permitted(vaddr, access)))
        elif not self.flags[slot] & ACCESS_PROT.get(access, PROT_READ):
            raise GuestFault(vaddr, access)
        if access == MEM_WRITE:
            self.flags[slot] |= LINE_DIRTY
        return slot

    def page(self, vaddr: int, access: int) -> memoryview:
        """The page at vaddr as the guest sees it, for syscall user access: its line or its
        direct memory."""
        permitted = None
        if self.direct is not None and vaddr >> PAGE_SHIFT not in self._resident:
            permitted = self._permitted(vaddr, access)
            direct = self.direct.page(vaddr)
            if direct is not None:
                return direct[1]
        offset = self.slot(vaddr, access, permitted) << PAGE_SHIFT
        return self.memory[offset : offset + PAGE_SIZE]

    def code_address(self, vaddr: int) -> int:
        """Where Unicorn holds the byte at vaddr of a page the guest is running (for
        disassembly dumps): in its slot, or in direct memory."""
        slot = self._resident.get(vaddr >> PAGE_SHIFT)
        if slot is not None:
            return SLOT_BASE + (slot << PAGE_SHIFT) + (vaddr & (PAGE_SIZE - 1))
        direct = self.direct.page(vaddr) if self.direct is not None else None
        return direct[0] + (vaddr & (PAGE_SIZE - 1)) if direct is not None else vaddr

    # ------------------------------------------------------------ address-space changes

    def _resident_in(self, start: int, end: int) -> list[tuple[int, int]]:
        first, last = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        if last - first <= len(self._resident):
            found = ((vpn, self._resident.get(vpn)) for vpn in range(first, last))
            return [(vpn, slot) for vpn, slot in found if slot is not None]
        return [(vpn, slot) for vpn, slot in self._resident.items() if first <= vpn < last]

    def invalidate(self, start: int, end: int, write_back: bool) -> None:
        """Drop the lines of [start, end); dirty ones go back to memory if write_back."""
        lines: list[tuple[int, bytes]] = []
        victims = self._resident_in(start, end)
        for vpn, slot in victims:
            self.stats.invalidations += 1
            lines.extend(self._drop(slot, vpn, keep=write_back))
            self._free[vpn & (self.sets - 1)].append(slot % self.assoc)
            self._policy.invalidated(vpn & (self.sets - 1), slot % self.assoc)
        if victims:
            self.flush_tlb()
        if lines:
            self._pager.write_back(tuple(lines))

    def protect(self, start: int, end: int, prot: int) -> None:
        """Apply a new protection to the resident lines of [start, end)."""
        for _vpn, slot in self._resident_in(start, end):
            self.flags[slot] = (self.flags[slot] & ~LINE_PROT_MASK) | (prot & LINE_PROT_MASK)
        self.flush_tlb()

    @property
    def resident_lines(self) -> int:
        return len(self._resident)

    @property
    def native_counters(self) -> dict[str, int]:
        return {
            "tlb_fills": self._native.fills,
            "tlb_fill_hits": self._native.fill_hits,
            "dirty_marks": self._native.dirty_marks,
        }
