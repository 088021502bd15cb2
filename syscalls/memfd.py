"""memfd_create(2): an anonymous file in memory.

The storage manager knows files by path only, so a memfd is a file under a hidden name in
/dev/shm (or /tmp where there is none), which this process removes when its last descriptor
for it closes, as it does a file unlinked while open (processor/unlinked.py).
/proc/self/fd shows it as Linux does, "/memfd:NAME (deleted)". It is sized with ftruncate,
read, written and mapped like any file; a MAP_SHARED mapping of it is shared with the
children that inherit it (processor/shared_memory.py). Seals are not kept: every memfd is
made as one without MFD_ALLOW_SEALING is, sealed against sealing (F_SEAL_SEAL), so
F_ADD_SEALS fails with EPERM.
"""

from __future__ import annotations

import os

from legorun.processor import unlinked
from legorun.processor.files import StorageFile
from legorun.rpc.messages import OpenRequest, StatRequest
from syscalls.args import CStr, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.flags import O_CREAT, O_EXCL, O_LARGEFILE, O_RDWR
from syscalls.paths import call_storage

MFD_CLOEXEC = 0x1
MFD_ALLOW_SEALING = 0x2
MFD_HUGETLB = 0x4
MFD_NOEXEC_SEAL = 0x8
MFD_EXEC = 0x10
MFD_HUGE_SHIFT, MFD_HUGE_MASK = 26, 0x3F  # a huge page size with MFD_HUGETLB
F_ADD_SEALS, F_GET_SEALS = 1033, 1034
F_SEAL_SEAL = 0x1
NAME_MAX = 249  # NAME_MAX - strlen("memfd:")
DIRECTORIES = ("/dev/shm", "/tmp")


class MemoryFile(StorageFile):
    """A memfd: a storage file this process removes on close, named as Linux names it."""

    def __init__(self, ctx: SyscallContext, path: str, name: str) -> None:
        super().__init__(ctx.storage, path, O_RDWR | O_LARGEFILE, ctx.vm.shared)
        self.name = name
        self.remove_on_close = os.getpid()

    def fd_link(self) -> str:
        return f"/memfd:{self.name} (deleted)"


def sys_memfd_create(ctx: SyscallContext, name: CStr, flags: UInt) -> int:
    known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
    if flags & MFD_HUGETLB:
        known |= MFD_HUGE_MASK << MFD_HUGE_SHIFT
    if flags & ~known or flags & MFD_EXEC and flags & MFD_NOEXEC_SEAL:
        raise SyscallError(Errno.EINVAL)
    label = ctx.mem.read_cstr(name, NAME_MAX + 1)
    if len(label) > NAME_MAX:
        raise SyscallError(Errno.EINVAL)
    path = unlinked.hidden_path(_directory(ctx))
    call_storage(ctx, OpenRequest(path, O_RDWR | O_CREAT | O_EXCL, 0o600))
    file = MemoryFile(ctx, path, os.fsdecode(label))
    return ctx.fds.allocate(file, cloexec=bool(flags & MFD_CLOEXEC))


def _directory(ctx: SyscallContext) -> str:
    for directory in DIRECTORIES:
        if not ctx.storage.call(StatRequest(directory)).status:
            return directory
    raise SyscallError(Errno.ENOSPC)  # nowhere to keep its pages


def fcntl_seals(file: object, cmd: int) -> int:
    """F_GET_SEALS and F_ADD_SEALS: only a memfd has seals."""
    if not isinstance(file, MemoryFile):
        raise SyscallError(Errno.EINVAL)
    if cmd == F_ADD_SEALS:
        raise SyscallError(Errno.EPERM)
    return F_SEAL_SEAL
