"""The scheduler: runs the process's threads on the one emulated core.

One thread is on the CPU at a time. It runs until it blocks in a syscall (threads.py), yields
(sched_yield), exits, or its time slice ends: a slice is a number of guest instructions
(QUANTUM, varied per slice by a generator seeded with --seed), counted by the compiled block
hook of icount.py, so a run with the same seed and input switches at the same instructions.
Threads take turns round-robin in creation order. A single-threaded process has no slices
and no block hook: preemption is switched on (and translated code flushed, so that the hook
is called) when the second thread appears.

The run loop is also the place where control moves between instructions: signal frames
are built before a thread returns to user code, rt_sigreturn's registers are written, CPU
faults become signals, and host signals recorded while the guest ran are taken in.

When no thread can run the scheduler waits on the host: poll(2) over the host descriptors
the blocked threads wait for and the host-signal wakeup pipe, until the earliest deadline.
If nothing at all could end any of the waits, that is a deadlock, reported as an error.
"""

from __future__ import annotations

import random
import select
import time
from typing import Callable, Protocol

from greenlet import getcurrent

from unicorn import UcError

from legorun.cache.excache import ExCache
from legorun.processor.core_turn import CoreTurn
from legorun.processor.cpu import Cpu, CpuException
from legorun.processor.faultaddr import FaultAddress
from legorun.processor.futexes import FutexTable
from legorun.processor.icount import InstructionCounter
from legorun.processor.process import ProcessExit
from legorun.processor.signals import Signals, exception_signal, fault_signal
from legorun.processor.threads import INTERRUPTED, RESUMED, Outcome, Thread, ThreadExit
from legorun.processor.wait import POLLIN, Deadlock, Interrupted, Wait

QUANTUM = 100_000  # instructions in a time slice, on average
GENERAL_PROTECTION = 13  # #GP


class Checkpoints(Protocol):
    """What the run loop needs of the run's checkpoints (checkpoint.py)."""

    @property
    def due(self) -> bool: ...

    def take(self) -> None: ...


