"""The processor's execution engine: one Unicorn x86-64 instance.

It knows registers, the syscall instruction and CPU exceptions, and nothing of ELF files or
memory contents (the ExCache hook supplies every page). The syscall hook is registered
directly with the library and reads the seven argument registers in one batched call: the
binding's per-register reads cost microseconds each; `RegisterFile` batches the larger
sets that signal frames need the same way.

Control never moves inside a hook: Unicorn adds the syscall instruction's length to rip
after the syscall hook returns, so whoever wants the guest elsewhere (a signal handler,
another thread) asks for a stop and moves it once `emulate` has returned.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable, Sequence

from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_INSN,
    UC_HOOK_INSN_INVALID,
    UC_HOOK_INTR,
    UC_MODE_64,
    Uc,
    UcError,
)
from unicorn.unicorn_py3.unicorn import UcContext
from unicorn.unicorn_py3.unicorn import uclib
from unicorn.x86_const import (
    UC_X86_INS_SYSCALL,
    UC_X86_REG_FPCW,
    UC_X86_REG_FS_BASE,
    UC_X86_REG_GS_BASE,
    UC_X86_REG_MXCSR,
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_RAX,
    UC_X86_REG_RDI,
    UC_X86_REG_RDX,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
)

from legorun.errors import LegorunError

SYSCALL_REGS = (
    UC_X86_REG_RAX, UC_X86_REG_RDI, UC_X86_REG_RSI, UC_X86_REG_RDX,
    UC_X86_REG_R10, UC_X86_REG_R8, UC_X86_REG_R9,
)
# The FPU state Linux gives a new process (fpstate_init): x87 extended precision with all
# exceptions masked, SSE exceptions masked. Unicorn starts with both words zero, which means
# single-precision x87 arithmetic.
FPCW_LINUX_DEFAULT = 0x037F
MXCSR_LINUX_DEFAULT = 0x1F80
INSN_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
INTR_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
INVALID_HOOK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)
INVALID_OPCODE = 6  # #UD

# Syscall handler: (number, six arguments) -> value for rax, or None when the call has no
# value yet (its thread blocked: the value is written when it completes).
SyscallHandler = Callable[[int, tuple[int, ...]], int | None]
REGISTER_SLOT = 16  # bytes per value in a RegisterFile: the widest register read (xmm)
SYSCALL_INSN_SIZE = 2  # 0f 05


@dataclass(frozen=True, slots=True)
class CpuException:
    """A CPU exception the guest raised (x86 vector number) at `rip`."""

    vector: int
    rip: int


class Cpu:
    def __init__(self) -> None:
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.uc.reg_write(UC_X86_REG_FPCW, FPCW_LINUX_DEFAULT)
        self.uc.reg_write(UC_X86_REG_MXCSR, MXCSR_LINUX_DEFAULT)
        self._handler: SyscallHandler | None = None
        self.stop_requested = False
        self._when_stopped: list[Callable[[], None]] = []
        self._running = False
        self.error: BaseException | None = None
        self.exception: CpuException | None = None

        count = len(SYSCALL_REGS)
        self._reg_ids = (ctypes.c_int * count)(*SYSCALL_REGS)
        self._reg_values = (ctypes.c_uint64 * count)()
        base = ctypes.addressof(self._reg_values)
        self._reg_ptrs = (ctypes.c_void_p * count)(*(base + 8 * i for i in range(count)))
        self._rax = ctypes.c_uint64()
        self._syscall_hook = INSN_HOOK(self._on_syscall)  # kept alive: C holds the pointer
        self._intr_hook = INTR_HOOK(self._on_interrupt)
        self._invalid_hook = INVALID_HOOK(self._on_invalid_instruction)
        self.add_hook(UC_HOOK_INSN, self._syscall_hook, None, 1, 0,
                      ctypes.c_int(UC_X86_INS_SYSCALL))
        self.add_hook(UC_HOOK_INTR, self._intr_hook)
        self.add_hook(UC_HOOK_INSN_INVALID, self._invalid_hook)

    def add_hook(self, kind: int, callback: ctypes._CFuncPtr | ctypes.c_void_p,
                 user_data: ctypes.c_void_p | None = None, begin: int = 1, end: int = 0,
                 *extra: object) -> None:
        """Register a hook straight with the library (compiled or ctypes callback).

        begin > end means every address. Hooks must be added before the guest runs: code
        translated earlier would not call them.
        """
        handle = ctypes.c_size_t()
        status = uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(handle), kind, ctypes.cast(callback, ctypes.c_void_p),
            user_data, ctypes.c_uint64(begin), ctypes.c_uint64(end), *extra,
        )
        if status != 0:
            raise LegorunError(f"cannot install a CPU hook (unicorn error {status})")

    def set_syscall_handler(self, handler: SyscallHandler) -> None:
        self._handler = handler

    # ------------------------------------------------------------ hooks (called by Unicorn)

    def _on_syscall(self, _uc: int, _user: int) -> None:
        try:
            uclib.uc_reg_read_batch(self.uc._uch, self._reg_ids, self._reg_ptrs, len(SYSCALL_REGS))
            values = self._reg_values
            assert self._handler is not None
            result = self._handler(values[0], tuple(values[1:7]))
            if result is not None:
                self.set_result(result)
        except BaseException as error:  # re-raised by emulate() once Unicorn has stopped
            self.error = error
            self.uc.emu_stop()

    def _on_interrupt(self, _uc: int, vector: int, _user: int) -> None:
        self.exception = CpuException(vector, self.uc.reg_read(UC_X86_REG_RIP))
        self.request_stop()

    def _on_invalid_instruction(self, _uc: int, _user: int) -> bool:
        self.exception = CpuException(INVALID_OPCODE, self.uc.reg_read(UC_X86_REG_RIP))
        self.request_stop()
        return False  # stop here: the run loop raises SIGILL

    # ------------------------------------------------------------ control

    def set_result(self, value: int) -> None:
        """Write a syscall's value into rax."""
        self._rax.value = value & 0xFFFFFFFFFFFFFFFF
        uclib.uc_reg_write(self.uc._uch, UC_X86_REG_RAX, ctypes.byref(self._rax))

    def request_stop(self) -> None:
        """Stop once the current instruction (a syscall) or block is done: the caller has
        something to do between instructions (deliver a signal, switch threads)."""
        self.stop_requested = True
        self.uc.emu_stop()

    def when_stopped(self, change: Callable[[], None]) -> None:
        """Make `change` to Unicorn's memory map as soon as the guest stops: Unicorn cannot
        unmap memory under a running guest (a hook's uc_mem_unmap breaks the run). Called
        from a hook, it stops the guest after the current instruction."""
        if self._running:
            self._when_stopped.append(change)
            self.request_stop()
        else:
            change()

    def emulate(self) -> None:
        """Run from rip until a stop is requested, a hook fails or the CPU faults.

        Raises UcError for a fault Unicorn reports (registers as at the faulting
        instruction), or whatever a hook raised; a CPU exception is left in `exception`.
        A stop requested while the guest runs (request_stop, or uc_emu_stop from compiled
        code) may also end in a fault: in the virtual TLB mode Unicorn fetches code at the
        run's end address on its way out, which no guest page backs. Rip is then the next
        instruction to run, so the caller that knows it asked for a stop resumes there
        (a real fault at the same moment happens again).
        """
        self.stop_requested = False
        self._running = True
        try:
            self.uc.emu_start(self.uc.reg_read(UC_X86_REG_RIP), 0xFFFFFFFFFFFFFFFF)
        except UcError:
            # A hook that failed (or asked to exit) stops Unicorn, which may then report
            # a spurious fault on its way out: the hook's reason comes first.
            if self.error is None:
                raise
        finally:
            self._running = False
            changes, self._when_stopped = self._when_stopped, []
            for change in changes:
                change()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def rewind_syscall(self) -> None:
        """Point rip back at the syscall instruction just executed, to run it again."""
        self.uc.reg_write(UC_X86_REG_RIP, self.pc - SYSCALL_INSN_SIZE)

    def save_context(self, into: UcContext | None) -> UcContext:
        """The whole register state (segment bases and FPU included), reusing `into`."""
        if into is None:
            return self.uc.context_save()
        self.uc.context_update(into)
        return into

    def restore_context(self, context: UcContext) -> None:
        self.uc.context_restore(context)

    @property
    def pc(self) -> int:
        return self.uc.reg_read(UC_X86_REG_RIP)

    def set_fs_base(self, value: int) -> None:
        self.uc.reg_write(UC_X86_REG_FS_BASE, value)

    def fs_base(self) -> int:
        return self.uc.reg_read(UC_X86_REG_FS_BASE)

    def set_gs_base(self, value: int) -> None:
        self.uc.reg_write(UC_X86_REG_GS_BASE, value)

    def gs_base(self) -> int:
        return self.uc.reg_read(UC_X86_REG_GS_BASE)

    def sp(self) -> int:
        return self.uc.reg_read(UC_X86_REG_RSP)


