"""Builds the instruments a TraceConfig asks for."""

from __future__ import annotations

from legorun.cache.vcache import CacheSimulator
from legorun.errors import UsageError
from legorun.trace.chrome import ChromeTrace
from legorun.trace.disasm import CodeLog
from legorun.trace.filters import AddressFilter
from legorun.trace.instrument import Instrument, RunContext
from legorun.trace.log import TraceLog
from legorun.trace.memtrace import MemoryTrace
from legorun.trace.strace import SyscallTrace


def build_instruments(run: RunContext) -> list[Instrument]:
    trace = run.trace
    instruments: list[Instrument] = []
    address_filter = AddressFilter.parse(trace.filters)
    if address_filter and not (trace.debug_items or trace.trace_mem):
        raise UsageError("-dfilter limits -d and --trace-mem: give one of them too")
    log = TraceLog(trace.log_file, run.pid) if trace.strace or trace.debug_items else None
    if trace.trace_json:
        instruments.append(ChromeTrace(run))
    if trace.trace_mem:
        instruments.append(MemoryTrace(trace.trace_mem, run.pid, run.program, address_filter))
    if trace.cache_sim:
        instruments.append(CacheSimulator(run))
    if log is not None and trace.strace:
        instruments.append(SyscallTrace(log))
    if log is not None and trace.debug_items:
        instruments.append(CodeLog(trace.debug_items, log, run.program, address_filter))
    if log is not None:
        instruments.append(log)  # last: closes after everything that writes to it
    return instruments
