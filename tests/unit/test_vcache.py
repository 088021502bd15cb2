"""The compiled cache simulator (legorun/native/vcache.c) against a small pure-Python model of
cachegrind's caches (cg_sim.c), fed synthetic blocks and accesses the way Unicorn's hooks
feed it; plus the geometry rules and cachegrind's output format."""

from __future__ import annotations

import ctypes
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from legorun.cache.vcache import (
    DEFAULT_D1,
    DEFAULT_I1,
    DEFAULT_LL,
    LOCKED_UPDATE,
    CodeDecoder,
    REG_READ_FN,
    Hierarchy,
    NativeCaches,
    geometry_problem,
    host_hierarchy,
    resolve_hierarchy,
    tweak_last_level,
)
from legorun.cache.excache import GuestFault
from legorun.config import CacheGeometry, TraceConfig
from legorun.errors import UsageError
from legorun.trace import cachegrind
from legorun.trace.cachegrind import D1MR, D1MW, DLMR, DLMW, DR, DW, EXMISS, I1MR, ILMR, IR, RPC

SMALL = Hierarchy(i1=CacheGeometry(256, 2, 16), d1=CacheGeometry(512, 2, 32),
                  ll=CacheGeometry(2048, 4, 32))


# ------------------------------------------------------------------ the reference model


class LruCache:
    """cachegrind's cache: LRU sets, block number as tag, straddling = one access."""

    def __init__(self, geometry: CacheGeometry) -> None:
        self.line_bits = geometry.line_size.bit_length() - 1
        self.assoc = geometry.assoc
        self.sets: list[list[int]] = [[] for _ in range(geometry.size // (geometry.assoc
                                                                          * geometry.line_size))]

    def _line_is_miss(self, line: int) -> bool:
        ways = self.sets[line % len(self.sets)]
        hit = line in ways
        if hit:
            ways.remove(line)
        ways.insert(0, line)
        del ways[self.assoc:]
        return not hit

    def is_miss(self, address: int, size: int) -> bool:
        first, last = address >> self.line_bits, (address + size - 1) >> self.line_bits
        misses = [self._line_is_miss(line) for line in range(first, last + 1)]
        return any(misses)


class Reference:
    def __init__(self, caches: Hierarchy) -> None:
        self.i1, self.d1, self.ll = LruCache(caches.i1), LruCache(caches.d1), LruCache(caches.ll)
        self.counts: dict[int, list[int]] = {}

    def _ref(self, l1: LruCache, address: int, size: int, counts: list[int],
             l1_miss: int, ll_miss: int) -> None:
        if l1.is_miss(address, size):
            counts[l1_miss] += 1
            if self.ll.is_miss(address, size):
                counts[ll_miss] += 1

    def instruction(self, address: int, length: int) -> list[int]:
        counts = self.counts.setdefault(address, [0] * len(cachegrind.EVENTS))
        counts[IR] += 1
        self._ref(self.i1, address, length, counts, I1MR, ILMR)
        return counts

    def read(self, counts: list[int], address: int, size: int) -> None:
        counts[DR] += 1
        self._ref(self.d1, address, size, counts, D1MR, DLMR)

    def write(self, counts: list[int], address: int, size: int) -> None:
        counts[DW] += 1
        self._ref(self.d1, address, size, counts, D1MW, DLMW)


# ------------------------------------------------------------------ driving the simulator


@dataclass
class Guest:
    """Feeds NativeCaches as Unicorn would: block starts, and data accesses whose RIP is the
    instruction making them."""

    caches: Hierarchy = SMALL
    blocks: dict[int, list[int]] = field(default_factory=dict)  # address -> lengths
    flags: dict[int, int] = field(default_factory=dict)  # instruction address -> flags
    rip: int = 0

    def __post_init__(self) -> None:
        self._reg_read = REG_READ_FN(self._read_rip)
        self.errors: list[BaseException] = []
        self.native = NativeCaches(self.caches, self._decode,
                                   ctypes.cast(self._reg_read, ctypes.c_void_p),
                                   self.errors.append)

    def _decode(self, address: int, size: int) -> list[tuple[int, int]]:
        return [(length, self.flags.get(address + sum(self.blocks[address][:i]), 0))
                for i, length in enumerate(self.blocks[address])]

    def _read_rip(self, _uc: object, _register: int, value: object) -> int:
        value[0] = self.rip  # type: ignore[index]
        return 0

    def block(self, address: int, lengths: list[int]) -> None:
        self.blocks[address] = lengths
        self.native.on_block(address, sum(lengths))

    def access(self, instruction: int, write: bool, address: int, size: int) -> None:
        self.rip = instruction
        self.native.on_access(write, address, size)

    def finish(self, stop: int = 0) -> dict[int, list[int]]:
        counts = {address: list(c) for address, c in self.native.finish(stop)}
        self.native.free()
        assert not self.errors
        return counts


