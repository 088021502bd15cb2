"""`legorun sweep`: the LegoOS experiment. Run one program once per ExCache size (and eviction
policy) and report how much slower the modelled machine gets as its local memory shrinks.

Each run is a separate `python -m legorun --stats-json ...` process, so runs share nothing and
go in parallel on the available cores. Every run must behave the same (stdout, stderr, exit
status): a program whose output depends on the size of its cache is not measured fairly.

The baseline, "all memory local", is the run's modelled compute time alone: instructions x
CPI / clock, as if every access hit local DRAM and no RPC cost anything. The slowdown of a run
is its modelled total time (compute + the network model's cost of every RPC, including the
program's loading) divided by that baseline, so 1.0 means the remote memory cost nothing.

Writes into the output directory: sweep.csv, sweep.md (also printed), sweep.png, and runs/
with every run's statistics and output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from legorun.errors import LegorunError, UsageError
from legorun.managers.vma import PAGE_SIZE
from legorun.units import (format_size, parse_bandwidth, parse_duration, parse_frequency,
                           parse_size)

POLICIES = ("fifo", "lru", "random")
CSV_COLUMNS = ("excache", "policy", "slowdown", "instructions", "compute_s", "remote_s",
               "total_s", "misses", "zero_fills", "evictions", "writebacks", "exit_status")


class _SweepParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"sweep: {message} (try 'legorun sweep --help')")


def checked_by(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An option passed through to every run as typed, but checked here first, so that a bad
    value is one usage error rather than one failure per run."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text
    check.__name__ = parse.__name__
    return check


def parse_sizes(text: str) -> list[int]:
    """'1M,4M,16M' -> ascending distinct sizes in bytes, each a whole number of 4 KiB lines."""
    sizes = set()
    for item in text.split(","):
        try:
            size = parse_size(item)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        if size <= 0 or size % PAGE_SIZE:
            raise argparse.ArgumentTypeError(
                f"ExCache size {item!r} is not a positive multiple of {PAGE_SIZE} bytes")
        sizes.add(size)
    return sorted(sizes)


def parse_policies(text: str) -> list[str]:
    """'fifo,lru' -> the policies in the order given, each once."""
    policies = list(dict.fromkeys(item.strip() for item in text.split(",")))
    unknown = [policy for policy in policies if policy not in POLICIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown policy {', '.join(map(repr, unknown))} (known: {', '.join(POLICIES)})")
    return policies


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An int or float option that must be above zero."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    convert.__name__ = kind.__name__
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = _SweepParser(
        prog="legorun sweep",
        usage="legorun sweep --excache SIZES [options] PROGRAM [ARGS...]",
        description="Run PROGRAM once per ExCache size (and policy) on the modelled machine "
        "and report its slowdown against the same run with all memory local (its modelled "
        "compute time: instructions x CPI / clock). Writes sweep.csv, sweep.md and sweep.png.",
    )
    parser.add_argument("--excache", metavar="SIZES", type=parse_sizes, required=True,
                        help="comma-separated ExCache sizes, e.g. 256K,1M,4M,16M")
    parser.add_argument("--policy", metavar="POLICIES", type=parse_policies, default=["fifo"],
                        help="comma-separated eviction policies: fifo, lru, random "
                        "(default fifo)")
    parser.add_argument("-j", dest="jobs", metavar="N", type=positive(int),
                        default=os.cpu_count() or 1,
                        help="runs at a time (default: the number of CPUs)")
    parser.add_argument("-o", dest="output", metavar="DIR", type=Path,
                        help="where to write the results (default sweep-PROGRAM)")
    parser.add_argument("--input", metavar="FILE", type=Path,
                        help="feed FILE to every run's stdin (default: empty stdin)")
    machine = parser.add_argument_group("the machine of every run (as for legorun itself)")
    machine.add_argument("--assoc", metavar="N", type=positive(int), help="ways per set")
    machine.add_argument("--seed", metavar="N", type=int, help="seed for random eviction")
    machine.add_argument("--clock", metavar="FREQ", type=checked_by(parse_frequency),
                         help="modelled processor clock, e.g. 2.4GHz")
    machine.add_argument("--cpi", metavar="N", type=positive(float),
                         help="modelled cycles per instruction")
    machine.add_argument("--net-latency", metavar="TIME", type=checked_by(parse_duration),
                         help="modelled per-RPC latency, e.g. 4.63us")
    machine.add_argument("--net-bandwidth", metavar="RATE", type=checked_by(parse_bandwidth),
                         help="modelled network bandwidth, e.g. 40Gbit/s")
    parser.add_argument("program", metavar="PROGRAM", help="the program to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="arguments for the program")
    return parser


def machine_options(options: argparse.Namespace) -> list[str]:
    """The legorun options shared by every run, as given on the sweep's command line."""
    argv = []
    for name in ("assoc", "seed", "clock", "cpi", "net_latency", "net_bandwidth"):
        value = getattr(options, name)
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


