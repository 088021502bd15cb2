"""The process's POSIX timers (timer_create(2); kernel/time/posix-timers.c).

Each guest timer is a host POSIX timer on the same clock (hostsignals.py), so the host's
kernel does the timing: absolute and relative settings, intervals, the clocks' own rules.
Its expirations arrive counted per timer; this table turns them into the guest's signal
as Linux does:

- A timer has one signal in flight at most. An expiration while its signal is still
  pending (blocked, or not yet delivered) is an overrun; the delivered siginfo carries
  si_code SI_TIMER, the timer id, the overrun count and the sigev_value, and
  timer_getoverrun() returns the overrun count of the latest delivery.
- The signal goes to the process (SIGEV_SIGNAL, and SIGEV_THREAD, which the kernel treats
  alike: the C library builds its threads on top of SIGEV_THREAD_ID) or to one thread
  (SIGEV_THREAD_ID); SIGEV_NONE only counts time.
- An expiration whose signal is ignored is dropped, and the timer runs on.
- A signal still pending when its timer is deleted, or set again and not expired since,
  is dropped when it would be delivered (as Linux 6.13 and later do).
- Timer ids are small ints from 0 in creation order; fork(2) does not inherit timers (the
  child's ids start at 0 again), execve(2) deletes them.

CPU-time clocks are the host's: the process CPU clock of legorun's process, which emulates
the guest (so it counts the emulation's cost too), and for a thread CPU clock the host
thread that runs every guest thread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Callable

from legorun.processor.files import host_call
from legorun.processor.hostsignals import (
    ITIMERSPEC_SIZE,
    SIGEV_NONE,
    SIGEV_SIGNAL,
    HostSignals,
)
from legorun.processor.process import ProcessState
from legorun.processor.sigframe import SI_TIMER, SIGINFO_SIZE, SigInfo
from legorun.processor.threads import sigbit
from syscalls.errno import Errno, SyscallError

SIGALRM = 14
DELAYTIMER_MAX = (1 << 31) - 1  # an overrun count saturates here (timer_getoverrun(2))
# siginfo for SI_TIMER: si_signo, si_errno, si_code, padding, si_tid (the timer id),
# si_overrun, si_value
TIMER_SIGINFO = struct.Struct("<iii4xiiQ")
DISARMED = bytes(ITIMERSPEC_SIZE)


@dataclass(frozen=True, slots=True)
class Notification:
    """How a timer notifies (struct sigevent, checked): `tid` is the thread for
    SIGEV_THREAD_ID, else None (the process)."""

    notify: int
    signo: int = 0
    value: int = 0
    tid: int | None = None

    @property
    def signals(self) -> bool:
        return self.notify != SIGEV_NONE


@dataclass(frozen=True, slots=True)
class TimerSignal(SigInfo):
    """A timer's signal in a pending queue; its overrun count is set on delivery."""

    timer_id: int = 0
    overrun: int = 0

    def pack(self) -> bytes:
        return TIMER_SIGINFO.pack(self.signo, 0, SI_TIMER, self.timer_id, self.overrun,
                                  self.value).ljust(SIGINFO_SIZE, b"\0")


@dataclass(eq=False)
class PosixTimer:
    id: int
    slot: int  # the host side's index for it (hostsignals.py)
    notification: Notification
    queued: bool = False  # its signal was queued and not delivered yet
    overrun: int = 0  # expirations since that signal was queued, beyond the first
    overrun_last: int = 0  # the overrun count of the latest delivery
    settings: int = 0  # how many times timer_settime set it
    expired_in: int = 0  # the setting it last expired in: a queued signal of an older one
    #                      is stale