def run_block(guest: Guest, reference: Reference, address: int, lengths: list[int],
              accesses: dict[int, list[tuple[bool, int, int]]]) -> None:
    """One execution of a block: its instructions in order, each with its data accesses
    (given as VEX sees them, one per operand)."""
    guest.block(address, lengths)
    at = address
    for length in lengths:
        counts = reference.instruction(at, length)
        for write, data, size in accesses.get(at, []):
            guest.access(at, write, data, size)
            (reference.write if write else reference.read)(counts, data, size)
        at += length


def nonzero(counts: dict[int, list[int]]) -> dict[int, list[int]]:
    return {a: c for a, c in counts.items() if any(c)}


def test_random_program_matches_cachegrinds_model() -> None:
    """Hits, misses and evictions in all three caches, over blocks run many times."""
    rng = random.Random(7)
    guest, reference = Guest(), Reference(SMALL)
    blocks = []
    for b in range(40):
        lengths = [rng.randint(1, 15) for _ in range(rng.randint(1, 8))]
        address = 0x400000 + b * 200 + rng.randint(0, 60)
        accesses: dict[int, list[tuple[bool, int, int]]] = {}
        at = address
        for length in lengths:
            if rng.random() < 0.6:
                size = rng.choice((1, 2, 4, 8))
                data = 0x600000 + rng.randrange(0, 4096, size)  # aligned: never straddles
                accesses[at] = [(rng.random() < 0.3, data, size)]
            at += length
        blocks.append((address, lengths, accesses))
    for _ in range(3000):
        run_block(guest, reference, *rng.choice(blocks))
    counts = guest.finish()
    assert counts == nonzero(reference.counts)
    total = [sum(c[i] for c in counts.values()) for i in range(len(cachegrind.EVENTS))]
    assert total[I1MR] and total[ILMR] and total[D1MR] and total[D1MW] and total[DLMR]
    assert total[I1MR] < total[IR] and total[D1MR] < total[DR]  # hits as well as misses


def test_straddling_access_looks_up_both_lines_and_counts_one_miss() -> None:
    guest, reference = Guest(), Reference(SMALL)
    line = SMALL.d1.line_size
    straddling = 0x600000 + line - 4
    run_block(guest, reference, 0x400000, [4], {0x400000: [(False, straddling, 8)]})
    # Both lines are now resident: each alone hits.
    run_block(guest, reference, 0x400010, [4, 4], {0x400010: [(False, 0x600000, 4)],
                                                  0x400014: [(False, 0x600000 + line, 4)]})
    counts = guest.finish()
    assert counts == nonzero(reference.counts)
    assert counts[0x400000][DR] == 1 and counts[0x400000][D1MR] == 1
    assert counts[0x400010][D1MR] == 0 and counts[0x400014][D1MR] == 0


def test_straddling_instruction_fetch() -> None:
    guest, reference = Guest(), Reference(SMALL)
    line = SMALL.i1.line_size
    start = 0x400000 + line - 3  # a 6-byte instruction across two I1 lines
    run_block(guest, reference, start, [6, 2], {})
    run_block(guest, reference, 0x400000 + line, [2], {})  # the second line: a hit
    counts = guest.finish()
    assert counts == nonzero(reference.counts)
    assert counts[start][I1MR] == 1 and counts[0x400000 + line][I1MR] == 0


