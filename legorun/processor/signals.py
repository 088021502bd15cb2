"""Signal generation and delivery (kernel/signal.c, arch/x86/kernel/signal.c).

A signal is generated for the process (kill, a timer, the host) or for one thread (tgkill,
a fault, SIGPIPE) and waits in that thread's or the process's pending set until a thread
that does not block it returns to user mode: after a syscall, at the end of a time slice,
when the CPU stops for a host signal, or when the thread is switched in. Delivery then
follows the action: ignore, the default (terminate, stop, ignore) or a handler, which gets
a real rt_sigframe on the guest stack (see sigframe.py) and returns through sa_restorer and
rt_sigreturn, which restores every register from that frame, changes the handler made
included.

A signal for a thread blocked in a syscall interrupts the call: it fails with EINTR, or is
run again after the handler when the action has SA_RESTART and the call is one Linux
restarts (signal(7)); a call interrupted by a signal that ends up running no handler is
restarted as if nothing happened.

Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) are forced on the faulting thread as Linux
forces them: a blocked or ignored fault signal kills the process. A handler that returns
runs the faulting instruction again (or wherever it pointed the saved rip).
"""

from __future__ import annotations

import os
import signal as host_signal
from typing import Callable, Protocol

from unicorn.x86_const import (
    UC_X86_REG_EFLAGS,
    UC_X86_REG_FP0,
    UC_X86_REG_FPCW,
    UC_X86_REG_FPSW,
    UC_X86_REG_FPTAG,
    UC_X86_REG_MXCSR,
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_R11,
    UC_X86_REG_R12,
    UC_X86_REG_R13,
    UC_X86_REG_R14,
    UC_X86_REG_R15,
    UC_X86_REG_RAX,
    UC_X86_REG_RBP,
    UC_X86_REG_RBX,
    UC_X86_REG_RCX,
    UC_X86_REG_RDI,
    UC_X86_REG_RDX,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
    UC_X86_REG_XMM0,
)

from unicorn import UcError
from unicorn.unicorn_const import (
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNALIGNED,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_INSN_INVALID,
    UC_ERR_READ_PROT,
    UC_ERR_READ_UNALIGNED,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_PROT,
    UC_ERR_WRITE_UNALIGNED,
    UC_ERR_WRITE_UNMAPPED,
)

from legorun.cache.excache import ExCache, GuestFault
from legorun.errors import LegorunError
from legorun.processor.cpu import SYSCALL_INSN_SIZE, Cpu, CpuException, RegisterFile
from legorun.processor.faultaddr import FaultAddress
from legorun.processor.hostsignals import (
    CATCH,
    DEFAULT,
    HOLD,
    IGNORE,
    LIBC_INTERNAL,
    TIMER_SIGNALS,
    HostSignals,
)
from legorun.processor.posix_timers import PosixTimers, TimerSignal
from legorun.processor.process import FatalSignal, ProcessState, SignalAction
from legorun.processor.sigframe import (
    EFLAGS_DF,
    EFLAGS_TF,
    EFLAGS_USER_MASK,
    FXSAVE_SIZE,
    GREGS,
    REDZONE,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    UCONTEXT_SIZE,
    X87_REGISTERS,
    XMM_REGISTERS,
    BUS_ADRALN,
    BUS_ADRERR,
    FPE_FLTINV,
    FPE_INTDIV,
    ILL_ILLOPN,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SI_KERNEL,
    AltStack,
    SigInfo,
    build_frame,
    frame_top,
    pack_fxsave,
    parse_ucontext,
    saved_altstack,
    unpack_fxsave,
)
from legorun.processor.threads import PendingSignals, Thread, ThreadGroup, sigbit
from legorun.processor.uaccess import UserMemory
from syscalls.numbers import SYSCALL_NAMES

