"""When the next checkpoint is due, by the host clock, and a stop of the CPU at that moment.

A guest that computes without syscalls never hands control back to the run loop, so a
thread of the host process waits for the deadline, marks the checkpoint due and stops the
CPU (`uc_emu_stop` is made to be called from another thread: Unicorn's own timeouts do so).
The run loop takes the checkpoint before the guest runs again (scheduler.py) and starts the
next interval. No hook runs while the guest computes: the timer costs nothing between
checkpoints.

A stop that reaches Unicorn while it is not running is lost; the mark stays, so the run
loop still sees it before it starts the CPU, and while it stays the timer stops the CPU
again every RETRY_S. The mark is set and cleared under one lock with the stop, so the CPU is
never stopped for a checkpoint that is not due (the run loop would take the stop for a
`hlt` of the guest).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

RETRY_S = 0.05


class CheckpointTimer:
    def __init__(self, interval_s: float, stop_cpu: Callable[[], None],
                 due: bool = False) -> None:
        """`due`: the first checkpoint is due at once, not an interval from now."""
        if interval_s <= 0:
            raise ValueError(f"checkpoint interval must be positive, got {interval_s}")
        self._interval_s = interval_s
        self._stop_cpu = stop_cpu
        self._lock = threading.Lock()
        self._due = due
        self._deadline = time.monotonic() + interval_s
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="legorun checkpoint timer",
                                        daemon=True)
        self._thread.start()

    @property
    def due(self) -> bool:
        return self._due

    def restart(self) -> None:
        """A checkpoint was taken: the next one is due an interval from now."""
        with self._lock:
            self._due = False
            self._deadline = time.monotonic() + self._interval_s

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        # Host signals are for the thread that runs the guest (hostsignals.py).
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            with self._lock:
                wait = RETRY_S if self._due else max(0.0, self._deadline - time.monotonic())
            if self._closed.wait(wait):
                return
            with self._lock:
                if self._due or time.monotonic() >= self._deadline:
                    self._due = True
                    self._stop_cpu()
