"""--cache-sim: the processor's virtually indexed, virtually tagged L1 instruction, L1 data and
last-level caches, simulated as cachegrind simulates them (legorun/native/vcache.c), with the
results written as a cachegrind.out file that cg_annotate reads.

The geometries default to the host's, as cachegrind picks them: the L1 instruction and data
caches and the last-level unified cache (from sysfs here; cachegrind asks CPUID for the same
facts), with cachegrind's fix-up of a last-level cache whose number of sets is not a power of
two, and cachegrind's fixed amd64 defaults when the host says nothing. Each of --I1, --D1 and
--LL overrides its cache alone.

Besides cachegrind's nine events, each instruction is charged the ExCache misses (ExMiss) and
the RPCs (RPC) that happen while it runs: a load that misses the ExCache, a syscall that
reads a file, the fetch of a code page not yet translated (charged to the instruction that
led there).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn.unicorn_const import (
    UC_HOOK_BLOCK,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_WRITE,
    UC_MEM_READ,
    UC_MEM_WRITE,
)
from unicorn.unicorn_py3.unicorn import uclib

from legorun.cache.excache import SLOT_BASE, GuestFault
from legorun.config import CacheGeometry, TraceConfig
from legorun.errors import LegorunError, UsageError
from legorun.native import function_pointer, native_library
from legorun.processor.processor import Warn
from legorun.processor.uaccess import UserMemory
from legorun.trace import cachegrind
from legorun.trace.instrument import RunContext, expand_pid
from legorun.trace.memtrace import is_locked_update
from legorun.trace.symbols import Symbolizer

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor

RecordList = list[tuple[int, tuple[int, ...]]]

SYSFS_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")
# cachegrind's amd64 defaults when the host's caches cannot be queried (cg_arch.c).
DEFAULT_I1 = CacheGeometry(65536, 2, 64)
DEFAULT_D1 = CacheGeometry(65536, 2, 64)
DEFAULT_LL = CacheGeometry(262144, 8, 64)
# cachegrind's smallest line: with shorter lines one instruction could straddle three.
MIN_LINE_SIZE = 16


@dataclass(frozen=True, slots=True)
class Hierarchy:
    i1: CacheGeometry
    d1: CacheGeometry
    ll: CacheGeometry


# ------------------------------------------------------------------ geometries


def host_hierarchy(caches: Path = SYSFS_CACHES) -> Hierarchy | None:
    """The host's L1 instruction, L1 data and last-level unified caches, or None when sysfs
    does not describe all three (as cachegrind, which then uses its defaults for all)."""
    found: dict[tuple[int, str], CacheGeometry] = {}
    for index in sorted(caches.glob("index*")):
        try:
            level = int(_read(index / "level"))
            kind = _read(index / "type")
            size = _parse_sysfs_size(_read(index / "size"))
            line = int(_read(index / "coherency_line_size"))
            ways = int(_read(index / "ways_of_associativity"))
            sets_file = index / "number_of_sets"
            sets = int(_read(sets_file)) if sets_file.exists() else 0
        except (OSError, ValueError):
            continue
        if size <= 0 or line <= 0:
            continue
        if ways <= 0:  # fully associative, or the ways are not reported: derive them
            ways = size // (line * sets) if sets > 0 else size // line
        found[(level, kind)] = CacheGeometry(size, max(ways, 1), line)
    i1, d1 = found.get((1, "Instruction")), found.get((1, "Data"))
    unified = [level for level, kind in found if kind == "Unified"]
    if i1 is None or d1 is None or not unified:
        return None
    return Hierarchy(i1, d1, found[(max(unified), "Unified")])


def _read(path: Path) -> str:
    return path.read_text().strip()


def _parse_sysfs_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def tweak_last_level(ll: CacheGeometry) -> CacheGeometry:
    """cachegrind's maybe_tweak_LLc: when the number of sets is not a power of two, round it
    down to one and raise the associativity by the same factor, keeping the size about the
    same (associativity beyond a few ways barely changes the miss rate; size does)."""
    sets = ll.size // (ll.assoc * ll.line_size)
    if sets == 0:
        return ll
    if sets & (sets - 1) == 0:
        return CacheGeometry(ll.line_size * ll.assoc * sets, ll.assoc, ll.line_size)
    new_sets = 1 << (sets.bit_length() - 1)
    assoc = int(0.5 + sets / new_sets * ll.assoc)
    return CacheGeometry(ll.line_size * assoc * new_sets, assoc, ll.line_size)


def geometry_problem(cache: CacheGeometry) -> str | None:
    """What keeps the simulator from modelling this cache (cachegrind's check_cache)."""
    if cache.size % (cache.line_size * cache.assoc):
        return "the number of sets is not a power of two"
    sets = cache.size // (cache.line_size * cache.assoc)
    if sets == 0 or sets & (sets - 1):
        return "the number of sets is not a power of two"
    if cache.line_size & (cache.line_size - 1):
        return "the line size is not a power of two"
    if cache.line_size < MIN_LINE_SIZE:
        return f"the line size is below {MIN_LINE_SIZE} bytes"
    if cache.size <= cache.line_size:
        return "the size is not larger than one line"
    return None


def resolve_hierarchy(trace: TraceConfig, host: Hierarchy | None,
                      warn: Callable[[str], None] | None = None) -> Hierarchy:
    """The caches to simulate: each given on the command line, else the host's (its LL
    tweaked as cachegrind does), else cachegrind's defaults. Raises UsageError for a cache
    the simulator cannot model."""
    auto = host or Hierarchy(DEFAULT_I1, DEFAULT_D1, DEFAULT_LL)
    ll = tweak_last_level(auto.ll)
    if ll != auto.ll and trace.ll is None and warn is not None:
        warn(f"the host's LL cache ({_describe(auto.ll)}) does not have a power-of-two number "
             f"of sets; simulating {_describe(ll)} instead, as cachegrind does")
    chosen = Hierarchy(trace.i1 or auto.i1, trace.d1 or auto.d1, trace.ll or ll)
    for name, cache, given in (("I1", chosen.i1, trace.i1), ("D1", chosen.d1, trace.d1),
                               ("LL", chosen.ll, trace.ll)):
        problem = geometry_problem(cache)
        if problem is None:
            continue
        if given is not None:
            raise UsageError(f"--{name}={cache.size},{cache.assoc},{cache.line_size}: {problem}")
        raise UsageError(f"cannot simulate the host's {name} cache ({_describe(cache)}): "
                         f"{problem}; give --{name}=SIZE,ASSOC,LINE_SIZE")
    return chosen


def _describe(cache: CacheGeometry) -> str:
    return f"{cache.size} B, {cache.assoc}-way, {cache.line_size} B lines"


# ------------------------------------------------------------------ the compiled simulator


class Record(ctypes.Structure):
    """One instruction's counts, as legorun/native/vcache.c keeps them."""

    _fields_ = [("address", ctypes.c_uint64),
                ("length", ctypes.c_uint32),
                ("unused", ctypes.c_uint32),
                ("counts", ctypes.c_uint64 * len(cachegrind.EVENTS))]


DECODE_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32,
                             ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint8))
