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
"""

from __future__ import annotations

import ctypes
import os
import signal

from unicorn import Uc
from unicorn.unicorn_py3.unicorn import uclib

from legorun.errors import LegorunError
from legorun.native import native_library

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

    def close(self) -> None:
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
        """Make the host disposition of `sig` follow the guest's (CATCH, IGNORE, DEFAULT)."""
        if sig in NOT_MIRRORED or not 1 <= sig <= 64:
            return
        if sig in TIMER_SIGNALS.values() and self._timer_of(sig) in self._timers_armed:
            disposition = CATCH  # see the module docstring
        if self._dispositions.get(sig, DEFAULT) == disposition:
            return
        if disposition == DEFAULT:
            status = self._lib.hostsig_restore(self._state, sig)
        else:
            status = self._lib.hostsig_set(self._state, sig, int(disposition == CATCH))
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
            if disposition == CATCH and self._lib.hostsig_take(self._state, sig, self._info):
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
