"""--strace: one line per syscall in the shared trace log, `TID name(args) = result` (the
calling thread's id, the pid for the main thread, as qemu -strace prints it).

Arguments the call reads (paths, buffers it writes out, structs passed in) are captured
before the handler runs, since the call may change them; arguments it fills (read buffers,
stat structs) are decoded after it returned, and only when it succeeded. exit and
exit_group never return, so their line is written on entry with `= ?`; a call that ends the
process by a signal is finished with `= ?` when the run closes. The run's end is
`+++ exited with N +++` or `+++ killed by SIGSEGV +++`, as strace writes it. A call that
blocks lets other threads make calls: its line is written when it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from legorun.processor.uaccess import UserMemory
from legorun.trace.log import TraceLog
from legorun.trace.strace_format import (
    CallView,
    GuestReader,
    format_argument,
    format_result,
    signal_name,
)
from syscalls.signatures import OUTPUTS, SIGNATURES, Arg, Result, Signature
from syscalls.table import SyscallEntry

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor
    from legorun.processor.threads import Thread, ThreadGroup

RAW_ARGUMENTS = 6
# What a syscall nobody described shows: its six registers in hex.
UNDESCRIBED = Signature((Arg.HEX,) * RAW_ARGUMENTS)


@dataclass(slots=True)
class _PendingCall:
    """A call between enter and leave: its name, how to show it, its registers and the
    arguments captured on entry (outputs are decoded when it returns)."""

    name: str
    signature: Signature
    call: CallView
    shown: list[str | None]

    def finish(self, call: CallView) -> None:
        """Decode the outputs; with no result they are shown as the addresses they are."""
        for index, kind in enumerate(self.signature.args):
            if kind in OUTPUTS:
                self.shown[index] = format_argument(kind, call, index)


class SyscallTrace:
    def __init__(self, log: TraceLog) -> None:
        self._log = log
        self._pid = 0
        self._guest: GuestReader | None = None
        self._threads: ThreadGroup | None = None
        self._pending: dict[Thread, _PendingCall] = {}  # by calling thread

    # ------------------------------------------------------------ Instrument

    def attach(self, processor: Processor) -> None:
        assert processor.dispatcher is not None
        self._pid = processor.pid
        self._threads = processor.threads
        # The same user-access path the handlers use, so a line is loaded exactly as the
        # handler would load it and a bad pointer is a GuestFault, never a host crash.
        self._guest = GuestReader(UserMemory(processor.excache))
        processor.dispatcher.observers.append(self)

    def prepare_fork(self) -> None:
        """Nothing buffered: lines go to the log as calls finish."""

    def forked(self, pid: int) -> None:
        # The child's first line finishes the fork call it is inside, with its result 0.
        self._pid = pid

    def close(self, exit: Exit | None) -> None:
        for thread, pending in self._pending.items():  # the process ended inside these calls
            pending.finish(pending.call)
            self._write(thread, pending, "?")
        self._pending.clear()
        if exit is None:
            return
        if exit.signal:
            self._log.write(f"{self._pid} +++ killed by {signal_name(exit.signal)} +++")
        else:
            self._log.write(f"{self._pid} +++ exited with {exit.status} +++")

    # ------------------------------------------------------------ SyscallObserver

    def enter(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...]) -> None:
        name = entry.name if entry is not None else f"syscall_{nr}"
        signature = SIGNATURES.get(name, UNDESCRIBED) if entry is not None else UNDESCRIBED
        call = self._view(raw)
        shown = [None if kind in OUTPUTS else format_argument(kind, call, index)
                 for index, kind in enumerate(signature.args)]
        pending = _PendingCall(name, signature, call, shown)
        if signature.result is Result.NONE:
            pending.finish(call)
            self._write(self._caller(), pending, "?")
        else:
            self._pending[self._caller()] = pending

    def leave(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...],
              result: int) -> None:
        thread = self._caller()
        pending = self._pending.pop(thread, None)
        if pending is None:
            return
        call = self._view(raw, result)
        pending.finish(call)
        self._write(thread, pending, format_result(pending.signature.result, call))

    # ------------------------------------------------------------ lines

    def _view(self, raw: tuple[int, ...], result: int | None = None) -> CallView:
        assert self._guest is not None
        return CallView(self._guest, raw, result)

    def _caller(self) -> Thread:
        assert self._threads is not None
        return self._threads.current

    def _write(self, thread: Thread, call: _PendingCall, result: str) -> None:
        # None: an argument strace leaves out (an open mode without O_CREAT).
        arguments = ", ".join(text for text in call.shown if text is not None)
        self._log.write(f"{thread.tid} {call.name}({arguments}) = {result}")
