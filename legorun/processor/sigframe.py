"""The x86-64 signal frame (arch/x86/kernel/signal.c): what Linux pushes on the user stack
to run a handler, and what rt_sigreturn reads back.

    sp ->  pretcode   the handler's return address: sa_restorer, which calls rt_sigreturn
           ucontext   uc_flags, uc_link, uc_stack, uc_mcontext (struct sigcontext),
                      uc_sigmask (the mask to restore)
           siginfo    128 bytes
           ...        padding
           fpstate    the fxsave image (512 bytes, 64-byte aligned), pointed to by
                      uc_mcontext.fpstate

Pure data: the processor reads and writes the registers; this module only lays out bytes.
The FPU state is the legacy fxsave image (no xsave header: uc_flags has no UC_FP_XSTATE),
which holds the x87 stack, mxcsr and xmm0-15, all that Unicorn's x86-64 CPU has.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# struct sigcontext's general registers, in order (glibc's REG_R8 .. REG_EFL).
GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
         "rdx", "rax", "rcx", "rsp", "rip", "eflags")
SIGCONTEXT = struct.Struct("<18Q4H4QQ8Q")  # gregs, cs gs fs ss, err trapno oldmask cr2,
#                                             fpstate, reserved
UCONTEXT_HEAD = struct.Struct("<QQQiiQ")  # uc_flags, uc_link, ss_sp, ss_flags, pad, ss_size
SIGSET = struct.Struct("<Q")
SIGINFO_SIZE = 128
FXSAVE_SIZE = 512
FPSTATE_ALIGN = 64
REDZONE = 128  # the x86-64 ABI's red zone below sp, which a handler must not clobber
USER_CS, USER_DS = 0x33, 0x2B

UC_FLAGS_SIGCONTEXT_SS = 0x2 | 0x4  # UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
UCONTEXT_OFFSET = 8  # after pretcode
SIGCONTEXT_OFFSET = UCONTEXT_OFFSET + UCONTEXT_HEAD.size
SIGMASK_OFFSET = SIGCONTEXT_OFFSET + SIGCONTEXT.size
SIGINFO_OFFSET = SIGMASK_OFFSET + SIGSET.size
FRAME_SIZE = SIGINFO_OFFSET + SIGINFO_SIZE

SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
EFLAGS_TF, EFLAGS_DF = 1 << 8, 1 << 10
# The flags rt_sigreturn takes from the frame (FIX_EFLAGS: AC OF DF TF SF ZF AF PF CF RF);
# the others keep their current value.
EFLAGS_USER_MASK = 0x50DD5

# si_code values
SI_USER, SI_KERNEL, SI_QUEUE, SI_TIMER, SI_TKILL = 0, 0x80, -1, -2, -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
ILL_ILLOPN, FPE_INTDIV, FPE_FLTINV, BUS_ADRALN, BUS_ADRERR = 2, 1, 7, 1, 2
TRAP_BRKPT = 1

# The fxsave image (Intel SDM, FXSAVE): control, status and abridged tag words, the last
# opcode and pointers, mxcsr and its mask, then ST0-ST7 in 16-byte slots and xmm0-15.
FXSAVE_HEAD = struct.Struct("<HHBxHQQII")
FXSAVE_ST_OFFSET, FXSAVE_XMM_OFFSET = 32, 160
MXCSR_MASK = 0xFFFF  # the mxcsr bits this CPU supports (DAZ included)
X87_REGISTERS, XMM_REGISTERS = 8, 16


@dataclass(frozen=True, slots=True)
class AltStack:
    sp: int = 0
    flags: int = SS_DISABLE
    size: int = 0

    def contains(self, sp: int) -> bool:
        return not self.flags & SS_DISABLE and self.sp < sp <= self.sp + self.size


@dataclass(frozen=True, slots=True)
class SigInfo:
    signo: int
    code: int = SI_USER
    errno: int = 0
    pid: int = 0  # sender, for kill/tgkill/SIGCHLD
    uid: int = 0
    addr: int | None = None  # fault address, for SIGSEGV/SIGBUS/SIGFPE/SIGILL
    status: int | None = None  # SIGCHLD: exit status or signal
    value: int = 0  # sigqueue's sigval (SI_QUEUE)
    raw: bytes | None = None  # a whole siginfo from the guest (rt_sigqueueinfo)
    # Not part of siginfo: the fault's (trapno, error code), for the frame's sigcontext.
    trap: tuple[int, int] = (0, 0)

    def pack(self) -> bytes:
        if self.raw is not None:
            return self.raw[:SIGINFO_SIZE].ljust(SIGINFO_SIZE, b"\0")
        head = struct.pack("<iii4x", self.signo, self.errno, self.code)
        if self.addr is not None:
            body = struct.pack("<Q", self.addr)
        elif self.status is not None:
            body = struct.pack("<IIi4xQQ", self.pid, self.uid, self.status, 0, 0)
        else:
            body = struct.pack("<IIQ", self.pid, self.uid, self.value)
        return (head + body).ljust(SIGINFO_SIZE, b"\0")


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame ready to write: `data` goes at `address`, then the CPU runs the handler with
    rsp = address (where pretcode is), rdi = signo, rsi = &siginfo, rdx = &ucontext."""

    address: int
    data: bytes
    fpstate: int

    @property
    def siginfo(self) -> int:
        return self.address + SIGINFO_OFFSET

    @property
    def ucontext(self) -> int:
        return self.address + UCONTEXT_OFFSET