class PosixTimers:
    def __init__(self, host: HostSignals, proc: ProcessState,
                 pending: Callable[[int | None], int],
                 send: Callable[[SigInfo, int | None], None]) -> None:
        """`pending(tid)` is the mask of signals pending for thread `tid` (None: for the
        process as a whole); `send(info, tid)` queues a signal there."""
        self._host = host
        self._proc = proc
        self._pending = pending
        self._send = send
        self._timers: dict[int, PosixTimer] = {}
        self._next_id = 0
        self._pid = proc.pid

    def _own(self) -> dict[int, PosixTimer]:
        """The timers of this process: a forked child starts with none of its parent's."""
        if self._proc.pid != self._pid:
            self._pid = self._proc.pid
            self._timers.clear()
            self._next_id = 0
        return self._timers

    def __len__(self) -> int:
        """How many timers the process has (armed or not)."""
        return len(self._own())

    def _timer(self, timer_id: int) -> PosixTimer:
        timer = self._own().get(timer_id)
        if timer is None:
            raise SyscallError(Errno.EINVAL)
        return timer

    # ------------------------------------------------------------ the calls

    def new_id(self) -> int:
        """The id of the timer timer_create is making: Linux takes it before it checks the
        sigevent, so a call that fails after that has used it up all the same."""
        self._own()
        self._next_id += 1
        return self._next_id - 1

    def create(self, timer_id: int, host_clock: int, notification: Notification | None) -> None:
        """A disarmed timer on `host_clock` (id from new_id). Without a notification:
        SIGALRM to the process, with the timer id as sigev_value."""
        timers = self._own()
        if notification is None:
            notification = Notification(SIGEV_SIGNAL, SIGALRM, timer_id)
        used = {timer.slot for timer in timers.values()}
        slot = next((slot for slot in range(self._host.max_posix_timers) if slot not in used),
                    None)
        if slot is None:
            raise SyscallError(Errno.EAGAIN)
        host_call(lambda: self._host.create_posix_timer(slot, host_clock, notification.signals))
        timers[timer_id] = PosixTimer(timer_id, slot, notification)

    def settime(self, timer_id: int, flags: int, setting: bytes) -> bytes:
        """Arm or disarm with a struct itimerspec (a valid one); the previous setting, as
        one. A signal of the old setting still pending is stale from now on."""
        timer = self._timer(timer_id)
        # Stopped first, so that no expiration of the old setting passes for one of the new.
        old = host_call(lambda: self._host.set_posix_timer(timer.slot, 0, DISARMED))
        self._host.take_expirations(timer.slot)
        timer.settings += 1
        timer.overrun = timer.overrun_last = 0
        host_call(lambda: self._host.set_posix_timer(timer.slot, flags, setting))
        return old

    def gettime(self, timer_id: int) -> bytes:
        timer = self._timer(timer_id)
        return host_call(lambda: self._host.get_posix_timer(timer.slot))

    def getoverrun(self, timer_id: int) -> int:
        return self._timer(timer_id).overrun_last

    def delete(self, timer_id: int) -> None:
        timer = self._timer(timer_id)
        del self._timers[timer_id]
        self._host.delete_posix_timer(timer.slot)

    def delete_all(self) -> None:
        """execve: the new program has no timers."""
        for timer_id in list(self._own()):
            self.delete(timer_id)

    # ------------------------------------------------------------ expirations

    def collect(self) -> None:
        """Signal what expired since the last look (after a host signal arrived)."""
        for timer in list(self._own().values()):
            if timer.notification.signals:
                self._expired(timer, self._host.take_expirations(timer.slot))

    def _expired(self, timer: PosixTimer, count: int) -> None:
        if not count:
            return
        timer.expired_in = timer.settings
        notification = timer.notification
        if timer.queued and self._pending(notification.tid) & sigbit(notification.signo):
            timer.overrun += count
            return
        # Queued anew (also when the last one went without a delivery: it was ignored, or
        # its thread is gone).
        timer.queued = True
        timer.overrun = count - 1
        self._send(TimerSignal(notification.signo, SI_TIMER, value=notification.value,
                               timer_id=timer.id), notification.tid)

    def delivered(self, info: TimerSignal) -> TimerSignal | None:
        """The signal `info`, just dequeued, as it is delivered (with its overrun count),
        or None if it is stale: its timer was deleted, or set again and has not expired
        since."""
        timer = self._own().get(info.timer_id)
        if timer is None:
            return None
        if count := self._host.take_expirations(timer.slot):  # while it was queued
            timer.expired_in = timer.settings
            timer.overrun += count
        timer.queued = False
        if timer.expired_in != timer.settings:
            timer.overrun = 0
            return None
        overrun = min(timer.overrun, DELAYTIMER_MAX)
        timer.overrun, timer.overrun_last = 0, overrun
        return replace(info, overrun=overrun)
