"""What a syscall handler may use: a narrow view of the processor, not the whole machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from legorun.processor.cpu import Cpu
from legorun.processor.fdtable import FdTable
from legorun.processor.memory_client import MemoryClient
from legorun.processor.process import ProcessState
from legorun.processor.uaccess import UserMemory
from legorun.rpc.transport import Transport


@dataclass(slots=True)
class SyscallContext:
    mem: UserMemory  # guest memory, through the ExCache
    vm: MemoryClient  # address-space calls (RPCs to the memory manager)
    storage: Transport  # P2S requests to the storage manager
    fds: FdTable
    proc: ProcessState
    cpu: Cpu
    warn: Callable[[str], None]
