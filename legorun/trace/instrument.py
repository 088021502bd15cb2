"""What every trace and simulator plugs into: an instrument is built before the run, attaches
its hooks and observers to the processor before the first guest instruction (Unicorn does not
call hooks from code translated before they were added), and writes its output at the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from legorun.config import MachineConfig, TraceConfig
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import LocalTransport

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor


@dataclass(frozen=True, slots=True)
class RunContext:
    """What instruments may know about the run before it starts."""

    machine: MachineConfig
    trace: TraceConfig
    program: Path  # the program's file on this host (for symbols and line tables)
    argv: tuple[str, ...]
    pid: int
    transport: LocalTransport
    rpc_stats: RpcStats


class Instrument(Protocol):
    def attach(self, processor: Processor) -> None:
        """Add hooks and observers; called once, after exec and before the guest runs."""

    def prepare_fork(self) -> None:
        """Write out anything buffered: a forked child must not inherit it and write it
        again."""

    def forked(self, pid: int) -> None:
        """In a forked child, whose pid is `pid`: carry on into outputs named with the pid
        (patterns with %p, stderr), and stop writing an output with a fixed name, which
        belongs to the parent."""

    def close(self, exit: Exit | None) -> None:
        """Finish the output; exit is None if the run failed inside legorun."""


def expand_pid(pattern: str, pid: int) -> str:
    """File names as valgrind and qemu take them: %p is the process id."""
    return pattern.replace("%p", str(pid))


def prepare_instruments_for_fork(instruments: Sequence[Instrument]) -> None:
    for instrument in instruments:
        instrument.prepare_fork()


def fork_instruments(instruments: Sequence[Instrument], pid: int) -> None:
    for instrument in instruments:
        instrument.forked(pid)


def close_instruments(instruments: Sequence[Instrument], exit: Exit | None) -> None:
    """Close every instrument, even when one fails; the first failure is raised after."""
    failure: BaseException | None = None
    for instrument in instruments:
        try:
            instrument.close(exit)
        except BaseException as error:  # the others must still finish their output
            failure = failure or error
    if failure is not None:
        raise failure
