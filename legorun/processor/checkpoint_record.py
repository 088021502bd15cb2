"""What a checkpoint holds of the processor, and its encoding.

The memory manager keeps the address space; everything else that makes up the process lives
on the processor and travels to the memory server as one opaque record: the CPU's registers
(the whole Unicorn context: general registers, rip, flags, segment bases, x87, SSE), the
open files and the descriptors that name them, the process state (identity, cwd, umask,
limits, signal actions), the thread's signal state and the interval timers. The encoding is
msgpack of plain values, with a format number; a record of another format, or registers
from another Unicorn version (whose context layout may differ), is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import msgpack

from legorun.processor.process import SignalAction
from legorun.processor.sigframe import AltStack, SigInfo

FORMAT = 1
# Guest paths are the host's bytes decoded as os.fsdecode does: a name that is not UTF-8
# keeps its bytes as surrogates, and travels so.
PATH_ERRORS = "surrogateescape"
# What an open file description is (SavedFile.kind).
STREAM, FILE, DIRECTORY, DEVICE = "stream", "file", "directory", "device"


class RecordError(Exception):
    """A record that is not one this legorun can restore."""


@dataclass(frozen=True, slots=True)
class SavedFile:
    """An open file description: a stream inherited from legorun (by its host descriptor),
    or a path and an offset on the storage manager."""

    kind: str
    flags: int
    host_fd: int = -1  # STREAM
    path: str = ""  # FILE, DIRECTORY, DEVICE
    offset: int = 0
    minor: int = 0  # DEVICE: which memory device
    hidden: bool = False  # unlinked while open: this process removes it at its last close


@dataclass(frozen=True, slots=True)
class SavedProcess:
    pid: int  # the guest's pid, kept by the restored process
    exe: str
    cwd: str
    argv: tuple[bytes, ...]
    envp: tuple[bytes, ...]
    stack_start: int
    uid: int
    euid: int
    gid: int
    egid: int
    umask: int
    uptime_s: float  # since the process started: its start time moves with the restore
    rlimits: tuple[tuple[int, int, int], ...]  # resource, soft, hard
    sigactions: tuple[tuple[int, SignalAction], ...]
    prctl: tuple[tuple[int, int | bytes], ...]


@dataclass(frozen=True, slots=True)
class SavedThread:
    sigmask: int
    altstack: AltStack
    clear_child_tid: int
    robust_list: tuple[int, int]
    pending: tuple[SigInfo, ...]


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    unicorn: str  # the version whose context layout `registers` has
    registers: bytes
    interval_s: float  # how often the run took checkpoints: a restored run goes on so
    load_bias: int
    brk: int
    process: SavedProcess
    thread: SavedThread
    shared_pending: tuple[SigInfo, ...]  # signals pending for the process as a whole
    files: tuple[SavedFile, ...]
    fds: tuple[tuple[int, int, bool], ...]  # descriptor, index in `files`, close-on-exec
    timers: tuple[tuple[int, float, float], ...]  # armed interval timers: which, value, interval


def _flat(value: Any) -> list[Any]:
    """A flat dataclass (SavedFile, SignalAction, AltStack, SigInfo) as its fields."""
    return [getattr(value, field.name) for field in dataclasses.fields(value)]


def _unflat(cls: type, values: Any) -> Any:
    if not isinstance(values, tuple):
        raise RecordError(f"{cls.__name__}: not a list of fields")
    return cls(*values)


def encode_record(record: CheckpointRecord) -> bytes:
    process = record.process
    thread = record.thread
    return msgpack.packb({
        "format": FORMAT,
        "unicorn": record.unicorn,
        "registers": record.registers,
        "interval_s": record.interval_s,
        "load_bias": record.load_bias,
        "brk": record.brk,
        "process": {
            **{field.name: getattr(process, field.name)
               for field in dataclasses.fields(SavedProcess) if field.name != "sigactions"},
            "sigactions": [(sig, _flat(action)) for sig, action in process.sigactions],
        },
        "thread": {
            "sigmask": thread.sigmask, "altstack": _flat(thread.altstack),
            "clear_child_tid": thread.clear_child_tid, "robust_list": thread.robust_list,
            "pending": [_flat(info) for info in thread.pending],
        },
        "shared_pending": [_flat(info) for info in record.shared_pending],
        "files": [_flat(file) for file in record.files],
        "fds": record.fds,
        "timers": record.timers,
    }, use_bin_type=True, unicode_errors=PATH_ERRORS)


def decode_record(data: bytes) -> CheckpointRecord:
    """The record in `data`; RecordError for anything else."""
    try:
        fields = msgpack.unpackb(data, use_list=False, raw=False, unicode_errors=PATH_ERRORS)
        if not isinstance(fields, dict) or fields.get("format") != FORMAT:
            raise RecordError("not a checkpoint record of this legorun's format")
        process = dict(fields["process"])
        process["sigactions"] = tuple((sig, _unflat(SignalAction, action))
                                      for sig, action in process["sigactions"])
        thread = fields["thread"]
        return CheckpointRecord(
            unicorn=fields["unicorn"], registers=fields["registers"],
            interval_s=fields["interval_s"], load_bias=fields["load_bias"], brk=fields["brk"],
            process=SavedProcess(**process),
            thread=SavedThread(
                sigmask=thread["sigmask"], altstack=_unflat(AltStack, thread["altstack"]),
                clear_child_tid=thread["clear_child_tid"],
                robust_list=tuple(thread["robust_list"]),
                pending=tuple(_unflat(SigInfo, info) for info in thread["pending"]),
            ),
            shared_pending=tuple(_unflat(SigInfo, info) for info in fields["shared_pending"]),
            files=tuple(_unflat(SavedFile, file) for file in fields["files"]),
            fds=fields["fds"],
            timers=fields["timers"],
        )
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError, msgpack.UnpackException) as error:
        raise RecordError(f"a damaged checkpoint record ({error})") from None
