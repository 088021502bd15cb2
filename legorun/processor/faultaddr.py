"""The exact address a faulting instruction accessed, for si_addr.

The ExCache learns of a fault from Unicorn's TLB fill, which names the page only. Linux
reports the byte address (cr2), which programs print and compare, so the faulting
instruction is decoded again and the addresses it accesses are computed from the
registers: its explicit memory operands (base + index * scale + displacement, rip-relative
and fs/gs-relative included) and the implicit ones (the stack for push, pop, call and ret;
rdi and rsi for string instructions). The first one on the faulting page is the answer;
without one the page address stands.
"""

from __future__ import annotations

from typing import Callable

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import X86_OP_MEM, X86_REG_FS, X86_REG_GS, X86_REG_RIP
from unicorn import x86_const

from legorun.processor.cpu import Cpu

PAGE_MASK = ~0xFFF
MAX_INSN = 15
MASK64 = (1 << 64) - 1


class FaultAddress:
    def __init__(self, cpu: Cpu, read_code: Callable[[int, int], bytes]) -> None:
        self._cpu = cpu
        self._read_code = read_code
        self._disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
        self._disassembler.detail = True

    def exact(self, page: int, pc: int) -> int:
        """The address on `page` the instruction at `pc` accessed, or `page`."""
        try:
            code = self._read_code(pc, MAX_INSN)
        except Exception:  # code that cannot be read back: the page it is
            return page
        insn = next(self._disassembler.disasm(code, pc, 1), None)
        if insn is None:
            return page
        for candidate in self._candidates(insn):
            if candidate & PAGE_MASK == page & PAGE_MASK:
                return candidate
        return page

    def _candidates(self, insn) -> list[int]:  # type: ignore[no-untyped-def]
        found = []
        for operand in insn.operands:
            if operand.type != X86_OP_MEM:
                continue
            mem = operand.mem
            address = mem.disp
            if mem.base == X86_REG_RIP:
                address += insn.address + insn.size
            elif mem.base:
                address += self._register(insn.reg_name(mem.base))
            if mem.index:
                address += self._register(insn.reg_name(mem.index)) * mem.scale
            if mem.segment == X86_REG_FS:
                address += self._cpu.fs_base()
            elif mem.segment == X86_REG_GS:
                address += self._cpu.gs_base()
            found.append(address & MASK64)
        sp = self._register("rsp")
        found += [(sp - 8) & MASK64, sp, self._register("rdi"), self._register("rsi")]
        return found

    def _register(self, name: str) -> int:
        register = getattr(x86_const, f"UC_X86_REG_{name.upper()}", None)
        return self._cpu.uc.reg_read(register) if register is not None else 0
