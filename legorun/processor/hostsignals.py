"""Signals that reach the host legorun process for the guest (see native/hostsignals.c).

The guest process is the host process: a kill(1) aimed at the guest, a Ctrl-C at the
terminal or the expiry of an interval timer the guest armed lands here. The host
disposition of each signal mirrors the guest's: a signal the guest catches is recorded by
the compiled handler (which stops the CPU) and delivered to the guest by the run loop; one
it ignores is ignored; one it leaves at its default keeps the host's own disposition, whose
default action is Linux's, so legorun ends the way the guest would (SIGINT stays Python's
KeyboardInterrupt, which ends legorun with status 130).

The guest's interval timers are the host process's (setitimer(2)): their signals are
always recorded while a timer is armed, so that even a default action (SIGALRM ends the
process) goes through the run loop, which reports it as the guest's death.

The guest's POSIX timers (timer_create(2)) are host POSIX timers too, on the same clock.
Their expirations all arrive on one host signal, TIMER_CARRIER, sent to the thread that
runs the guest with the guest timer's slot as si_value; the recorder counts them per slot
(take_expirations) and posix_timers.py turns them into the guest's own signals. One host
signal for every guest timer keeps the guest's choice free: glibc's SIGEV_THREAD timers
signal 32, which the host's C library owns. The carrier is caught while a signalling timer
is armed, for the same reason as SIGALRM above; otherwise it mirrors the guest's action for
signal TIMER_CARRIER like any other. Host POSIX timers are not inherited by fork(2): a
forked child starts with none.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import threading

from unicorn import Uc
from unicorn.unicorn_py3.unicorn import uclib

from legorun.errors import LegorunError
from legorun.native import native_library
from legorun.processor.hostlib import checked, libc

# Never mirrored: faults of legorun itself must stay fatal to it, SIGPIPE stays ignored
# (a write reports EPIPE and the guest's SIGPIPE is raised by the write), the two lowest
# real-time signals belong to the host's C library (and, in the guest, only ever come from
# the process's own threads), SIGKILL and SIGSTOP cannot be caught.
LIBC_INTERNAL = frozenset({32, 33})  # glibc's and musl's SIGCANCEL and SIGSETXID
NOT_MIRRORED = frozenset({
    signal.SIGILL, signal.SIGTRAP, signal.SIGBUS, signal.SIGFPE, signal.SIGSEGV,
    signal.SIGSYS, signal.SIGPIPE, signal.SIGKILL, signal.SIGSTOP, *LIBC_INTERNAL,
})
TIMER_SIGNALS = {signal.ITIMER_REAL: signal.SIGALRM, signal.ITIMER_VIRTUAL: signal.SIGVTALRM,
                 signal.ITIMER_PROF: signal.SIGPROF}
CATCH, IGNORE, DEFAULT = "catch", "ignore", "default"
# Caught on the host only to be kept pending (the guest blocks it at its default action):
# no handler runs, so it cannot end a wait (catches_any does not count it).
HOLD = "hold"
TIMER_CARRIER = 64  # SIGRTMAX (see the module docstring)
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4  # sigev_notify
# struct sigevent: sigev_value, sigev_signo, sigev_notify, sigev_notify_thread_id; 64 bytes
SIGEVENT, SIGEVENT_SIZE = struct.Struct("<qiii"), 64
ITIMERSPEC_SIZE = 32  # it_interval, it_value: two struct timespec


class HostSignals:
    def __init__(self, uc: Uc) -> None:
        self._lib = native_library()
        self._lib.hostsig_new.restype = ctypes.c_void_p
        self._state = ctypes.c_void_p(self._lib.hostsig_new(
            ctypes.c_void_p(uc._uch.value if hasattr(uc._uch, "value") else uc._uch),
            ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p)))
        if not self._state.value:
            raise LegorunError("out of memory for the host signal recorder")
        self._info = (ctypes.c_int32 * 4)()
        # hostsig_t's first field, set by the handler: read without a call into C.
        self._arrived = ctypes.c_int.from_address(self._state.value)
        self._dispositions: dict[int, str] = {}
        self._timers_armed: set[int] = set()
        self._wakeup: tuple[int, int] | None = None
        self._wakeup_pid = 0
        self._lib.hostsig_take_expirations.restype = ctypes.c_int64
        self._lib.hostsig_set_timer_signal(self._state, TIMER_CARRIER)
        self.max_posix_timers = self._lib.hostsig_max_timers()
        self._requested: dict[int, str] = {}  # the guest's wish, when a timer overrides it
        self._posix_timers: dict[int, ctypes.c_void_p] = {}  # slot -> host timer_t
        self._signalling: set[int] = set()  # slots whose timer sends the carrier
        self._posix_armed: set[int] = set()  # slots whose signalling timer is armed
        self._posix_timers_pid = os.getpid()

    def close(self) -> None:
        for slot in list(self._host_posix_timers()):
            self.delete_posix_timer(slot)
        for which in list(self._timers_armed):  # the guest's timers end with it
            signal.setitimer(which, 0)
        self._timers_armed.clear()
        if self._state.value:
            self._arrived = ctypes.c_int(0)  # the recorder's memory goes
            self._lib.hostsig_free(self._state)
            self._state = ctypes.c_void_p()
        if self._wakeup is not None and self._wakeup_pid == os.getpid():
            for fd in self._wakeup:
                os.close(fd)
        self._wakeup = None

    # ------------------------------------------------------------ dispositions

    def mirror(self, sig: int, disposition: str) -> None:
        """Make the host disposition of `sig` follow the guest's (CATCH, HOLD, IGNORE,
        DEFAULT)."""
        if sig in NOT_MIRRORED or not 1 <= sig <= 64:
            return
        self._requested[sig] = disposition
        if sig in TIMER_SIGNALS.values() and self._timer_of(sig) in self._timers_armed:
            disposition = CATCH  # see the module docstring
        if sig == TIMER_CARRIER and self._posix_armed:
            disposition = CATCH
        if self._dispositions.get(sig, DEFAULT) == disposition:
            return
        if disposition == DEFAULT:
            status = self._lib.hostsig_restore(self._state, sig)
        else:
            status = self._lib.hostsig_set(self._state, sig,
                                           int(disposition in (CATCH, HOLD)))
        if status:
            raise LegorunError(f"cannot set the host action of signal {sig}: "
                               f"{os.strerror(-status)}")
        self._dispositions[sig] = disposition

    def catches_any(self) -> bool:
        """Whether a signal from outside (or a timer) could still reach the guest."""
        return any(disposition == CATCH for disposition in self._dispositions.values())

    @staticmethod
    def _timer_of(sig: int) -> int:
        return next(which for which, timer_sig in TIMER_SIGNALS.items() if timer_sig == sig)

    # ------------------------------------------------------------ arrivals

    def pending(self) -> bool:
        return bool(self._arrived.value)

    def take(self) -> list[tuple[int, int, int, int, int]]:
        """Signals that arrived since the last call: (signal, si_code, si_pid, si_uid,
        si_status), the last for SIGCHLD only."""
        arrived: list[tuple[int, int, int, int, int]] = []
        if not self.pending():
            return arrived
        self._arrived.value = 0  # before looking: a later arrival sets it again
        for sig, disposition in self._dispositions.items():
            if disposition in (CATCH, HOLD) and self._lib.hostsig_take(self._state, sig, self._info):
                arrived.append((sig, self._info[0], self._info[1], self._info[2] & 0xFFFFFFFF,
                                self._info[3]))
        return arrived

    def wakeup_fd(self) -> int:
        """A descriptor that becomes readable when a signal arrives, for host waits. Made
        again in a forked child: a pipe shared with the parent would wake the wrong one."""
        if self._wakeup is None or self._wakeup_pid != os.getpid():
            self._wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._wakeup_pid = os.getpid()
            self._lib.hostsig_set_wakeup_fd(self._state, self._wakeup[1])
        return self._wakeup[0]

    def drain_wakeup(self) -> None:
        if self._wakeup is not None:
            try:
                while os.read(self._wakeup[0], 256):
                    pass
            except BlockingIOError:
                pass

    # ------------------------------------------------------------ interval timers

    def set_timer(self, which: int, value_s: float, interval_s: float,
                  guest_disposition: str) -> tuple[float, float]:
        """setitimer(2) on the host for the guest; the old (value, interval)."""
        sig = TIMER_SIGNALS[which]
        if value_s > 0:
            self._timers_armed.add(which)
            self.mirror(sig, CATCH)
        old = signal.setitimer(which, value_s, interval_s)
        if value_s <= 0:
            self._timers_armed.discard(which)
            self.mirror(sig, guest_disposition)
        return old

    @staticmethod
    def get_timer(which: int) -> tuple[float, float]:
        return signal.getitimer(which)

    # ------------------------------------------------------------ POSIX timers

    def _host_posix_timers(self) -> dict[int, ctypes.c_void_p]:
        """This process's host POSIX timers by slot: a forked child has none of its
        parent's (their handles name nothing, or its own timers, in the child)."""
        if self._posix_timers_pid != os.getpid():
            self._posix_timers_pid = os.getpid()
            self._posix_timers.clear()
            self._signalling.clear()
            self._posix_armed.clear()
        return self._posix_timers

    def create_posix_timer(self, slot: int, clockid: int, signalling: bool) -> None:
        """A disarmed host POSIX timer on host clock `clockid` for the guest timer in `slot`
        (0 <= slot < max_posix_timers); a signalling one sends TIMER_CARRIER to this thread,
        the one that runs the guest. Raises OSError as timer_create(2) fails."""
        timers = self._host_posix_timers()
        if not 0 <= slot < self.max_posix_timers or slot in timers:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        event = (SIGEVENT.pack(slot, TIMER_CARRIER, SIGEV_THREAD_ID, threading.get_native_id())
                 if signalling else SIGEVENT.pack(0, 0, SIGEV_NONE, 0))
        handle = ctypes.c_void_p()
        checked(libc().timer_create(ctypes.c_int(clockid),
                                    ctypes.create_string_buffer(event, SIGEVENT_SIZE),
                                    ctypes.byref(handle)))
        self._lib.hostsig_take_expirations(self._state, slot)  # counted for an earlier one
        timers[slot] = handle
        if signalling:
            self._signalling.add(slot)

    def set_posix_timer(self, slot: int, flags: int, setting: bytes) -> bytes:
        """timer_settime(2) with a struct itimerspec as the guest wrote it (the host checks
        it); the previous setting, as one."""
        handle = self._host_posix_timers()[slot]
        arming = slot in self._signalling and any(setting[16:ITIMERSPEC_SIZE])
        if arming:  # caught before the first expiration can arrive
            self._posix_armed.add(slot)
            self._mirror_carrier()
        new = ctypes.create_string_buffer(setting, ITIMERSPEC_SIZE)
        old = ctypes.create_string_buffer(ITIMERSPEC_SIZE)
        try:
            checked(libc().timer_settime(handle, ctypes.c_int(flags), new, old))
        finally:
            self._note_armed(slot)
        return old.raw

    def get_posix_timer(self, slot: int) -> bytes:
        """timer_gettime(2): the time to the next expiration and the interval."""
        current = ctypes.create_string_buffer(ITIMERSPEC_SIZE)
        checked(libc().timer_gettime(self._host_posix_timers()[slot], current))
        return current.raw

    def take_expirations(self, slot: int) -> int:
        """How many times the timer in `slot` expired since the last call."""
        count = self._lib.hostsig_take_expirations(self._state, slot)
        if count and slot in self._posix_armed:
            self._note_armed(slot)  # a one-shot timer is over
        return count

    def delete_posix_timer(self, slot: int) -> None:
        handle = self._host_posix_timers().pop(slot)
        libc().timer_delete(handle)
        self._signalling.discard(slot)
        self._posix_armed.discard(slot)
        self._mirror_carrier()

    def _note_armed(self, slot: int) -> None:
        """Whether the signalling timer in `slot` is armed, as the host says."""
        if slot in self._signalling and any(self.get_posix_timer(slot)[16:]):
            self._posix_armed.add(slot)
        else:
            self._posix_armed.discard(slot)
        self._mirror_carrier()

    def _mirror_carrier(self) -> None:
        self.mirror(TIMER_CARRIER, self._requested.get(TIMER_CARRIER, DEFAULT))