# Instruction flags the decoder reports (vcache.c's enum).
LOCKED_UPDATE = 1
# uc_reg_read's signature: (engine, register id, where to store the value) -> uc_err
REG_READ_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_uint64))


def _declare(lib: ctypes.CDLL) -> None:
    u64, u32, ptr = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p
    lib.vcache_on_block.restype = None
    lib.vcache_on_block.argtypes = (ptr, u64, u32, ptr)
    for name in ("vcache_on_read", "vcache_on_write"):
        getattr(lib, name).restype = None
        getattr(lib, name).argtypes = (ptr, ctypes.c_int, u64, ctypes.c_int, ctypes.c_int64, ptr)
    lib.vcache_new.restype = ptr
    lib.vcache_new.argtypes = (u64, u32, u32, u64, u32, u32, u64, u32, u32, ptr, ptr,
                               u64, u64, ptr)
    for name in ("vcache_free", "vcache_count_excache_miss", "vcache_count_rpc"):
        getattr(lib, name).restype = None
        getattr(lib, name).argtypes = (ptr,)
    lib.vcache_finish.restype = None
    lib.vcache_finish.argtypes = (ptr, u64)
    lib.vcache_failed.restype = ctypes.c_int
    lib.vcache_failed.argtypes = (ptr,)
    lib.vcache_record_count.restype = u32
    lib.vcache_record_count.argtypes = (ptr,)
    lib.vcache_copy_records.restype = u32
    lib.vcache_copy_records.argtypes = (ptr, ctypes.POINTER(Record), u32)