def test_last_level_is_consulted_only_on_l1_misses() -> None:
    """LL is not inclusive: a line LL has evicted still hits in D1, and LL does not see it."""
    caches = Hierarchy(i1=CacheGeometry(256, 2, 16), d1=CacheGeometry(1024, 2, 32),
                       ll=CacheGeometry(256, 1, 32))  # LL: 8 direct-mapped lines
    guest, reference = Guest(caches), Reference(caches)
    hot = 0x600000
    conflict = hot + 256  # same LL set, another D1 set (D1 has 16 sets of 32 bytes)
    run_block(guest, reference, 0x400000, [4], {0x400000: [(False, hot, 8)]})
    run_block(guest, reference, 0x400004, [4], {0x400004: [(False, conflict, 8)]})
    run_block(guest, reference, 0x400008, [4], {0x400008: [(False, hot, 8)]})
    counts = guest.finish()
    assert counts == nonzero(reference.counts)
    assert counts[0x400004][DLMR] == 1  # evicted `hot` from LL
    assert counts[0x400008][D1MR] == 0 and counts[0x400008][DLMR] == 0


def test_read_then_write_of_the_same_operand_is_one_read() -> None:
    """cachegrind's "modify" (add [m], r): logged as a read only."""
    guest = Guest()
    guest.block(0x400000, [4, 4])
    guest.access(0x400000, False, 0x600000, 8)
    guest.access(0x400000, True, 0x600000, 8)
    guest.access(0x400004, False, 0x600100, 4)  # a read and a write of another size:
    guest.access(0x400004, True, 0x600100, 2)   # both count
    counts = guest.finish()
    assert counts[0x400000][DR] == 1 and counts[0x400000][DW] == 0
    assert counts[0x400004][DR] == 1 and counts[0x400004][DW] == 1


def test_locked_update_is_a_read_and_a_modify() -> None:
    """VEX makes lock add / xchg a load then a compare-and-swap: two reads, no write."""
    guest = Guest(flags={0x400000: LOCKED_UPDATE})
    guest.block(0x400000, [5, 5])
    for instruction in (0x400000, 0x400005):  # locked, then the same without lock
        guest.access(instruction, False, 0x600000, 4)
        guest.access(instruction, True, 0x600000, 4)
    counts = guest.finish()
    assert counts[0x400000][DR] == 2 and counts[0x400000][DW] == 0
    assert counts[0x400000][D1MR] == 1  # the second read hits
    assert counts[0x400005][DR] == 1 and counts[0x400005][DW] == 0


def test_decoder_splits_code_and_marks_locked_updates() -> None:
    code = bytes.fromhex(
        "f0480103"      # lock add [rbx], rax      a load, then a compare-and-swap
        "488703"        # xchg [rbx], rax          always locked
        "4887c3"        # xchg rbx, rax            no memory
        "f0480fb10b"    # lock cmpxchg [rbx], rcx  a compare-and-swap alone
        "480103"        # add [rbx], rax
        "0f0b")         # ud2
    decode = CodeDecoder(lambda address, size: code[address - 0x1000:][:size])
    assert decode(0x1000, len(code)) == [(4, LOCKED_UPDATE), (3, LOCKED_UPDATE), (3, 0), (5, 0),
                                         (3, 0), (2, 0)]


def test_code_that_cannot_be_read_decodes_to_nothing() -> None:
    def execute_only(address: int, size: int) -> bytes:
        raise GuestFault(address, 16)

    assert CodeDecoder(execute_only)(0x1000, 16) == []


def test_quadword_parts_of_one_operand_are_one_access() -> None:
    """QEMU splits a 16-byte SSE load into two quadwords; VEX has one access, which straddles
    two lines here and so misses once."""
    guest = Guest()
    line = SMALL.d1.line_size
    guest.block(0x400000, [5, 4])
    guest.access(0x400000, False, 0x600000 + line - 8, 8)
    guest.access(0x400000, False, 0x600000 + line, 8)
    guest.access(0x400005, True, 0x600200, 4)  # two dwords are two accesses
    guest.access(0x400005, True, 0x600204, 4)
    counts = guest.finish()
    assert counts[0x400000][DR] == 1 and counts[0x400000][D1MR] == 1
    assert counts[0x400005][DW] == 2


