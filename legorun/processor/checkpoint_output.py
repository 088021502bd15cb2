"""Output that a restored run must not write again: the output commit counter.

A run restored from a checkpoint re-executes what its process did between the checkpoint
and the moment it was killed, writes included. Files on the storage manager need nothing:
a write lands at an offset, so writing the same bytes again leaves the same file. The
streams the guest inherits from legorun (stdout, stderr: pipes, terminals) only grow, and
whoever reads them has seen those bytes already. So before each write to one the processor
tells the memory server how many bytes the stream will have received since the checkpoint
(`commit`, one small RPC), and a run restored from the checkpoint discards that many bytes
of its own writes to the stream, reporting them as written: the guest sees what it saw the
first time, the reader sees each byte once.

The count is reported before the bytes are written, so a kill between the report and the
write loses that one write rather than repeating it; a short or failed write reports the
true count afterwards. Streams are named by the host descriptor behind them: the restored
run's stdout is its own stdout, whatever the guest's descriptor numbers. Reads are not
journaled: input read after the checkpoint is not read again by a restored run.
"""

from __future__ import annotations

from typing import Callable

from legorun.processor.files import HostStream
from syscalls.errno import SyscallError

# (stream, bytes received since the checkpoint): report to the memory server.
Commit = Callable[[int, int], None]


class OutputLedger:
    """For each output stream: how many bytes this run wrote since the last checkpoint
    (`position`), and how many any run wrote (`emitted`: more when a run that got further
    was killed)."""

    def __init__(self, commit: Commit) -> None:
        self._commit = commit
        self._position: dict[int, int] = {}
        self._emitted: dict[int, int] = {}

    def write(self, stream: int, data: bytes, send: Callable[[bytes], int]) -> int:
        """Write `data` to `stream` through `send` (the host write), skipping what was
        written before; the count the guest's write returns."""
        start = self._position.get(stream, 0)
        skip = min(len(data), max(0, self._emitted.get(stream, 0) - start))
        if skip == len(data):
            self._position[stream] = start + skip
            return skip
        self._record(stream, start + len(data))
        try:
            sent = send(data[skip:])
        except SyscallError:
            self._record(stream, start + skip)
            self._position[stream] = start + skip
            if not skip:
                raise
            return skip  # the skipped part was written: a short write, not a failed one
        if skip + sent < len(data):
            self._record(stream, start + skip + sent)
        self._position[stream] = start + skip + sent
        return skip + sent

    def _record(self, stream: int, total: int) -> None:
        self._commit(stream, total)
        self._emitted[stream] = total

    def checkpointed(self) -> dict[int, int]:
        """A checkpoint is taken now: counting starts again from here. Returns, per stream,
        the bytes already written past this point, which the new checkpoint starts with."""
        ahead = {stream: emitted - self._position.get(stream, 0)
                 for stream, emitted in self._emitted.items()
                 if emitted > self._position.get(stream, 0)}
        self._position.clear()
        self._emitted = dict(ahead)
        return ahead

    def resume(self, emitted: dict[int, int]) -> None:
        """This run starts at a checkpoint after which `emitted` bytes were written."""
        self._position.clear()
        self._emitted = dict(emitted)


class CommittedStream(HostStream):
    """A stream inherited from legorun whose writes go through the ledger."""

    def __init__(self, fd: int, flags: int, ledger: OutputLedger) -> None:
        super().__init__(fd, flags)
        self._ledger = ledger

    def write(self, data: bytes) -> int:
        return self._ledger.write(self.fd, data, super().write)