# Splits `size` bytes of code at an address into instructions: (length, flags) each.
Decoder = Callable[[int, int], Sequence[tuple[int, int]]]


class NativeCaches:
    """The compiled simulator: the three caches and the per-instruction records.

    Its hooks are `vcache_on_block`, `vcache_on_read` and `vcache_on_write`, called by
    Unicorn with `handle` as their user data (or directly, with a null engine, by tests).
    `decoder` splits a block seen for the first time into instructions; `reg_read` is
    uc_reg_read (or a stand-in), which the memory hooks use to read RIP; `on_error` receives
    an exception raised while decoding, which the hook itself cannot raise.
    """

    def __init__(self, hierarchy: Hierarchy, decoder: Decoder, reg_read: ctypes.c_void_p,
                 on_error: Callable[[BaseException], None], slot_base: int = 0,
                 slot_count: int = 0, tags: int | None = None) -> None:
        self._lib = native_library()
        _declare(self._lib)
        self._decoder = decoder
        self._on_error = on_error
        self._decode_fn = DECODE_FN(self._decode)  # kept alive: C holds the pointer
        i1, d1, ll = hierarchy.i1, hierarchy.d1, hierarchy.ll
        handle = self._lib.vcache_new(i1.size, i1.assoc, i1.line_size, d1.size, d1.assoc,
                                      d1.line_size, ll.size, ll.assoc, ll.line_size,
                                      ctypes.cast(self._decode_fn, ctypes.c_void_p), reg_read,
                                      slot_base, slot_count, tags)
        if not handle:
            raise LegorunError("--cache-sim: out of memory for the simulated caches")
        self.handle = ctypes.c_void_p(handle)

    def _decode(self, address: int, size: int, lengths: ctypes.Array[ctypes.c_uint8],
                flags: ctypes.Array[ctypes.c_uint8]) -> int:
        try:
            found = self._decoder(address, size)
        except BaseException as error:  # re-raised by the CPU once Unicorn has stopped
            self._on_error(error)
            return 0
        count = min(len(found), size)
        for i in range(count):
            lengths[i], flags[i] = found[i]
        return count

    def count_excache_miss(self) -> None:
        self._lib.vcache_count_excache_miss(self.handle)

    def count_rpc(self) -> None:
        self._lib.vcache_count_rpc(self.handle)

    def finish(self, stop_address: int) -> RecordList:
        """End the run, stopped at `stop_address` (the last block ran up to the instruction
        there, or to its end if it is not in it), and return (instruction address, counts in
        cachegrind.EVENTS order) for every instruction run."""
        self._lib.vcache_finish(self.handle, stop_address)
        if self._lib.vcache_failed(self.handle):
            raise LegorunError("--cache-sim: out of memory for per-instruction counts")
        count = self._lib.vcache_record_count(self.handle)
        buffer = (Record * count)()
        copied = self._lib.vcache_copy_records(self.handle, buffer, count)
        return [(r.address, tuple(r.counts)) for r in buffer[:copied]]

    def free(self) -> None:
        if self.handle:
            self._lib.vcache_free(self.handle)
            self.handle = ctypes.c_void_p()

    def on_block(self, address: int, size: int) -> None:
        """Feed one block start as Unicorn's block hook would (for tests)."""
        self._lib.vcache_on_block(None, address, size, self.handle)

    def on_access(self, write: bool, address: int, size: int) -> None:
        """Feed one data access as Unicorn's memory hooks would (for tests)."""
        if write:
            self._lib.vcache_on_write(None, UC_MEM_WRITE, address, size, 0, self.handle)
        else:
            self._lib.vcache_on_read(None, UC_MEM_READ, address, size, 0, self.handle)


class CodeDecoder:
    """Splits guest code into instructions with capstone and marks the locked
    read-modify-writes. `read` gives the code back (through the ExCache: the CPU fetched it
    a moment ago); code that cannot be read decodes to nothing, and the simulator keeps the
    block as one instruction."""

    def __init__(self, read: Callable[[int, int], bytes]) -> None:
        self._read = read
        self._disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
        self._detailed = Cs(CS_ARCH_X86, CS_MODE_64)
        self._detailed.detail = True

    def __call__(self, address: int, size: int) -> list[tuple[int, int]]:
        try:
            code = self._read(address, size)
        except GuestFault:
            return []
        found = []
        offset = 0
        for at, length, mnemonic, _operands in self._disassembler.disasm_lite(code, address):
            flags = 0
            if mnemonic.startswith(("lock", "xchg")) and is_locked_update(
                    self._detailed, code[offset:offset + length], at):
                flags = LOCKED_UPDATE
            found.append((length, flags))
            offset += length
        return found


