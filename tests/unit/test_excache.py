"""The ExCache against a fake memory manager: misses, zero-fill, dirty write-back
piggybacked on misses, each eviction policy, and guest code running through the compiled hook."""

from __future__ import annotations

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDI

from legorun.cache.excache import MEM_READ, MEM_WRITE, ExCache, GuestFault
from legorun.cache.lines import LINE_DIRTY
from legorun.managers.vma import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE
from legorun.processor.uaccess import UserMemory

RW = PROT_READ | PROT_WRITE


class FakePager:
    """Pages 0x10000-0x100000 are anonymous (zero-filled until written back); 0x400000.. hold data."""

    def __init__(self) -> None:
        self.store: dict[int, bytes] = {}
        self.fetches: list[tuple[int, tuple[int, ...]]] = []
        self.writebacks: list[int] = []

    def lookup(self, addr: int) -> tuple[int, bool] | None:
        page = addr & ~(PAGE_SIZE - 1)
        if 0x10000 <= addr < 0x100000:
            return RW, page not in self.store
        if 0x400000 <= addr < 0x500000:
            return PROT_READ | PROT_EXEC, False
        if 0x2000000 <= addr < 0x2001000:
            return 0, False  # a PROT_NONE guard page
        return None

    def fetch(self, addr: int, writeback: tuple[tuple[int, bytes], ...]) -> bytes:
        self.fetches.append((addr, tuple(a for a, _ in writeback)))
        self._keep(writeback)
        return self.store.get(addr, bytes([addr >> 12 & 0xFF]) * PAGE_SIZE)

    def write_back(self, lines: tuple[tuple[int, bytes], ...]) -> None:
        self._keep(lines)

    def _keep(self, lines: tuple[tuple[int, bytes], ...]) -> None:
        for addr, data in lines:
            assert len(data) == PAGE_SIZE
            self.store[addr] = data
            self.writebacks.append(addr)


def make_cache(size: int = 4 * PAGE_SIZE, assoc: int = 4, policy: str = "fifo"):
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    pager = FakePager()
    cache = ExCache(uc, pager, size, assoc, policy)
    return uc, pager, cache, UserMemory(cache)


def test_first_touch_of_anonymous_page_is_zero_filled_without_rpc():
    _, pager, cache, mem = make_cache()
    assert mem.read(0x10000, 16) == bytes(16)
    assert pager.fetches == []
    assert cache.stats.misses == 1 and cache.stats.zero_fills == 1


def test_data_page_is_fetched_once_then_hits():
    _, pager, cache, mem = make_cache()
    assert mem.read(0x401000, 4) == b"\x01" * 4
    assert mem.read(0x401800, 4) == b"\x01" * 4
    assert [addr for addr, _ in pager.fetches] == [0x401000]
    assert cache.stats.misses == 1


def test_only_dirty_lines_are_written_back_piggybacked_on_the_miss():
    _, pager, cache, mem = make_cache(size=PAGE_SIZE, assoc=1)
    mem.read(0x401000, 1)  # clean line
    mem.read(0x402000, 1)  # evicts the clean line: nothing to write back
    assert pager.fetches[-1] == (0x402000, ())
    mem.write(0x10000, b"dirty")  # evicts 0x402000 (clean), zero-fills
    mem.read(0x403000, 1)  # evicts the dirty anonymous line, piggybacked
    assert pager.fetches[-1] == (0x403000, (0x10000,))
    assert cache.stats.writebacks == 1
    # Written back, the page is no longer zero-filled: it comes back with its data.
    assert mem.read(0x10000, 5) == b"dirty"


def test_fifo_evicts_in_insertion_order():
    _, pager, cache, mem = make_cache(size=2 * PAGE_SIZE, assoc=2)
    for page in (0x400000, 0x402000, 0x400000, 0x404000):  # one set (2 sets: even pages)
        mem.read(page, 1)
    # FIFO ignores the re-use of 0x400000: it was first in, so it went first.
    mem.read(0x400000, 1)
    assert [addr for addr, _ in pager.fetches] == [0x400000, 0x402000, 0x404000, 0x400000]


