"""Waiting for several descriptors: poll, ppoll, select and pselect6. See poll(2) and
select(2).

Readiness comes from `processor.wait.wait_until_ready`, the one place where the processor
blocks: host descriptors (pipes, sockets, eventfds, terminals) report what the host kernel
says, files on the storage manager are always ready, as regular files are on Linux.

The signal masks of ppoll and pselect6 are checked and otherwise have no effect: no signal
is delivered while the guest waits.
"""

from __future__ import annotations

import struct
import time
from contextlib import contextmanager
from typing import Iterator

from legorun.cache.excache import GuestFault
from legorun.processor.files import O_PATH
from legorun.processor.signals import UNBLOCKABLE
from legorun.processor.wait import (
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    POLLPRI,
    POLLRDBAND,
    POLLRDNORM,
    POLLWRBAND,
    POLLWRNORM,
    wait_until_ready,
)
from syscalls.args import Int, Ptr, Size, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.time import read_timespec

RLIMIT_NOFILE = 7
SIGSET_SIZE = 8
POLLFD = struct.Struct("<iHH")  # struct pollfd: fd, events, revents
# What select counts as readable, writable and exceptional (fs/select.c).
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
FD_TABLE_MIN = 64  # NR_OPEN_DEFAULT: the smallest fd table Linux gives a process


@contextmanager
def sigmask_during(ctx: SyscallContext, sigmask: int, sigsetsize: int) -> Iterator[None]:
    """The temporary signal mask of ppoll, pselect6 and epoll_pwait: it holds while the call
    waits. A wait cut short by a signal (EINTR) leaves the old mask for the signal frame to
    restore after the handler, as sigsuspend does; any other end restores it at once."""
    if not sigmask:
        yield
        return
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(Errno.EINVAL)
    mask = ctx.mem.read_u64(sigmask)
    thread = ctx.threads.current
    saved = thread.sigmask
    thread.temporary_mask, thread.sigmask = saved, mask & ~UNBLOCKABLE
    try:
        yield
    except SyscallError as error:
        if error.errno != Errno.EINTR:
            thread.sigmask, thread.temporary_mask = saved, None
        raise
    except BaseException:
        thread.sigmask, thread.temporary_mask = saved, None
        raise
    thread.sigmask, thread.temporary_mask = saved, None


def _deadline(timeout_ns: int | None) -> int | None:
    return None if timeout_ns is None else time.monotonic_ns() + timeout_ns


def _remaining(deadline: int | None) -> int:
    return max(0, (deadline or 0) - time.monotonic_ns())


def ready_events(ctx: SyscallContext, wanted: list[tuple[int, int]],
                 timeout_ns: int | None) -> list[int]:
    """The ready events of each (fd, events), after waiting as poll does: a closed
    descriptor is POLLNVAL, a negative one is skipped."""
    results = [0] * len(wanted)
    interests = []
    slots = []
    for index, (fd, events) in enumerate(wanted):
        if fd < 0:
            continue
        try:
            file = ctx.fds.get(fd)
        except SyscallError:
            file = None
        if file is None or file.flags & O_PATH:
            results[index] = POLLNVAL
            continue
        interests.append((file, events))
        slots.append(index)
    if any(results):
        timeout_ns = 0  # an invalid descriptor is an answer already
    for index, revents in zip(slots, wait_until_ready(interests, timeout_ns)):
        results[index] = revents
    return results


# ---------------------------------------------------------------- poll


def _poll(ctx: SyscallContext, fds: int, nfds: int, timeout_ns: int | None) -> int:
    if nfds > ctx.proc.rlimits[RLIMIT_NOFILE][0]:
        raise SyscallError(Errno.EINVAL)
    raw = ctx.mem.read(fds, nfds * POLLFD.size)
    entries = [POLLFD.unpack_from(raw, i * POLLFD.size) for i in range(nfds)]
    results = ready_events(ctx, [(fd, events) for fd, events, _r in entries], timeout_ns)
    out = b"".join(POLLFD.pack(fd, events, revents & 0xFFFF)
                   for (fd, events, _r), revents in zip(entries, results))
    ctx.mem.write(fds, out)
    return sum(1 for revents in results if revents)


def sys_poll(ctx: SyscallContext, fds: Ptr, nfds: UInt, timeout: Int) -> int:
    return _poll(ctx, fds, nfds, None if timeout < 0 else timeout * 1_000_000)