def point_name(excache: int, policy: str) -> str:
    """How a run's files are named: 256K-fifo."""
    return f"{format_size(excache)}-{policy}"


@dataclass(frozen=True, slots=True)
class Run:
    """One point of the sweep: the machine it ran on and what came out of it."""

    excache: int
    policy: str
    status: int  # the shell's $? of `legorun ... PROGRAM`
    stdout: bytes
    stderr: bytes
    stats: dict[str, Any] | None  # legorun's --stats-json, None if legorun itself failed

    @property
    def name(self) -> str:
        return point_name(self.excache, self.policy)

    @property
    def label(self) -> str:
        return f"{format_size(self.excache)} {self.policy}"

    @property
    def modelled(self) -> dict[str, Any]:
        assert self.stats is not None
        return self.stats["modelled"]

    @property
    def slowdown(self) -> float | None:
        """Modelled total time over the all-local baseline (the compute time)."""
        compute, total = self.modelled["compute_s"], self.modelled["total_s"]
        if not compute or total is None:
            return None
        return total / compute

    def row(self) -> dict[str, Any]:
        """The run's line in sweep.csv."""
        assert self.stats is not None
        cache = self.stats["excache"]
        return {
            "excache": self.excache, "policy": self.policy, "slowdown": self.slowdown,
            "instructions": self.modelled["instructions"],
            "compute_s": self.modelled["compute_s"], "remote_s": self.modelled["remote_s"],
            "total_s": self.modelled["total_s"], "misses": cache["misses"],
            "zero_fills": cache["zero_fills"], "evictions": cache["evictions"],
            "writebacks": cache["writebacks"], "exit_status": self.status,
        }


class Sweep:
    """Runs PROGRAM on every (ExCache size, policy) machine and keeps what each run left."""

    def __init__(self, options: argparse.Namespace, stdin: bytes, scratch: Path) -> None:
        self.options = options
        self.stdin = stdin  # every run reads the same input
        self.scratch = scratch  # where the runs write their statistics
        self.shared_options = machine_options(options)

    def points(self) -> list[tuple[int, str]]:
        return [(size, policy) for policy in self.options.policy
                for size in self.options.excache]

    def run_one(self, excache: int, policy: str) -> Run:
        stats_file = self.scratch / f"{point_name(excache, policy)}.json"
        argv = [sys.executable, "-m", "legorun", "--excache", str(excache), "--policy", policy,
                *self.shared_options, "--stats-json", str(stats_file),
                "--", self.options.program, *self.options.args]
        done = subprocess.run(argv, input=self.stdin, capture_output=True)
        status = 128 - done.returncode if done.returncode < 0 else done.returncode
        # legorun creates the file before the run and fills it only if the run finished.
        text = stats_file.read_text() if stats_file.exists() else ""
        stats = json.loads(text) if text.strip() else None
        return Run(excache, policy, status, done.stdout, done.stderr, stats)

    def run_all(self) -> list[Run]:
        """Every point, `-j` at a time, with a progress bar; stops starting new runs as soon
        as one shows that legorun itself cannot run the program."""
        from tqdm import tqdm

        runs: list[Run] = []
        with ThreadPoolExecutor(max_workers=self.options.jobs) as pool, \
                tqdm(total=len(self.points()), desc="legorun sweep", unit="run",
                     file=sys.stderr) as progress:
            pending: set[Future[Run]] = {pool.submit(self.run_one, *point)
                                         for point in self.points()}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    run = future.result()
                    runs.append(run)
                    progress.update()
                    if run.stats is None:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise _failure(run)
        return sorted(runs, key=lambda run: (self.options.policy.index(run.policy),
                                             run.excache))


def _failure(run: Run) -> LegorunError:
    """legorun could not run the program at all: repeat its own message and exit status."""
    lines = run.stderr.decode(errors="replace").strip().splitlines()
    ours = [line for line in lines if line.startswith("legorun: ")]
    message = ours[-1].removeprefix("legorun: ") if ours else (
        f"the run with a {run.label} ExCache failed (exit status {run.status}) "
        "without statistics")
    error = LegorunError(message)
    error.exit_status = run.status or 1
    return error


