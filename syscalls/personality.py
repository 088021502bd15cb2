"""The execution domain: personality. See personality(2).

The emulated core runs on the processor's host process, so the guest's persona is that
process's: querying (0xffffffff) and setting it act there, as they would for a native run.
"""

from __future__ import annotations

import ctypes

from legorun.processor.hostlib import libc
from syscalls.args import UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

QUERY = 0xFFFFFFFF


def sys_personality(ctx: SyscallContext, persona: UInt) -> int:
    result = libc().personality(persona)
    if result == -1:
        raise SyscallError(Errno(ctypes.get_errno() or Errno.EINVAL))
    return result & 0xFFFFFFFF