class RegisterFile:
    """A fixed set of registers read or written in one batched library call, each value as
    the bytes Unicorn stores (little-endian; 10 for x87 registers, 16 for xmm)."""

    def __init__(self, uc: Uc, registers: Sequence[int]) -> None:
        self._uc = uc
        count = len(registers)
        self._count = count
        self._ids = (ctypes.c_int * count)(*registers)
        self._buffer = ctypes.create_string_buffer(REGISTER_SLOT * count)
        base = ctypes.addressof(self._buffer)
        self._ptrs = (ctypes.c_void_p * count)(*(base + REGISTER_SLOT * i for i in range(count)))

    def read(self) -> list[bytes]:
        status = uclib.uc_reg_read_batch(self._uc._uch, self._ids, self._ptrs, self._count)
        if status != 0:
            raise LegorunError(f"cannot read registers (unicorn error {status})")
        raw = self._buffer.raw
        return [raw[i : i + REGISTER_SLOT] for i in range(0, len(raw), REGISTER_SLOT)]

    def write(self, values: Sequence[bytes]) -> None:
        assert len(values) == self._count
        self._buffer.raw = b"".join(value.ljust(REGISTER_SLOT, b"\0")[:REGISTER_SLOT]
                                    for value in values)
        status = uclib.uc_reg_write_batch(self._uc._uch, self._ids, self._ptrs, self._count)
        if status != 0:
            raise LegorunError(f"cannot write registers (unicorn error {status})")


__all__ = ["Cpu", "CpuException", "RegisterFile", "UcContext", "UcError"]
