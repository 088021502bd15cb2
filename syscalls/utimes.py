"""The older ways to set file times: utime, utimes and futimesat. See utime(2) and
utimes(2). Each becomes the storage manager's P2S_UTIMENS, as utimensat does (paths.py);
"now" is the processor's clock."""

from __future__ import annotations

import time

from legorun.rpc.messages import UtimensRequest
from syscalls.args import AT_FDCWD, CStr, Fd, Ptr
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import at_path, call_storage, fd_path


def _set_times(ctx: SyscallContext, path: str, times_ns: tuple[int, int] | None) -> int:
    now = time.time_ns()
    atime, mtime = times_ns if times_ns is not None else (now, now)
    call_storage(ctx, UtimensRequest(path, atime, mtime, True))
    return 0


def _timevals(ctx: SyscallContext, tvp: int) -> tuple[int, int] | None:
    """struct timeval[2] (access, modification) in ns; None for NULL, which means now."""
    if not tvp:
        return None
    asec, ausec, msec, musec = ctx.mem.read_struct("<qqqq", tvp)
    if not 0 <= ausec < 1_000_000 or not 0 <= musec < 1_000_000:
        raise SyscallError(Errno.EINVAL)
    return asec * 10**9 + ausec * 1000, msec * 10**9 + musec * 1000


def sys_utime(ctx: SyscallContext, filename: CStr, times: Ptr) -> int:
    given = None
    if times:
        actime, modtime = ctx.mem.read_struct("<qq", times)  # struct utimbuf
        given = (actime * 10**9, modtime * 10**9)
    return _set_times(ctx, at_path(ctx, AT_FDCWD, filename), given)


def sys_utimes(ctx: SyscallContext, filename: CStr, times: Ptr) -> int:
    given = _timevals(ctx, times)
    return _set_times(ctx, at_path(ctx, AT_FDCWD, filename), given)


def sys_futimesat(ctx: SyscallContext, dirfd: Fd, pathname: CStr, times: Ptr) -> int:
    given = _timevals(ctx, times)
    # A NULL pathname names the file open at dirfd (what futimes(3) uses).
    path = at_path(ctx, dirfd, pathname) if pathname else fd_path(ctx, dirfd)
    return _set_times(ctx, path, given)
