"""Waiting: the one place where a guest thread blocks.

Every operation that can block (a read from an empty pipe or socket, a write to a full one,
accept, connect, an eventfd or timerfd read, and the waits of poll, select and epoll) asks
`wait_until_ready` for the files and events it needs, then retries; a wait for a condition
no descriptor signals (a conflicting flock) asks `wait_until`. Futexes, sleeps and signal
waits describe what they wait for with a `Wait` of their own.

A syscall runs on its thread's own greenlet (see threads.py), so a wait does not block the
host: it hands the CPU to the scheduler, which runs other guest threads, and resumes the call
where it stopped once the wait is over: its condition holds, its deadline passed, or a
signal with a handler interrupted it (`Interrupted`, EINTR). When every thread waits the
scheduler waits on the host (poll(2) over the host descriptors behind the awaited files, up
to the earliest deadline).

A file without a host descriptor (a file on the storage manager, a /proc file served by the
processor) is always ready for reading and writing, as Linux reports regular files
(DEFAULT_POLLMASK). A file whose only possible wakers are this very process (a pipe or
socketpair whose other end the guest holds, an eventfd) can never become ready once every
thread waits: an endless wait on nothing else is reported as the deadlock it is instead of
hanging legorun.
"""

from __future__ import annotations

import select
import time
from typing import Callable, Protocol, Sequence

from greenlet import getcurrent

from legorun.errors import LegorunError
from syscalls.errno import Errno, SyscallError

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
    """Every guest thread waits for something only a thread or process of the guest could
    do."""


class Wait:
    """What a blocked thread waits for. `deadline` is on CLOCK_MONOTONIC (ns), None for
    none; a wait whose deadline passed is over, whatever its condition."""

    deadline: int | None = None
    # For a condition nothing signals (a word another process may change): how often the
    # idle scheduler looks again (ns); None when something wakes it.
    recheck_ns: int | None = None

    def satisfied(self) -> bool:
        """Whether the awaited condition holds now."""
        return False

    def over(self) -> bool:
        return self.satisfied() or (self.deadline is not None
                                    and time.monotonic_ns() >= self.deadline)

    def host_events(self) -> list[tuple[int, int]]:
        """(host fd, poll events) pairs whose readiness may end the wait."""
        return []

    def wakeable_from_outside(self) -> bool:
        """Whether something besides the guest's own threads (another process, the
        network, a terminal) could end the wait."""
        return False

    def describe(self) -> str:
        """What is awaited, after "waits forever": "for pipe:[7] to become readable"."""
        raise NotImplementedError


class Interrupted(SyscallError):
    """A signal with a handler interrupted the wait: the call fails with EINTR, or runs
    again after the handler when its action has SA_RESTART (see signals.py)."""

    def __init__(self) -> None:
        super().__init__(Errno.EINTR)


class BlockingPoint(Protocol):
    def block(self, wait: Wait) -> None:
        """Wait until `wait` is over; raises Interrupted when a signal cuts it short."""


def blocking_point() -> BlockingPoint | None:
    """Who blocks for the syscall running on this greenlet: its thread (on the thread's
    own greenlet), the scheduler (a call of the only thread runs in the syscall hook, on
    the scheduler's greenlet), or None outside any guest call (a unit test calling a file
    directly): then waits happen on the host alone."""
    current = getcurrent()
    return getattr(current, "blocking_point", None)


def block(wait: Wait) -> None:
    """Block the guest thread whose syscall calls this until `wait` is over; raises
    Interrupted when a signal with a handler comes first."""
    point = blocking_point()
    if point is None:
        raise LegorunError("a wait outside any guest syscall")
    point.block(wait)


def _events_name(events: int) -> str:
    if events & (POLLIN | POLLRDNORM | POLLPRI) and events & (POLLOUT | POLLWRNORM):
        return "readable or writable"
    return "writable" if events & (POLLOUT | POLLWRNORM) else "readable"


def poll_host(interests: Sequence[tuple[Waitable, int]], timeout_ms: int) -> list[int]:
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


class FileWait(Wait):
    """Until one of the files has one of its events."""

    def __init__(self, interests: Sequence[tuple[Waitable, int]], deadline: int | None) -> None:
        self.interests = interests
        self.deadline = deadline

    def satisfied(self) -> bool:
        return any(poll_host(self.interests, 0))

    def host_events(self) -> list[tuple[int, int]]:
        return [(fd, events) for file, events in self.interests
                if (fd := file.host_fd()) is not None and fd >= 0]

    def wakeable_from_outside(self) -> bool:
        return any(file.wakeable_by_others() for file, _events in self.interests)

    def describe(self) -> str:
        waits = ", ".join(f"{file.fd_link()} to become {_events_name(events)}"
                          for file, events in self.interests)
        return f"for {waits or 'a signal'}"


class ConditionWait(Wait):
    """Until a condition that only another thread or process could bring about holds."""

    def __init__(self, ready: Callable[[], bool], what: str) -> None:
        self._ready = ready
        self._what = what

    def satisfied(self) -> bool:
        return self._ready()

    def describe(self) -> str:
        return f"for {self._what}"


class SleepWait(Wait):
    """Until a point in time (nanosleep, clock_nanosleep, pause has none)."""

    def __init__(self, deadline: int | None) -> None:
        self.deadline = deadline

    def describe(self) -> str:
        return "for a signal"


def sleep(duration_ns: int) -> None:
    """Let `duration_ns` pass (or less: see time.sleep_until, which loops)."""
    thread = blocking_point()
    if thread is None:
        time.sleep(duration_ns / 1e9)
    else:
        thread.block(SleepWait(time.monotonic_ns() + duration_ns))


def monotonic_deadline(timeout_ns: int | None) -> int | None:
    return None if timeout_ns is None else time.monotonic_ns() + timeout_ns


def wait_until(ready: Callable[[], bool], what: str) -> None:
    """Wait until `ready()` holds, for a condition that no host descriptor signals and only
    another thread or process of the guest could bring about (a conflicting file lock
    released)."""
    if ready():
        return
    thread = blocking_point()
    if thread is None:
        raise Deadlock(f"deadlock: the guest's only thread waits forever for {what}")
    thread.block(ConditionWait(ready, what))


def wait_until_ready(interests: Sequence[tuple[Waitable, int]],
                     timeout_ns: int | None) -> list[int]:
    """The ready events of each (file, events) pair, waiting until one of them has some or
    `timeout_ns` has passed (None: no limit; 0: just look). All zero on a timeout."""
    revents = poll_host(interests, 0)
    if any(revents) or timeout_ns == 0:
        return revents
    wait = FileWait(interests, monotonic_deadline(timeout_ns))
    thread = blocking_point()
    while True:
        if thread is not None:
            thread.block(wait)
        else:
            _wait_on_host(wait)
        revents = poll_host(interests, 0)
        if any(revents) or wait.over():
            return revents


def _wait_on_host(wait: FileWait) -> None:
    """A wait outside any guest thread: poll(2) on the host, nothing else can happen."""
    if wait.deadline is None:
        if not wait.wakeable_from_outside():
            raise Deadlock(f"deadlock: the guest's only thread waits forever {wait.describe()}")
        poll_host(wait.interests, -1)
        return
    remaining = wait.deadline - time.monotonic_ns()
    if remaining > 0:
        poll_host(wait.interests, -(-remaining // 1_000_000))  # round up to a ms
