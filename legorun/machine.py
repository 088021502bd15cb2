"""The disaggregated machine, wired top to bottom: a storage manager, a memory manager and
a processor, joined by a transport that counts every RPC.

By default all three run in this process (the embedded machine) over the in-process
transport.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from legorun.config import MachineConfig, TraceConfig
from legorun.errors import LegorunError, LoaderError, ProgramNotFound, RpcError
from legorun.managers.confine import PathResolver
from legorun.managers.memory import MemoryManager
from legorun.managers.storage import StorageManager
from legorun.processor.checkpoint_restore import fetch_checkpoint
from legorun.processor.processor import Exit, Processor, Warn
from legorun.rpc.messages import StatReply, StatRequest
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import LocalTransport
from legorun.stats import RunStats
from legorun.trace.instrument import RunContext, close_instruments
from legorun.trace.instruments import build_instruments
from syscalls.errno import Errno, SyscallError, strerror

if TYPE_CHECKING:
    from legorun.rpc.remote import RemoteChannel

S_IFMT, S_IFDIR, S_IFREG = 0o170000, 0o040000, 0o100000


@dataclass(frozen=True, slots=True)
class RunResult:
    exit: Exit
    stats: RunStats
    forked: bool = False  # this is a child process the guest forked, not the one started


class Machine:
    def __init__(self, config: MachineConfig, trace: TraceConfig | None = None) -> None:
        self.config = config
        self.trace = trace or TraceConfig()
        self.rpc_stats = RpcStats()
        self._processor_id = int.from_bytes(os.urandom(8), "little") >> 1
        self.transport = LocalTransport(config.network, self.rpc_stats)
        if config.storage_server:
            self.transport.connect(self._channel(config.storage_server, "storage"))
        else:
            self.transport.register(StorageManager(config.root).handlers())
        if config.memory_servers:
            from legorun.rpc.memory_routing import MemoryRouter

            channels = [self._channel(address, "memory", storage=config.storage_server)
                        for address in config.memory_servers]
            self.transport.route(MemoryRouter(channels, config.placement,
                                              self.transport.record, self.rpc_stats))
        else:
            self.transport.register(MemoryManager(self.transport.call).handlers())
        self.warn = Warn()

    def close(self) -> None:
        """The connections to manager servers end with the run."""
        self.transport.close()

    def _channel(self, address: str, role: str, storage: str = "") -> RemoteChannel:
        from legorun.rpc.remote import ChannelOptions, RemoteChannel
        from legorun.rpc.security import HandshakeWatch, client_configure

        keys = client_configure(self.config.key_file) if self.config.key_file else None
        watch = HandshakeWatch(keys)
        options = ChannelOptions(timeout_s=self.config.rpc_timeout_s, configure=watch.configure)
        try:
            # The run's processor id: its forked children inherit it with the machine.
            return RemoteChannel(address, role, options, processor=self._processor_id,
                                 storage=storage)
        except RpcError as error:
            raise watch.explain(error, role, address) from None
        finally:
            watch.close()

    def guest_cwd(self) -> str:
        """The guest starts where legorun was started, seen from inside the root if any."""
        host = Path.cwd()
        if self.config.root is None:
            return str(host)
        root = self.config.root.resolve()
        return "/" + str(host.relative_to(root)) if host.is_relative_to(root) else "/"

    def guest_path(self, program: str, cwd: str) -> str:
        return os.path.normpath(os.path.join(cwd, program))

    def host_path(self, path: str) -> Path:
        """The program's file on this host (for symbols); the guest path itself when it
        cannot be resolved, which check_program then reports."""
        try:
            return Path(PathResolver(self.config.root).resolve(path))
        except SyscallError:
            return Path(path)

    def check_program(self, path: str, shown: str) -> None:
        """Fail as a shell would before exec: 127 for missing, 126 for not executable."""
        reply: StatReply = self.transport.call(StatRequest(path, True))
        if reply.status == Errno.ENOENT or reply.status == Errno.ENOTDIR:
            raise ProgramNotFound(f"{shown}: {strerror(reply.status)}")
        if reply.status or reply.stat is None:
            raise LoaderError(f"{shown}: {strerror(reply.status or Errno.EIO)}")
        mode = reply.stat.mode
        if mode & S_IFMT == S_IFDIR:
            raise LoaderError(f"{shown}: Is a directory")
        if mode & S_IFMT != S_IFREG or not mode & 0o111:
            raise LoaderError(f"{shown}: Permission denied")

    def run(self, program: str, args: list[str], env: dict[str, str],
            argv0: str | None = None) -> RunResult:
        cwd = self.guest_cwd()
        path = self.guest_path(program, cwd)
        shown_argv = (argv0 if argv0 is not None else program, *args)
        # Instruments first, so that traces see every RPC of the run (the program check too).
        instruments = build_instruments(RunContext(
            machine=self.config, trace=self.trace, program=self.host_path(path),
            argv=shown_argv, pid=os.getpid(), transport=self.transport,
            rpc_stats=self.rpc_stats,
        ))
        try:
            self.check_program(path, program)
        except LegorunError:
            close_instruments(instruments, None)
            raise
        processor = Processor(self.config, self.transport, self.rpc_stats, self.warn,
                              instruments)
        argv = [os.fsencode(arg) for arg in shown_argv]
        envp = [os.fsencode(f"{key}={value}") for key, value in env.items()]
        exit = processor.run(path, argv, envp, os.fsencode(program), cwd)
        return RunResult(exit, RunStats.collect(processor, self.rpc_stats), processor.forked)

    def restore(self, name: str) -> RunResult:
        """Go on with the process of checkpoint `name` at the memory server (see
        processor/checkpoint.py); the run takes checkpoints as the checkpointed one did, under
        the same name unless the configuration names another."""
        checkpoint = fetch_checkpoint(self.transport, name)
        config = replace(
            self.config,
            checkpoint_interval_s=(self.config.checkpoint_interval_s
                                   or checkpoint.record.interval_s),
            checkpoint_name=self.config.checkpoint_name or name,
        )
        instruments = build_instruments(RunContext(
            machine=config, trace=self.trace, program=self.host_path(checkpoint.exe),
            argv=checkpoint.argv, pid=checkpoint.pid, transport=self.transport,
            rpc_stats=self.rpc_stats,
        ))
        processor = Processor(config, self.transport, self.rpc_stats, self.warn, instruments)
        exit = processor.resume(checkpoint)
        return RunResult(exit, RunStats.collect(processor, self.rpc_stats), processor.forked)
