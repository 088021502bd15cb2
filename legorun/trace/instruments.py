"""Builds the instruments a TraceConfig asks for."""

from __future__ import annotations

from legorun.trace.instrument import Instrument, RunContext
from legorun.trace.log import TraceLog


def build_instruments(run: RunContext) -> list[Instrument]:
    trace = run.trace
    instruments: list[Instrument] = []
    log = TraceLog(trace.log_file, run.pid) if trace.strace or trace.debug_items else None
    if log is not None:
        instruments.append(log)  # last: closes after everything that writes to it
    return instruments