def disagreement(runs: Sequence[Run], runs_dir: Path) -> str | None:
    """Why the runs do not all behave the same, naming which runs differ; None if they do."""
    groups: dict[tuple[bytes, bytes, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.stdout, run.stderr, run.status), []).append(run)
    if len(groups) == 1:
        return None
    outcomes = list(groups)
    aspects = [what for index, what in enumerate(("stdout", "stderr", "exit status"))
               if len({outcome[index] for outcome in outcomes}) > 1]
    sides = " vs ".join(", ".join(run.label for run in group) for group in groups.values())
    return (f"the runs differ in {' and '.join(aspects)}: {sides} "
            f"(each run's output is in {runs_dir})")


def markdown_table(runs: Sequence[Run]) -> str:
    header = ("ExCache", "policy", "misses", "evictions", "write-backs", "instructions",
              "compute ms", "remote ms", "total ms", "slowdown")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        row = run.row()
        cells = (format_size(run.excache), run.policy, row["misses"], row["evictions"],
                 row["writebacks"], _or_dash(row["instructions"], "{:,}"),
                 _or_dash(row["compute_s"], "{:.3f}", 1e3), f"{row['remote_s'] * 1e3:.3f}",
                 _or_dash(row["total_s"], "{:.3f}", 1e3), _or_dash(run.slowdown, "{:.2f}x"))
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def _or_dash(value: float | None, template: str, scale: float | None = None) -> str:
    if value is None:
        return "-"
    return template.format(value if scale is None else value * scale)


def write_csv(runs: Sequence[Run], path: Path) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for run in runs:
            writer.writerow(run.row())


def plot(runs: Sequence[Run], title: str, path: Path) -> None:
    """Modelled slowdown against ExCache size: log2 x axis, one line per policy."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for policy in dict.fromkeys(run.policy for run in runs):
        points = [(run.excache, run.slowdown) for run in runs
                  if run.policy == policy and run.slowdown is not None]
        if points:
            axes.plot(*zip(*points), marker="o", label=policy)
    axes.axhline(1.0, linestyle="--", color="gray", label="all memory local")
    sizes = sorted({run.excache for run in runs})
    axes.set_xscale("log", base=2)
    axes.set_xticks(sizes, [format_size(size) for size in sizes])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_ylim(bottom=0)
    axes.set_xlabel("ExCache size (processor-local memory)")
    axes.set_ylabel("modelled slowdown vs all memory local")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


def check_writable(directory: Path) -> None:
    """Fail before any run if DIR cannot be created or written (it is created only at the
    end, so that a sweep that measures nothing leaves nothing behind)."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"sweep: cannot create {directory}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"sweep: cannot write to {directory}: permission denied")


def save_runs(runs: Sequence[Run], runs_dir: Path) -> None:
    """Every run's statistics, stdout and stderr, to compare runs that disagree."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        (runs_dir / f"{run.name}.json").write_text(json.dumps(run.stats, indent=2) + "\n")
        (runs_dir / f"{run.name}.stdout").write_bytes(run.stdout)
        (runs_dir / f"{run.name}.stderr").write_bytes(run.stderr)


def write_results(runs: Sequence[Run], program: str, output: Path) -> str:
    """sweep.csv, sweep.md, sweep.png and runs/ in OUTPUT; returns the Markdown table."""
    table = markdown_table(runs)
    try:
        save_runs(runs, output / "runs")
        write_csv(runs, output / "sweep.csv")
        (output / "sweep.md").write_text(table)
        plot(runs, f"{program}: modelled slowdown vs ExCache size", output / "sweep.png")
    except OSError as error:
        raise LegorunError(f"sweep: cannot write {error.filename}: {error.strerror}") from None
    return table


def main(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(argv)
    try:
        stdin = options.input.read_bytes() if options.input else b""
    except OSError as error:
        raise UsageError(f"sweep: --input {options.input}: {error.strerror}") from None
    program = Path(options.program).name
    output = options.output or Path(f"sweep-{program}")
    check_writable(output)

    with tempfile.TemporaryDirectory(prefix="legorun-sweep-") as scratch:
        runs = Sweep(options, stdin, Path(scratch)).run_all()
    sys.stdout.write(write_results(runs, program, output))

    problem = disagreement(runs, output / "runs")
    if problem:
        raise LegorunError(problem)
    if any(run.slowdown is None for run in runs):
        raise LegorunError("the runs reported no instruction count: their slowdown against "
                           "all memory local is unknown")
    return 0
