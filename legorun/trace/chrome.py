"""`--trace FILE.json`: the run as a Chrome Trace Event file (Perfetto UI, chrome://tracing).

Timestamps are on the modelled clock (legorun/processor/clock.py), in microseconds: the time
the run would take on the modelled machine, not the time emulating it takes. Tracks:

    processor         syscalls   "X" per syscall (nr, raw arguments, result, calling function);
                                 "run start" (command, machine) and "run end" (exit, clock)
                      ExCache    "i" per miss (line vaddr, zero_fill, code or data line, the
                                 block and function running), per eviction, per write-back
                                 (a dirty line evicted)
                      counters   resident lines, misses per 1000 instructions
    memory manager    RPC        "X" per P2M_* request, lasting its modelled latency
    storage manager   RPC        "X" per P2S_* / M2S_* request
    network           counter    bytes sent and received so far

The file is Chrome's JSON Array Format written as the run goes, one event per line (so it can
also be read line by line), through a buffered file: nothing accumulates in memory. Until the
guest starts it holds an empty array and the few RPCs of the program check and exec wait in
memory, so a run that never starts still leaves valid JSON; `close` ends the array whatever
way the run ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from legorun.errors import UsageError
from legorun.managers.vma import PROT_EXEC
from legorun.processor.clock import ModelledClock
from legorun.rpc.messages import Request
from legorun.trace.instrument import RunContext
from legorun.trace.symbols import Symbolizer
from syscalls.errno import Errno
from syscalls.table import SyscallEntry

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor

# Track ids: (pid, tid), with the names the metadata events give them.
PROCESSOR, MEMORY, STORAGE, NETWORK = 1, 2, 3, 4
PROCESS_NAMES = {PROCESSOR: "processor", MEMORY: "memory manager", STORAGE: "storage manager",
                 NETWORK: "network"}
SYSCALLS, EXCACHE, REQUESTS = 1, 2, 1
THREAD_NAMES = {(PROCESSOR, SYSCALLS): "syscalls", (PROCESSOR, EXCACHE): "ExCache",
                (MEMORY, REQUESTS): "RPC", (STORAGE, REQUESTS): "RPC"}
# The manager serving an opcode is the letter after its direction prefix: P2M_, P2S_, M2S_.
SERVER = {"M": MEMORY, "S": STORAGE}

# Counters are sampled at most once per this much modelled time (100 us): at events, and
# during pure computation from the instruction counter's tick.
SAMPLE_PERIOD_NS = 100_000

COUNTER_RESIDENT = "resident lines"
COUNTER_MISS_RATE = "misses per 1000 instructions"
COUNTER_NETWORK = "network bytes"


def timestamp(ns: int) -> str:
    """Nanoseconds as the format's microseconds, exactly (no float rounding between events)."""
    return f"{ns // 1000}.{ns % 1000:03d}"


def to_ns(seconds: float) -> int:
    return round(seconds * 1e9)


def errno_arg(result: int | None) -> str:
    """`, "errno": "ENOENT"` for a syscall result that is -errno."""
    if result is None or not -4096 < result < 0:
        return ""
    try:
        return f', "errno": "{Errno(-result).name}"'
    except ValueError:
        return ""


