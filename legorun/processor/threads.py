"""The threads of the emulated process: Linux tasks that share one address space, one fd
table and one set of signal actions, and each have their own registers, signal mask,
pending signals, alternate signal stack, clear_child_tid and robust futex list.

All of them run on the processor's one Unicorn CPU, one at a time: a thread that is not on
the CPU keeps its registers in a saved Unicorn context (segment bases, so its TLS, and the
FPU included).

While the process has several threads, each thread's syscalls run on a greenlet of its own
(`SyscallRunner`): a call that must wait (a futex, a read from an empty pipe) suspends
that greenlet and hands the CPU back to the scheduler, and the call goes on where it
stopped once the wait is over, its partial work (bytes already written, a deadline already
running) intact, exactly as a kernel thread sleeps in the middle of a syscall. The only
thread of a process needs no such stack: its calls run and wait in place (scheduler.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from greenlet import GreenletExit, getcurrent, greenlet

from legorun.processor.cpu import UcContext
from legorun.processor.sigframe import AltStack, SavedContext, SigInfo
from legorun.processor.wait import Interrupted, Wait

SIGRTMIN = 32
# Signals a fault raises: delivered before any other pending one (next_signal's SYNCHRONOUS_MASK).
SYNCHRONOUS = frozenset({4, 5, 7, 8, 11, 31})  # SIGILL SIGTRAP SIGBUS SIGFPE SIGSEGV SIGSYS
# Thread ids above every host pid (pid_max is at most 2^22), so that a thread id never
# names a host process (every emulated process is one), and below FUTEX_TID_MASK.
PID_MAX_LIMIT = 1 << 22


def sigbit(sig: int) -> int:
    return 1 << (sig - 1)


class ThreadExit(Exception):
    """The calling thread ends (exit(2)); the process ends with its last thread."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class PendingSignals:
    """Signals generated but not delivered yet: one instance of a standard signal at most
    (a second one merges with the first), every instance of a real-time one, in order."""

    def __init__(self) -> None:
        self._queue: list[SigInfo] = []
        self.mask = 0  # the signals queued; kept up to date: it is read after every syscall

    def add(self, info: SigInfo) -> None:
        if info.signo < SIGRTMIN and self.mask & sigbit(info.signo):
            return
        self._queue.append(info)
        self.mask |= sigbit(info.signo)

    def _update_mask(self) -> None:
        self.mask = 0
        for info in self._queue:
            self.mask |= sigbit(info.signo)

    def take(self, allowed: int) -> SigInfo | None:
        """Remove and return the signal to deliver among those in `allowed`: a fault's
        signal first, then the lowest number (as Linux's next_signal)."""
        candidates = [info.signo for info in self._queue if allowed & sigbit(info.signo)]
        if not candidates:
            return None
        synchronous = [sig for sig in candidates if sig in SYNCHRONOUS]
        chosen = min(synchronous or candidates)
        for index, info in enumerate(self._queue):
            if info.signo == chosen:
                taken = self._queue.pop(index)
                self._update_mask()
                return taken
        return None

    def discard(self, sig: int) -> None:
        self._queue = [info for info in self._queue if info.signo != sig]
        self._update_mask()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a syscall on a runner left off: with a value, an exception, or blocked."""

    value: int | None = None
    error: BaseException | None = None

    @property
    def blocked(self) -> bool:
        return self.value is None and self.error is None


BLOCKED = Outcome()
RESUMED, INTERRUPTED = "resumed", "interrupted"


class SyscallRunner(greenlet):
    """Runs one thread's syscalls on a stack of its own (see the module docstring)."""

    def __init__(self, thread: Thread, dispatch: Callable[[int, tuple[int, ...]], int],
                 home: greenlet) -> None:
        # Every runner returns to `home`, the scheduler's greenlet, also when a runner
        # (clone) made it.
        super().__init__(parent=home)
        self.blocking_point = thread  # what wait.blocking_point() finds on this greenlet
        self._dispatch = dispatch

    def call(self, nr: int, args: tuple[int, ...]) -> Outcome:
        """Run a syscall; called from the CPU's syscall hook (the scheduler's greenlet)."""
        return self.switch(nr, args)

    def resume(self, reason: str) -> Outcome:
        """Go on with the call that blocked, because its wait is over or was interrupted."""
        return self.switch(reason)

    def suspend(self) -> str:
        """Leave the call half done (we are on this runner); returns how it was resumed."""
        return self.parent.switch(BLOCKED)

    def run(self, nr: int, args: tuple[int, ...]) -> None:  # the greenlet's body
        while True:
            try:
                outcome = Outcome(value=self._dispatch(nr, args))
            except GreenletExit:
                raise
            except BaseException as error:  # re-raised on the scheduler's side
                outcome = Outcome(error=error)
            nr, args = self.parent.switch(outcome)

    def finish(self) -> None:
        """End the runner (its thread is gone), unwinding a call it left half done."""
        if self:
            self.parent = getcurrent()  # come back here, wherever that is
            self.throw()


