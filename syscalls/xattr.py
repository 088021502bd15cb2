"""Extended attributes: getxattr, lgetxattr, fgetxattr, listxattr, llistxattr, flistxattr,
setxattr, lsetxattr, fsetxattr, removexattr, lremovexattr and fremovexattr. See xattr(7),
getxattr(2), listxattr(2), setxattr(2) and removexattr(2).

Attributes belong to files, so they live at the storage manager (P2S_GETXATTR and friends,
which honour --root). The f* calls on a pipe, socket or inherited stream act on the
processor's host descriptor instead: such a file is processor-local I/O, not storage. The
processor checks names and sizes as fs/xattr.c does, in its order, and applies the caller's
buffer size to the whole value or list it gets: size 0 asks for the length, a buffer too
small is ERANGE.
"""

from __future__ import annotations

import os

from legorun.processor.files import host_call
from legorun.rpc.messages import (
    DataReply,
    GetxattrRequest,
    ListxattrRequest,
    RemovexattrRequest,
    SetxattrRequest,
)
from syscalls.args import AT_FDCWD, CStr, Fd, Int, Ptr, Size
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import at_path, call_storage, fd_file, fd_path

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 1 << 16
XATTR_LIST_MAX = 1 << 16
XATTR_CREATE, XATTR_REPLACE = 1, 2

# Where an attribute call acts: a guest path at the storage manager, or a host descriptor.
Target = str | int


def _path(ctx: SyscallContext, pathname: int) -> Target:
    return at_path(ctx, AT_FDCWD, pathname)


def _fd(ctx: SyscallContext, fd: int) -> Target:
    """The target of an f* call; an O_PATH descriptor is EBADF, as fdget makes it."""
    file = fd_file(ctx, fd)
    host = file.host_fd()
    return host if file.path is None and host is not None else fd_path(ctx, fd)


def _name(ctx: SyscallContext, name: int) -> bytes:
    """The attribute name: ERANGE when empty or longer than XATTR_NAME_MAX."""
    raw = ctx.mem.read_cstr(name, XATTR_NAME_MAX + 1)
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise SyscallError(Errno.ERANGE)
    return raw


def _copy_out(ctx: SyscallContext, data: bytes, buf: int, size: int, limit: int) -> int:
    """Give the guest `data` as getxattr and listxattr do: size 0 asks for the length."""
    if size == 0:
        return len(data)
    size = min(size, limit)
    if len(data) > size:
        raise SyscallError(Errno.E2BIG if size == limit else Errno.ERANGE)
    ctx.mem.write(buf, data)
    return len(data)


# ---------------------------------------------------------------- get


def _get(ctx: SyscallContext, target: Target, name: bytes, value: int, size: int,
         follow: bool) -> int:
    if isinstance(target, int):
        data = host_call(lambda: os.getxattr(target, name))
    else:
        reply: DataReply = call_storage(ctx, GetxattrRequest(target, name, follow))
        data = reply.data
    return _copy_out(ctx, data, value, size, XATTR_SIZE_MAX)


def sys_getxattr(ctx: SyscallContext, path: CStr, name: CStr, value: Ptr, size: Size) -> int:
    key = _name(ctx, name)
    return _get(ctx, _path(ctx, path), key, value, size, True)


def sys_lgetxattr(ctx: SyscallContext, path: CStr, name: CStr, value: Ptr, size: Size) -> int:
    key = _name(ctx, name)
    return _get(ctx, _path(ctx, path), key, value, size, False)


def sys_fgetxattr(ctx: SyscallContext, fd: Fd, name: CStr, value: Ptr, size: Size) -> int:
    target = _fd(ctx, fd)
    return _get(ctx, target, _name(ctx, name), value, size, True)


# ---------------------------------------------------------------- list


def _list(ctx: SyscallContext, target: Target, buf: int, size: int, follow: bool) -> int:
    if isinstance(target, int):
        names = host_call(lambda: os.listxattr(target))
        data = b"".join(os.fsencode(name) + b"\0" for name in names)
    else:
        reply: DataReply = call_storage(ctx, ListxattrRequest(target, follow))
        data = reply.data
    return _copy_out(ctx, data, buf, size, XATTR_LIST_MAX)


def sys_listxattr(ctx: SyscallContext, path: CStr, list: Ptr, size: Size) -> int:
    return _list(ctx, _path(ctx, path), list, size, True)


def sys_llistxattr(ctx: SyscallContext, path: CStr, list: Ptr, size: Size) -> int:
    return _list(ctx, _path(ctx, path), list, size, False)


def sys_flistxattr(ctx: SyscallContext, fd: Fd, list: Ptr, size: Size) -> int:
    return _list(ctx, _fd(ctx, fd), list, size, True)


# ---------------------------------------------------------------- set and remove


def _value(ctx: SyscallContext, name: int, value: int, size: int,
           flags: int) -> tuple[bytes, bytes]:
    """The (name, value) of a set call, checked in the order fs/xattr.c checks them."""
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise SyscallError(Errno.EINVAL)
    key = _name(ctx, name)
    if size > XATTR_SIZE_MAX:
        raise SyscallError(Errno.E2BIG)
    return key, ctx.mem.read(value, size)


def _set(ctx: SyscallContext, target: Target, name: bytes, data: bytes, flags: int,
         follow: bool) -> int:
    if isinstance(target, int):
        host_call(lambda: os.setxattr(target, name, data, flags))
    else:
        call_storage(ctx, SetxattrRequest(target, name, data, flags, follow))
    return 0


def sys_setxattr(ctx: SyscallContext, path: CStr, name: CStr, value: Ptr, size: Size,
                 flags: Int) -> int:
    key, data = _value(ctx, name, value, size, flags)
    return _set(ctx, _path(ctx, path), key, data, flags, True)


def sys_lsetxattr(ctx: SyscallContext, path: CStr, name: CStr, value: Ptr, size: Size,
                  flags: Int) -> int:
    key, data = _value(ctx, name, value, size, flags)
    return _set(ctx, _path(ctx, path), key, data, flags, False)


def sys_fsetxattr(ctx: SyscallContext, fd: Fd, name: CStr, value: Ptr, size: Size,
                  flags: Int) -> int:
    target = _fd(ctx, fd)
    key, data = _value(ctx, name, value, size, flags)
    return _set(ctx, target, key, data, flags, True)


def _remove(ctx: SyscallContext, target: Target, name: bytes, follow: bool) -> int:
    if isinstance(target, int):
        host_call(lambda: os.removexattr(target, name))
    else:
        call_storage(ctx, RemovexattrRequest(target, name, follow))
    return 0


def sys_removexattr(ctx: SyscallContext, path: CStr, name: CStr) -> int:
    key = _name(ctx, name)
    return _remove(ctx, _path(ctx, path), key, True)


def sys_lremovexattr(ctx: SyscallContext, path: CStr, name: CStr) -> int:
    key = _name(ctx, name)
    return _remove(ctx, _path(ctx, path), key, False)


def sys_fremovexattr(ctx: SyscallContext, fd: Fd, name: CStr) -> int:
    target = _fd(ctx, fd)
    return _remove(ctx, target, _name(ctx, name), True)
