"""The checkpoint timer: marks a checkpoint due and stops the CPU, again while it stays due
(a stop can be lost), and not before the run loop starts the next interval."""

from __future__ import annotations

import threading

import pytest

from legorun.processor.checkpoint_timer import CheckpointTimer

PATIENCE_S = 30.0  # what a loaded test machine may take to run the timer's thread


class Cpu:
    def __init__(self) -> None:
        self.stops = 0
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stops += 1
        self.stopped.set()

    def wait_for_stop(self) -> None:
        assert self.stopped.wait(PATIENCE_S), "the timer never stopped the CPU"
        self.stopped.clear()


def test_a_checkpoint_falls_due_and_the_cpu_is_stopped() -> None:
    cpu = Cpu()
    timer = CheckpointTimer(0.01, cpu.stop)
    try:
        cpu.wait_for_stop()
        assert timer.due
        cpu.wait_for_stop()  # not taken yet: stopped again, in case the first stop was lost
        assert timer.due
    finally:
        timer.close()


def test_restart_waits_a_whole_interval() -> None:
    cpu = Cpu()
    timer = CheckpointTimer(3600.0, cpu.stop, due=True)
    try:
        assert timer.due
        timer.restart()
        assert not timer.due
        # A stop for the checkpoint that was due is over once restart returns (the two hold
        # the same lock); none may follow.
        cpu.stopped.clear()
        assert not cpu.stopped.wait(0.2)
        assert not timer.due
    finally:
        timer.close()


def test_close_ends_the_thread() -> None:
    timer = CheckpointTimer(3600.0, Cpu().stop)
    timer.close()
    assert not any(thread.name == "legorun checkpoint timer" and thread.is_alive()
                   for thread in threading.enumerate())


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CheckpointTimer(0.0, Cpu().stop)
