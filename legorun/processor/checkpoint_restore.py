"""`legorun --restore NAME`: a checkpoint fetched back from the memory server.

The memory manager makes a copy of the checkpoint's address space the process's again and
sends back the processor's record with the output counts (managers/checkpoints.py); the
processor then adopts the address space as after an exec, prepares the process from the
record and resumes it at the instruction where the checkpoint was taken
(Processor.resume, checkpoint_state.apply_record).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from legorun.errors import LegorunError
from legorun.processor.checkpoint_record import CheckpointRecord, RecordError, decode_record
from legorun.rpc.messages import ExecReply, RestoreReply, RestoreRequest
from legorun.rpc.transport import Transport
from syscalls.errno import Errno, strerror


@dataclass(frozen=True, slots=True)
class RestoredCheckpoint:
    name: str
    generation: int
    record: CheckpointRecord
    outputs: dict[int, int]  # stream -> bytes written since the checkpoint
    image: ExecReply  # the address space, as an exec describes a new one

    @property
    def pid(self) -> int:
        return self.record.process.pid

    @property
    def exe(self) -> str:
        return self.record.process.exe

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(os.fsdecode(arg) for arg in self.record.process.argv)


def fetch_checkpoint(transport: Transport, name: str) -> RestoredCheckpoint:
    """Ask the memory server for checkpoint `name`; its address space is in place when this
    returns."""
    reply: RestoreReply = transport.call(RestoreRequest(name))
    if reply.status == Errno.ENOENT:
        raise LegorunError(f"--restore {name}: the memory server has no checkpoint of "
                           "that name")
    if reply.status:
        raise LegorunError(f"--restore {name}: {strerror(reply.status)}")
    try:
        record = decode_record(reply.record)
    except RecordError as error:
        raise LegorunError(f"--restore {name}: {error}") from None
    if record.process.pid != reply.pid:
        raise LegorunError(f"--restore {name}: the record is of pid {record.process.pid}, "
                           f"the address space of pid {reply.pid}")
    image = ExecReply(program=record.process.exe, load_bias=record.load_bias, brk=record.brk,
                      layout=reply.layout, populated=reply.populated)
    return RestoredCheckpoint(name, reply.generation, record, dict(reply.outputs), image)
