"""Memory protection keys: pkey_alloc, pkey_free, pkey_mprotect. See pkeys(7).

The emulated processor has no protection keys (CPUID leaf 7 does not advertise PKU), so
these answer as Linux does on such a CPU: no key can be allocated or freed (EINVAL, the
kernel's answer when the CPU cannot set a key's rights), and pkey_mprotect is mprotect
when its key is -1 ("leave the key alone"). Programs that probe for keys (V8, glibc) then
carry on without them.
"""

from __future__ import annotations

from syscalls.args import Int, Ptr, Size, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.mm import sys_mprotect

NO_KEY = -1


def sys_pkey_alloc(ctx: SyscallContext, flags: UInt, access_rights: UInt) -> int:
    raise SyscallError(Errno.EINVAL)


def sys_pkey_free(ctx: SyscallContext, pkey: Int) -> int:
    raise SyscallError(Errno.EINVAL)


def sys_pkey_mprotect(ctx: SyscallContext, addr: Ptr, length: Size, prot: ULong,
                      pkey: Int) -> int:
    if pkey != NO_KEY:
        raise SyscallError(Errno.EINVAL)
    return sys_mprotect(ctx, addr, length, prot)
