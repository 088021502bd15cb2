"""The benchmark's processes and threads: a 4-thread sample against qemu-user, the cost of one
thread switch (two threads handing the CPU to each other with sched_yield) and of fork of a
process with 64 MiB touched (samples/fork_cost.c measures it from inside the guest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legorun.bench.runners import (
    LEGORUN, NATIVE, QEMU, RAW, Runner, legorun_runner, ratio, ratio_text,
)

if TYPE_CHECKING:
    from legorun.bench.__main__ import Bench

YIELD_LOOPS = 20_000
FORK_MIB, FORK_ROUNDS = 64, 10
FORK_LINE = re.compile(rb"fork ([0-9.]+) ms, fork\+exit\+wait ([0-9.]+) ms")

YIELD_C = r"""
/* Two threads that each call sched_yield `loops` times: with one CPU every yield hands the
 * CPU to the other thread, so the run makes 2 x loops thread switches. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
static long loops;
static void *spin(void *arg) {
    for (long i = 0; i < loops; i++)
        sched_yield();
    return arg;
}
int main(int argc, char **argv) {
    loops = argc > 1 ? atol(argv[1]) : 0;
    pthread_t other;
    pthread_create(&other, NULL, spin, NULL);
    spin(NULL);
    pthread_join(other, NULL);
    printf("yield x%ld done\n", loops);
    return 0;
}
"""


def threads_against_qemu(bench: Bench, program: Path) -> dict[str, Any]:
    """Best wall time of the 4-thread word count natively, under legorun and under qemu."""
    reference = bench.run(Runner(NATIVE).argv(program))
    times = {
        runner.name: bench.best_time(runner.argv(program), f"pthreads_wc under {runner.name}",
                                     runner.name, reference)
        for runner in bench.runners if runner.name != RAW
    }
    return {"program": "pthreads_wc (4 threads)", "times_s": times,
            "legorun/qemu": ratio(times.get(LEGORUN), times.get(QEMU))}


def thread_switch_cost(bench: Bench, program: Path | None) -> float | None:
    """Seconds per thread switch under legorun: the yield loop against an empty one."""
    if program is None:
        return None
    times = []
    for loops in (YIELD_LOOPS, 0):
        args = [str(loops)]
        reference = bench.run(Runner(NATIVE).argv(program, args))
        times.append(bench.best_time(legorun_runner().argv(program, args),
                                     f"sched_yield x{loops} in 2 threads", LEGORUN, reference))
    return (times[0] - times[1]) / (2 * YIELD_LOOPS)


def fork_cost(bench: Bench, program: Path) -> dict[str, Any]:
    """Mean time of fork and of fork+exit+wait with 64 MiB touched, as the guest measures it,
    natively and under legorun."""
    found: dict[str, Any] = {}
    for runner in (Runner(NATIVE), legorun_runner()):
        outcome = bench.run(runner.argv(program, [str(FORK_MIB), str(FORK_ROUNDS), "time"]))
        match = FORK_LINE.search(outcome.stdout)
        if outcome.status != 0 or match is None:
            bench.mismatches.append(f"fork_cost under {runner.name}: status {outcome.status}")
            continue
        found[runner.name] = {"fork_ms": float(match.group(1)),
                              "fork_exit_wait_ms": float(match.group(2))}
        bench.progress(f"fork of {FORK_MIB} MiB under {runner.name}: "
                       f"{match.group(1).decode()} ms")
    return found


def processes_report(threads: dict[str, Any], switch_s: float | None,
                     fork: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if threads:
        lines.append(f"Threads: {threads['program']}, best wall time")
        lines += [f"  {name:<16} {seconds:.3f} s" for name, seconds in threads["times_s"].items()]
        lines.append(f"  legorun/qemu     {ratio_text(threads['legorun/qemu'])}")
    if switch_s is not None:
        lines.append(f"  one thread switch under legorun (sched_yield between two threads): "
                     f"{switch_s * 1e6:.2f} us")
    if fork:
        lines.append(f"Fork with {FORK_MIB} MiB touched (mean of {FORK_ROUNDS}, measured by "
                     "the guest)")
        lines += [f"  {name:<16} fork {entry['fork_ms']:.2f} ms, fork+exit+wait "
                  f"{entry['fork_exit_wait_ms']:.2f} ms" for name, entry in fork.items()]
    if lines:
        lines.append("")
    return lines
