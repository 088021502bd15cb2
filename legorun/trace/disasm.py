"""-d in_asm,exec: the guest's code as qemu's debug log shows it, written to the shared log.

`in_asm` disassembles each translation block the first time it runs (qemu logs a block when
it translates it); `exec` logs every block the guest executes. Both use qemu's layout:

    ----------------
    IN: main
    0x00401136:  55                       pushq    %rbp
    0x00401137:  48 89 e5                 movq     %rsp, %rbp

    Trace 0: 0x100401136 [0000000000401136] main

In the `Trace` line qemu shows where the host code of the block lives; here the first address
is where the ExCache holds the block's guest code, the "physical" address that Unicorn
translates it from. The hook is a Python block hook, slow but only for debugging runs, and
limited by Unicorn to the -dfilter ranges (their hull, when there are several). Code bytes are
read through the ExCache as a syscall reads user memory; guest-visible state never changes.
"""

from __future__ import annotations

import ctypes
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from capstone import CS_ARCH_X86, CS_MODE_64, CS_OPT_SYNTAX_ATT, Cs
from unicorn.unicorn_const import UC_HOOK_BLOCK

from legorun.cache.excache import GuestFault
from legorun.processor.uaccess import UserMemory
from legorun.trace.filters import AddressFilter, AddressRange, contains
from legorun.trace.log import TraceLog
from legorun.trace.symbols import Symbolizer

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor

BLOCK_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                              ctypes.c_void_p)
BLOCK_SEPARATOR = "-" * 16
BYTES_PER_LINE = 8  # qemu's split for x86: longer instructions continue on further lines
# Unicorn may report a block of unknown size; the longest x86 instruction is 15 bytes.
FALLBACK_READ = 15


class CodeLog:
    def __init__(self, items: frozenset[str], log: TraceLog, program: Path,
                 address_filter: AddressFilter) -> None:
        self._in_asm = "in_asm" in items
        self._exec = "exec" in items
        self._log = log
        self._program = program
        self._filter = address_filter
        self._ranges: tuple[AddressRange, ...] = ()
        self._seen: set[tuple[int, int]] = set()
        self._hook = BLOCK_HOOK(self._on_block)  # kept alive: C holds the pointer
        self._disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
        self._disassembler.syntax = CS_OPT_SYNTAX_ATT  # qemu shows x86 code in AT&T syntax
        self._disassembler.skipdata = True  # undecodable bytes still show, as .byte

    def attach(self, processor: Processor) -> None:
        self._symbols = Symbolizer.load(self._program, processor.load_bias)
        self._ranges = self._filter.resolve(self._symbols) if self._filter else ()
        self._excache = processor.excache
        self._memory = UserMemory(processor.excache)
        self._cpu = processor.cpu
        begin, end = 1, 0  # every block
        if self._ranges:
            begin, end = self._ranges[0].start, self._ranges[-1].end - 1  # inclusive
        self._cpu.add_hook(UC_HOOK_BLOCK, self._hook, None, begin, end)

    def prepare_fork(self) -> None:
        """Nothing buffered: every line goes to the log when its block runs."""

    def forked(self, pid: int) -> None:
        """The log decides where a child's lines go."""

    def close(self, exit: Exit | None) -> None:
        """Nothing buffered: every line went to the log when its block ran."""

    # ------------------------------------------------------------ the hook (called by Unicorn)

    def _on_block(self, _uc: int, address: int, size: int, _user: int) -> None:
        try:
            if len(self._ranges) > 1 and not contains(self._ranges, address):
                return
            if self._in_asm and (address, size) not in self._seen:
                self._seen.add((address, size))
                self._log_translation(address, size)
            if self._exec:
                self._log.write(f"Trace 0: 0x{self._code_location(address):x} "
                                f"[{address:016x}] {self._symbol(address)}")
        except BaseException as error:  # re-raised by the CPU once Unicorn has stopped
            self._cpu.error = error
            self._cpu.uc.emu_stop()

    # ------------------------------------------------------------ formatting

    def _log_translation(self, address: int, size: int) -> None:
        lines = [BLOCK_SEPARATOR, f"IN: {self._symbol(address)}"]
        try:
            code = self._memory.read(address, size or FALLBACK_READ)
        except GuestFault:
            code = b""
            lines.append(f"0x{address:08x}:  (code not readable)")
        instructions = self._disassembler.disasm(code, address)
        if not size and code:  # only the first instruction is known to belong to the block
            instructions = itertools.islice(instructions, 1)
        for instruction in instructions:
            lines.extend(format_instruction(instruction.address, bytes(instruction.bytes),
                                            instruction.mnemonic, instruction.op_str))
        lines.append("")
        for line in lines:
            self._log.write(line)

    def _symbol(self, address: int) -> str:
        function = self._symbols.function(address)
        return function.name if function else ""  # qemu leaves an unknown name empty

    def _code_location(self, address: int) -> int:
        """Where Unicorn holds the code at address (the page is resident: it runs)."""
        return self._excache.code_address(address)


def format_instruction(address: int, code: bytes, mnemonic: str, operands: str) -> list[str]:
    """One instruction as qemu's capstone dump shows it: address, up to 8 bytes, padding so
    that mnemonics line up, then the rest of the bytes on continuation lines."""
    first = code[:BYTES_PER_LINE]
    padding = " " * (3 * (BYTES_PER_LINE - len(first)))
    lines = [f"0x{address:08x}: {_hex(first)}{padding}  {mnemonic:<8} {operands}"]
    for offset in range(BYTES_PER_LINE, len(code), BYTES_PER_LINE):
        lines.append(f"0x{address + offset:08x}: {_hex(code[offset:offset + BYTES_PER_LINE])}")
    return lines


def _hex(code: bytes) -> str:
    return "".join(f" {byte:02x}" for byte in code)
