"""The processor's side of a checkpoint, both ways: `capture_record` reads a record from the
running processor, `apply_record` puts one into a processor that is about to resume it.

What can be saved is what can be made again in another legorun process: the streams legorun
inherits (its own stdin, stdout, stderr), and files, directories and memory devices on the
storage manager, which are a path and an offset. Pipes, sockets, eventfds, timerfds, epoll
instances and /proc files belong to the host process that made them: a checkpoint with one
open is refused. File locks are not kept.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import TYPE_CHECKING

import unicorn

from legorun.errors import LegorunError
from legorun.processor.checkpoint_output import CommittedStream, OutputLedger
from legorun.processor.checkpoint_record import (
    DEVICE,
    DIRECTORY,
    FILE,
    STREAM,
    CheckpointRecord,
    SavedFile,
    SavedProcess,
    SavedThread,
)
from legorun.processor.devices import MemoryDevice
from legorun.processor.fdtable import FdTable
from legorun.processor.files import Directory, HostStream, OpenFile, StorageFile
from legorun.processor.hostsignals import TIMER_SIGNALS, HostSignals
from legorun.processor.process import Ids, ProcessState
from legorun.processor.sigframe import SigInfo
from legorun.processor.threads import PendingSignals
from legorun.rpc.messages import StatReply, StatRequest
from legorun.rpc.transport import Transport
from syscalls.errno import strerror

if TYPE_CHECKING:
    from legorun.processor.processor import Processor

ALL_SIGNALS = (1 << 64) - 1


class NotCheckpointable(LegorunError):
    """The process holds something a checkpoint cannot keep."""


# ---------------------------------------------------------------- capture


def capture_record(processor: Processor, interval_s: float) -> CheckpointRecord:
    """The record of `processor` now: between two instructions, its only thread on the CPU
    with no syscall under way."""
    state, threads, signals = processor.state, processor.threads, processor.signals
    assert state is not None and threads is not None and signals is not None
    thread = threads.current
    if len(signals.timers):
        raise NotCheckpointable("cannot checkpoint: the process has POSIX timers "
                                "(timer_create), which checkpoints do not keep")
    if processor.shared.writable:
        # (A read-only file mapping needs nothing: restored, it reads the file again.)
        raise NotCheckpointable("cannot checkpoint: the process has writable MAP_SHARED "
                                "memory, which lives beside the memory manager and "
                                "checkpoints do not keep")
    files, fds = _save_files(processor.fds)
    return CheckpointRecord(
        unicorn=unicorn.__version__,
        registers=bytes(processor.cpu.save_context(None)),
        interval_s=interval_s,
        load_bias=processor.load_bias,
        brk=processor.vm.brk_value,
        process=SavedProcess(
            pid=state.pid, exe=state.exe, cwd=state.cwd, argv=state.argv, envp=state.envp,
            stack_start=state.stack_start, uid=state.uid, euid=state.euid, gid=state.gid,
            egid=state.egid, umask=state.umask,
            uptime_s=time.monotonic() - state.start_monotonic,
            rlimits=tuple((resource, soft, hard)
                          for resource, (soft, hard) in sorted(state.rlimits.items())),
            sigactions=tuple(sorted(state.sigactions.items())),
            prctl=tuple(sorted(state.prctl.items())),
        ),
        thread=SavedThread(
            sigmask=thread.sigmask, altstack=thread.altstack,
            clear_child_tid=thread.clear_child_tid, robust_list=thread.robust_list,
            pending=_pending(thread.pending),
        ),
        shared_pending=_pending(signals.shared),
        files=files,
        fds=fds,
        timers=_armed_timers(),
    )


def _armed_timers() -> tuple[tuple[int, float, float], ...]:
    """The interval timers the guest armed (they are the host process's): which, the time
    left and the interval."""
    timers = ((which, *HostSignals.get_timer(which)) for which in sorted(TIMER_SIGNALS))
    return tuple((which, value, interval) for which, value, interval in timers if value > 0)


def _pending(pending: PendingSignals) -> tuple[SigInfo, ...]:
    """The signals queued, left queued: taken one by one and queued again in the order
    they are delivered in (by signal number, instances of one signal in order)."""
    taken: list[SigInfo] = []
    while (info := pending.take(ALL_SIGNALS)) is not None:
        taken.append(info)
    for info in taken:
        pending.add(info)
    return tuple(taken)


def _save_files(fds: FdTable) -> tuple[tuple[SavedFile, ...], tuple[tuple[int, int, bool], ...]]:
    """Each open file description once, and each descriptor as the index of its own."""
    files: list[SavedFile] = []
    index: dict[int, int] = {}
    table: list[tuple[int, int, bool]] = []
    for fd in fds.fds():
        entry = fds.entry(fd)
        if id(entry.file) not in index:
            index[id(entry.file)] = len(files)
            files.append(_save_file(fd, entry.file))
        table.append((fd, index[id(entry.file)], entry.cloexec))
    return tuple(files), tuple(table)


def _save_file(fd: int, file: OpenFile) -> SavedFile:
    # Exact types: subclasses (the /proc directories, say) are made by the processor from
    # more than a path.
    if isinstance(file, HostStream) and type(file) in (HostStream, CommittedStream):
        return SavedFile(STREAM, file.flags, host_fd=file.fd)
    if type(file) in (StorageFile, Directory, MemoryDevice):
        assert isinstance(file, StorageFile) and file.path is not None
        kind = {StorageFile: FILE, Directory: DIRECTORY, MemoryDevice: DEVICE}[type(file)]
        return SavedFile(kind, file.flags, path=file.path, offset=file.offset,
                         minor=file.minor if isinstance(file, MemoryDevice) else 0,
                         hidden=file.remove_on_close is not None)
    raise NotCheckpointable(
        f"cannot checkpoint: descriptor {fd} is {file.fd_link()}; checkpoints keep regular "
        "files, directories, memory devices and the standard streams legorun was given")


# ---------------------------------------------------------------- apply


def process_state(record: CheckpointRecord) -> ProcessState:
    """The process state to resume with; the parent is the restoring legorun's."""
    saved = record.process
    return ProcessState(
        pid=saved.pid, exe=saved.exe, cwd=saved.cwd, argv=saved.argv, envp=saved.envp,
        stack_start=saved.stack_start, uids=Ids(saved.uid, saved.euid, saved.euid, saved.euid),
        gids=Ids(saved.gid, saved.egid, saved.egid, saved.egid), umask=saved.umask,
        rlimits={resource: (soft, hard) for resource, soft, hard in saved.rlimits},
        sigactions=dict(saved.sigactions),
        start_monotonic=time.monotonic() - saved.uptime_s,
        prctl=dict(saved.prctl),
    )


def apply_record(record: CheckpointRecord, processor: Processor, ledger: OutputLedger) -> None:
    """Put the record's descriptors, signal state, timers and registers into `processor`,
    prepared with `process_state(record)`; output streams write through `ledger`."""
    threads, signals = processor.threads, processor.signals
    assert threads is not None and signals is not None
    _load_files(record, processor.fds, processor.transport, ledger)
    thread = threads.current
    saved = record.thread
    thread.sigmask = saved.sigmask
    thread.altstack = saved.altstack
    thread.clear_child_tid = saved.clear_child_tid
    thread.robust_list = saved.robust_list
    for info in saved.pending:
        thread.pending.add(info)
    for info in record.shared_pending:
        signals.shared.add(info)
    signals.sync_host()
    for which, value, interval in record.timers:
        signals.set_timer(which, value, interval)
    _load_registers(processor, record)


def _load_files(record: CheckpointRecord, fds: FdTable, transport: Transport,
                ledger: OutputLedger) -> None:
    files = [_load_file(saved, transport, ledger) for saved in record.files]
    fds.close_all()
    for fd, index, cloexec in record.fds:
        fds.install(fd, files[index], cloexec)


def _load_file(saved: SavedFile, transport: Transport, ledger: OutputLedger) -> OpenFile:
    if saved.kind == STREAM:
        try:
            os.fstat(saved.host_fd)
        except OSError:
            raise LegorunError(f"the guest's descriptor for legorun's descriptor "
                               f"{saved.host_fd} cannot be restored: this legorun has no "
                               f"descriptor {saved.host_fd}") from None
        return CommittedStream(saved.host_fd, saved.flags, ledger)
    reply: StatReply = transport.call(StatRequest(saved.path, True))
    if reply.status:
        raise LegorunError(f"the guest's open file {saved.path} cannot be restored: "
                           f"{strerror(reply.status)}")
    file: StorageFile
    if saved.kind == DEVICE:
        file = MemoryDevice(transport, saved.path, saved.flags, saved.minor)
    elif saved.kind == DIRECTORY:
        file = Directory(transport, saved.path, saved.flags)
    elif saved.kind == FILE:
        file = StorageFile(transport, saved.path, saved.flags)
    else:
        raise LegorunError(f"a checkpoint record with an open file of unknown kind "
                           f"{saved.kind!r}")
    file.offset = saved.offset
    if saved.hidden:
        file.remove_on_close = os.getpid()  # see unlinked.py: this host process removes it
    return file


def _load_registers(processor: Processor, record: CheckpointRecord) -> None:
    """The whole CPU context, as Unicorn saved it (the same version lays it out alike)."""
    if record.unicorn != unicorn.__version__:
        raise LegorunError(f"the checkpoint's registers were saved by Unicorn "
                           f"{record.unicorn}, this is Unicorn {unicorn.__version__}")
    context = processor.cpu.save_context(None)
    if context.size != len(record.registers):
        raise LegorunError(f"the checkpoint's registers take {len(record.registers)} bytes, "
                           f"this CPU's {context.size}")
    ctypes.memmove(context.context, record.registers, context.size)
    processor.cpu.restore_context(context)
