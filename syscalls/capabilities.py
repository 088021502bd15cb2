"""Capabilities: capget. See capabilities(7) and capget(2).

The guest runs with the credentials of the processor's host process, so its capability sets
are that process's, read from the host kernel, which also checks the header's version (and
writes back the one it prefers) exactly as for a native call. Changing them (capset) would
change legorun's own: it is not offered.
"""

from __future__ import annotations

import ctypes
import struct

from legorun.processor.hostlib import libc
from syscalls.args import Ptr
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

HEADER = struct.Struct("<Ii")  # struct __user_cap_header_struct: version, pid
LINUX_CAPABILITY_VERSION_1 = 0x19980330
DATA_SIZE = 12  # struct __user_cap_data_struct: effective, permitted, inheritable


def sys_capget(ctx: SyscallContext, hdrp: Ptr, datap: Ptr) -> int:
    version, pid = HEADER.unpack(ctx.mem.read(hdrp, HEADER.size))
    header = ctypes.create_string_buffer(HEADER.pack(version, 0), HEADER.size)
    # Version 1 has one 32-bit set of each kind; versions 2 and 3 have two.
    data = ctypes.create_string_buffer(2 * DATA_SIZE)
    failed = libc().capget(header, data if datap else None) < 0
    code = ctypes.get_errno()
    host_version = HEADER.unpack(header.raw)[0]
    if host_version != version:
        ctx.mem.write(hdrp, HEADER.pack(host_version, pid))  # the kernel's preferred version
    if failed:
        raise SyscallError(Errno(code))
    if host_version != version:
        return 0  # NULL data with an unknown version: a query for the kernel's version
    if pid < 0:
        raise SyscallError(Errno.EINVAL)
    if pid not in (0, ctx.proc.pid):
        raise SyscallError(Errno.ESRCH)
    if datap:
        count = 1 if version == LINUX_CAPABILITY_VERSION_1 else 2
        ctx.mem.write(datap, data.raw[: count * DATA_SIZE])
    return 0
