"""`python -m legorun.bench`: the benchmark (what `make bench` runs).

Three sample guests (cpu_loop: CPU-bound, stream: streaming, randwalk: random access) are
timed natively, under legorun, under qemu-user and on raw Unicorn, interleaved so that drift
in the machine's load hits every runner alike, best of N. Three micro-measurements follow:
the cost of one ExCache miss with eviction, legorun's start-up time, and the cost of one
syscall round trip. Last, the observation tools: --cache-sim against cachegrind, and the
overhead of --trace and --strace (legorun/bench/tools.py). Progress goes to stderr; the table and the results go to stdout.

Exit status: 0, or 1 when some runner's output did not match the native run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from legorun.bench.runners import (
    LEGORUN,
    NATIVE,
    QEMU,
    RAW,
    ROOT,
    RunOutcome,
    Runner,
    SampleResult,
    Target,
    bound_target,
    compare_output,
    format_table,
    legorun_runner,
    qemu_runner,
    ratio,
    ratio_text,
    raw_unicorn_runner,
    run_once,
    sample_targets,
    subprocess_env,
)
from legorun.bench.network import GOAL_US as NETWORK_MISS_GOAL_US
from legorun.bench.network import network_report, remote_miss_cost
from legorun.bench.replication import replication_overhead, replication_report
from legorun.bench.processes import (
    YIELD_C,
    fork_cost,
    processes_report,
    thread_switch_cost,
    threads_against_qemu,
)
from legorun.bench.sharing import SHARING_C, sharing_report, sharing_throughput
from legorun.bench.tools import (
    CACHE_SIM_ARGS,
    SYSCALL_HEAVY_C,
    cache_sim_vs_cachegrind,
    tool_report,
    tool_targets,
    trace_overhead,
)

SAMPLES_DIR = ROOT / "samples"
BUILD_DIR = SAMPLES_DIR / "build"
DEFAULT_SAMPLES = ("cpu_loop", "stream", "randwalk")
# Enough work per run (about half a second natively) that start-up, measured on its own
# below, does not dominate the steady-state ratios.
SAMPLE_ARGS = {"cpu_loop": ["3000000"], "stream": ["50"], "randwalk": ["4194304"]}
DEFAULT_EXCACHE = "64M"

# The miss experiment: a working set four times a 1 MiB ExCache, walked one word per page so
# that with FIFO every access after the first pass misses and evicts a dirty line; with 1 GiB
# the same walk only misses on the first pass.
MISS_SMALL_CACHE, MISS_BIG_CACHE = "1M", "1G"
MISS_PAGES, MISS_PASSES = 1024, 48
SYSCALL_LOOPS = 200_000

MISS_TARGET_US = 15.0
STARTUP_TARGET_S = 0.5

SWEEP_C = r"""
/* Touch one word in each of `pages` pages of a fresh anonymous region, `passes` times over,
 * reading and writing it, so every line the walk brings in is dirty when it is evicted. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv)
{
    long pages = argc > 1 ? atol(argv[1]) : 1024, passes = argc > 2 ? atol(argv[2]) : 1;
    volatile unsigned long *a = mmap(NULL, (size_t)pages * 4096, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return 1;
    unsigned long sum = 0;
    for (long p = 0; p < passes; p++)
        for (long i = 0; i < pages; i++) {
            sum += a[i * 512];
            a[i * 512] = sum + (unsigned long)i;
        }
    printf("sweep %ld pages x %ld: %lu\n", pages, passes, sum);
    return 0;
}
"""

SYSLOOP_C = r"""
/* Call getppid() `loops` times: a syscall with no arguments and no memory traffic. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long loops = argc > 1 ? atol(argv[1]) : 0;
    long odd = 0;
    for (long i = 0; i < loops; i++)
        odd += getppid() & 1;
    printf("getppid x%ld: %s\n", loops, odd == 0 || odd == loops ? "stable" : "changed");
    return 0;
}
"""

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m legorun.bench",
        description="Time sample guests natively, under legorun, under qemu-user and on raw "
        "Unicorn (best of N), plus ExCache miss cost, start-up time and syscall cost.",
    )
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="runs per measurement; the best is kept (default 3)")
    parser.add_argument("--samples", default=",".join(DEFAULT_SAMPLES), metavar="A,B",
                        help=f"samples to time (default {','.join(DEFAULT_SAMPLES)})")
    parser.add_argument("--excache", default=DEFAULT_EXCACHE, metavar="SIZE",
                        help=f"legorun's ExCache size for the samples (default {DEFAULT_EXCACHE})")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every number to FILE")
    options = parser.parse_args(argv)
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    options.samples = [name for name in options.samples.split(",") if name]
    if not options.samples:
        parser.error("--samples names no sample")
    return options


def sample_binary(name: str, progress: Progress) -> Path:
    """samples/build/<name>, built with `make -C samples` if it is not there yet."""
    path = BUILD_DIR / name
    if not path.exists() and shutil.which("make"):
        progress(f"building {path.relative_to(ROOT)} (make -C samples)")
        subprocess.run(["make", "-C", str(SAMPLES_DIR), f"build/{name}"],
                       stdout=subprocess.DEVNULL, check=False)
    if not path.exists():
        raise SystemExit(f"bench: {path} is missing and could not be built (make -C samples)")
    return path


def compile_static(source: str, name: str, workdir: Path,
                   flags: Sequence[str] = ()) -> Path | None:
    """Compile a helper guest with gcc -static -O2; None when there is no gcc or no static
    C library to link with."""
    if shutil.which("gcc") is None:
        return None
    src = workdir / f"{name}.c"
    out = workdir / name
    src.write_text(source)
    proc = subprocess.run(["gcc", "-static", "-O2", *flags, "-o", str(out), str(src)],
                          capture_output=True, check=False)
    return out if proc.returncode == 0 else None


class Bench:
    """One benchmark session: the runners, a scratch directory and the options."""

    def __init__(self, repeat: int, excache: str, workdir: Path, progress: Progress) -> None:
        self.repeat = repeat
        self.workdir = workdir
        self.progress = progress
        self.env = subprocess_env()
        self.notes: list[str] = []
        self.mismatches: list[str] = []
        native = Runner(NATIVE)
        self.runners: list[Runner] = [native, legorun_runner(["--excache", excache])]
        qemu = qemu_runner()
        if qemu is None:
            self.notes.append("qemu-x86_64 is not installed: the qemu column is skipped")
        else:
            self.runners.append(qemu)
        self.runners.append(raw_unicorn_runner())

    def run(self, argv: Sequence[str]) -> RunOutcome:
        return run_once(argv, self.env, self.workdir)

    def check(self, what: str, reference: RunOutcome, outcome: RunOutcome, runner: str) -> bool:
        problem = compare_output(reference, outcome, runner)
        if problem is None:
            return True
        message = f"{what}: {problem}"
        if message not in self.mismatches:
            self.mismatches.append(message)
            self.progress(f"!!! OUTPUT MISMATCH: {message}")
        return False

    def warm_up(self, hello: Path) -> None:
        """One untimed run per runner, so that the first timed run does not pay for
        compiling .pyc files or reading the binaries from disk."""
        for runner in self.runners:
            self.run(runner.argv(hello))

    # ------------------------------------------------------------ the samples

    def samples(self, names: Sequence[str], binaries: dict[str, Path]) -> list[SampleResult]:
        results = {name: SampleResult(name) for name in names}
        references = {name: self.run(Runner(NATIVE).argv(binaries[name], SAMPLE_ARGS.get(name, [])))
                      for name in names}
        for name, reference in references.items():
            if reference.status != 0:
                self.notes.append(f"{name} exits with status {reference.status} natively")
        if not any(r.name == QEMU for r in self.runners):
            for result in results.values():
                result.skipped[QEMU] = "qemu-x86_64 not installed"
        for round_ in range(1, self.repeat + 1):
            for name in names:
                for runner in self.runners:
                    outcome = self.run(runner.argv(binaries[name], SAMPLE_ARGS.get(name, [])))
                    results[name].add(runner.name, outcome.seconds)
                    ok = self.check(name, references[name], outcome, runner.name)
                    if not ok and runner.name not in results[name].mismatches:
                        results[name].mismatches.append(runner.name)
                    self.progress(f"[{round_}/{self.repeat}] {name:<10} {runner.name:<12} "
                                  f"{outcome.seconds:7.3f} s{'' if ok else '  MISMATCH'}")
        return list(results.values())

    # ------------------------------------------------------------ the micro-measurements

    def best_time(self, argv: Sequence[str], what: str, runner: str = "",
                  reference: RunOutcome | None = None) -> float:
        """Best wall time of `repeat` runs of argv, each checked against the native
        `reference` run when there is one."""
        best = float("inf")
        for _ in range(self.repeat):
            outcome = self.run(argv)
            if reference is not None:
                self.check(what, reference, outcome, runner)
            best = min(best, outcome.seconds)
        self.progress(f"{what:<40} best {best:7.3f} s")
        return best

    def miss_cost(self) -> dict[str, Any]:
        """Seconds per ExCache miss with eviction: the sweep under a 1 MiB and a 1 GiB
        ExCache, the time difference over the difference in misses. The same pair with a
        single pass (first touches only, the same misses in both) measures how much of the
        difference is start-up (a bigger ExCache costs more to set up), which is taken out."""
        program = compile_static(SWEEP_C, "sweep", self.workdir)
        if program is None:
            self.notes.append("gcc -static does not work here: the ExCache miss cost is not "
                              "measured")
            return {}
        runs: dict[str, dict[str, Any]] = {}  # "<size> x<passes>" -> time and counters
        for passes in (MISS_PASSES, 1):
            args = [str(MISS_PAGES), str(passes)]
            reference = self.run(Runner(NATIVE).argv(program, args))
            for size in (MISS_SMALL_CACHE, MISS_BIG_CACHE):
                stats_file = self.workdir / f"sweep-{size}-{passes}.json"
                runner = legorun_runner(["--excache", size, "--stats-json", str(stats_file)])
                seconds = self.best_time(runner.argv(program, args),
                                         f"sweep x{passes}, ExCache {size}", LEGORUN, reference)
                stats = json.loads(stats_file.read_text())["excache"]
                runs[f"{size} x{passes}"] = {
                    "seconds": seconds, "misses": stats["misses"],
                    "evictions": stats["evictions"], "writebacks": stats["writebacks"],
                }
        return {"program": f"sweep {MISS_PAGES} {MISS_PASSES}", "runs": runs,
                **miss_costs(runs, MISS_SMALL_CACHE, MISS_BIG_CACHE, MISS_PASSES)}

    def startup(self, hello: Path) -> dict[str, Any]:
        """Best wall time of the static hello under each runner, and of a bare interpreter
        (the floor every Python-hosted runner pays)."""
        reference = self.run(Runner(NATIVE).argv(hello))
        times: dict[str, float] = {}
        for runner in self.runners:
            times[runner.name] = self.best_time(runner.argv(hello), f"hello under {runner.name}",
                                                runner.name, reference)
        times["python -c pass"] = self.best_time([sys.executable, "-c", "pass"],
                                                 "bare Python interpreter")
        return times

    def dynamic_startup(self) -> dict[str, Any]:
        """Best wall time of a dynamically linked program's start-up (`python3 -S -c pass`:
        ld.so, libc and libpython mapped from files) natively, under legorun and under qemu;
        raw Unicorn cannot load a dynamic program."""
        # The distribution's interpreter (a `python3` found first on PATH may be a shim script).
        python = next((path for path in ("/usr/bin/python3", shutil.which("python3"))
                       if path and Path(path).exists()), None)
        if python is None:
            self.notes.append("python3 is not installed: dynamic start-up is not measured")
            return {}
        argv = ["-S", "-c", "pass"]
        reference = self.run(Runner(NATIVE).argv(Path(python), argv))
        times = {
            runner.name: self.best_time(runner.argv(Path(python), argv),
                                        f"python3 -S -c pass under {runner.name}", runner.name,
                                        reference)
            for runner in self.runners if runner.name != RAW
        }
        return {"program": "python3 -S -c pass", "times_s": times,
                "legorun/qemu": ratio(times.get(LEGORUN), times.get(QEMU))}

    def syscall_cost(self) -> dict[str, Any]:
        """Seconds per getppid() round trip under each runner: a 200k-call loop against an
        empty one."""
        program = compile_static(SYSLOOP_C, "sysloop", self.workdir)
        if program is None:
            self.notes.append("gcc -static does not work here: the syscall cost is not "
                              "measured")
            return {}
        found: dict[str, Any] = {}
        for runner in self.runners:
            times = []
            for loops in (SYSCALL_LOOPS, 0):
                reference = self.run(Runner(NATIVE).argv(program, [str(loops)]))
                times.append(self.best_time(runner.argv(program, [str(loops)]),
                                            f"getppid x{loops} under {runner.name}",
                                            runner.name, reference))
            found[runner.name] = {"loop_s": times[0], "empty_s": times[1],
                                  "seconds_per_syscall": (times[0] - times[1]) / SYSCALL_LOOPS}
        return found


def miss_cost_s(small_s: float, small_misses: int, big_s: float, big_misses: int) -> float | None:
    """Extra time over extra misses; None when the small cache did not miss more."""
    extra = small_misses - big_misses
    return (small_s - big_s) / extra if extra > 0 else None


def miss_costs(runs: dict[str, dict[str, Any]], small: str, big: str,
               passes: int) -> dict[str, float | None]:
    """The cost of one miss from the sweep runs keyed "<size> x<passes>": plain (long runs
    only) and with the 1-pass runs' differences subtracted from both time and misses."""
    long_small, long_big = runs[f"{small} x{passes}"], runs[f"{big} x{passes}"]
    short_small, short_big = runs[f"{small} x1"], runs[f"{big} x1"]
    plain = miss_cost_s(long_small["seconds"], long_small["misses"],
                        long_big["seconds"], long_big["misses"])
    corrected = miss_cost_s(
        long_small["seconds"] - short_small["seconds"],
        long_small["misses"] - short_small["misses"],
        long_big["seconds"] - short_big["seconds"],
        long_big["misses"] - short_big["misses"],
    )
    return {"seconds_per_miss": corrected, "seconds_per_miss_uncorrected": plain}


def _us(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:.2f} us"


def report(results: Sequence[SampleResult], miss: dict[str, Any], startup: dict[str, float],
           dynamic: dict[str, Any], syscall: dict[str, Any], tools: list[str],
           targets: Sequence[Target], bench: Bench, repeat: int, excache: str) -> str:
    lines = [f"legorun benchmark: best of {repeat}, wall time per run (process start to exit), "
             f"legorun with --excache {excache}", "", format_table(results)]
    if miss:
        runs = miss["runs"]
        lines += [
            "ExCache miss with eviction",
            f"  method: `{miss['program']}` walks one word per page of a {MISS_PAGES * 4} KiB "
            f"anonymous region, read and written, {MISS_PASSES} passes. Under --excache "
            f"{MISS_SMALL_CACHE} every access after the first pass misses and evicts a dirty "
            f"line (write-back + fetch); under --excache {MISS_BIG_CACHE} only first touches "
            "miss.",
            f"  cost = (time {MISS_SMALL_CACHE} - time {MISS_BIG_CACHE}) / (misses "
            f"{MISS_SMALL_CACHE} - misses {MISS_BIG_CACHE}), after subtracting the same "
            "difference for a 1-pass sweep (start-up cost of the bigger ExCache)",
        ]
        for key, run in runs.items():
            lines.append(f"  --excache {key:<8} {run['seconds']:.3f} s, {run['misses']} misses, "
                         f"{run['evictions']} evictions, {run['writebacks']} write-backs")
        lines += [
            f"  cost of one miss with eviction: {_us(miss['seconds_per_miss'])} "
            f"(without the start-up correction: {_us(miss['seconds_per_miss_uncorrected'])})",
            "",
        ]
    if startup:
        lines.append("Start-up: static hello, best wall time")
        lines += [f"  {name:<16} {seconds:.3f} s" for name, seconds in startup.items()]
        lines.append("")
    if dynamic:
        lines.append(f"Dynamic start-up: {dynamic['program']}, best wall time")
        lines += [f"  {name:<16} {seconds:.3f} s" for name, seconds in dynamic["times_s"].items()]
        lines.append(f"  legorun/qemu     {ratio_text(dynamic['legorun/qemu'])}")
        lines.append("")
    if syscall:
        lines.append(f"Syscall round trip: getppid() x{SYSCALL_LOOPS} minus x0, "
                     f"over {SYSCALL_LOOPS}")
        for name, entry in syscall.items():
            lines.append(f"  {name:<16} {_us(entry['seconds_per_syscall'])} "
                         f"({entry['loop_s']:.3f} s - {entry['empty_s']:.3f} s)")
        lines.append("")
    lines += tools
    lines.append("Targets")
    lines += [target.line() for target in targets]
    if bench.notes:
        lines += ["", "Notes"] + [f"  {note}" for note in bench.notes]
    if bench.mismatches:
        lines += ["", "!!! OUTPUT MISMATCHES (runner output differs from the native run) !!!"]
        lines += [f"  {message}" for message in bench.mismatches]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    progress = stderr_progress
    started = time.perf_counter()
    binaries = {name: sample_binary(name, progress) for name in options.samples}
    hello = sample_binary("hello", progress)
    with tempfile.TemporaryDirectory(prefix="legorun-bench-") as scratch:
        bench = Bench(options.repeat, options.excache, Path(scratch), progress)
        bench.warm_up(hello)
        results = bench.samples(options.samples, binaries)
        miss = bench.miss_cost()
        startup = bench.startup(hello)
        dynamic = bench.dynamic_startup()
        syscall = bench.syscall_cost()
        cache_sim = cache_sim_vs_cachegrind(bench, {
            name: sample_binary(name, progress) for name in CACHE_SIM_ARGS})
        trace = trace_overhead(bench, compile_static(SYSCALL_HEAVY_C, "syscall_heavy",
                                                     bench.workdir))
        processes = processes_report(
            threads_against_qemu(bench, sample_binary("pthreads_wc", progress)),
            thread_switch_cost(bench, compile_static(YIELD_C, "yield", bench.workdir,
                                                     ("-pthread",))),
            fork_cost(bench, sample_binary("fork_cost", progress)),
        )
        progress("ExCache misses through a memory server on loopback")
        network = remote_miss_cost(hello)
        sharing = sharing_throughput(bench, compile_static(SHARING_C, "sharing",
                                                           bench.workdir))
        progress("memory replication: a run against a memory server with and without a backup")
        replication = replication_overhead(bench, sample_binary("workingset", progress))
    per_miss = miss.get("seconds_per_miss")
    targets = [
        *sample_targets(results),
        bound_target("ExCache miss with eviction", per_miss, MISS_TARGET_US, "us", 1e6),
        bound_target("hello start-up under legorun", startup.get(LEGORUN), STARTUP_TARGET_S,
                     "s", 1.0),
        *tool_targets(cache_sim, trace),
        bound_target("ExCache miss through the network transport (median)",
                     network["miss_us"] / 1e6, NETWORK_MISS_GOAL_US, "us", 1e6),
    ]
    sys.stdout.write(report(results, miss, startup, dynamic, syscall,
                            processes + tool_report(cache_sim, trace)
                            + network_report(network) + replication_report(replication)
                            + sharing_report(sharing),
                            targets, bench,
                            options.repeat,
                            options.excache))
    progress(f"benchmark finished in {time.perf_counter() - started:.1f} s")
    if options.json is not None:
        document = {
            "host": {"python": sys.version.split()[0], "machine": platform.machine(),
                     "platform": platform.platform()},
            "repeat": options.repeat,
            "excache": options.excache,
            "samples": {result.sample: result.to_json() for result in results},
            "miss_with_eviction": miss,
            "startup_s": startup,
            "dynamic_startup": dynamic,
            "syscall": syscall,
            "cache_sim_vs_cachegrind": cache_sim,
            "trace_overhead": trace,
            "network": network,
            "memory_server_sharing": sharing,
            "replication": replication,
            "targets": [{"what": t.what, "goal": t.goal, "measured": t.measured, "met": t.met}
                        for t in targets],
            "notes": bench.notes,
            "mismatches": bench.mismatches,
        }
        options.json.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if bench.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