def test_lru_keeps_the_recently_referenced_line():
    uc, pager, cache, mem = make_cache(size=2 * PAGE_SIZE, assoc=2, policy="lru")
    mem.read(0x400000, 1)
    mem.read(0x402000, 1)
    # The compiled hook sets reference bits on guest accesses; mark 0x400000 as used.
    cache.flags[cache.slot(0x400000, MEM_READ)] |= 1 << 4
    cache.flags[cache.slot(0x402000, MEM_READ)] &= ~(1 << 4)
    mem.read(0x404000, 1)
    assert cache.slot(0x400000, MEM_READ) is not None
    assert [addr for addr, _ in pager.fetches][-1] == 0x404000
    assert len(pager.fetches) == 3  # 0x400000 stayed resident


def test_random_policy_is_reproducible_for_a_seed():
    def trace() -> list[int]:
        _, pager, _, mem = make_cache(size=4 * PAGE_SIZE, assoc=4, policy="random")
        for i in range(40):
            mem.read(0x400000 + (i * 7 % 13) * PAGE_SIZE, 1)
        return [addr for addr, _ in pager.fetches]

    assert trace() == trace()


def test_faults_on_unmapped_and_protected_pages():
    _, _, _, mem = make_cache()
    for addr, access in ((0x9000000, MEM_READ), (0x2000000, MEM_READ), (0x400000, MEM_WRITE)):
        try:
            if access == MEM_WRITE:
                mem.write(addr, b"x")
            else:
                mem.read(addr, 1)
        except GuestFault as fault:
            assert fault.addr == addr
        else:
            raise AssertionError(f"no fault at {addr:#x}")


def test_invalidate_drops_lines_and_writes_back_only_when_asked():
    _, pager, cache, mem = make_cache()
    mem.write(0x10000, b"a")
    mem.write(0x11000, b"b")
    cache.invalidate(0x10000, 0x11000, write_back=False)
    assert pager.writebacks == []
    cache.invalidate(0x11000, 0x12000, write_back=True)
    assert pager.writebacks == [0x11000]
    assert cache.resident_lines == 0


def test_guest_stores_go_through_the_compiled_hook_and_survive_eviction():
    uc, pager, cache, mem = make_cache(size=2 * PAGE_SIZE, assoc=2)
    # rep stosb: fill 6 pages at 0x10000 with 0xAB, more than the cache holds.
    code = bytes.fromhex("f3aa")
    pager.store[0x400000] = code + bytes(PAGE_SIZE - len(code))
    uc.reg_write(UC_X86_REG_RDI, 0x10000)
    uc.reg_write(UC_X86_REG_RCX, 6 * PAGE_SIZE)
    uc.reg_write(UC_X86_REG_RAX, 0xAB)
    uc.emu_start(0x400000, 0x400000 + len(code))
    assert cache.error is None and cache.fault is None
    assert cache.native_counters["dirty_marks"] >= 1
    assert cache.stats.evictions >= 4
    for page in range(6):
        assert mem.read(0x10000 + page * PAGE_SIZE, PAGE_SIZE) == b"\xab" * PAGE_SIZE


def test_dirty_bit_is_set_by_processor_writes():
    _, _, cache, mem = make_cache()
    mem.write(0x10000, b"x")
    assert cache.flags[cache.slot(0x10000, MEM_READ)] & LINE_DIRTY


def test_user_access_larger_than_the_cache_is_copied_correctly():
    _, _, cache, mem = make_cache(size=2 * PAGE_SIZE, assoc=2)
    data = bytes(range(256)) * (5 * PAGE_SIZE // 256)
    mem.write(0x10000 + 100, data)  # 6 pages through a 2-line cache: every page evicts
    assert mem.read(0x10000 + 100, len(data)) == data
    assert cache.stats.evictions >= 8
