"""Whole-file advisory locks: flock. See flock(2).

A flock lock belongs to an open file description, so two descriptions of one file conflict
even within one process (unlike fcntl record locks, see descriptors.py). The processor keeps
the lock on the description (`OpenFile.flock`) and finds conflicts among the descriptions in
its fd table; a description's lock goes away when its last descriptor closes. Locks are the
processor's: the storage manager keeps no state, so they do not reach other programs that
lock the same host file.
"""

from __future__ import annotations

from legorun.processor.files import OpenFile
from legorun.processor.wait import wait_until
from syscalls.args import Fd, Int
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import fd_file

LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8


def _conflicts(ctx: SyscallContext, file: OpenFile, key: tuple[int, int], mode: int) -> bool:
    holders = {id(other): other for other in map(ctx.fds.get, ctx.fds.fds())}
    return any(other is not file and other.flock is not None and other.flock[0] == key
               and (mode == LOCK_EX or other.flock[1] == LOCK_EX)
               for other in holders.values())


def sys_flock(ctx: SyscallContext, fd: Fd, operation: Int) -> int:
    file = fd_file(ctx, fd)
    mode = operation & ~LOCK_NB
    if mode not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise SyscallError(Errno.EINVAL)
    # As Linux, a conversion drops the old lock first: it is not atomic.
    file.flock = None
    if mode == LOCK_UN:
        return 0
    st = file.stat()
    key = (st.dev, st.ino)
    if _conflicts(ctx, file, key, mode):
        if operation & LOCK_NB:
            raise SyscallError(Errno.EAGAIN)  # EWOULDBLOCK
        wait_until(lambda: not _conflicts(ctx, file, key, mode),
                   f"a flock on {file.fd_link()} that this process holds elsewhere")
    file.flock = (key, mode)
    return 0
