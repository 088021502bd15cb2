"""--trace-mem FILE: every instruction and data access of the guest, in the text format of
valgrind's lackey (`valgrind --tool=lackey --trace-mem=yes`), so that tools written for lackey
traces read it unchanged.

The hooks are compiled (legorun/native/memtrace.c) and called by Unicorn directly; Python only
opens the file, installs them and closes the trace. -dfilter limits the trace to instructions
inside the given ranges and the data accesses they make.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import TYPE_CHECKING

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import (
    X86_INS_CMPXCHG,
    X86_INS_CMPXCHG8B,
    X86_INS_CMPXCHG16B,
    X86_INS_XCHG,
    X86_OP_MEM,
    X86_PREFIX_LOCK,
)
from unicorn.unicorn_const import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE
from unicorn.unicorn_py3.unicorn import uclib

from legorun.cache.excache import SLOT_BASE, GuestFault
from legorun.errors import LegorunError, UsageError
from legorun.native import function_pointer, native_library
from legorun.processor.processor import Warn
from legorun.processor.uaccess import UserMemory
from legorun.trace.filters import AddressFilter, AddressRange
from legorun.trace.instrument import expand_pid
from legorun.trace.symbols import Symbolizer

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor

CLASSIFY_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint64, ctypes.c_uint32)
# Locked instructions that VEX turns into a compare-and-swap alone, without a load before it.
COMPARE_AND_SWAP = frozenset((X86_INS_CMPXCHG, X86_INS_CMPXCHG8B, X86_INS_CMPXCHG16B))


class MemoryTrace:
    def __init__(self, pattern: Path, pid: int, program: Path,
                 address_filter: AddressFilter) -> None:
        self._pattern = str(pattern)
        self._path = expand_pid(self._pattern, pid)
        self._program = program
        self._filter = address_filter
        self._state: int | None = None
        self._classify_hook = CLASSIFY_FN(self._classify)  # kept alive: C holds the pointer
        self._decoder = Cs(CS_ARCH_X86, CS_MODE_64)
        self._decoder.detail = True
        try:  # now, so that an unwritable file stops the run before the guest starts
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                               0o666)
        except OSError as error:
            raise UsageError(f"--trace-mem {self._path}: {error.strerror}") from None

    def attach(self, processor: Processor) -> None:
        ranges: tuple[AddressRange, ...] = ()
        if self._filter:
            ranges = self._filter.resolve(Symbolizer.load(self._program, processor.load_bias))
        lib = native_library()
        lib.memtrace_open.restype = ctypes.c_void_p
        lib.memtrace_open.argtypes = (ctypes.c_int, ctypes.POINTER(ctypes.c_uint64),
                                      ctypes.c_size_t, ctypes.c_void_p, ctypes.c_uint64,
                                      ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p)
        bounds = (ctypes.c_uint64 * (2 * len(ranges)))(
            *(bound for r in ranges for bound in (r.start, r.end)))
        excache = processor.excache
        self._memory = UserMemory(excache)
        self._cpu = processor.cpu
        # Memory hooks see slot addresses: the tags give the guest's pages back.
        tags = ctypes.addressof(ctypes.c_uint64.from_buffer(excache.tags))
        self._state = lib.memtrace_open(self._fd, bounds, len(ranges),
                                        ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p),
                                        SLOT_BASE, excache.slots, tags,
                                        ctypes.cast(self._classify_hook, ctypes.c_void_p))
        if not self._state:
            raise LegorunError("--trace-mem: out of memory")
        state = ctypes.c_void_p(self._state)
        cpu = self._cpu
        if ranges:
            # Tells the access hook whether the running block lies inside the ranges.
            cpu.add_hook(UC_HOOK_BLOCK, function_pointer("memtrace_block"), state)
        # With one range Unicorn itself skips the hook elsewhere (its end is inclusive).
        begin, end = (ranges[0].start, ranges[0].end - 1) if len(ranges) == 1 else (1, 0)
        cpu.add_hook(UC_HOOK_CODE, function_pointer("memtrace_instruction"), state, begin, end)
        cpu.add_hook(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, function_pointer("memtrace_access"),
                     state)

    def _classify(self, address: int, size: int) -> int:
        """Called from C for an instruction that loads and stores one location (once per
        instruction address: C remembers the answer)."""
        try:
            return int(is_locked_update(self._decoder, self._memory.read(address, size), address))
        except GuestFault:  # execute-only code cannot be read back: count it as plain
            return 0
        except BaseException as error:  # re-raised by the CPU once Unicorn has stopped
            self._cpu.error = error
            self._cpu.uc.emu_stop()
            return 0

    def prepare_fork(self) -> None:
        if self._state is not None:
            lib = native_library()
            lib.memtrace_flush.argtypes = (ctypes.c_void_p,)
            lib.memtrace_flush(self._state)

    def forked(self, pid: int) -> None:
        """The compiled hooks keep writing to the same descriptor number: it is pointed at
        the child's own file (%p in the name), or at /dev/null when the file is the
        parent's."""
        if "%p" in self._pattern:
            self._path = expand_pid(self._pattern, pid)
            target = self._path
        else:
            target = os.devnull
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise LegorunError(f"--trace-mem {target}: {error.strerror}") from None
        os.dup2(fd, self._fd)
        os.close(fd)

    def close(self, exit: Exit | None) -> None:
        error = 0
        if self._state is not None:
            lib = native_library()
            lib.memtrace_close.argtypes = (ctypes.c_void_p,)
            error = lib.memtrace_close(self._state)
            self._state = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if error:
            # The guest's own run was not affected: say so, but keep its exit status.
            Warn()(f"--trace-mem {self._path}: {os.strerror(error)}; the trace is incomplete")


def is_locked_update(decoder: Cs, code: bytes, address: int) -> bool:
    """Does VEX make this instruction a load followed by a compare-and-swap (which lackey
    shows as a load and a modify)? Lock-prefixed read-modify-writes and xchg with memory
    (always locked) are; cmpxchg is a compare-and-swap by itself."""
    instruction = next(decoder.disasm(code, address, 1), None)
    if instruction is None:
        return False
    if instruction.id == X86_INS_XCHG:
        return any(operand.type == X86_OP_MEM for operand in instruction.operands)
    return X86_PREFIX_LOCK in instruction.prefix and instruction.id not in COMPARE_AND_SWAP
