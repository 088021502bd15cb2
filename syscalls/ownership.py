"""File ownership: chown, fchown, lchown and fchownat. See chown(2).

The storage manager changes the owner (P2S_CHOWN, honouring --root); an owner or group of
-1 leaves it unchanged. A pipe or socket has no file on the storage manager: its owner is
that of the processor's host descriptor.
"""

from __future__ import annotations

import os

from legorun.processor.files import host_call
from legorun.rpc.messages import ChownRequest
from syscalls.args import AT_FDCWD, CStr, Fd, Int, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, at_path, call_storage, fd_file

UNCHANGED = 0xFFFFFFFF  # (uid_t)-1


def _id(value: int) -> int:
    return -1 if value == UNCHANGED else value


def _chown(ctx: SyscallContext, path: str, owner: int, group: int, follow: bool) -> int:
    call_storage(ctx, ChownRequest(path, _id(owner), _id(group), follow))
    return 0


def sys_chown(ctx: SyscallContext, pathname: CStr, owner: UInt, group: UInt) -> int:
    return _chown(ctx, at_path(ctx, AT_FDCWD, pathname), owner, group, True)


def sys_lchown(ctx: SyscallContext, pathname: CStr, owner: UInt, group: UInt) -> int:
    return _chown(ctx, at_path(ctx, AT_FDCWD, pathname), owner, group, False)


def sys_fchownat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, owner: UInt, group: UInt,
                 flags: Int) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(Errno.EINVAL)
    path = at_path(ctx, dirfd, pathname, flags)
    return _chown(ctx, path, owner, group, not flags & AT_SYMLINK_NOFOLLOW)


def sys_fchown(ctx: SyscallContext, fd: Fd, owner: UInt, group: UInt) -> int:
    file = fd_file(ctx, fd)
    host = file.host_fd()
    if file.path is None and host is not None:
        host_call(lambda: os.fchown(host, _id(owner), _id(group)))
        return 0
    if file.path is None:
        raise SyscallError(Errno.EOPNOTSUPP)
    return _chown(ctx, file.path, owner, group, True)