SIG_DFL, SIG_IGN = 0, 1
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGKILL, SIGSEGV, SIGCHLD, SIGSTOP = 4, 5, 7, 8, 9, 11, 17, 19
SA_SIGINFO = 0x4
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
UNBLOCKABLE = sigbit(SIGKILL) | sigbit(SIGSTOP)
# Default actions (signal(7)); every other signal terminates the process.
IGNORED_BY_DEFAULT = frozenset({17, 18, 23, 28})  # SIGCHLD SIGCONT SIGURG SIGWINCH
STOPPING_BY_DEFAULT = frozenset({19, 20, 21, 22})  # SIGSTOP SIGTSTP SIGTTIN SIGTTOU
# Calls that fail with EINTR after a handler even with SA_RESTART (signal(7)).
NEVER_RESTARTED = frozenset({
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "nanosleep", "clock_nanosleep", "pause", "rt_sigsuspend", "rt_sigtimedwait",
    "io_getevents", "msgrcv", "msgsnd", "semop", "semtimedop",
})
GREG_IDS = (
    UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11, UC_X86_REG_R12,
    UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15, UC_X86_REG_RDI, UC_X86_REG_RSI,
    UC_X86_REG_RBP, UC_X86_REG_RBX, UC_X86_REG_RDX, UC_X86_REG_RAX, UC_X86_REG_RCX,
    UC_X86_REG_RSP, UC_X86_REG_RIP, UC_X86_REG_EFLAGS,
)
FPU_IDS = (
    UC_X86_REG_FPCW, UC_X86_REG_FPSW, UC_X86_REG_FPTAG, UC_X86_REG_MXCSR,
    *(UC_X86_REG_FP0 + i for i in range(X87_REGISTERS)),
    *(UC_X86_REG_XMM0 + i for i in range(XMM_REGISTERS)),
)
X87_FIRST, XMM_FIRST = 4, 4 + X87_REGISTERS
MEMORY_FAULTS = {
    UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED, UC_ERR_READ_PROT,
    UC_ERR_WRITE_PROT, UC_ERR_FETCH_PROT,
}
WRITE_FAULTS = {UC_ERR_WRITE_UNMAPPED, UC_ERR_WRITE_PROT}
UNALIGNED = {UC_ERR_READ_UNALIGNED, UC_ERR_WRITE_UNALIGNED, UC_ERR_FETCH_UNALIGNED}
PAGE_FAULT, INVALID_OPCODE = 14, 6
PF_PROT, PF_WRITE, PF_USER = 1, 2, 4
# x86 exception vectors -> (signal, si_code, whether si_addr is the instruction), as the
# kernel's trap handlers send them (arch/x86/kernel/traps.c).
VECTOR_SIGNALS = {
    0: (SIGFPE, FPE_INTDIV, True), 1: (SIGTRAP, SI_KERNEL, False),
    3: (SIGTRAP, SI_KERNEL, False), 4: (SIGSEGV, SI_KERNEL, False),
    5: (SIGSEGV, SI_KERNEL, False), 6: (SIGILL, ILL_ILLOPN, True),
    13: (SIGSEGV, SI_KERNEL, False), 16: (SIGFPE, FPE_FLTINV, True),
    17: (SIGBUS, BUS_ADRALN, False), 19: (SIGFPE, FPE_FLTINV, True),
}


def fault_signal(error: UcError, excache: ExCache, mapped: Callable[[int], bool],
                 locate: FaultAddress, pc: int) -> SigInfo:
    """The signal for a fault Unicorn reported at instruction `pc`."""
    if excache.error is not None:
        error_of_legorun, excache.error = excache.error, None
        raise error_of_legorun
    fault, excache.fault = excache.fault, None
    if fault is not None and fault.bus:
        return SigInfo(SIGBUS, BUS_ADRERR, addr=locate.exact(fault.addr, pc),
                       trap=(PAGE_FAULT, PF_USER))
    if fault is not None or error.errno in MEMORY_FAULTS:
        addr = locate.exact(fault.addr, pc) if fault is not None else 0
        present = fault is not None and mapped(addr)
        code = PF_USER | (PF_WRITE if error.errno in WRITE_FAULTS else 0)
        return SigInfo(SIGSEGV, SEGV_ACCERR if present else SEGV_MAPERR, addr=addr,
                       trap=(PAGE_FAULT, code | (PF_PROT if present else 0)))
    if error.errno in UNALIGNED:
        return SigInfo(SIGBUS, BUS_ADRALN, addr=0)
    if error.errno == UC_ERR_INSN_INVALID:
        return SigInfo(SIGILL, ILL_ILLOPN, addr=pc, trap=(INVALID_OPCODE, 0))
    raise LegorunError(f"CPU stopped at {pc:#x}: {error}")


