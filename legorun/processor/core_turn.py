"""Turns on the one emulated core, for the processes that share memory.

legorun emulates one core (nproc is 1), and each emulated process is a host process of its
own, so processes run side by side on the host. That is invisible while they share nothing;
once they share memory (MAP_SHARED: shared_memory.py) it is not: Unicorn executes a locked
instruction (lock cmpxchg, lock xadd) as separate loads and stores, which two host processes
running at once could interleave, and a pshared mutex or semaphore would break. So a process
with shared memory takes the core's turn, a lock in host memory that every process of the
run inherits (native/coreturn.c), while it runs guest code: the scheduler takes it before it
starts the CPU and gives it up when the CPU stops (a time slice ended: such a process always
has slices, even with one thread) and while it waits on the host. Processes that share no
memory keep running in parallel, and so do processes whose shared memory nobody else can
store to (a read-only file mapping, like glibc's gconv cache, or memory mapped after the
last fork).

A process that cannot have the turn within TURN_TIMEOUT_NS runs without it, so that a holder
stuck in an unforeseen host wait slows the others down but cannot deadlock them; a holder
that died is taken over from.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from legorun.native import native_library

TURN_TIMEOUT_NS = 2_000_000_000  # long enough for any slice of a loaded host


class CoreTurn:
    def __init__(self, engaged: Callable[[], bool]) -> None:
        """`engaged()` tells whether this process needs turns now (it shares writable memory
        with another process)."""
        self._engaged = engaged
        # Made before the guest runs, so every process forked from this one shares it.
        self._page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self._word = ctypes.cast(ctypes.addressof(ctypes.c_int32.from_buffer(self._page)),
                                 ctypes.POINTER(ctypes.c_int32))
        library = native_library()
        self._take = library.core_turn_take
        self._take.argtypes = [ctypes.POINTER(ctypes.c_int32), ctypes.c_int64]
        self._give = library.core_turn_give
        self._give.argtypes = [ctypes.POINTER(ctypes.c_int32)]
        self.held = False

    @property
    def engaged(self) -> bool:
        return self._engaged()

    def take(self) -> None:
        """Before running guest code: wait for the turn if this process needs one."""
        if not self.held and self._engaged():
            self.held = self._take(self._word, TURN_TIMEOUT_NS) == 0

    def give(self) -> None:
        if self.held:
            self.held = False
            self._give(self._word)

    @contextmanager
    def given_up(self) -> Iterator[None]:
        """Around a wait on the host: others run meanwhile."""
        held = self.held
        self.give()
        try:
            yield
        finally:
            if held:
                self.take()

    def forked(self) -> None:
        """In a new child process: the turn its parent held is the parent's."""
        self.held = False
        self.take()