def test_excache_misses_and_rpcs_land_on_their_instructions() -> None:
    guest = Guest()
    guest.native.count_rpc()  # before the first instruction: fetching it
    guest.block(0x400000, [4, 4, 2])
    guest.native.count_excache_miss()  # raised by the access that follows
    guest.access(0x400004, False, 0x600000, 8)
    guest.native.count_rpc()  # during the block's last instruction (a syscall)
    guest.native.count_rpc()
    guest.block(0x400100, [4])
    counts = guest.finish()
    assert counts[0x400000][RPC] == 1
    assert counts[0x400004][EXMISS] == 1 and counts[0x400004][RPC] == 0
    assert counts[0x400008][RPC] == 2
    assert counts[0x400100][RPC] == 0


def test_a_fault_ends_the_last_block_early() -> None:
    guest = Guest()
    guest.block(0x400000, [4, 4, 4])
    guest.block(0x400000, [4, 4, 4])
    counts = guest.finish(stop=0x400004)  # the second instruction faulted
    assert [counts[a][IR] for a in (0x400000, 0x400004, 0x400008)] == [2, 2, 1]


def test_rip_outside_the_block_stays_with_the_running_instruction() -> None:
    guest = Guest()
    guest.block(0x400000, [4, 4])
    guest.access(0x400004, False, 0x600000, 8)
    guest.access(0x123456, False, 0x600040, 8)
    counts = guest.finish()
    assert counts[0x400004][DR] == 2


def test_undecodable_code_is_one_instruction() -> None:
    guest = Guest()
    guest.block(0x400000, [])  # the decoder found nothing: the block's 0 bytes...
    guest.blocks[0x500000] = []
    guest.native.on_block(0x500000, 40)  # ...or 40 bytes it could not split
    counts = guest.finish()
    assert counts[0x500000][IR] == 1 and counts[0x400000][IR] == 1


def test_many_blocks_and_instructions_grow_the_tables() -> None:
    guest, reference = Guest(), Reference(SMALL)
    for round_ in range(2):
        for b in range(6000):
            run_block(guest, reference, 0x400000 + 16 * b, [3, 5],
                      {0x400000 + 16 * b: [(round_ == 1, 0x600000 + 8 * b, 8)]})
    counts = guest.finish()
    assert len(counts) == 12000
    assert counts == nonzero(reference.counts)


# ------------------------------------------------------------------ geometries


def test_last_level_tweak_as_cachegrind() -> None:
    # 12 MiB, 16-way, 64 B: 12288 sets -> 8192 sets of 24 ways, same size.
    assert tweak_last_level(CacheGeometry(12 << 20, 16, 64)) == CacheGeometry(12 << 20, 24, 64)
    # 5 MiB, 48-way: 1706.67 sets -> 1024 sets of 80 ways.
    assert tweak_last_level(CacheGeometry(5 << 20, 48, 64)) == CacheGeometry(80 * 1024 * 64, 80,
                                                                            64)
    fine = CacheGeometry(32 << 20, 16, 64)
    assert tweak_last_level(fine) == fine


def write_sysfs(root: Path, caches: list[tuple[int, str, str, int, int]]) -> Path:
    for i, (level, kind, size, ways, line) in enumerate(caches):
        index = root / f"index{i}"
        index.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size),
                            ("ways_of_associativity", ways), ("coherency_line_size", line)):
            (index / name).write_text(f"{value}\n")
    return root


def test_host_caches_from_sysfs(tmp_path: Path) -> None:
    root = write_sysfs(tmp_path, [(1, "Data", "48K", 12, 64), (1, "Instruction", "32K", 8, 64),
                                  (2, "Unified", "1280K", 10, 64),
                                  (3, "Unified", "12288K", 12, 64)])
    assert host_hierarchy(root) == Hierarchy(CacheGeometry(32 << 10, 8, 64),
                                             CacheGeometry(48 << 10, 12, 64),
                                             CacheGeometry(12 << 20, 12, 64))


def test_no_host_caches_means_cachegrinds_defaults(tmp_path: Path) -> None:
    root = write_sysfs(tmp_path, [(1, "Data", "32K", 8, 64)])  # no I1, no LL
    assert host_hierarchy(root) is None
    assert resolve_hierarchy(TraceConfig(), None) == Hierarchy(DEFAULT_I1, DEFAULT_D1, DEFAULT_LL)