class TraceFile:
    """The JSON array, one event per line. Lines written before `start` are held back so
    that the file is a valid (empty) array until the run begins."""

    def __init__(self, path: Path) -> None:
        try:
            self._file: TextIO | None = open(path, "w", encoding="utf-8", buffering=1 << 16)
            self._file.write("[]\n")
            self._file.flush()
        except OSError as error:
            raise UsageError(f"--trace {path}: {error.strerror}") from None
        self._held: list[str] | None = []

    def start(self) -> None:
        """From now on events go to the file."""
        if self._held is None or self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        self._file.write("[\n")
        held, self._held = self._held, None
        for line in held:
            self.write(line)

    def write(self, line: str) -> None:
        if self._held is not None:
            self._held.append(line)
        elif self._file is not None:
            self._file.write(line + ",\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def abandon(self) -> None:
        """Write nothing more (a forked child's copy of the parent's trace)."""
        if self._file is not None:
            self._file.close()  # this process's copy of the descriptor; nothing is buffered
            self._file = None
        self._held = None

    def finish(self, last: str) -> None:
        """Write the last event and close the array."""
        if self._file is None:
            return
        self.start()
        self._file.write(last + "\n]\n")
        self._file.close()
        self._file = None


class ChromeTrace:
    """The --trace instrument: observes syscalls, RPCs and the ExCache, samples counters."""

    def __init__(self, run: RunContext) -> None:
        assert run.trace.trace_json is not None
        self._run = run
        self._file = TraceFile(run.trace.trace_json)
        # Until the processor exists (program check, exec) no instruction has run: the clock
        # is the RPC cost alone.
        self._clock = ModelledClock(run.machine.clock_hz, run.machine.cpi, run.rpc_stats)
        self._processor: Processor | None = None
        self._symbols = Symbolizer([], [])
        self._functions: dict[int, str] = {}  # code address -> JSON of its function's name
        self._track_end: dict[tuple[int, int], int] = {}  # (pid, tid) -> end of last slice, ns
        # The syscall in progress: name, nr, arguments shown, start (ns), calling block.
        self._syscall: tuple[str, int, tuple[int, ...], int, int | None] | None = None
        self._network_bytes = 0
        self._last_sample_ns = -1
        # The miss rate is over the interval since the last rate sample, and is stamped at
        # that interval's start so that a counter track's steps show each rate where it held.
        self._rate_since_ns = 0
        self._sampled_misses = 0
        self._sampled_instructions = 0
        for pid, name in PROCESS_NAMES.items():
            self._metadata("process_name", pid, 0, name)
            self._metadata("process_sort_index", pid, 0, pid)
        for (pid, tid), name in THREAD_NAMES.items():
            self._metadata("thread_name", pid, tid, name)
        machine = run.machine
        self._file.write(self._instant("run start", PROCESSOR, SYSCALLS, 0, {
            "program": str(run.program), "argv": list(run.argv),
            "excache_size": machine.excache_size, "excache_assoc": machine.excache_assoc,
            "excache_policy": machine.excache_policy, "clock_hz": machine.clock_hz,
            "cpi": machine.cpi, "net_latency_s": machine.network.latency_s,
            "net_bandwidth_bps": machine.network.bandwidth_bps,
        }))
        run.transport.observers.append(self._on_rpc)

    # ------------------------------------------------------------ instrument protocol

    def attach(self, processor: Processor) -> None:
        self._processor = processor
        self._clock = processor.clock
        self._symbols = Symbolizer.load(self._run.program, processor.load_bias)
        assert processor.dispatcher is not None
        processor.dispatcher.observers.append(self)
        processor.excache.listeners.append(self)
        counter = processor.clock.counter
        if counter is not None:
            self._sampled_instructions = counter.instructions
            period = max(1, round(SAMPLE_PERIOD_NS * 1e-9 * processor.clock.clock_hz
                                   / processor.clock.cpi))
            counter.set_tick(period, self._on_tick)
        self._file.start()
        now = to_ns(self._clock.now_s())
        self._rate_since_ns = now
        self._sample(now)

    def prepare_fork(self) -> None:
        self._file.flush()

    def forked(self, pid: int) -> None:
        """--trace names one file, the top-level process's: a child writes nothing."""
        self._file.abandon()

    def close(self, exit: Exit | None) -> None:
        if self._on_rpc in self._run.transport.observers:
            self._run.transport.observers.remove(self._on_rpc)
        now = to_ns(self._clock.now_s())
        if self._syscall is not None:  # exit_group, or a syscall the run ended in
            self._write_syscall(now, None)
        if self._processor is not None:
            self._sample(now)
        clock = self._clock
        end: dict[str, Any] = {
            "status": exit.status if exit is not None else None,
            "signal": exit.signal if exit is not None else None,
            "instructions": clock.instructions, "clock_hz": clock.clock_hz, "cpi": clock.cpi,
            "compute_s": clock.compute_s, "remote_s": clock.remote_s, "total_s": clock.total_s,
        }
        self._file.finish(self._instant("run end", PROCESSOR, SYSCALLS, now, end))

    # ------------------------------------------------------------ syscalls (SyscallObserver)

    def enter(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...]) -> None:
        name = entry.name if entry is not None else f"syscall_{nr}"
        shown = raw[:len(entry.parameters)] if entry is not None and entry.parameters else raw
        self._syscall = (name, nr, shown, to_ns(self._clock.now_s()), self._block())

    def leave(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...],
              result: int) -> None:
        now = to_ns(self._clock.now_s())
        self._write_syscall(now, result)
        self._maybe_sample(now)

    def _write_syscall(self, now: int, result: int | None) -> None:
        assert self._syscall is not None
        name, nr, raw, start, block = self._syscall
        self._syscall = None
        args = ", ".join(map('"{:#x}"'.format, raw))
        outcome = f'"result": {"null" if result is None else result}{errno_arg(result)}'
        self._slice(name, "syscall", PROCESSOR, SYSCALLS, start, now,
                    f'"nr": {nr}, "args": [{args}], {outcome}{self._code_args(block)}')

    # ------------------------------------------------------------ RPC (transport observer)

    def _on_rpc(self, request: Request, reply: Any, nbytes: int, modelled_s: float) -> None:
        # Called once the RPC is done and counted: it started its latency ago.
        end = to_ns(self._clock.now_s())
        opcode = request.OPCODE.name
        server = SERVER.get(opcode[2:3], NETWORK)
        self._network_bytes += nbytes
        self._slice(opcode, "rpc", server, REQUESTS, end - to_ns(modelled_s), end,
                    f'"opcode": "{opcode}", "bytes": {nbytes}, '
                    f'"latency_us": {modelled_s * 1e6:.3f}')
        if self._processor is not None:
            self._maybe_sample(end)

    # ------------------------------------------------------------ ExCache (ExCacheListener)

    def miss(self, vaddr: int, zero_fill: bool) -> None:
        # Charged to the block that was running: for data, the code that touched it (during a
        # syscall, the code that made the call); for code not yet translated, the code that
        # jumped there. `kind` says whether the line holds code (an executable mapping).
        assert self._processor is not None
        vma = self._processor.vm.find(vaddr)
        kind = "code" if vma is not None and vma.prot & PROT_EXEC else "data"
        now = to_ns(self._clock.now_s())
        self._file.write(
            f'{{"name": "miss", "cat": "excache", "ph": "i", "s": "t", "ts": {timestamp(now)}, '
            f'"pid": {PROCESSOR}, "tid": {EXCACHE}, "args": {{"vaddr": "{vaddr:#x}", '
            f'"zero_fill": {"true" if zero_fill else "false"}, "kind": "{kind}"'
            f'{self._code_args(self._block())}}}}}')
        self._maybe_sample(now)

    def evicted(self, vaddr: int, dirty: bool) -> None:
        now = to_ns(self._clock.now_s())
        self._file.write(
            f'{{"name": "{"write-back" if dirty else "eviction"}", "cat": "excache", "ph": "i", '
            f'"s": "t", "ts": {timestamp(now)}, "pid": {PROCESSOR}, "tid": {EXCACHE}, '
            f'"args": {{"vaddr": "{vaddr:#x}", "dirty": {"true" if dirty else "false"}}}}}')

    # ------------------------------------------------------------ counters

    def _on_tick(self) -> None:
        self._maybe_sample(to_ns(self._clock.now_s()))

    def _maybe_sample(self, now: int) -> None:
        if now - self._last_sample_ns >= SAMPLE_PERIOD_NS:
            self._sample(now)

    def _sample(self, now: int) -> None:
        assert self._processor is not None
        if now <= self._last_sample_ns:
            return
        self._last_sample_ns = now
        cache = self._processor.excache
        ts = timestamp(now)
        self._counter(COUNTER_RESIDENT, PROCESSOR, ts, "lines", cache.resident_lines)
        instructions = self._clock.instructions
        if instructions is not None and instructions > self._sampled_instructions:
            misses = cache.stats.misses
            executed = instructions - self._sampled_instructions
            rate = 1000 * (misses - self._sampled_misses) / executed
            self._counter(COUNTER_MISS_RATE, PROCESSOR, timestamp(self._rate_since_ns), "rate",
                          f"{rate:.4f}")
            self._sampled_misses, self._sampled_instructions = misses, instructions
            self._rate_since_ns = now
        self._counter(COUNTER_NETWORK, NETWORK, ts, "bytes", self._network_bytes)

    # ------------------------------------------------------------ event lines

    def _block(self) -> int | None:
        counter = self._processor.clock.counter if self._processor is not None else None
        return counter.current_block if counter is not None and counter.current_block else None

    def _code_args(self, code: int | None) -> str:
        """`, "code": ..., "function": ...` for a code address, if known."""
        if code is None:
            return ""
        function = self._functions.get(code)
        if function is None:
            function = self._functions[code] = json.dumps(self._symbols.function_name(code))
        return f', "code": "{code:#x}", "function": {function}'

    def _slice(self, name: str, category: str, pid: int, tid: int, start: int, end: int,
               args: str) -> None:
        # Slices on one track never overlap: rounding to nanoseconds cannot make one start
        # before the previous one ended.
        start = max(start, self._track_end.get((pid, tid), 0))
        end = max(end, start)
        self._track_end[(pid, tid)] = end
        self._file.write(
            f'{{"name": "{name}", "cat": "{category}", "ph": "X", "ts": {timestamp(start)}, '
            f'"dur": {timestamp(end - start)}, "pid": {pid}, "tid": {tid}, "args": {{{args}}}}}')

    def _counter(self, name: str, pid: int, ts: str, series: str, value: object) -> None:
        self._file.write(f'{{"name": "{name}", "ph": "C", "ts": {ts}, "pid": {pid}, '
                         f'"args": {{"{series}": {value}}}}}')

    def _instant(self, name: str, pid: int, tid: int, now: int, args: dict[str, Any]) -> str:
        return (f'{{"name": "{name}", "cat": "run", "ph": "i", "s": "g", "ts": {timestamp(now)}, '
                f'"pid": {pid}, "tid": {tid}, "args": {json.dumps(args)}}}')

    def _metadata(self, name: str, pid: int, tid: int, value: str | int) -> None:
        key = "sort_index" if name.endswith("sort_index") else "name"
        self._file.write(f'{{"name": "{name}", "ph": "M", "pid": {pid}, "tid": {tid}, '
                         f'"args": {{"{key}": {json.dumps(value)}}}}}')
