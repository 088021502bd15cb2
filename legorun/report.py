"""`legorun report TRACE [-o DIR] [--top N]`: what a `--trace` file says, in text and plots.

Prints the modelled time split into compute and network, the syscalls by count with their
modelled time, the RPC opcodes by count with bytes and latency, and the ExCache misses by the
function that was running. With `-o DIR` it also writes PNG plots there: excache.png (miss rate
and resident lines over modelled time), rpc_latency.png (histogram of RPC latencies) and
misses_by_function.png.

legorun's own traces are read line by line, one event per line, without loading the file;
any other Chrome trace (JSON Array or Object Format) is loaded whole, and its duration events
are summarized by name.

Exit status: 0; 1 when the trace cannot be read or is not a Chrome trace; 2 for a bad
command line or an output directory that cannot be written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from array import array
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NoReturn, Sequence

from legorun.errors import LegorunError, UsageError
from legorun.trace.chrome import COUNTER_MISS_RATE, COUNTER_RESIDENT
from legorun.trace.symbols import UNKNOWN

PLOTS = ("excache.png", "rpc_latency.png", "misses_by_function.png")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"report: {message} (try 'legorun report --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="legorun report", description="Summarize a legorun --trace file "
                     "(or any Chrome Trace Event file).")
    parser.add_argument("trace", metavar="TRACE", type=Path, help="the trace (JSON)")
    parser.add_argument("-o", dest="out_dir", metavar="DIR", type=Path,
                        help="also write PNG plots into DIR (created if needed)")
    parser.add_argument("--top", metavar="N", type=int, default=15,
                        help="rows per table (default 15)")
    return parser


@dataclass
class Totals:
    count: int = 0
    bytes: int = 0
    time_us: float = 0.0


@dataclass(frozen=True)
class RunEnd:
    """The end-of-run record: how the guest ended and the modelled clock."""

    status: int | None
    signal: int | None
    instructions: int | None
    clock_hz: float
    cpi: float
    compute_s: float | None
    remote_s: float
    total_s: float | None

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> RunEnd:
        def optional(key: str) -> Any:
            return None if args.get(key) is None else _number(args[key])

        return cls(optional("status"), optional("signal"), optional("instructions"),
                   _number(args.get("clock_hz")), _number(args.get("cpi")), optional("compute_s"),
                   _number(args.get("remote_s")), optional("total_s"))


@dataclass
class TraceSummary:
    """Everything the report shows, accumulated one event at a time."""

    events: int = 0
    syscalls: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    rpcs: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    rpc_latencies_us: array[float] = field(default_factory=lambda: array("d"))
    misses_by_function: Counter[str] = field(default_factory=Counter)
    misses: int = 0
    zero_fills: int = 0
    evictions: int = 0
    writebacks: int = 0
    # counter name -> (ts, value) samples, in the order of the trace
    counters: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))
    other: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    argv: list[str] = field(default_factory=list)
    end: RunEnd | None = None

    def add(self, event: Any) -> None:
        if not isinstance(event, dict):
            raise ValueError(f"an event is not a JSON object: {str(event)[:60]}")
        self.events += 1
        phase, name, category = event.get("ph"), str(event.get("name", "")), event.get("cat")
        args = event.get("args") if isinstance(event.get("args"), dict) else {}
        if phase == "X":
            duration = _number(event.get("dur", 0))
            if category == "syscall":
                totals = self.syscalls[name]
            elif category == "rpc":
                totals = self.rpcs[name]
                totals.bytes += int(_number(args.get("bytes", 0)))
                # The exact modelled latency (the slice is rounded to whole nanoseconds).
                duration = _number(args.get("latency_us", duration))
                self.rpc_latencies_us.append(duration)
            else:
                totals = self.other[name]
            totals.count += 1
            totals.time_us += duration
        elif phase == "i" and category == "excache":
            if name == "miss":
                self.misses += 1
                self.zero_fills += bool(args.get("zero_fill"))
                self.misses_by_function[str(args.get("function", UNKNOWN))] += 1
            else:
                self.evictions += 1
                self.writebacks += name == "write-back"
        elif phase == "C":
            for value in args.values():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.counters[name].append((_number(event.get("ts", 0)), value))
        elif phase == "i" and category == "run":
            if name == "run start":
                self.argv = [str(arg) for arg in args.get("argv", [])]
            elif name == "run end":
                self.end = RunEnd.from_args(args)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return value


# ------------------------------------------------------------------ reading


class _NotLineFormat(Exception):
    """The file is not one event per line: load it whole."""


def read_trace(path: Path) -> TraceSummary:
    try:
        try:
            return _summarize(_events_by_line(path))
        except _NotLineFormat:
            return _summarize(_events_whole(path))
    except OSError as error:
        raise LegorunError(f"report: {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise LegorunError(f"report: {path}: not a Chrome trace (not UTF-8 text)") from None
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise LegorunError(f"report: {path}: not a Chrome trace ({error})") from None


def _summarize(events: Iterable[Any]) -> TraceSummary:
    summary = TraceSummary()
    for event in events:
        summary.add(event)
    return summary


def _events_by_line(path: Path) -> Iterator[Any]:
    """legorun's layout: `[`, then one event per line each followed by a comma, the last one
    followed by `]`."""
    with open(path, encoding="utf-8") as stream:
        if stream.readline().strip() != "[":
            raise _NotLineFormat
        for line in stream:
            line = line.strip()
            if line in ("", "]"):
                continue
            try:
                yield json.loads(line.removesuffix(","))
            except json.JSONDecodeError:
                raise _NotLineFormat from None


def _events_whole(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as stream:
        data = json.load(stream)
    if isinstance(data, dict) and isinstance(data.get("traceEvents"), list):
        return data["traceEvents"]
    if isinstance(data, list):
        return data
    raise ValueError("neither an array of events nor an object with traceEvents")


# ------------------------------------------------------------------ text


def format_report(summary: TraceSummary, top: int) -> str:
    lines: list[str] = []
    if summary.argv:
        lines.append(f"program   {' '.join(summary.argv)}")
    lines.append(f"events    {summary.events}")
    lines.extend(_time_lines(summary))
    if summary.syscalls:
        lines.append("")
        lines.append(f"{'syscalls':<20}{'count':>10}{'time (us)':>14}")
        for name, totals in _ranked(summary.syscalls, top):
            lines.append(f"  {name:<18}{totals.count:>10}{totals.time_us:>14.3f}")
        lines.append(f"  {'(all)':<18}{sum(t.count for t in summary.syscalls.values()):>10}"
                     f"{sum(t.time_us for t in summary.syscalls.values()):>14.3f}")
    if summary.rpcs:
        lines.append("")
        lines.append(f"{'RPC':<20}{'count':>10}{'bytes':>14}{'latency (us)':>16}{'mean (us)':>12}")
        for name, totals in _ranked(summary.rpcs, top):
            lines.append(f"  {name:<18}{totals.count:>10}{totals.bytes:>14}"
                         f"{totals.time_us:>16.3f}{totals.time_us / totals.count:>12.3f}")
    if summary.misses or summary.evictions:
        lines.append("")
        lines.append(f"ExCache   misses {summary.misses} "
                     f"(zero-filled locally {summary.zero_fills}), "
                     f"evictions {summary.evictions}, write-backs {summary.writebacks}")
        lines.append(f"{'misses by function':<30}{'count':>10}{'share':>8}")
        for function, count in summary.misses_by_function.most_common(top):
            lines.append(f"  {function:<28}{count:>10}{count / summary.misses:>8.1%}")
    if summary.other:
        lines.append("")
        lines.append(f"{'other events':<30}{'count':>10}{'time (us)':>14}")
        for name, totals in _ranked(summary.other, top):
            lines.append(f"  {name:<28}{totals.count:>10}{totals.time_us:>14.3f}")
    return "\n".join(lines) + "\n"


def _ranked(table: dict[str, Totals], top: int) -> list[tuple[str, Totals]]:
    return sorted(table.items(), key=lambda item: (-item[1].count, -item[1].time_us))[:top]


def _time_lines(summary: TraceSummary) -> list[str]:
    end = summary.end
    if end is None and not summary.rpcs:
        return []  # not a legorun trace
    if end is None:
        remote_ms = sum(t.time_us for t in summary.rpcs.values()) / 1e3
        return [f"modelled  network {remote_ms:.3f} ms (no end-of-run record: compute unknown)"]
    lines = []
    if end.signal:
        lines.append(f"exit      killed by signal {end.signal:g}")
    elif end.status is not None:
        lines.append(f"exit      status {end.status:g}")
    else:
        lines.append("exit      the run failed inside legorun")
    remote, compute, total = end.remote_s, end.compute_s, end.total_s
    if compute is None or total is None:
        lines.append(f"modelled  network {remote * 1e3:.3f} ms (instructions not counted)")
        return lines
    compute_share, remote_share = (compute / total, remote / total) if total else (0.0, 0.0)
    lines.append(f"modelled  {total * 1e3:.3f} ms = compute {compute * 1e3:.3f} ms "
                 f"({compute_share:.1%}) + network {remote * 1e3:.3f} ms ({remote_share:.1%})")
    lines.append(f"          {end.instructions:.0f} instructions x CPI {end.cpi:g} "
                 f"at {end.clock_hz / 1e9:g} GHz")
    return lines


# ------------------------------------------------------------------ plots


def make_output_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"report: -o {out_dir}: {error.strerror}") from None


def write_plots(summary: TraceSummary, out_dir: Path, top: int) -> list[Path]:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, Agg for PNG

    paths = [out_dir / name for name in PLOTS]

    figure = Figure(figsize=(9, 6), layout="constrained")
    rate_axes, resident_axes = figure.subplots(2, 1, sharex=True)
    _plot_series(rate_axes, summary.counters.get(COUNTER_MISS_RATE, []),
                 "ExCache misses per 1000 instructions")
    _plot_series(resident_axes, summary.counters.get(COUNTER_RESIDENT, []),
                 "resident ExCache lines")
    resident_axes.set_xlabel("modelled time (ms)")
    figures = [figure]

    figure = Figure(figsize=(9, 5), layout="constrained")
    axes = figure.subplots()
    if summary.rpc_latencies_us:
        axes.hist(summary.rpc_latencies_us, bins=50, log=True)
    else:
        _no_data(axes)
    axes.set_xlabel("modelled RPC latency (us)")
    axes.set_ylabel("RPCs")
    axes.set_title("RPC latency")
    figures.append(figure)

    figure = Figure(figsize=(9, 6), layout="constrained")
    axes = figure.subplots()
    ranked = summary.misses_by_function.most_common(top)
    if ranked:
        names = [name for name, _ in reversed(ranked)]
        axes.barh(names, [count for _, count in reversed(ranked)])
    else:
        _no_data(axes)
    axes.set_xlabel("ExCache misses")
    axes.set_title("ExCache misses by function")
    figures.append(figure)

    for figure, path in zip(figures, paths):
        try:
            figure.savefig(path, dpi=100)
        except OSError as error:
            raise UsageError(f"report: {path}: {error.strerror}") from None
    return paths


def _plot_series(axes: Any, points: list[tuple[float, float]], title: str) -> None:
    if points:
        # A sample holds until the next one (Chrome's counter semantics).
        axes.step([ts / 1e3 for ts, _ in points], [value for _, value in points], where="post")
    else:
        _no_data(axes)
    axes.set_title(title)


def _no_data(axes: Any) -> None:
    axes.text(0.5, 0.5, "no data in this trace", ha="center", va="center",
              transform=axes.transAxes)


# ------------------------------------------------------------------ entry point


def main(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(argv)
    if options.top <= 0:
        raise UsageError("report: --top must be positive")
    summary = read_trace(options.trace)
    if options.out_dir is not None:
        make_output_dir(options.out_dir)
    status = print_text(format_report(summary, options.top))
    if options.out_dir is not None:
        paths = write_plots(summary, options.out_dir, options.top)
        status = status or print_text("".join(f"wrote {path}\n" for path in paths))
    return status


def print_text(text: str) -> int:
    """Write to stdout; a reader that went away (`legorun report t.json | head`) ends the
    output, not the report, which exits as a shell shows a death by SIGPIPE."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
