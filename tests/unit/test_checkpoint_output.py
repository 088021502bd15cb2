"""The output commit counter: what a run writes to its output streams after a checkpoint is
counted at the memory server before it is written, and a run restored from the checkpoint
skips exactly what was written."""

from __future__ import annotations

import pytest

from legorun.processor.checkpoint_output import OutputLedger
from syscalls.errno import Errno, SyscallError

OUT, ERR = 1, 2


class Stream:
    """A host stream that records what reached it, and when the counts were reported."""

    def __init__(self, events: list[tuple]) -> None:
        self.events = events
        self.data = b""
        self.accept: int | None = None  # bytes one write takes; None: all
        self.error: Errno | None = None

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise SyscallError(self.error)
        taken = data if self.accept is None else data[: self.accept]
        self.events.append(("write", taken))
        self.data += taken
        return len(taken)


def make() -> tuple[OutputLedger, Stream, list[tuple]]:
    events: list[tuple] = []
    ledger = OutputLedger(lambda stream, total: events.append(("commit", stream, total)))
    return ledger, Stream(events), events


def test_the_count_is_reported_before_the_bytes_are_written() -> None:
    ledger, out, events = make()
    assert ledger.write(OUT, b"hello\n", out.send) == 6
    assert ledger.write(OUT, b"world\n", out.send) == 6
    assert events == [("commit", OUT, 6), ("write", b"hello\n"),
                      ("commit", OUT, 12), ("write", b"world\n")]


def test_a_restored_run_skips_what_was_written_and_reports_it_written() -> None:
    ledger, out, events = make()
    ledger.resume({OUT: 8})
    assert ledger.write(OUT, b"abc", out.send) == 3  # bytes 0-2: written before
    assert ledger.write(OUT, b"defgh", out.send) == 5  # bytes 3-7: written before
    assert events == []
    assert ledger.write(OUT, b"ijk", out.send) == 3
    assert out.data == b"ijk"
    assert events[0] == ("commit", OUT, 11)


def test_a_write_that_straddles_the_count_writes_only_its_new_part() -> None:
    ledger, out, events = make()
    ledger.resume({OUT: 4, ERR: 100})
    assert ledger.write(OUT, b"0123456789", out.send) == 10
    assert out.data == b"456789"
    assert events == [("commit", OUT, 10), ("write", b"456789")]
    assert ledger.write(ERR, b"x" * 50, out.send) == 50  # another stream counts apart
    assert out.data == b"456789"


def test_a_short_write_reports_the_true_count() -> None:
    ledger, out, events = make()
    out.accept = 2
    assert ledger.write(OUT, b"abcdef", out.send) == 2
    assert events == [("commit", OUT, 6), ("write", b"ab"), ("commit", OUT, 2)]
    out.accept = None
    assert ledger.write(OUT, b"cdef", out.send) == 4
    assert events[-2:] == [("commit", OUT, 6), ("write", b"cdef")]


def test_a_failed_write_takes_its_count_back() -> None:
    ledger, out, events = make()
    out.error = Errno.EPIPE
    with pytest.raises(SyscallError):
        ledger.write(OUT, b"lost", out.send)
    assert events == [("commit", OUT, 4), ("commit", OUT, 0)]


def test_a_failure_after_skipped_bytes_is_a_short_write() -> None:
    ledger, out, events = make()
    ledger.resume({OUT: 3})
    out.error = Errno.EAGAIN
    assert ledger.write(OUT, b"abcdef", out.send) == 3
    assert events == [("commit", OUT, 6), ("commit", OUT, 3)]
    out.error = None
    assert ledger.write(OUT, b"def", out.send) == 3
    assert out.data == b"def"


def test_a_checkpoint_starts_counting_again_and_keeps_what_lies_ahead() -> None:
    """A restored run that checkpoints before it has caught up with the killed run still
    has to skip the rest of what that run wrote."""
    ledger, out, events = make()
    ledger.resume({OUT: 10})
    ledger.write(OUT, b"0123", out.send)
    assert ledger.checkpointed() == {OUT: 6}
    ledger.write(OUT, b"456789", out.send)
    assert out.data == b""
    ledger.write(OUT, b"new", out.send)
    assert out.data == b"new"
    assert events[0] == ("commit", OUT, 9)
    assert ledger.checkpointed() == {}


def test_an_empty_write_writes_nothing() -> None:
    ledger, out, events = make()
    assert ledger.write(OUT, b"", out.send) == 0
    assert events == []