@dataclass(eq=False)
class Thread:
    tid: int
    sigmask: int = 0
    altstack: AltStack = field(default_factory=AltStack)
    pending: PendingSignals = field(default_factory=PendingSignals)
    clear_child_tid: int = 0
    robust_list: tuple[int, int] = (0, 0)  # head, length
    context: UcContext | None = None  # registers while off the CPU
    runner: SyscallRunner | None = None
    # While in a syscall:
    syscall_nr: int = -1
    waiting: Wait | None = None  # what it is blocked on
    wake_reason: str | None = None  # set when a blocked thread may go on
    temporary_mask: int | None = None  # the mask to restore once a handler ran (sigsuspend)
    interrupted_nr: int | None = None  # the call a signal interrupted, to restart or fail
    sigreturn: SavedContext | None = None  # registers rt_sigreturn asked for ...
    sigreturn_fpu: bytes | None = None  # ... and the fxsave image it read
    yielding: bool = False  # sched_yield: let the others run first

    @property
    def blocked(self) -> bool:
        return self.waiting is not None

    def block(self, wait: Wait) -> None:
        """Wait (on this thread's runner) until `wait` is over; raises Interrupted when a
        signal with a handler arrives first. See wait.py."""
        assert self.runner is not None
        self.waiting = wait
        try:
            reason = self.runner.suspend()
        finally:
            self.waiting = None
            self.wake_reason = None
        if reason == INTERRUPTED:
            self.interrupted_nr = self.syscall_nr
            raise Interrupted()

    def reset_for_exec(self) -> None:
        """What execve drops of the calling thread: its alternate stack and robust list."""
        self.altstack = AltStack()
        self.robust_list = (0, 0)
        self.clear_child_tid = 0


class ThreadGroup:
    """The process's threads by tid, and which one is on the CPU."""

    def __init__(self, pid: int, dispatch: Callable[[int, tuple[int, ...]], int]) -> None:
        self.dispatch = dispatch
        self._home = getcurrent()
        self._threads: dict[int, Thread] = {}
        self._next_tid = max(_pid_max(), pid) + 1
        self.pid = pid
        self.current = self._add(Thread(pid))

    def _add(self, thread: Thread) -> Thread:
        thread.runner = SyscallRunner(thread, self.dispatch, self._home)
        self._threads[thread.tid] = thread
        return thread

    def spawn(self, parent: Thread, context: UcContext) -> Thread:
        """A new thread that starts from `context`, with the parent's signal mask and no
        pending signals (copy_process with CLONE_THREAD)."""
        tid = self._next_tid
        self._next_tid += 1
        return self._add(Thread(tid, sigmask=parent.sigmask, altstack=AltStack(),
                                context=context))

    def remove(self, thread: Thread) -> None:
        del self._threads[thread.tid]
        if thread.runner is not None:
            thread.runner.finish()
            thread.runner = None

    def get(self, tid: int) -> Thread | None:
        return self._threads.get(tid)

    def __iter__(self) -> Iterator[Thread]:
        return iter(list(self._threads.values()))

    def __len__(self) -> int:
        return len(self._threads)

    def keep_only_current(self, tid: int) -> None:
        """After execve or in a forked child: the calling thread is the only one left, and
        its id is the process's `tid` (the new pid, or the leader's after exec)."""
        for thread in list(self._threads.values()):
            if thread is not self.current:
                self.remove(thread)
        self._threads = {tid: self.current}
        self.current.tid = self.pid = tid
        self._next_tid = max(self._next_tid, tid + 1)


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", encoding="ascii") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return PID_MAX_LIMIT
