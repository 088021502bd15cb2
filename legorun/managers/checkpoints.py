"""Checkpoints at the memory manager: named copies of a process's address space.

A processor that checkpoints (processor/checkpoint.py) flushes its dirty ExCache lines, then
asks its memory manager to keep the address space as it is at that moment under a name: a
copy-on-write snapshot, as fork takes one, so later writes of the running process leave it
untouched. With the snapshot the manager keeps the processor's own state (an opaque record:
registers, open files, signal state) and, per output stream, how many bytes the processor
has written since, which it reports before writing them (processor/checkpoint_output.py).

`legorun --restore NAME` asks for the checkpoint back: a fresh copy of the snapshot becomes
the address space of the process again, under the pid it had, and the record and output
counts go to the new processor. The snapshot stays, so a run can be restored again.

Every checkpoint of a name has a generation number, one more than the one it replaces. A
processor names the generation it last took or restored when it takes the next one or
commits output, so that a processor that a restored run has taken over (declared dead, but
still running) cannot overwrite the newer run's checkpoint or its output counts: it gets
ESTALE instead.

A memory server shares one store among the managers of all its processors: the restored run
is a processor of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from legorun.managers.address_space import AddressSpace
from legorun.rpc.messages import (
    CheckpointReply,
    CheckpointRequest,
    Opcode,
    OutputCommitRequest,
    RestoreReply,
    RestoreRequest,
    StatusReply,
)
from syscalls.errno import Errno, SyscallError


@dataclass(slots=True)
class Checkpoint:
    pid: int  # of the process, as its guest knew it
    space: AddressSpace  # the snapshot; never installed itself, only copies of it
    record: bytes  # the processor's state, opaque here
    generation: int
    outputs: dict[int, int] = field(default_factory=dict)  # stream -> bytes written since


class CheckpointStore:
    """Checkpoints by name."""

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}

    def save(self, name: str, pid: int, space: AddressSpace, record: bytes, previous: int,
             outputs: dict[int, int]) -> int:
        """Keep `space` (already a copy) as checkpoint `name`; its generation. ESTALE when
        the checkpoint of that name is not generation `previous` (0: replace any)."""
        current = self._checkpoints.get(name)
        generation = current.generation if current is not None else 0
        if previous and previous != generation:
            raise SyscallError(Errno.ESTALE, f"checkpoint {name} is at generation {generation}")
        self._checkpoints[name] = Checkpoint(pid, space, record, generation + 1, outputs)
        return generation + 1

    def commit_output(self, name: str, generation: int, stream: int, written: int) -> None:
        checkpoint = self._checkpoints.get(name)
        if checkpoint is None:
            raise SyscallError(Errno.ENOENT, name)
        if checkpoint.generation != generation:
            raise SyscallError(Errno.ESTALE, name)
        checkpoint.outputs[stream] = written

    def get(self, name: str) -> Checkpoint | None:
        return self._checkpoints.get(name)


class CheckpointHandlers:
    """The P2M checkpoint opcodes of one memory manager: `spaces` is its address spaces by
    pid, `retire(pid)` lets a pid's space go (as exit does)."""

    def __init__(self, store: CheckpointStore, spaces: dict[int, AddressSpace],
                 retire: Callable[[int], None]) -> None:
        self._store = store
        self._spaces = spaces
        self._retire = retire

    def handlers(self) -> dict[Opcode, Callable[[Any], Any]]:
        return {
            Opcode.P2M_CHECKPOINT: self.handle_p2m_checkpoint,
            Opcode.P2M_OUTPUT_COMMIT: self.handle_p2m_output_commit,
            Opcode.P2M_RESTORE: self.handle_p2m_restore,
        }

    def handle_p2m_checkpoint(self, req: CheckpointRequest) -> CheckpointReply:
        space = self._spaces.get(req.pid)
        if space is None:
            return CheckpointReply(status=Errno.ESRCH)
        try:
            generation = self._store.save(req.name, req.pid, space.copy(), req.record,
                                          req.previous, dict(req.outputs))
        except SyscallError as error:
            return CheckpointReply(status=error.errno)
        return CheckpointReply(generation=generation)

    def handle_p2m_output_commit(self, req: OutputCommitRequest) -> StatusReply:
        try:
            self._store.commit_output(req.name, req.generation, req.stream, req.written)
        except SyscallError as error:
            return StatusReply(status=error.errno)
        return StatusReply()

    def handle_p2m_restore(self, req: RestoreRequest) -> RestoreReply:
        checkpoint = self._store.get(req.name)
        if checkpoint is None:
            return RestoreReply(status=Errno.ENOENT)
        space = checkpoint.space.copy()
        self._retire(checkpoint.pid)
        self._spaces[checkpoint.pid] = space
        return RestoreReply(
            pid=checkpoint.pid, generation=checkpoint.generation, record=checkpoint.record,
            outputs=tuple(sorted(checkpoint.outputs.items())), layout=space.layout(),
            populated=tuple(space.populated()),
        )
