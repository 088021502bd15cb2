"""What a syscall handler may use: a narrow view of the processor, not the whole machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NoReturn, Protocol

from legorun.processor.children import Children
from legorun.processor.cpu import Cpu
from legorun.processor.fdtable import FdTable
from legorun.processor.futexes import FutexTable
from legorun.processor.memory_client import MemoryClient
from legorun.processor.process import ProcessState
from legorun.processor.signals import Signals
from legorun.processor.threads import ThreadGroup
from legorun.processor.uaccess import UserMemory
from legorun.rpc.transport import Transport


class ProcessControl(Protocol):
    """What only the processor as a whole can do to its process: make a child, replace
    the program."""

    children: Children  # the ones not reaped yet

    def fork(self, vfork: bool) -> int: ...

    def execve(self, path: str, argv: list[bytes], envp: list[bytes],
               execfn: bytes) -> NoReturn: ...


@dataclass(slots=True)
class SyscallContext:
    mem: UserMemory  # guest memory, through the ExCache
    vm: MemoryClient  # address-space calls (RPCs to the memory manager)
    storage: Transport  # P2S requests to the storage manager
    fds: FdTable
    proc: ProcessState
    cpu: Cpu
    warn: Callable[[str], None]
    process: ProcessControl  # fork and execve
    threads: ThreadGroup  # the calling thread (threads.current) and its siblings
    signals: Signals  # actions, pending signals, delivery, interval timers
    futexes: FutexTable
