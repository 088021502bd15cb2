"""Memory barriers across the process's threads: membarrier. See membarrier(2).

The emulated core runs on the processor's host process, so the barrier, its registrations
and the commands the kernel supports (MEMBARRIER_CMD_QUERY) are that process's; the host
kernel answers them as it would for the native program. With one core and one thread the
barrier itself has nothing to order.
"""

from __future__ import annotations

from legorun.processor.files import host_call
from legorun.processor.hostlib import checked, libc
from syscalls.args import Int, UInt
from syscalls.context import SyscallContext

SYS_MEMBARRIER = 324


def sys_membarrier(ctx: SyscallContext, cmd: Int, flags: UInt, cpu_id: Int) -> int:
    return host_call(lambda: checked(libc().syscall(SYS_MEMBARRIER, cmd, flags, cpu_id)))
