"""The process's futex table (kernel/futex/): which threads wait on which word.

A futex is keyed by its address: every thread of the process shares one address space, and
a process is one host process, so private and shared futexes key the same way. Waiters
queue in arrival order per address, each with a bitset (FUTEX_WAIT_BITSET) and an optional
deadline; wakes take them from the front. Priority-inheritance futexes (FUTEX_LOCK_PI,
used by PTHREAD_PRIO_INHERIT mutexes) keep the owner's tid in the word and hand the lock
straight to the first waiter on unlock.

The word itself is read and written by the caller (syscalls/futex.py), which checks values
before it waits: all of this runs between two guest instructions, so check-then-wait is
atomic as the kernel's hash-bucket lock makes it.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterator

from legorun.processor.shared_memory import SharedWord
from legorun.processor.threads import Thread
from legorun.processor.wait import Wait

FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048  # ROBUST_LIST_LIMIT: entries walked at most (the list may loop)


class FutexWaiter(Wait):
    def __init__(self, thread: Thread, address: int, bitset: int, deadline: int | None,
                 pi: bool = False) -> None:
        self.thread = thread
        self.address = address
        self.bitset = bitset
        self.deadline = deadline
        self.pi = pi
        self.woken = False

    def satisfied(self) -> bool:
        return self.woken

    def describe(self) -> str:
        return f"on futex {self.address:#x}"


class SharedFutexWaiter(FutexWaiter):
    """A wait on a word in MAP_SHARED memory, which other processes may wake. Their wakes
    cannot reach this process's table, so the wait is also over when the word no longer
    holds the value waited for or its wake counter moved (processor/shared_memory.py); the
    idle scheduler looks again every RECHECK_NS. An early end is a spurious wakeup, which
    futex(2) allows and every user of futexes handles."""

    recheck_ns = 1_000_000

    def __init__(self, thread: Thread, address: int, bitset: int, deadline: int | None,
                 word: SharedWord, expected: int) -> None:
        super().__init__(thread, address, bitset, deadline)
        self._word = word
        self._expected = expected
        self._wake_count = word.wake_count

    def satisfied(self) -> bool:
        return (self.woken or self._word.value != self._expected
                or self._word.wake_count != self._wake_count)

    def wakeable_from_outside(self) -> bool:
        return True


class FutexTable:
    def __init__(self) -> None:
        self._queues: dict[int, deque[FutexWaiter]] = {}

    def clear(self) -> None:
        """Forget every waiter (execve: the address space they waited in is gone)."""
        self._queues.clear()

    def enqueue(self, waiter: FutexWaiter) -> None:
        self._queues.setdefault(waiter.address, deque()).append(waiter)

    def dequeue(self, waiter: FutexWaiter) -> None:
        """Take a waiter that stops waiting by itself (timeout, signal) off its queue."""
        queue = self._queues.get(waiter.address)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._queues[waiter.address]

    def waiters(self, address: int) -> Iterator[FutexWaiter]:
        return iter(list(self._queues.get(address, ())))

    def has_waiters(self, address: int) -> bool:
        return bool(self._queues.get(address))

    def wake(self, address: int, count: int, bitset: int = FUTEX_BITSET_MATCH_ANY,
             pi: bool = False) -> int:
        """Wake up to `count` waiters whose bitset meets `bitset`; how many woke."""
        woken = 0
        for waiter in self.waiters(address):
            if woken >= count:
                break
            if waiter.bitset & bitset and waiter.pi == pi:
                self._wake(waiter)
                woken += 1
        return woken

    def _wake(self, waiter: FutexWaiter) -> None:
        self.dequeue(waiter)
        waiter.woken = True

    def requeue(self, address: int, count: int, target: int, limit: int) -> int:
        """Wake `count` waiters of `address`, move up to `limit` more to `target`; the
        number woken plus moved."""
        woken = self.wake(address, count)
        moved = 0
        for waiter in self.waiters(address):
            if moved >= limit:
                break
            self.dequeue(waiter)
            waiter.address = target
            self.enqueue(waiter)
            moved += 1
        return woken + moved

    def hand_over(self, address: int, write_word: Callable[[int], None]) -> bool:
        """FUTEX_UNLOCK_PI with waiters: the first PI waiter becomes the owner (the word
        holds its tid, with FUTEX_WAITERS while others still wait). False if none waits."""
        for waiter in self.waiters(address):
            if waiter.pi:
                self._wake(waiter)
                others = any(w.pi for w in self.waiters(address))
                write_word(waiter.thread.tid | (FUTEX_WAITERS if others else 0))
                return True
        return False


def walk_robust_list(read_u64: Callable[[int], int], head: int) -> Iterator[int]:
    """The lock entries of a robust list (struct robust_list_head: next, futex_offset,
    list_op_pending): each entry's futex word address, then the pending one's."""
    first = read_u64(head)
    offset = read_u64(head + 8)
    if offset >= 1 << 63:
        offset -= 1 << 64
    pending = read_u64(head + 16)
    entry = first
    for _ in range(ROBUST_LIST_LIMIT):
        if entry == head or entry == 0:
            break
        following = read_u64(entry)  # read before the word may be changed
        if entry != pending:
            yield entry + offset
        entry = following
    if pending:
        yield pending + offset