def test_explicit_geometry_wins_and_host_ll_is_tweaked() -> None:
    host = Hierarchy(CacheGeometry(32 << 10, 8, 64), CacheGeometry(48 << 10, 12, 64),
                     CacheGeometry(12 << 20, 16, 64))
    warnings: list[str] = []
    chosen = resolve_hierarchy(TraceConfig(d1=CacheGeometry(16 << 10, 4, 32)), host,
                               warnings.append)
    assert chosen == Hierarchy(host.i1, CacheGeometry(16 << 10, 4, 32),
                               CacheGeometry(12 << 20, 24, 64))
    assert len(warnings) == 1 and "12582912 B, 24-way" in warnings[0]


def test_unusable_geometry_is_a_usage_error() -> None:
    assert geometry_problem(CacheGeometry(32 << 10, 8, 8)) is not None
    assert geometry_problem(CacheGeometry(64, 1, 64)) is not None
    with pytest.raises(UsageError, match="--I1=1024,1,8"):
        resolve_hierarchy(TraceConfig(i1=CacheGeometry(1024, 1, 8)), None)
    host = Hierarchy(CacheGeometry(48 << 10, 16, 64), DEFAULT_D1, DEFAULT_LL)  # 48 sets
    with pytest.raises(UsageError, match="host's I1 cache.*--I1="):
        resolve_hierarchy(TraceConfig(), host)
    assert resolve_hierarchy(TraceConfig(i1=DEFAULT_I1), host).i1 == DEFAULT_I1


# ------------------------------------------------------------------ cachegrind's output


def test_summary_is_cachegrinds() -> None:
    """Totals of a valgrind 3.19 run of a static hello, and what it printed."""
    totals = [37995, 499, 498, 6796, 161, 161, 1625, 135, 135, 7, 9]
    expected = """==2332== 
==2332== I   refs:      37,995
==2332== I1  misses:       499
==2332== LLi misses:       498
==2332== I1  miss rate:   1.31%
==2332== LLi miss rate:   1.31%
==2332== 
==2332== D   refs:       8,421  (6,796 rd   + 1,625 wr)
==2332== D1  misses:       296  (  161 rd   +   135 wr)
==2332== LLd misses:       296  (  161 rd   +   135 wr)
==2332== D1  miss rate:    3.5% (  2.4%     +   8.3%  )
==2332== LLd miss rate:    3.5% (  2.4%     +   8.3%  )
==2332== 
==2332== LL refs:          795  (  660 rd   +   135 wr)
==2332== LL misses:        794  (  659 rd   +   135 wr)
==2332== LL miss rate:     1.7% (  1.5%     +   8.3%  )
==2332== 
==2332== ExCache misses:      7
==2332== RPCs:               9
"""
    assert cachegrind.summary(totals, 2332) == expected


def test_output_file_is_sorted_by_file_function_and_line() -> None:
    costs = {("/src/b.c", "g", 3): [1] * 11, ("/src/a.c", "main", 12): [2] * 11,
             ("/src/a.c", "main", 4): [3] * 11, ("???", "???", 0): [4] * 11}
    out = io.StringIO()
    caches = Hierarchy(CacheGeometry(32768, 8, 64), CacheGeometry(32768, 1, 64),
                       CacheGeometry(8 << 20, 16, 64))
    cachegrind.write(out, caches, ("./prog", "arg"), costs)
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["desc: I1 cache:         32768 B, 64 B, 8-way associative",
                         "desc: D1 cache:         32768 B, 64 B, direct-mapped",
                         "desc: LL cache:         8388608 B, 64 B, 16-way associative"]
    body = lines[lines.index("cmd: ./prog arg") + 1:]
    assert body[0] == "events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw ExMiss RPC"
    assert body[1:] == ["fl=/src/a.c", "fn=main", "4" + " 3" * 11, "12" + " 2" * 11,
                        "fl=/src/b.c", "fn=g", "3" + " 1" * 11,
                        "fl=???", "fn=???", "0" + " 4" * 11,
                        "summary:" + " 10" * 11]
