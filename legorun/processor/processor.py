"""The processor component (LegoOS pComponent): a CPU, its ExCache, the fd table and the
process state, talking to the managers only through the transport."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable, NoReturn, Sequence

from legorun.cache.excache import ExCache
from legorun.config import MachineConfig
from legorun.errors import LoaderError, ProgramNotFound
from legorun.processor.clock import ModelledClock
from legorun.processor.checkpoint import Checkpointer
from legorun.processor.checkpoint_restore import RestoredCheckpoint
from legorun.processor.checkpoint_state import apply_record, process_state
from legorun.processor.cpu import Cpu
from legorun.processor.execve import ExecImage, exec_program, start_new_program
from legorun.processor.faultaddr import FaultAddress
from legorun.processor.fdtable import FdTable
from legorun.processor.children import Children
from legorun.processor.fork import fork_process
from legorun.processor.futexes import FutexTable
from legorun.processor.hostsignals import HostSignals
from legorun.processor.icount import InstructionCounter
from legorun.processor.files import HostStream
from legorun.processor.memory_client import MemoryClient
from legorun.processor.process import (
    FD_LIMIT_CAP,
    RLIMIT_NOFILE,
    FatalSignal,
    Ids,
    ProcessExit,
    ProcessState,
)
from legorun.processor.scheduler import Scheduler
from legorun.processor.signals import Signals
from legorun.processor.threads import ThreadGroup
from legorun.processor.core_turn import CoreTurn
from legorun.processor.shared_memory import SharedMappings
from legorun.processor.uaccess import UserMemory
from legorun.rpc.messages import ExecReply, ExecRequest, ExitRequest
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import Transport
from legorun.trace.instrument import Instrument, close_instruments
from syscalls.context import SyscallContext
from syscalls.dispatch import Dispatcher
from syscalls.errno import Errno, strerror
from syscalls.table import SyscallTable

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
        self.shared = SharedMappings(self.cpu, transport, self.excache.flush_tlb)
        self.excache.direct = self.shared
        self.vm.attach(self.excache, self.shared)
        self.core_turn = CoreTurn(lambda: self.shared.shared_with_others)
        # The transport's RPC accounting is the clock's remote time; counting instructions
        # costs a block hook, so it is added only when asked for (before the guest runs) or
        # when a second thread needs time slices.
        self._counter = (InstructionCounter(self.cpu, self.excache)
                         if config.count_instructions else None)
        self.clock = ModelledClock(config.clock_hz, config.cpi, rpc_stats, self._counter)
        self.fds = FdTable()
        self.host_signals = HostSignals(self.cpu.uc)
        self.futexes = FutexTable()
        self.dispatcher: Dispatcher | None = None
        self.threads: ThreadGroup | None = None  # these three once the program is loaded
        self.signals: Signals | None = None
        self.scheduler: Scheduler | None = None
        self.load_bias = 0  # of the running program: symbolizers add it to ELF addresses
        self.state: ProcessState | None = None  # once the first program is loaded
        self.forked = False  # this process is a child of another emulated process
        self.vfork_parent: int | None = None  # see fork.py: closed at exec or exit
        self.children = Children(transport)  # those it forked and has not reaped yet
        self.checkpoints: Checkpointer | None = None  # when the run takes checkpoints

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return self._instruments

    def request_image(self, path: str, argv: list[bytes], envp: list[bytes], execfn: bytes,
                      cwd: str) -> ExecReply:
        """Ask the memory manager to build the address space of the program at `path`."""
        # The auxiliary vector's ids: the process's own after an execve, legorun's at first.
        uids = self.state.uids if self.state is not None else Ids.of_user()
        gids = self.state.gids if self.state is not None else Ids.of_group()
        return self._transport.call(ExecRequest(
            pid=self.pid, path=path, argv=tuple(argv), envp=tuple(envp), execfn=execfn,
            uid=uids.real, euid=uids.effective, gid=gids.real, egid=gids.effective,
            hwcap=HWCAP_X86, random=os.urandom(16), sysroot=self._config.sysroot, cwd=cwd,
        ))

    def adopt_image(self, reply: ExecReply) -> None:
        """The memory manager built a new address space: nothing of the old one stays."""
        self.vm.exec_done(reply)
        self.load_bias = reply.load_bias

    def exec(self, path: str, argv: list[bytes], envp: list[bytes], execfn: bytes,
             cwd: str) -> tuple[int, int, ProcessState]:
        """Load the first program; returns (entry, sp, state)."""
        reply = self.request_image(path, argv, envp, execfn, cwd)
        if reply.status == Errno.ENOEXEC:
            raise LoaderError(reply.detail)
        if reply.status == Errno.ENOENT:
            raise ProgramNotFound(reply.detail if reply.detail != path
                                  else f"{path}: {strerror(reply.status)}")
        if reply.status:
            raise LoaderError(f"{path}: {strerror(reply.status)}")
        self.adopt_image(reply)
        state = ProcessState(pid=self.pid, exe=reply.program or path, cwd=cwd, argv=tuple(argv),
                             envp=tuple(envp), stack_start=reply.sp)
        return reply.entry, reply.sp, state

    def run(self, path: str, argv: list[bytes], envp: list[bytes], execfn: bytes,
            cwd: str) -> Exit:
        exit: Exit | None = None
        try:
            entry, sp, state = self.exec(path, argv, envp, execfn, cwd)
            exit = self._run_process(state, lambda: start_new_program(self.cpu, entry, sp))
            return exit
        finally:
            close_instruments(self._instruments, exit)

    def resume(self, checkpoint: RestoredCheckpoint) -> Exit:
        """Go on with the process of a checkpoint, whose address space the memory manager
        has put back (checkpoint_restore.py), from the instruction where it was taken."""
        exit: Exit | None = None
        try:
            self.pid = self.vm.pid = checkpoint.pid
            self.adopt_image(checkpoint.image)
            exit = self._run_process(process_state(checkpoint.record),
                                     lambda: self._resume_checkpoint(checkpoint))
            return exit
        finally:
            close_instruments(self._instruments, exit)

    def _resume_checkpoint(self, checkpoint: RestoredCheckpoint) -> None:
        assert self.checkpoints is not None  # a restored run goes on taking checkpoints
        self.checkpoints.resume_from(checkpoint.generation, checkpoint.outputs)
        apply_record(checkpoint.record, self, self.checkpoints.ledger)

    def _run_process(self, state: ProcessState, begin: Callable[[], None]) -> Exit:
        """Run the loaded process to its end: `begin` sets the CPU up once it is prepared."""
        try:
            self._prepare(state)
            begin()
            return self._execute()
        finally:
            if self.checkpoints is not None:
                self.checkpoints.close()
            if self.scheduler is not None:
                self.scheduler.shutdown()
            self.vm.unmap_shared()  # shared file pages go back to their files
            self.fds.close_all()  # as the kernel does at exit: hidden files go
            self.host_signals.close()
            self._transport.call(ExitRequest(self.pid))

    def _prepare(self, state: ProcessState) -> None:
        """Standard descriptors, the syscall dispatcher and the instruments' hooks."""
        self.state = state
        self.fds.limit = min(state.rlimits[RLIMIT_NOFILE][0], FD_LIMIT_CAP)
        for fd in self._config.inherited_fds:
            try:  # the guest inherits legorun's own descriptors, flags and all
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            except OSError:
                continue
            self.fds.install(fd, HostStream(fd, flags))
        mem = UserMemory(self.excache)
        table = SyscallTable.build()
        self.threads = ThreadGroup(self.pid, self._dispatch)
        self.signals = Signals(self.cpu, mem, state, self.threads, self.host_signals)
        self.scheduler = Scheduler(self.cpu, self.excache, self._mapped,
                                   FaultAddress(self.cpu, mem.read), self.signals,
                                   self.futexes, self._instruction_counter, self._config.seed,
                                   self.core_turn)
        context = SyscallContext(
            mem=mem, vm=self.vm, storage=self._transport, fds=self.fds,
            proc=state, cpu=self.cpu, warn=self._warn, process=self, threads=self.threads,
            signals=self.signals, futexes=self.futexes,
        )
        self.dispatcher = Dispatcher(table, context, self._warn)
        self.cpu.set_syscall_handler(self.scheduler.syscall)
        if self._config.checkpoint_interval_s:
            self.checkpoints = Checkpointer(self, self._config.checkpoint_name,
                                            self._config.checkpoint_interval_s)
            self.scheduler.checkpoints = self.checkpoints
        for instrument in self._instruments:
            instrument.attach(self)

    def _dispatch(self, nr: int, args: tuple[int, ...]) -> int:
        """Where every thread's syscalls go (on the thread's runner)."""
        assert self.dispatcher is not None
        return self.dispatcher(nr, args)

    def _mapped(self, addr: int) -> bool:
        return self.vm.lookup(addr) is not None

    def _instruction_counter(self) -> InstructionCounter:
        """The instruction counter, added now if the run did not ask for one."""
        if self._counter is None:
            self._counter = InstructionCounter(self.cpu, self.excache)
        return self._counter

    def _execute(self) -> Exit:
        try:
            self._run_programs()
        except ProcessExit as done:
            return Exit(status=done.status)
        except FatalSignal as fatal:
            return Exit(signal=fatal.signal)

    def _run_programs(self) -> NoReturn:
        """Run the guest (the CPU holds its registers) until it ends; after a successful
        execve the new program starts on the same CPU."""
        assert self.scheduler is not None
        while True:
            try:
                self.scheduler.run()
            except ExecImage as image:
                start_new_program(self.cpu, image.entry, image.sp)

    # ------------------------------------------------------------ processes (SyscallContext.process)

    def fork(self, vfork: bool) -> int:
        """A child process: its pid here, 0 in the child (see fork.py)."""
        if self.checkpoints is not None:
            self.checkpoints.refuse_fork()
        return fork_process(self, vfork)

    def become_child(self, pid: int, parent: int) -> None:
        """In a new child, whose snapshot the memory manager holds under `pid`."""
        assert self.state is not None
        self.forked = True
        self.pid = self.vm.pid = self.state.pid = pid
        assert self.threads is not None
        self.threads.keep_only_current(pid)  # only the forking thread lives on
        assert self.signals is not None
        self.signals.forked(self.threads.current)
        self.state.ppid = parent
        self.state.start_monotonic = time.monotonic()

    def execve(self, path: str, argv: list[bytes], envp: list[bytes], execfn: bytes) -> NoReturn:
        """Replace the running program (see execve.py); raises ExecImage or SyscallError."""
        exec_program(self, path, argv, envp, execfn)


class Warn:
    """Writes legorun's own warnings, one line each, prefixed so they never pass as the
    guest's output."""

    def __call__(self, message: str) -> None:
        os.write(2, f"legorun: warning: {message}\n".encode(errors="replace"))