def saved_altstack(altstack: AltStack, sp: int) -> AltStack:
    """The uc_stack a frame records (__save_altstack): the thread's alternate stack, with
    SS_ONSTACK when `sp` is on it."""
    if altstack.flags & SS_DISABLE or altstack.size == 0:
        return AltStack(altstack.sp, SS_DISABLE, altstack.size)
    onstack = SS_ONSTACK if altstack.contains(sp) else 0
    return AltStack(altstack.sp, onstack | altstack.flags & SS_AUTODISARM, altstack.size)


def frame_top(sp: int, on_altstack_requested: bool, altstack: AltStack) -> int:
    """Where the frame's top goes (get_sigframe): below the red zone, or at the top of the
    alternate stack if the action asks for it and the thread is not already on it."""
    if on_altstack_requested and not altstack.flags & SS_DISABLE and not altstack.contains(sp):
        return altstack.sp + altstack.size
    return sp - REDZONE


def build_frame(regs: dict[str, int], fxsave: bytes, info: SigInfo, old_mask: int,
                altstack: AltStack, restorer: int, top: int, fault: tuple[int, int] = (0, 0)
                ) -> Frame:
    """Lay out the frame below `top` (from frame_top). `regs` are the interrupted registers
    (names as GREGS); `altstack` is what uc_stack records (saved_altstack); `fault` is
    (trapno, err)."""
    fpstate = (top - FXSAVE_SIZE) & ~(FPSTATE_ALIGN - 1)
    address = ((fpstate - FRAME_SIZE) & ~15) - 8  # as a call would leave it: sp+8 aligned
    trapno, err = fault
    sigcontext = SIGCONTEXT.pack(
        *(regs[name] & 0xFFFFFFFFFFFFFFFF for name in GREGS),
        USER_CS, 0, 0, USER_DS,
        err, trapno, old_mask, info.addr or 0,
        fpstate, *([0] * 8),
    )
    head = UCONTEXT_HEAD.pack(UC_FLAGS_SIGCONTEXT_SS, 0, altstack.sp, altstack.flags, 0,
                              altstack.size)
    frame = (struct.pack("<Q", restorer) + head + sigcontext + SIGSET.pack(old_mask)
             + info.pack())
    padding = bytes(fpstate - address - len(frame))
    return Frame(address, frame + padding + fxsave.ljust(FXSAVE_SIZE, b"\0"), fpstate)


@dataclass(frozen=True, slots=True)
class SavedContext:
    """What rt_sigreturn restores."""

    regs: dict[str, int]
    mask: int
    altstack: AltStack
    fpstate: int  # address of the fxsave image, 0 if none


def parse_ucontext(data: bytes) -> SavedContext:
    """Read the ucontext that starts at data[0] (the frame's pretcode was popped by ret)."""
    _flags, _link, ss_sp, ss_flags, _pad, ss_size = UCONTEXT_HEAD.unpack_from(data, 0)
    fields = SIGCONTEXT.unpack_from(data, UCONTEXT_HEAD.size)
    regs = dict(zip(GREGS, fields[: len(GREGS)]))
    fpstate = fields[len(GREGS) + 8]
    (mask,) = SIGSET.unpack_from(data, UCONTEXT_HEAD.size + SIGCONTEXT.size)
    return SavedContext(regs, mask, AltStack(ss_sp, ss_flags, ss_size), fpstate)


UCONTEXT_SIZE = UCONTEXT_HEAD.size + SIGCONTEXT.size + SIGSET.size


def pack_fxsave(fpcw: int, fpsw: int, fptag: int, mxcsr: int, st: list[bytes],
                xmm: list[bytes]) -> bytes:
    """The fxsave image of an FPU: `fptag` is the full tag word (two bits per physical
    register, 3 = empty), `st` the eight x87 registers from ST0 (10 bytes each), `xmm` the
    sixteen xmm registers (16 bytes each)."""
    abridged = sum(1 << i for i in range(X87_REGISTERS) if (fptag >> (2 * i)) & 3 != 3)
    image = bytearray(FXSAVE_SIZE)
    FXSAVE_HEAD.pack_into(image, 0, fpcw, fpsw, abridged, 0, 0, 0, mxcsr, MXCSR_MASK)
    for index, value in enumerate(st):
        offset = FXSAVE_ST_OFFSET + 16 * index
        image[offset : offset + 10] = value[:10]
    for index, value in enumerate(xmm):
        offset = FXSAVE_XMM_OFFSET + 16 * index
        image[offset : offset + 16] = value[:16]
    return bytes(image)


@dataclass(frozen=True, slots=True)
class FpuState:
    fpcw: int
    fpsw: int
    fptag: int  # full tag word: 0 (valid) or 3 (empty) per physical register
    mxcsr: int
    st: list[bytes]
    xmm: list[bytes]


def unpack_fxsave(image: bytes) -> FpuState:
    fpcw, fpsw, abridged, _fop, _fip, _fdp, mxcsr, _mask = FXSAVE_HEAD.unpack_from(image, 0)
    fptag = sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(X87_REGISTERS))
    st = [bytes(image[FXSAVE_ST_OFFSET + 16 * i : FXSAVE_ST_OFFSET + 16 * i + 10])
          for i in range(X87_REGISTERS)]
    xmm = [bytes(image[FXSAVE_XMM_OFFSET + 16 * i : FXSAVE_XMM_OFFSET + 16 * (i + 1)])
           for i in range(XMM_REGISTERS)]
    return FpuState(fpcw, fpsw, fptag, mxcsr & MXCSR_MASK, st, xmm)
