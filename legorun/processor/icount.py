"""Counts the guest's executed instructions, for the modelled clock.

A compiled block hook (native/icount.c) adds each executed block's instruction count to a
counter without leaving C. Unicorn reports a block's size in bytes only, so the first
execution of a block calls `_decode` here, which reads the block's code through the ExCache
(as the CPU fetched it a moment ago) and counts its instructions with capstone; C keeps the
count for every later execution.

A block is counted when it starts, so a block left early by a fault counts whole. String
instructions with a `rep` prefix count once per iteration, as QEMU (and cachegrind) run them.

The same hook ends a thread's time slice (`preempt_after`): it stops the CPU once a number
of instructions has run, so that thread switches fall on the same instruction in every run.
"""

from __future__ import annotations

import ctypes
from typing import Callable

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import UC_HOOK_BLOCK
from unicorn.unicorn_py3.unicorn import uclib

from legorun.cache.excache import ExCache, GuestFault
from legorun.native import function_pointer, native_library
from legorun.processor.cpu import Cpu
from legorun.processor.uaccess import UserMemory

DECODE_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32)
TICK_FN = ctypes.CFUNCTYPE(None)
NEVER = (1 << 64) - 1


class _NativeState(ctypes.Structure):
    """Mirrors icount_t in native/icount.c."""

    _fields_ = [
        ("instructions", ctypes.c_uint64),
        ("block", ctypes.c_uint64),
        ("next_tick", ctypes.c_uint64),
        ("decode", DECODE_FN),
        ("tick", TICK_FN),
        ("blocks", ctypes.c_void_p),
        ("capacity", ctypes.c_uint64),
        ("used", ctypes.c_uint64),
        ("decodes", ctypes.c_uint64),
        ("preempt_at", ctypes.c_uint64),
        ("emu_stop", ctypes.c_void_p),
        ("preemptions", ctypes.c_uint64),
    ]


class InstructionCounter:
    """Must be created before the guest runs: Unicorn does not call hooks from code it
    translated before they were added."""

    def __init__(self, cpu: Cpu, excache: ExCache) -> None:
        self._cpu = cpu
        self._code = UserMemory(excache)
        self._disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
        self._tick: Callable[[], None] | None = None
        self._tick_period = 0
        # Both callbacks are kept alive here: C holds their pointers.
        self._decode_fn = DECODE_FN(self._decode)
        self._tick_fn = TICK_FN(self._on_tick)
        self._state = _NativeState(next_tick=NEVER, decode=self._decode_fn, tick=self._tick_fn,
                                   preempt_at=NEVER,
                                   emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p))
        self._state_pointer = ctypes.pointer(self._state)
        self._release = native_library().icount_release
        cpu.add_hook(UC_HOOK_BLOCK, function_pointer("icount_block"),
                     ctypes.cast(self._state_pointer, ctypes.c_void_p))

    def __del__(self) -> None:
        # Frees the table C allocated. Only attributes are used: at interpreter exit the
        # module's globals may already be gone.
        self._release(self._state_pointer)

    @property
    def instructions(self) -> int:
        return self._state.instructions

    @property
    def current_block(self) -> int:
        """Start address of the block running now (or last, during a syscall); 0 before
        the first."""
        return self._state.block

    @property
    def distinct_blocks(self) -> int:
        return self._state.decodes

    def set_tick(self, period: int, callback: Callable[[], None]) -> None:
        """Call `callback` each time about `period` more instructions have run (checked at
        block starts). One callback at a time: a new one replaces the old."""
        if period <= 0:
            raise ValueError(f"tick period must be positive, got {period}")
        self._tick, self._tick_period = callback, period
        self._state.next_tick = self._state.instructions + period

    def preempt_after(self, instructions: int) -> None:
        """Stop the CPU (after the block running then) once `instructions` more have run;
        replaces any earlier request."""
        self._state.preempt_at = self._state.instructions + max(instructions, 1)

    def cancel_preemption(self) -> None:
        self._state.preempt_at = NEVER

    @property
    def preemptions(self) -> int:
        """How many times a time slice ran out."""
        return self._state.preemptions

    def _on_tick(self) -> None:
        self._state.next_tick = self._state.instructions + self._tick_period
        try:
            assert self._tick is not None
            self._tick()
        except BaseException as error:  # re-raised by the CPU once Unicorn has stopped
            self._fail(error)

    def _decode(self, address: int, size: int) -> int:
        """Instruction count of the block of `size` bytes at `address`."""
        try:
            return count_instructions(self._disassembler, self._code.read(address, size),
                                      address)
        except GuestFault:
            # Code that cannot be read back (an execute-only page) still ran: count the
            # block as one instruction rather than stop the guest.
            return 1
        except BaseException as error:
            self._fail(error)
            return 0

    def _fail(self, error: BaseException) -> None:
        self._cpu.error = error
        self._cpu.uc.emu_stop()


def count_instructions(disassembler: Cs, code: bytes, address: int) -> int:
    """The number of instructions in `code` (one block's bytes, loaded at `address`)."""
    count = 0
    decoded = 0
    for _address, size, _mnemonic, _operands in disassembler.disasm_lite(code, address):
        count += 1
        decoded += size
    # Capstone stops at an instruction it does not know: that one ran too, and the rest of
    # the block cannot be split reliably, so it counts as one.
    return count + (decoded < len(code))