class Scheduler:
    def __init__(self, cpu: Cpu, excache: ExCache, mapped: Callable[[int], bool],
                 locate: FaultAddress, signals: Signals, futexes: FutexTable,
                 counter: Callable[[], InstructionCounter], seed: int,
                 turn: CoreTurn) -> None:
        """`mapped(addr)` tells whether a page is in the address space (a fault there is
        SEGV_ACCERR, else SEGV_MAPERR), `locate` finds a fault's byte address; `counter`
        gives the instruction counter that ends time slices, made when the second thread
        appears."""
        self._cpu = cpu
        self._excache = excache
        self._mapped = mapped
        self._locate = locate
        self._signals = signals
        self._threads = signals.threads
        self._futexes = futexes
        self._make_counter = counter
        self._turn = turn
        self._counter: InstructionCounter | None = None
        self._random = random.Random(seed)
        self._slice_mark = 0
        self._started = False
        # The run's periodic checkpoints (checkpoint.py), if it takes any: one is taken in
        # the run loop before the guest resumes, when registers and process state are
        # whole; a stop their timer asked for is a stop on purpose.
        self.checkpoints: Checkpoints | None = None

    @property
    def preemptive(self) -> bool:
        return self._counter is not None

    # ------------------------------------------------------------ the syscall hook

    def syscall(self, nr: int, args: tuple[int, ...]) -> int | None:
        """Run a syscall of the thread on the CPU; its value, or None if it blocked (the
        CPU then stops and the thread is switched out).

        With other threads the call runs on the thread's runner, which a wait suspends.
        The only thread has nobody to give the CPU to: its call runs right here, saving
        the two greenlet switches, and a wait happens in place (`block`)."""
        thread = self._threads.current
        thread.syscall_nr = nr
        if len(self._threads) == 1:
            value = self._threads.dispatch(nr, args)
            if self._needs_run_loop(thread):
                self._cpu.request_stop()
            return value
        assert thread.runner is not None
        return self._settle(thread, thread.runner.call(nr, args))

    def block(self, wait: Wait) -> None:
        """The blocking point of a call of the only thread (see syscall): wait on the host
        until `wait` is over; raises Interrupted when a signal with a handler comes first."""
        thread = self._threads.current
        thread.waiting = wait
        try:
            while not wait.over():
                if self._signals.interrupts(thread):
                    thread.interrupted_nr = thread.syscall_nr
                    raise Interrupted()
                self._idle()
        finally:
            thread.waiting = None

    def _settle(self, thread: Thread, outcome: Outcome) -> int | None:
        if outcome.error is not None:
            raise outcome.error
        if outcome.blocked or self._needs_run_loop(thread):
            self._cpu.request_stop()
        return outcome.value

    def _needs_run_loop(self, thread: Thread) -> bool:
        """Whether something must happen before the thread's next instruction."""
        return (thread.sigreturn is not None or thread.yielding or self._signals.host.pending()
                or (not self.preemptive and self._wants_slices())
                or bool(self._signals.deliverable(thread)))

    # ------------------------------------------------------------ the run loop

    def run(self) -> None:
        """Run the program (the CPU holds its first registers) until the process ends
        (ProcessExit, FatalSignal) or execs (the exception of execve passes through; run is
        then called again for the new program)."""
        self._start()
        getcurrent().blocking_point = self  # see wait.blocking_point
        while True:
            thread = self._threads.current
            try:
                self._signals.take_host_signals()
                self._signals.deliver(thread)
                if self._signals.host.pending():
                    # Arrived just now: Unicorn ignores a stop asked for while it is not
                    # running, so look at it before starting (the window left is tiny).
                    continue
                if self.checkpoints is not None and self.checkpoints.due:
                    self.checkpoints.take()
                    continue  # what arrived meanwhile is looked at before the guest runs
                self._turn.take()
                try:
                    self._cpu.emulate()
                finally:
                    self._turn.give()
            except ThreadExit as done:
                self._exit_thread(thread, done.status)
                continue
            except UcError as error:
                if self._excache.error is not None or not self._stopped_on_purpose():
                    self._signals.force(thread, fault_signal(
                        error, self._excache, self._mapped, self._locate, self._cpu.pc))
                    continue
                self._excache.fault = None  # the fetch of a stopping run (see Cpu.emulate)
            if self._cpu.exception is not None:
                exception, self._cpu.exception = self._cpu.exception, None
                self._signals.force(thread, exception_signal(exception))
                continue
            if not self._stopped_on_purpose():
                # Nothing asked for this stop: the guest halted the CPU (hlt), which user
                # mode may not do: a general protection fault, as on Linux.
                pc = self._cpu.pc
                self._signals.force(thread, exception_signal(CpuException(GENERAL_PROTECTION,
                                                                          pc)))
                continue
            if thread.sigreturn is not None:
                self._signals.finish_sigreturn(thread)
            self._schedule(thread)

    def _start(self) -> None:
        if self._started:  # execve: only the calling thread goes on, as the leader
            self._threads.keep_only_current(self._threads.pid)
            self._futexes.clear()
            self._signals.sync_host()
        self._started = True

    def shutdown(self) -> None:
        """Unwind every thread's half-done syscall (the process is gone)."""
        current = getcurrent()
        if getattr(current, "blocking_point", None) is self:
            del current.blocking_point
        for thread in self._threads:
            if thread.runner is not None:
                thread.runner.finish()

    def _stopped_on_purpose(self) -> bool:
        return (self._cpu.stop_requested or self._slice_over()
                or self._signals.host.pending()
                or (self.checkpoints is not None and self.checkpoints.due))

    # ------------------------------------------------------------ switching

    def _schedule(self, current: Thread) -> None:
        if not self.preemptive and self._wants_slices():
            self._enable_preemption()
        if current.blocked or current.yielding or self._slice_over():
            current.yielding = False
            self._switch(self._position(current))

    def _exit_thread(self, thread: Thread, status: int) -> None:
        position = self._position(thread)
        self._threads.remove(thread)
        if not len(self._threads):
            raise ProcessExit(status)
        self._switch(position - 1, save=False)

    def _position(self, thread: Thread) -> int:
        return next(i for i, t in enumerate(self._threads) if t is thread)

    def _switch(self, after: int, save: bool = True) -> None:
        """Put the next runnable thread after position `after` (round-robin) on the CPU,
        finishing its blocked syscall first if its wait is over."""
        while True:
            chosen = self._next_runnable(after)
            while chosen is None:
                self._idle()
                chosen = self._next_runnable(after)
            previous = self._threads.current
            if chosen is not previous:
                if save:
                    previous.context = self._cpu.save_context(previous.context)
                assert chosen.context is not None
                self._cpu.restore_context(chosen.context)
                self._threads.current = chosen
            save = True
            self._new_slice()
            if chosen.wake_reason is None:
                return
            reason = chosen.wake_reason
            assert chosen.runner is not None
            value = self._settle(chosen, chosen.runner.resume(reason))
            if value is not None:
                self._cpu.set_result(value)
                return
            after = self._position(chosen)  # blocked again: look further

    def _next_runnable(self, after: int) -> Thread | None:
        self._wake_ready()
        threads = list(self._threads)
        count = len(threads)
        for step in range(1, count + 1):
            thread = threads[(after + step) % count]
            if not thread.blocked or thread.wake_reason is not None:
                return thread
        return None

    def _wake_ready(self) -> None:
        for thread in self._threads:
            if thread.blocked and thread.wake_reason is None:
                if thread.waiting is not None and thread.waiting.over():
                    thread.wake_reason = RESUMED
                elif self._signals.interrupts(thread):
                    thread.wake_reason = INTERRUPTED

    # ------------------------------------------------------------ time slices

    def _wants_slices(self) -> bool:
        """Threads take turns on the core; so do processes that share memory (core_turn.py)."""
        return len(self._threads) > 1 or self._turn.engaged

    def _enable_preemption(self) -> None:
        self._counter = self._make_counter()
        self._cpu.uc.ctl_flush_tb()  # code translated so far does not call the new hook
        self._new_slice()

    def _new_slice(self) -> None:
        if self._counter is not None:
            self._slice_mark = self._counter.preemptions
            self._counter.preempt_after(int(QUANTUM * (0.5 + self._random.random())))

    def _slice_over(self) -> bool:
        return self._counter is not None and self._counter.preemptions != self._slice_mark

    # ------------------------------------------------------------ waiting on the host

    def _idle(self) -> None:
        """Every thread waits: sleep on the host until something may have changed."""
        waits = [(thread, thread.waiting) for thread in self._threads
                 if thread.waiting is not None]
        deadlines = [wait.deadline for _thread, wait in waits if wait.deadline is not None]
        if (not deadlines and not any(wait.wakeable_from_outside() for _t, wait in waits)
                and not self._signals.catches_any()):
            raise Deadlock(self._deadlock_message(waits))
        poller = select.poll()
        poller.register(self._signals.host.wakeup_fd(), POLLIN)
        for _thread, wait in waits:
            for fd, events in wait.host_events():
                poller.register(fd, events)
        now = time.monotonic_ns()
        deadlines += [now + wait.recheck_ns for _t, wait in waits if wait.recheck_ns is not None]
        timeout_ms = -1
        if deadlines:
            timeout_ms = max(0, -(-(min(deadlines) - now) // 1_000_000))
        if self._signals.host.pending():
            timeout_ms = 0
        with self._turn.given_up():
            poller.poll(timeout_ms)
        self._signals.host.drain_wakeup()
        self._signals.take_host_signals()

    def _deadlock_message(self, waits: list) -> str:
        if len(waits) == 1:
            return f"deadlock: the guest's only thread waits forever {waits[0][1].describe()}"
        each = "; ".join(f"thread {thread.tid} {wait.describe()}" for thread, wait in waits)
        return f"deadlock: all {len(waits)} threads of the guest wait forever: {each}"
