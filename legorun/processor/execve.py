"""execve(2): the running program replaced in place, in the same process.

The memory manager builds the new address space (P2M_EXECVE, the same request the first
program was loaded with); only when it succeeded does anything of the old image go, so a
failed execve returns its errno to the old program, as Linux does. Then the processor does
what the kernel's exec does to a process (fs/exec.c begin_new_exec, flush_signal_handlers,
do_close_on_exec): the ExCache forgets the old lines, descriptors opened close-on-exec are
closed, caught signals go back to their default action (ignored ones stay ignored), the
POSIX timers are deleted, the alternate signal stack and the robust futex list are
forgotten, and the task takes the new program's name. The pid, the parent, the process group, the cwd, the other descriptors and
the signal mask are kept.

The new program starts from an `ExecImage` raised out of the syscall hook: the run loop
catches it and gives the CPU the register state of a new process at the new entry
(`start_new_program`), then goes on emulating.
The CPU and its ExCache are reused (hooks of the instruments stay installed) but every
translated block is dropped: the new program's code may sit at the old one's addresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from unicorn.x86_const import (
    UC_X86_REG_EFLAGS,
    UC_X86_REG_FPCW,
    UC_X86_REG_FS_BASE,
    UC_X86_REG_GS_BASE,
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

from legorun.processor.cpu import FPCW_LINUX_DEFAULT, MXCSR_LINUX_DEFAULT, Cpu
from legorun.processor.fork import release_vfork_parent
from legorun.processor.process import ProcessState, SignalAction
from legorun.rpc.messages import ExecReply
from syscalls.errno import Errno, SyscallError

if TYPE_CHECKING:
    from legorun.processor.processor import Processor

SIG_IGN = 1
PR_GET_NAME = 16
GENERAL_REGISTERS = (
    UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI,
    UC_X86_REG_RDI, UC_X86_REG_RBP, UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10,
    UC_X86_REG_R11, UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
)
XMM_REGISTERS = 16
EFLAGS_RESET = 0x2  # the reserved bit only, as a new CPU starts


class ExecImage(Exception):
    """A successful execve: the CPU must start the new program at `entry` with its stack
    pointer at `sp`."""

    def __init__(self, entry: int, sp: int) -> None:
        super().__init__(entry, sp)
        self.entry = entry
        self.sp = sp


def exec_program(processor: Processor, path: str, argv: list[bytes], envp: list[bytes],
                 execfn: bytes) -> NoReturn:
    """Replace the process's program by the one at guest path `path`; raises ExecImage, or
    SyscallError with the old program intact."""
    state = processor.state
    assert state is not None  # a program runs
    reply: ExecReply = processor.request_image(path, argv, envp, execfn, state.cwd)
    if reply.status:
        raise SyscallError(Errno(reply.status))
    processor.adopt_image(reply)
    _begin_new_exec(processor, state, reply, path, argv, envp)
    release_vfork_parent(processor)
    raise ExecImage(reply.entry, reply.sp)


def _begin_new_exec(processor: Processor, state: ProcessState, reply: ExecReply, path: str,
                    argv: list[bytes], envp: list[bytes]) -> None:
    state.exe = reply.program or path
    state.argv, state.envp = tuple(argv), tuple(envp)
    state.stack_start = reply.sp
    state.sigactions = {sig: SignalAction(SIG_IGN) for sig, action in state.sigactions.items()
                        if action.handler == SIG_IGN}
    assert processor.signals is not None
    processor.signals.timers.delete_all()
    processor.threads.current.reset_for_exec()
    state.prctl.pop(PR_GET_NAME, None)  # the task is named after the new program
    fds = processor.fds
    for fd in fds.fds():
        if fds.entry(fd).cloexec:
            fds.close(fd)


def start_new_program(cpu: Cpu, entry: int, sp: int) -> None:
    """The register state of a new process (start_thread) at `entry` with its stack at `sp`:
    general registers, flags and segment bases zero, the FPU as Linux initialises it, no
    translated code left."""
    uc = cpu.uc
    for register in GENERAL_REGISTERS:
        uc.reg_write(register, 0)
    uc.reg_write(UC_X86_REG_RSP, sp)
    uc.reg_write(UC_X86_REG_RIP, entry)
    for index in range(XMM_REGISTERS):
        uc.reg_write(UC_X86_REG_XMM0 + index, 0)
    uc.reg_write(UC_X86_REG_EFLAGS, EFLAGS_RESET)
    uc.reg_write(UC_X86_REG_FS_BASE, 0)
    uc.reg_write(UC_X86_REG_GS_BASE, 0)
    uc.reg_write(UC_X86_REG_FPCW, FPCW_LINUX_DEFAULT)
    uc.reg_write(UC_X86_REG_MXCSR, MXCSR_LINUX_DEFAULT)
    uc.ctl_flush_tb()
