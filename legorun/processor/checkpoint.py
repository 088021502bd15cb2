"""Processor checkpoints: every so often, the whole process kept at the memory server, so
that `legorun --restore NAME` can go on with it after its processor was killed.

    legorun --memory ADDR --checkpoint-interval 500ms [--checkpoint-name NAME] PROGRAM ...
    legorun --memory ADDR --restore NAME

Every interval of host time (checkpoint_timer.py) the run loop, between two instructions,
takes a checkpoint: it writes every dirty ExCache line back to the memory manager (the
lines stay cached, clean), then sends the processor's state (checkpoint_state.py: registers,
open files, process and signal state) in a P2M_CHECKPOINT request, and the memory manager
keeps a copy-on-write snapshot of the address space with it under the name
(managers/checkpoints.py). From then on each write to an output stream is counted at the
memory server first (checkpoint_output.py), so that a restored run does not write again what
the killed one wrote after the checkpoint.

A restored run (checkpoint_restore.py) re-executes the stretch from the checkpoint to the
kill, so its output is that of one undisturbed run only if that stretch runs as it did the
first time. That holds for one process with one thread whose input is files: the clocks it
reads (time, clock_gettime, rdtsc) and random bytes (getrandom, /dev/urandom) may differ in
the re-execution, and input it read from its standard input after the checkpoint is not
read again. The guest's pid is restored; its parent is the restoring legorun's parent.

A checkpoint is refused, ending the run with an error, when the process forks (refused at
the fork: the child's output could not be accounted for), runs more than one thread, or
holds a file that cannot be made again in another legorun process (a pipe, a socket, an
eventfd, a timerfd, an epoll instance, a /proc file), or has writable MAP_SHARED memory
(shared_memory.py: it is host memory, not the memory manager's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn.unicorn_py3.unicorn import uclib

from legorun.cache.excache import UC_CTL_TLB_FLUSH_WRITE
from legorun.cache.lines import LINE_DIRTY
from legorun.errors import LegorunError
from legorun.managers.vma import PAGE_SHIFT, PAGE_SIZE
from legorun.processor.checkpoint_output import CommittedStream, OutputLedger
from legorun.processor.checkpoint_record import encode_record
from legorun.processor.checkpoint_state import NotCheckpointable, capture_record
from legorun.processor.checkpoint_timer import CheckpointTimer
from legorun.processor.files import HostStream
from legorun.rpc.messages import (
    CheckpointReply,
    CheckpointRequest,
    OutputCommitRequest,
    StatusReply,
)
from syscalls.errno import Errno, strerror

if TYPE_CHECKING:
    from legorun.processor.processor import Processor

WRITEBACK_BATCH = 256  # lines per write-back request: 1 MiB


class Checkpointer:
    """Takes the checkpoints of one run, under `name`, every `interval_s` of host time."""

    def __init__(self, processor: Processor, name: str, interval_s: float) -> None:
        self._processor = processor
        self._name = name
        self._interval_s = interval_s
        self._generation = 0  # of the last checkpoint taken or restored; 0: none yet
        self.ledger = OutputLedger(self._commit_output)
        # The guest's standard streams, as _prepare installed them, write through the ledger.
        for fd in processor.fds.fds():
            entry = processor.fds.entry(fd)
            if type(entry.file) is HostStream:
                processor.fds.install(fd, CommittedStream(entry.file.fd, entry.file.flags,
                                                          self.ledger), entry.cloexec)
        # The first checkpoint is the program's start: from then on a checkpoint of this
        # name is always one of this run.
        self._timer = CheckpointTimer(interval_s, processor.cpu.uc.emu_stop, due=True)

    @property
    def due(self) -> bool:
        return self._timer.due

    def resume_from(self, generation: int, emitted: dict[int, int]) -> None:
        """The run goes on from generation `generation` of the checkpoint, after which
        `emitted` bytes of each stream were written."""
        self._generation = generation
        self.ledger.resume(emitted)
        self._timer.restart()

    def take(self) -> None:
        """Take a checkpoint now (the run loop calls this between two instructions)."""
        processor = self._processor
        assert processor.threads is not None
        if len(processor.threads) > 1:
            raise NotCheckpointable(f"cannot checkpoint: the guest runs "
                                    f"{len(processor.threads)} threads; checkpoints keep "
                                    "single-threaded processes")
        self._flush_dirty_lines()
        record = encode_record(capture_record(processor, self._interval_s))
        ahead = self.ledger.checkpointed()
        reply: CheckpointReply = processor.transport.call(CheckpointRequest(
            pid=processor.pid, name=self._name, record=record, previous=self._generation,
            outputs=tuple(sorted(ahead.items()))))
        self._check(reply.status)
        self._generation = reply.generation
        self._timer.restart()

    def refuse_fork(self) -> None:
        raise NotCheckpointable("cannot checkpoint: the guest forks; checkpoints keep a "
                                "single process (run it without --checkpoint-interval)")

    def close(self) -> None:
        self._timer.close()

    def _flush_dirty_lines(self) -> None:
        """Write every dirty line back; they stay cached, clean."""
        excache = self._processor.excache
        lines: list[tuple[int, bytes]] = []
        for slot, flags in enumerate(excache.flags):
            if flags & LINE_DIRTY:
                excache.flags[slot] = flags & ~LINE_DIRTY
                offset = slot << PAGE_SHIFT
                lines.append((excache.tags[slot] << PAGE_SHIFT,
                              bytes(excache.memory[offset : offset + PAGE_SIZE])))
        if not lines:
            return
        # Unicorn's TLB still lets the guest write to them: drop it, so that the next store
        # to a line comes back through the fill hook, which marks it dirty again.
        uclib.uc_ctl(self._processor.cpu.uc._uch, UC_CTL_TLB_FLUSH_WRITE)
        excache.stats.writebacks += len(lines)
        for start in range(0, len(lines), WRITEBACK_BATCH):
            self._processor.vm.write_back(tuple(lines[start : start + WRITEBACK_BATCH]))

    def _commit_output(self, stream: int, written: int) -> None:
        if not self._generation:  # no checkpoint yet: nothing will re-execute this write
            return
        reply: StatusReply = self._processor.transport.call(
            OutputCommitRequest(self._name, self._generation, stream, written))
        self._check(reply.status)

    def _check(self, status: int) -> None:
        if status == Errno.ESTALE:
            raise LegorunError(f"checkpoint {self._name}: another run has taken it over "
                               "(restored from it, or checkpointing under the same name)")
        if status:
            raise LegorunError(f"checkpoint {self._name}: the memory server refused it: "
                               f"{strerror(status)}")