def sys_ppoll(ctx: SyscallContext, fds: Ptr, nfds: UInt, tmo_p: Ptr, sigmask: Ptr,
              sigsetsize: Size) -> int:
    timeout_ns = read_timespec(ctx, tmo_p) if tmo_p else None
    deadline = _deadline(timeout_ns)
    with sigmask_during(ctx, sigmask, sigsetsize):
        result = _poll(ctx, fds, nfds, timeout_ns)
    if tmo_p:
        _write_back(ctx, "<qq", tmo_p, _remaining(deadline), 1)
    return result


def _write_back(ctx: SyscallContext, fmt: str, addr: int, ns: int, unit_ns: int) -> None:
    """The time left, written back as Linux does for ppoll, select and pselect6; a failed
    copy is ignored, as there."""
    try:
        ctx.mem.write_struct(fmt, addr, ns // 10**9, ns % 10**9 // unit_ns)
    except GuestFault:
        pass


# ---------------------------------------------------------------- select


def _c_divmod(value: int, divisor: int) -> tuple[int, int]:
    """Division truncating toward zero, as C's / and %."""
    quotient = abs(value) // divisor * (1 if value >= 0 else -1)
    return quotient, value - quotient * divisor


def _read_timeval(ctx: SyscallContext, addr: int) -> int:
    """A select timeout: microseconds of a million or more carry into seconds; what is
    negative after that is EINVAL."""
    sec, usec = ctx.mem.read_struct("<qq", addr)
    carry, usec = _c_divmod(usec, 1_000_000)
    sec += carry
    if sec < 0 or usec < 0:
        raise SyscallError(Errno.EINVAL)
    return sec * 10**9 + usec * 1000


def _select(ctx: SyscallContext, nfds: int, sets: tuple[int, int, int],
            timeout_ns: int | None) -> int:
    if nfds < 0:
        raise SyscallError(Errno.EINVAL)
    # Bits past the fd table's size are ignored, not EBADF (fs/select.c, core_sys_select).
    open_fds = ctx.fds.fds()
    table_size = max(FD_TABLE_MIN, 1 << open_fds[-1].bit_length()) if open_fds else FD_TABLE_MIN
    nfds = min(nfds, table_size)
    size = (nfds + 63) // 64 * 8
    bits = [int.from_bytes(ctx.mem.read(addr, size), "little") if addr else 0 for addr in sets]
    wanted = []
    for fd in range(nfds):
        events = ((POLLIN_SET if bits[0] >> fd & 1 else 0)
                  | (POLLOUT_SET if bits[1] >> fd & 1 else 0)
                  | (POLLEX_SET if bits[2] >> fd & 1 else 0))
        if events:
            wanted.append((fd, events))
    results = ready_events(ctx, wanted, timeout_ns)
    if any(revents & POLLNVAL for revents in results):
        raise SyscallError(Errno.EBADF)
    out = [0, 0, 0]
    for (fd, events), revents in zip(wanted, results):
        for index, mask in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
            if events & mask and revents & mask:
                out[index] |= 1 << fd
    for addr, value in zip(sets, out):
        if addr:
            ctx.mem.write(addr, value.to_bytes(size, "little"))
    return sum(bin(value).count("1") for value in out)


def sys_select(ctx: SyscallContext, nfds: Int, readfds: Ptr, writefds: Ptr, exceptfds: Ptr,
               timeout: Ptr) -> int:
    timeout_ns = _read_timeval(ctx, timeout) if timeout else None
    deadline = _deadline(timeout_ns)
    result = _select(ctx, nfds, (readfds, writefds, exceptfds), timeout_ns)
    if timeout:
        _write_back(ctx, "<qq", timeout, _remaining(deadline), 1000)
    return result


def sys_pselect6(ctx: SyscallContext, nfds: Int, readfds: Ptr, writefds: Ptr, exceptfds: Ptr,
                 timeout: Ptr, sigmask: Ptr) -> int:
    timeout_ns = read_timespec(ctx, timeout) if timeout else None
    mask, mask_size = 0, 0
    if sigmask:
        # The sixth argument points to { const sigset_t *ss; size_t ss_len; }.
        mask, mask_size = ctx.mem.read_struct("<QQ", sigmask)
    deadline = _deadline(timeout_ns)
    with sigmask_during(ctx, mask, mask_size):
        result = _select(ctx, nfds, (readfds, writefds, exceptfds), timeout_ns)
    if timeout:
        _write_back(ctx, "<qq", timeout, _remaining(deadline), 1)
    return result
