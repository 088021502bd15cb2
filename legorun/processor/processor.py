"""The processor component (LegoOS pComponent): a CPU, its ExCache, the fd table and the
process state, talking to the managers only through the transport."""

from __future__ import annotations

import fcntl
import os
import signal
from dataclasses import dataclass
from typing import Sequence

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

from legorun.cache.excache import ExCache
from legorun.config import MachineConfig
from legorun.errors import LegorunError, LoaderError, ProgramNotFound
from legorun.processor.clock import ModelledClock
from legorun.processor.cpu import Cpu
from legorun.processor.fdtable import FdTable
from legorun.processor.icount import InstructionCounter
from legorun.processor.files import HostStream
from legorun.processor.memory_client import MemoryClient
from legorun.processor.process import FatalSignal, ProcessExit, ProcessState
from legorun.processor.uaccess import UserMemory
from legorun.rpc.messages import ExecReply, ExecRequest, ExitRequest
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import Transport
from legorun.trace.instrument import Instrument, close_instruments
from syscalls.context import SyscallContext
from syscalls.dispatch import Dispatcher
from syscalls.errno import Errno, strerror
from syscalls.table import SyscallTable

SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV = 4, 5, 7, 8, 11
MEMORY_FAULTS = {
    UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED, UC_ERR_READ_PROT,
    UC_ERR_WRITE_PROT, UC_ERR_FETCH_PROT,
}
UNALIGNED = {UC_ERR_READ_UNALIGNED, UC_ERR_WRITE_UNALIGNED, UC_ERR_FETCH_UNALIGNED}
# x86 exception vectors -> the signal Linux sends for them.
VECTOR_SIGNALS = {0: SIGFPE, 1: SIGTRAP, 3: SIGTRAP, 4: SIGSEGV, 5: SIGSEGV, 6: SIGILL,
                  13: SIGSEGV, 14: SIGSEGV, 16: SIGFPE, 17: SIGBUS, 19: SIGFPE}
HWCAP_X86 = 0x078BFBFF  # AT_HWCAP: CPUID.1:EDX as the kernel reports it (fpu..sse2)


@dataclass(frozen=True, slots=True)
class Exit:
    """How the guest ended: an exit status, or the signal that killed it."""

    status: int = 0
    signal: int = 0

    @property
    def shell_status(self) -> int:
        return 128 + self.signal if self.signal else self.status


def signal_message(sig: int) -> str | None:
    """What a shell prints when a job dies of sig (bash: nothing for SIGINT and SIGPIPE)."""
    if sig in (signal.SIGINT, signal.SIGPIPE):
        return None
    return signal.strsignal(sig) or f"Signal {sig}"


class Processor:
    def __init__(self, config: MachineConfig, transport: Transport, rpc_stats: RpcStats,
                 warn: "Warn", instruments: Sequence[Instrument] = ()) -> None:
        self._config = config
        self._instruments = tuple(instruments)
        self._transport = transport
        self._warn = warn
        self.pid = os.getpid()
        self.cpu = Cpu()
        self.vm = MemoryClient(transport, self.pid)
        self.excache = ExCache(self.cpu.uc, self.vm, config.excache_size, config.excache_assoc,
                               config.excache_policy, config.seed)
        self.vm.attach(self.excache)
        # The transport's RPC accounting is the clock's remote time; counting instructions
        # costs a block hook, so it is added only when asked for (before the guest runs).
        counter = InstructionCounter(self.cpu, self.excache) if config.count_instructions else None
        self.clock = ModelledClock(config.clock_hz, config.cpi, rpc_stats, counter)
        self.fds = FdTable()
        self.dispatcher: Dispatcher | None = None
        self.load_bias = 0  # of the running program: symbolizers add it to ELF addresses

    def exec(self, path: str, argv: list[bytes], envp: list[bytes], execfn: bytes,
             cwd: str) -> tuple[int, int, ProcessState]:
        """Ask the memory manager to build the address space; returns (entry, sp, state)."""
        reply: ExecReply = self._transport.call(ExecRequest(
            pid=self.pid, path=path, argv=tuple(argv), envp=tuple(envp), execfn=execfn,
            uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(), egid=os.getegid(),
            hwcap=HWCAP_X86, random=os.urandom(16), sysroot=self._config.sysroot, cwd=cwd,
        ))
        if reply.status == Errno.ENOEXEC:
            raise LoaderError(reply.detail)
        if reply.status == Errno.ENOENT:
            raise ProgramNotFound(reply.detail if reply.detail != path
                                  else f"{path}: {strerror(reply.status)}")
        if reply.status:
            raise LoaderError(f"{path}: {strerror(reply.status)}")
        self.vm.exec_done(reply)
        self.load_bias = reply.load_bias
        state = ProcessState(pid=self.pid, exe=path, cwd=cwd, argv=tuple(argv), envp=tuple(envp),
                             stack_start=reply.sp)
        return reply.entry, reply.sp, state

    def run(self, path: str, argv: list[bytes], envp: list[bytes], execfn: bytes,
            cwd: str) -> Exit:
        exit: Exit | None = None
        try:
            entry, sp, state = self.exec(path, argv, envp, execfn, cwd)
            try:
                self._prepare(state)
                exit = self._execute(entry, sp)
            finally:
                self._transport.call(ExitRequest(self.pid))
            return exit
        finally:
            close_instruments(self._instruments, exit)

    def _prepare(self, state: ProcessState) -> None:
        """Standard descriptors, the syscall dispatcher and the instruments' hooks."""
        for fd in (0, 1, 2):
            try:  # the guest inherits legorun's own descriptors, flags and all
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            except OSError:
                continue
            self.fds.install(fd, HostStream(fd, flags))
        context = SyscallContext(
            mem=UserMemory(self.excache), vm=self.vm, storage=self._transport, fds=self.fds,
            proc=state, cpu=self.cpu, warn=self._warn,
        )
        self.dispatcher = Dispatcher(SyscallTable.build(), context, self._warn)
        self.cpu.set_syscall_handler(self.dispatcher)
        for instrument in self._instruments:
            instrument.attach(self)

    def _execute(self, entry: int, sp: int) -> Exit:
        try:
            self.cpu.run(entry, sp)
        except ProcessExit as done:
            return Exit(status=done.status)
        except FatalSignal as fatal:
            return Exit(signal=fatal.signal)
        except UcError as error:
            if self.excache.error is not None:
                raise self.excache.error from None
            if self.excache.fault is not None or error.errno in MEMORY_FAULTS:
                return Exit(signal=SIGSEGV)
            if error.errno in UNALIGNED:
                return Exit(signal=SIGBUS)
            if error.errno == UC_ERR_INSN_INVALID:
                return Exit(signal=SIGILL)
            raise LegorunError(f"CPU stopped at {self.cpu.pc:#x}: {error}") from None
        if self.cpu.exception is not None:
            return Exit(signal=VECTOR_SIGNALS.get(self.cpu.exception.vector, SIGSEGV))
        raise LegorunError(f"CPU stopped unexpectedly at {self.cpu.pc:#x}")


class Warn:
    """Writes legorun's own warnings, one line each, prefixed so they never pass as the
    guest's output."""

    def __call__(self, message: str) -> None:
        os.write(2, f"legorun: warning: {message}\n".encode(errors="replace"))
