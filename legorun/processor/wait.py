"""Waiting for open files to become ready: the one place where the processor blocks.

Every operation that can block (a read from an empty pipe or socket, a write to a full one,
accept, connect, an eventfd or timerfd read, and the waits of poll, select and epoll) asks
`wait_until_ready` for the files and events it needs, then retries; a wait for a condition
no descriptor signals (a conflicting flock) asks `wait_until`. Today a process has one
thread, so the wait happens on the host with poll(2) over the host descriptors behind those
files; a thread scheduler will replace these two functions and switch to another runnable
thread instead.

A file without a host descriptor (a file on the storage manager, a /proc file served by the
processor) is always ready for reading and writing, as Linux reports regular files
(DEFAULT_POLLMASK). A file whose only possible wakers are this very process (a pipe or
socketpair whose other end the guest holds, an eventfd) can never become ready while the
only thread waits: an endless wait on nothing else is reported as the deadlock it is instead
of hanging legorun.
"""

from __future__ import annotations

import select
import time
from typing import Callable, Protocol, Sequence

from legorun.errors import LegorunError

# poll(2) event bits, as Linux numbers them (include/uapi/asm-generic/poll.h).
POLLIN = 0x001
POLLPRI = 0x002
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010
POLLNVAL = 0x020
POLLRDNORM = 0x040
POLLRDBAND = 0x080
POLLWRNORM = 0x100
POLLWRBAND = 0x200
POLLRDHUP = 0x2000
# Always reported, whether asked for or not.
POLL_ALWAYS = POLLERR | POLLHUP | POLLNVAL
# What a file without a poll method reports: readable and writable at once.
DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM


class Waitable(Protocol):
    def host_fd(self) -> int | None: ...

    def wakeable_by_others(self) -> bool: ...

    def fd_link(self) -> str: ...


class Deadlock(LegorunError):
    """The guest's only thread waits for something only another thread or process could
    do."""


def _events_name(events: int) -> str:
    if events & (POLLIN | POLLRDNORM | POLLPRI) and events & (POLLOUT | POLLWRNORM):
        return "readable or writable"
    return "writable" if events & (POLLOUT | POLLWRNORM) else "readable"


def _poll_host(interests: Sequence[tuple[Waitable, int]], timeout_ms: int) -> list[int]:
    """One poll(2) over the host descriptors; files without one are ready at once."""
    poller = select.poll()
    wanted: dict[int, int] = {}
    for file, events in interests:
        fd = file.host_fd()
        if fd is not None and fd >= 0:
            wanted[fd] = wanted.get(fd, 0) | events
    for fd, events in wanted.items():
        poller.register(fd, events)
    host = dict(poller.poll(timeout_ms)) if wanted or timeout_ms else {}
    revents = []
    for file, events in interests:
        fd = file.host_fd()
        ready = DEFAULT_POLLMASK if fd is None else POLLNVAL if fd < 0 else host.get(fd, 0)
        revents.append(ready & (events | POLL_ALWAYS))
    return revents


def wait_until(ready: Callable[[], bool], what: str) -> None:
    """Wait until `ready()` holds, for a condition that no host descriptor signals and only
    another thread or process of the guest could bring about (a conflicting file lock
    released). With one thread that never happens."""
    if not ready():
        raise Deadlock(f"deadlock: the guest's only thread waits forever for {what}")


def wait_until_ready(interests: Sequence[tuple[Waitable, int]],
                     timeout_ns: int | None) -> list[int]:
    """The ready events of each (file, events) pair, waiting until one of them has some or
    `timeout_ns` has passed (None: no limit; 0: just look). All zero on a timeout."""
    revents = _poll_host(interests, 0)
    if any(revents) or timeout_ns == 0:
        return revents
    if timeout_ns is None:
        if not any(file.wakeable_by_others() for file, _events in interests):
            waits = ", ".join(f"{file.fd_link()} to become {_events_name(events)}"
                              for file, events in interests) or "a signal"
            raise Deadlock(f"deadlock: the guest's only thread waits forever for {waits}")
        while not any(revents := _poll_host(interests, -1)):
            pass
        return revents
    deadline = time.monotonic_ns() + timeout_ns
    while (remaining := deadline - time.monotonic_ns()) > 0:
        revents = _poll_host(interests, -(-remaining // 1_000_000))  # round up to a ms
        if any(revents):
            return revents
    return revents
