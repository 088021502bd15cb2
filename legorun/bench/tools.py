"""The benchmark's tool comparisons: what legorun's observation tools cost.

- `--cache-sim` against `valgrind --tool=cachegrind --cache-sim=yes`, with the same cache
  geometry on the same binary (goal: at most 3x cachegrind's time);
- `--trace` and `--strace` against a plain legorun run of a syscall-heavy guest (goal: each
  under 2x).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from legorun.bench.runners import (
    LEGORUN, NATIVE, Runner, Target, legorun_runner, ratio, ratio_text,
)

if TYPE_CHECKING:
    from legorun.bench.__main__ import Bench

# One geometry for both simulators, so that they do the same work.
GEOMETRY = {"I1": "32768,8,64", "D1": "32768,8,64", "LL": "8388608,16,64"}
# Enough work that start-up does not dominate, little enough for cachegrind's pace.
CACHE_SIM_ARGS = {"matmul": [], "stream": ["4"], "randwalk": ["1048576"]}
CACHEGRIND_TARGET = 3.0
TRACE_TARGET = 2.0

SYSCALL_HEAVY_C = r"""
/* Write a file in 4 KiB chunks, read it back, checksum it: `chunks` writes and reads, the
 * pattern of a program that does its I/O in small pieces. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long chunks = argc > 1 ? atol(argv[1]) : 4000;
    static unsigned char buf[4096];
    unsigned long sum = 0;
    int fd = open("syscall_heavy.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 1;
    for (long c = 0; c < chunks; c++) {
        for (int i = 0; i < 4096; i += 64)
            buf[i] = (unsigned char)(c + i);
        if (write(fd, buf, sizeof buf) != sizeof buf)
            return 2;
    }
    lseek(fd, 0, SEEK_SET);
    while (read(fd, buf, sizeof buf) == sizeof buf)
        for (int i = 0; i < 4096; i += 64)
            sum += buf[i];
    close(fd);
    unlink("syscall_heavy.dat");
    printf("%ld chunks, checksum %lu\n", chunks, sum);
    return 0;
}
"""
SYSCALL_HEAVY_CHUNKS = 20000


def cachegrind_runner(geometry_flags: Sequence[str], out_file: Path) -> Runner | None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    return Runner("cachegrind", (valgrind, "--tool=cachegrind", "--cache-sim=yes", "-q",
                                 *geometry_flags, f"--cachegrind-out-file={out_file}"))


def cache_sim_vs_cachegrind(bench: Bench, binaries: dict[str, Path]) -> dict[str, Any]:
    """Best wall time of legorun --cache-sim and of cachegrind per sample, and their ratio."""
    flags = [f"--{name}={value}" for name, value in GEOMETRY.items()]
    cachegrind = cachegrind_runner(flags, bench.workdir / "cachegrind.out.valgrind")
    if cachegrind is None:
        bench.notes.append("valgrind is not installed: --cache-sim is not compared with "
                           "cachegrind")
        return {}
    legorun = legorun_runner([*flags, "--cache-sim", "--cachegrind-out-file",
                              str(bench.workdir / "cachegrind.out.legorun")])
    found: dict[str, Any] = {}
    for name, args in CACHE_SIM_ARGS.items():
        reference = bench.run(Runner(NATIVE).argv(binaries[name], args))
        times = {
            runner.name: bench.best_time(runner.argv(binaries[name], args),
                                         f"{name} under {runner.name} (cache sim)",
                                         runner.name, reference)
            for runner in (legorun, cachegrind)
        }
        found[name] = {"legorun_s": times[LEGORUN], "cachegrind_s": times["cachegrind"],
                       "ratio": ratio(times[LEGORUN], times["cachegrind"])}
    return found


def trace_overhead(bench: Bench, program: Path | None) -> dict[str, Any]:
    """Best wall time of a syscall-heavy guest plain, with --trace and with --strace."""
    if program is None:
        bench.notes.append("gcc -static does not work here: trace overhead is not measured")
        return {}
    args = [str(SYSCALL_HEAVY_CHUNKS)]
    reference = bench.run(Runner(NATIVE).argv(program, args))
    variants = {
        "plain": [],
        "--trace": ["--trace", str(bench.workdir / "trace.json")],
        "--strace": ["--strace", "-D", str(bench.workdir / "strace.log")],
    }
    times = {
        label: bench.best_time(legorun_runner(options).argv(program, args),
                               f"syscall-heavy, legorun {label}", LEGORUN, reference)
        for label, options in variants.items()
    }
    return {"program": f"syscall_heavy {SYSCALL_HEAVY_CHUNKS}", "times_s": times,
            "ratios": {label: ratio(times[label], times["plain"])
                       for label in variants if label != "plain"}}


def tool_targets(cache_sim: dict[str, Any], trace: dict[str, Any]) -> list[Target]:
    targets = []
    for name, entry in cache_sim.items():
        value = entry["ratio"]
        targets.append(Target(f"{name}: --cache-sim within {CACHEGRIND_TARGET:g}x of cachegrind",
                              f"<= {CACHEGRIND_TARGET:.2f}x", ratio_text(value),
                              None if value is None else value <= CACHEGRIND_TARGET))
    for label, value in trace.get("ratios", {}).items():
        targets.append(Target(f"syscall-heavy: {label} overhead", f"< {TRACE_TARGET:.2f}x",
                              ratio_text(value), None if value is None else value < TRACE_TARGET))
    return targets


def tool_report(cache_sim: dict[str, Any], trace: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if cache_sim:
        geometry = ", ".join(f"{name} {value}" for name, value in GEOMETRY.items())
        lines.append(f"Cache simulation: legorun --cache-sim vs valgrind --tool=cachegrind "
                     f"--cache-sim=yes ({geometry}), best wall time")
        for name, entry in cache_sim.items():
            lines.append(f"  {name:<10} legorun {entry['legorun_s']:7.3f} s   cachegrind "
                         f"{entry['cachegrind_s']:7.3f} s   ratio {ratio_text(entry['ratio'])}")
        lines.append("")
    if trace:
        lines.append(f"Tracing overhead: `{trace['program']}` (a 4 KiB write and read per chunk)")
        for label, seconds in trace["times_s"].items():
            extra = trace["ratios"].get(label)
            lines.append(f"  legorun {label:<9} {seconds:7.3f} s"
                         + (f"   {ratio_text(extra)} of plain" if extra is not None else ""))
        lines.append("")
    return lines