# ------------------------------------------------------------------ the instrument


class CacheSimulator:
    """The --cache-sim instrument: installs the compiled hooks, charges ExCache misses and
    RPCs to the instructions they belong to, and writes cachegrind.out.<pid> at the end."""

    def __init__(self, run: RunContext) -> None:
        self._run = run
        self.hierarchy = resolve_hierarchy(run.trace, host_hierarchy(), Warn())
        self._path = expand_pid(run.trace.cachegrind_out, run.pid)
        try:  # now, so that an unwritable file stops the run before the guest starts
            self._output = open(self._path, "w", encoding="utf-8", errors="replace")
        except OSError as error:
            raise UsageError(f"--cachegrind-out-file {self._path}: {error.strerror}") from None
        self._native: NativeCaches | None = None
        self._processor: Processor | None = None
        self._writes_output = True  # False in a forked child when the file is the parent's

    def attach(self, processor: Processor) -> None:
        excache = processor.excache
        tags = ctypes.addressof(ctypes.c_uint64.from_buffer(excache.tags))
        self._native = NativeCaches(
            self.hierarchy, CodeDecoder(UserMemory(excache).read),
            ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p),
            lambda error: self._fail(processor, error), SLOT_BASE, excache.slots, tags)
        self._processor = processor
        handle = self._native.handle
        processor.cpu.add_hook(UC_HOOK_BLOCK, function_pointer("vcache_on_block"), handle)
        processor.cpu.add_hook(UC_HOOK_MEM_READ, function_pointer("vcache_on_read"), handle)
        processor.cpu.add_hook(UC_HOOK_MEM_WRITE, function_pointer("vcache_on_write"), handle)
        excache.listeners.append(self)
        self._run.transport.observers.append(self._rpc_done)

    @staticmethod
    def _fail(processor: Processor, error: BaseException) -> None:
        processor.cpu.error = error
        processor.cpu.uc.emu_stop()

    # ExCacheListener
    def miss(self, vaddr: int, zero_fill: bool) -> None:
        if self._native is not None:
            self._native.count_excache_miss()

    def evicted(self, vaddr: int, dirty: bool) -> None:
        """Evictions are not an event of their own: their write-back rides on the miss RPC."""

    def _rpc_done(self, request: object, reply: object, nbytes: int, modelled_s: float) -> None:
        if self._native is not None:
            self._native.count_rpc()

    def prepare_fork(self) -> None:
        """Nothing buffered: the output is written when the run ends."""

    def forked(self, pid: int) -> None:
        """A child goes on counting from its parent's counts (its caches are copies too) and
        writes its own cachegrind.out.<pid>; with a fixed file name it writes nothing."""
        self._output.close()  # this process's copy of the descriptor; nothing is written
        pattern = self._run.trace.cachegrind_out
        if "%p" not in pattern:
            self._writes_output = False
            return
        self._run = dataclasses.replace(self._run, pid=pid)
        self._path = expand_pid(pattern, pid)
        try:
            self._output = open(self._path, "w", encoding="utf-8", errors="replace")
        except OSError as error:
            raise LegorunError(f"--cachegrind-out-file {self._path}: {error.strerror}") from None

    def close(self, exit: Exit | None) -> None:
        try:
            if self._native is None or self._processor is None or not self._writes_output:
                return
            self._processor.excache.listeners.remove(self)
            self._run.transport.observers.remove(self._rpc_done)
            records = self._native.finish(self._processor.cpu.pc)
            symbols = Symbolizer.load(self._run.program, self._processor.load_bias)
            costs = cachegrind.line_costs(records, symbols)
            try:
                cachegrind.write(self._output, self.hierarchy, self._run.argv, costs)
                self._output.close()
            except OSError as error:
                raise LegorunError(f"--cachegrind-out-file {self._path}: "
                                   f"{error.strerror}") from None
            if exit is not None:
                os.write(2, cachegrind.summary(cachegrind.totals(costs), self._run.pid).encode())
        finally:
            if self._native is not None:
                self._native.free()
                self._native = None
            if not self._output.closed:
                self._output.close()
