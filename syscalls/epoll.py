"""I/O event notification: epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait
and epoll_pwait2. See epoll(7), epoll_create(2), epoll_ctl(2) and epoll_wait(2).

The epoll instance is a host epoll owned by the processor (processor/epoll.py); handlers
check arguments in the order fs/eventpoll.c does and copy struct epoll_event in and out.
"""

from __future__ import annotations

import struct

from legorun.processor.epoll import EPOLL_CTL_DEL, Epoll
from syscalls.args import Fd, Int, Ptr, Size
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.paths import fd_file
from syscalls.poll import sigmask_during
from syscalls.time import read_timespec

EPOLL_CLOEXEC = 0o2000000
EPOLL_EVENT = struct.Struct("<IQ")  # struct epoll_event is packed on x86-64: 12 bytes
EP_MAX_EVENTS = 0x7FFFFFFF // EPOLL_EVENT.size


def _create(ctx: SyscallContext, flags: int) -> int:
    return ctx.fds.allocate_new(Epoll(), cloexec=bool(flags & EPOLL_CLOEXEC))


def sys_epoll_create(ctx: SyscallContext, size: Int) -> int:
    if size <= 0:
        raise SyscallError(Errno.EINVAL)
    return _create(ctx, 0)


def sys_epoll_create1(ctx: SyscallContext, flags: Int) -> int:
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(Errno.EINVAL)
    return _create(ctx, flags)


def sys_epoll_ctl(ctx: SyscallContext, epfd: Fd, op: Int, fd: Fd, event: Ptr) -> int:
    events = data = 0
    if op != EPOLL_CTL_DEL:
        events, data = ctx.mem.read_struct(EPOLL_EVENT.format, event)
    epoll = fd_file(ctx, epfd)
    target = fd_file(ctx, fd)
    if not isinstance(epoll, Epoll):
        raise SyscallError(Errno.EPERM if target.host_fd() is None else Errno.EINVAL)
    epoll.control(op, fd, target, events, data)
    return 0


def _wait(ctx: SyscallContext, epfd: int, events: int, maxevents: int,
          timeout_ns: int | None) -> int:
    if not 0 < maxevents <= EP_MAX_EVENTS:
        raise SyscallError(Errno.EINVAL)
    epoll = ctx.fds.get(epfd)
    if not isinstance(epoll, Epoll):
        raise SyscallError(Errno.EINVAL)
    ready = epoll.wait(maxevents, timeout_ns)
    ctx.mem.write(events, b"".join(EPOLL_EVENT.pack(mask, data) for mask, data in ready))
    return len(ready)


def _ms(timeout: int) -> int | None:
    return None if timeout < 0 else timeout * 1_000_000


def sys_epoll_wait(ctx: SyscallContext, epfd: Fd, events: Ptr, maxevents: Int,
                   timeout: Int) -> int:
    return _wait(ctx, epfd, events, maxevents, _ms(timeout))


def sys_epoll_pwait(ctx: SyscallContext, epfd: Fd, events: Ptr, maxevents: Int, timeout: Int,
                    sigmask: Ptr, sigsetsize: Size) -> int:
    with sigmask_during(ctx, sigmask, sigsetsize):
        return _wait(ctx, epfd, events, maxevents, _ms(timeout))


def sys_epoll_pwait2(ctx: SyscallContext, epfd: Fd, events: Ptr, maxevents: Int,
                     timeout: Ptr, sigmask: Ptr, sigsetsize: Size) -> int:
    timeout_ns = read_timespec(ctx, timeout) if timeout else None
    with sigmask_during(ctx, sigmask, sigsetsize):
        return _wait(ctx, epfd, events, maxevents, timeout_ns)