def exception_signal(exception: CpuException) -> SigInfo:
    """The signal for a CPU exception (by vector) the guest raised."""
    sig, code, at_instruction = VECTOR_SIGNALS.get(exception.vector, (SIGSEGV, SI_KERNEL, False))
    return SigInfo(sig, code, addr=exception.rip if at_instruction else 0,
                   trap=(exception.vector, 0))


def _u64(value: bytes) -> int:
    return int.from_bytes(value[:8], "little")


def _b64(value: int) -> bytes:
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def default_disposition(sig: int) -> str:
    if sig in IGNORED_BY_DEFAULT:
        return "ignore"
    return "stop" if sig in STOPPING_BY_DEFAULT else "terminate"


class Doorbell(Protocol):
    def ring(self, pending: int) -> None:
        """The signals pending for the process or any thread are now `pending`."""


class Signals:
    """The process's signal state beyond each thread's own: actions (in ProcessState),
    the signals pending for the process as a whole, the host signals mirrored for it, and
    its POSIX timers (posix_timers.py), whose signals are taken in with the host's."""

    def __init__(self, cpu: Cpu, mem: UserMemory, proc: ProcessState, threads: ThreadGroup,
                 host: HostSignals) -> None:
        self._cpu = cpu
        self._mem = mem
        self._proc = proc
        self.threads = threads
        self.host = host
        self.shared = PendingSignals()
        self.doorbells: list[Doorbell] = []  # of the process's signalfds
        self._held = 0  # signals caught on the host because all threads blocked them
        self.timers = PosixTimers(host, proc, self._pending_for, self._send_to)
        self._gregs = RegisterFile(cpu.uc, GREG_IDS)
        self._fpu = RegisterFile(cpu.uc, FPU_IDS)

    def forked(self, thread: Thread) -> None:
        """In a new child process: fork(2) leaves its set of pending signals empty."""
        self.shared = PendingSignals()
        thread.pending = PendingSignals()
        self._ring()

    # ------------------------------------------------------------ actions

    def action(self, sig: int) -> SignalAction:
        return self._proc.sigactions.get(sig, SignalAction())

    def set_action(self, sig: int, action: SignalAction) -> None:
        self._proc.sigactions[sig] = action
        if self._ignored(sig):  # pending instances go (sigaction: "discarded")
            self.shared.discard(sig)
            for thread in self.threads:
                thread.pending.discard(sig)
            self._ring()
        self.host.mirror(sig, self._host_disposition(sig))

    def sync_host(self) -> None:
        """Mirror every action on the host (after exec reset them)."""
        for sig in range(1, 65):
            self.host.mirror(sig, self._host_disposition(sig))

    def mask_changed(self, changed: int) -> None:
        """A thread blocked or unblocked the signals of `changed`. A signal every thread
        blocks is caught on the host from then on, even at its default action, so that a
        kill from outside waits, pending, for sigwait, signalfd or its unblocking instead
        of ending legorun at once (the run loop applies the default action when it is
        delivered). It stays caught: masks change often (around every pthread_create and
        posix_spawn), host actions are syscalls."""
        newly = changed & self._blocked_by_all() & ~self._held
        if not newly:
            return
        self._held |= newly
        for sig in range(1, 65):
            if newly & sigbit(sig):
                self.host.mirror(sig, self._host_disposition(sig))

    def _host_disposition(self, sig: int) -> str:
        handler = self.action(sig).handler
        if handler == SIG_IGN:
            return IGNORE
        if handler == SIG_DFL:
            return HOLD if self._held & sigbit(sig) else DEFAULT
        return CATCH

    def set_timer(self, which: int, value_s: float, interval_s: float) -> tuple[float, float]:
        """Arm (or with 0, disarm) interval timer `which`; the old (value, interval)."""
        sig = TIMER_SIGNALS[which]
        return self.host.set_timer(which, value_s, interval_s,
                                   self._host_disposition(sig))

    def _ignored(self, sig: int) -> bool:
        handler = self.action(sig).handler
        return handler == SIG_IGN or (handler == SIG_DFL and sig in IGNORED_BY_DEFAULT)

    def catches_any(self) -> bool:
        """Whether some signal would run a handler: then another process (or an armed
        timer) could end any wait by sending it. The C library's own signals (SIGCANCEL,
        SIGSETXID) only ever come from the process's threads."""
        return self.host.catches_any() or any(
            action.handler not in (SIG_DFL, SIG_IGN) and sig not in LIBC_INTERNAL
            for sig, action in self._proc.sigactions.items())

    # ------------------------------------------------------------ generation

    def send_process(self, info: SigInfo) -> None:
        """A signal for the whole process (kill, a timer, the host)."""
        if self._ignored(info.signo) and not self._blocked_everywhere(info.signo):
            return
        self.shared.add(info)
        self._ring()

    def send_thread(self, thread: Thread, info: SigInfo) -> None:
        """A signal for one thread (tgkill, tkill, SIGPIPE)."""
        if self._ignored(info.signo) and not thread.sigmask & sigbit(info.signo):
            return
        thread.pending.add(info)
        self._ring()

    def _send_to(self, info: SigInfo, tid: int | None) -> None:
        """A signal for thread `tid` if it still exists, or for the process (None)."""
        if tid is None:
            self.send_process(info)
        elif (thread := self.threads.get(tid)) is not None:
            self.send_thread(thread, info)

    def _pending_for(self, tid: int | None) -> int:
        """The signals queued for thread `tid` itself, or for the process (None)."""
        if tid is None:
            return self.shared.mask
        thread = self.threads.get(tid)
        return thread.pending.mask if thread is not None else 0

    def force(self, thread: Thread, info: SigInfo) -> None:
        """A fault's signal (force_sig_info): if the thread blocks or ignores it, the
        default action (death) takes over."""
        bit = sigbit(info.signo)
        if thread.sigmask & bit or self.action(info.signo).handler == SIG_IGN:
            thread.sigmask &= ~bit
            self._proc.sigactions[info.signo] = SignalAction()
        thread.pending.add(info)
        self._ring()

    def _blocked_everywhere(self, sig: int) -> bool:
        return bool(self._blocked_by_all() & sigbit(sig))

    def _blocked_by_all(self) -> int:
        """The signals every thread blocks."""
        blocked = ~0
        for thread in self.threads:
            blocked &= thread.sigmask
        return blocked

    # ------------------------------------------------------------ queries

    def pending_mask(self, thread: Thread) -> int:
        return thread.pending.mask | self.shared.mask

    def deliverable(self, thread: Thread) -> int:
        return self.pending_mask(thread) & ~thread.sigmask

    def interrupts(self, thread: Thread) -> bool:
        """Whether a blocked thread must stop waiting: a signal it does not block would run
        a handler or end the process."""
        mask = self.deliverable(thread)
        if not mask:
            return False
        for sig in range(1, 65):
            if mask & sigbit(sig):
                handler = self.action(sig).handler
                if handler not in (SIG_DFL, SIG_IGN) or (
                        handler == SIG_DFL and default_disposition(sig) == "terminate"):
                    return True
        return False

    def take(self, thread: Thread, allowed: int) -> SigInfo | None:
        """Dequeue a pending signal of `allowed` for `thread` (its own first). A POSIX
        timer's signal gets its overrun count now, or goes if its timer was deleted."""
        try:
            while info := thread.pending.take(allowed) or self.shared.take(allowed):
                if not isinstance(info, TimerSignal):
                    return info
                if (delivered := self.timers.delivered(info)) is not None:
                    return delivered
            return None
        finally:
            self._ring()

    def pending_anywhere(self) -> int:
        """The signals pending for the process or any of its threads."""
        mask = self.shared.mask
        for thread in self.threads:
            mask |= thread.pending.mask
        return mask

    def _ring(self) -> None:
        """The pending sets changed: the signalfds' doorbells follow (signalfd.py)."""
        if self.doorbells:
            pending = self.pending_anywhere()
            for doorbell in self.doorbells:
                doorbell.ring(pending)

    # ------------------------------------------------------------ delivery

    def deliver(self, thread: Thread) -> None:
        """Deliver what `thread` (on the CPU, about to run user code) does not block."""
        handled = False
        while info := self.take(thread, ~thread.sigmask & ((1 << 64) - 1)):
            action = self.action(info.signo)
            if action.handler == SIG_IGN:
                continue
            if action.handler == SIG_DFL:
                disposition = default_disposition(info.signo)
                if disposition == "ignore":
                    continue
                if disposition == "stop":
                    os.kill(os.getpid(), host_signal.SIGSTOP)  # the job stops until SIGCONT
                    continue
                raise FatalSignal(info.signo)
            self._run_handler(thread, info, action)
            handled = True
        if thread.interrupted_nr is not None:  # a signal that ran no handler: run it again
            self._cpu.set_result(thread.interrupted_nr)
            self._cpu.rewind_syscall()
            thread.interrupted_nr = None
        if not handled and thread.temporary_mask is not None:
            thread.sigmask = thread.temporary_mask
            thread.temporary_mask = None

    def _run_handler(self, thread: Thread, info: SigInfo, action: SignalAction) -> None:
        regs_raw = self._gregs.read()
        regs = {name: _u64(value) for name, value in zip(GREGS, regs_raw)}
        if thread.interrupted_nr is not None:
            name = SYSCALL_NAMES.get(thread.interrupted_nr, "")
            if action.flags & SA_RESTART and name not in NEVER_RESTARTED:
                regs["rax"] = thread.interrupted_nr
                regs["rip"] -= SYSCALL_INSN_SIZE
            thread.interrupted_nr = None
        old_mask = thread.sigmask if thread.temporary_mask is None else thread.temporary_mask
        thread.temporary_mask = None
        sp = regs["rsp"]
        top = frame_top(sp, bool(action.flags & SA_ONSTACK), thread.altstack)
        frame = build_frame(regs, self._fxsave(), info, old_mask,
                            saved_altstack(thread.altstack, sp), action.restorer, top,
                            info.trap)
        # A frame that cannot be set up kills the process with SIGSEGV (force_sigsegv):
        # no room for it, or no sa_restorer to return through (x86-64 has no default one).
        if not action.flags & SA_RESTORER:
            raise FatalSignal(SIGSEGV)
        try:
            self._mem.write(frame.address, frame.data)
        except GuestFault:
            raise FatalSignal(SIGSEGV) from None
        if thread.altstack.flags & SS_AUTODISARM and top != sp - REDZONE:
            thread.altstack = AltStack()  # the handler runs on it: disarmed until sigreturn
        regs.update(rsp=frame.address, rip=action.handler, rdi=info.signo, rsi=frame.siginfo,
                    rdx=frame.ucontext, rax=0,
                    eflags=regs["eflags"] & ~(EFLAGS_DF | EFLAGS_TF))
        self._gregs.write([_b64(regs[name]) for name in GREGS])
        thread.sigmask |= action.mask & ~UNBLOCKABLE
        if not action.flags & SA_NODEFER:
            thread.sigmask |= sigbit(info.signo)
        if action.flags & SA_RESETHAND:
            self._proc.sigactions[info.signo] = SignalAction()
            self.host.mirror(info.signo, DEFAULT)

    def _fxsave(self) -> bytes:
        fpu = self._fpu.read()
        fpcw, fpsw, fptag, mxcsr = (int.from_bytes(value[:4], "little") for value in fpu[:4])
        physical = fpu[X87_FIRST:XMM_FIRST]
        top = (fpsw >> 11) & 7
        st = [physical[(top + i) & 7] for i in range(X87_REGISTERS)]
        return pack_fxsave(fpcw & 0xFFFF, fpsw & 0xFFFF, fptag & 0xFFFF, mxcsr, st,
                           fpu[XMM_FIRST:])

    # ------------------------------------------------------------ rt_sigreturn

    def read_sigreturn(self, thread: Thread) -> None:
        """rt_sigreturn's half inside the syscall: read the frame the handler returned
        through (its ucontext is at rsp: ret popped pretcode); the registers are written
        by `finish_sigreturn` once the CPU stopped."""
        saved = parse_ucontext(self._mem.read(self._cpu.sp(), UCONTEXT_SIZE))
        fpu = self._mem.read(saved.fpstate, FXSAVE_SIZE) if saved.fpstate else None
        thread.sigreturn = saved
        thread.sigreturn_fpu = fpu

    def finish_sigreturn(self, thread: Thread) -> None:
        saved, thread.sigreturn = thread.sigreturn, None
        fpu, thread.sigreturn_fpu = thread.sigreturn_fpu, None
        assert saved is not None
        current = {name: _u64(value) for name, value in zip(GREGS, self._gregs.read())}
        regs = dict(saved.regs)
        regs["eflags"] = (current["eflags"] & ~EFLAGS_USER_MASK
                          | regs["eflags"] & EFLAGS_USER_MASK)
        self._gregs.write([_b64(regs[name]) for name in GREGS])
        if fpu is not None:
            state = unpack_fxsave(fpu)
            top = (state.fpsw >> 11) & 7
            physical = [b""] * X87_REGISTERS
            for i, value in enumerate(state.st):
                physical[(top + i) & 7] = value
            self._fpu.write([
                state.fpcw.to_bytes(2, "little"), state.fpsw.to_bytes(2, "little"),
                state.fptag.to_bytes(2, "little"), state.mxcsr.to_bytes(4, "little"),
                *physical, *state.xmm,
            ])
        thread.sigmask = saved.mask & ~UNBLOCKABLE
        self._restore_altstack(thread, saved.altstack, regs["rsp"])

    @staticmethod
    def _restore_altstack(thread: Thread, stack: AltStack, sp: int) -> None:
        """restore_altstack: as sigaltstack would set it; refused (silently) while the
        thread still runs on the alternate stack."""
        if thread.altstack.contains(sp) and not thread.altstack.flags & SS_DISABLE:
            return
        if stack.flags & SS_DISABLE:
            thread.altstack = AltStack()
        elif stack.flags & ~(SS_ONSTACK | SS_AUTODISARM) == 0:
            thread.altstack = AltStack(stack.sp, stack.flags & SS_AUTODISARM, stack.size)

    # ------------------------------------------------------------ host arrivals

    def take_host_signals(self) -> None:
        if not self.host.pending():
            return
        # The compiled handler stopped the CPU if it was running (a syscall that waits
        # takes them from inside the run): that stop is on purpose, whatever Unicorn
        # reports on its way out.
        self._cpu.stop_requested = True
        for sig, code, pid, uid, status in self.host.take():
            self.send_process(SigInfo(sig, code=code, pid=pid, uid=uid,
                                      status=status if sig == SIGCHLD else None))
        self.timers.collect()  # the expirations of POSIX timers came with them
