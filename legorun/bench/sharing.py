"""The benchmark's shared memory server: the throughput of two processors (two legorun runs)
sharing one memory server, against one run alone.

One `legorun memory-server` on loopback; the guest walks a working set four times the 1 MiB
ExCache one word per page, so that after a first pass every access is an ExCache miss with a
dirty eviction (one RPC each, the write-back riding on the miss). The guest times its missing
passes itself (host wall clock, so start-up and connecting do not count) and reports when
they began and ended. Throughput is misses per second: of the run alone, and of the two runs
started together (all their misses over the time from the first start to the last end). A
server serves one request at a time, so the ratio of the two shows how much of a miss is the
server's: 2.0 if none of it, 1.0 if all of it. On a small host the two processors and the
server also share the CPUs, which counts against the ratio too.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legorun.bench.runners import LEGORUN, NATIVE, Runner, legorun_runner, memory_server

if TYPE_CHECKING:
    from legorun.bench.__main__ import Bench

SHARING_PAGES, SHARING_PASSES, SHARING_EXCACHE = 1024, 6, "1M"
# Generous: a reply on loopback takes well under a millisecond, even to two processors.
SHARING_RPC_TIMEOUT = "1s"
WALK_LINE = re.compile(rb"walked (\d+) misses from ([0-9.]+) to ([0-9.]+)")

SHARING_C = r"""
/* Walk one word per page of `pages` pages, `passes` times, reading and writing it. The first
 * pass only fills the ExCache; the others, through an ExCache of a quarter of the pages, miss
 * on every access. Prints the result on stdout and the timed passes on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long pages = atol(argv[1]), passes = atol(argv[2]);
    volatile unsigned long *a = mmap(NULL, (size_t)pages * 4096, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return 1;
    unsigned long sum = 0;
    double start = 0;
    for (long p = 0; p < passes; p++) {
        if (p == 1)
            start = now();
        for (long i = 0; i < pages; i++) {
            sum += a[i * 512];
            a[i * 512] = sum + (unsigned long)i;
        }
    }
    double end = now();
    printf("walk %ld pages x %ld: %lu\n", pages, passes, sum);
    fprintf(stderr, "walked %ld misses from %.6f to %.6f\n", pages * (passes - 1), start, end);
    return 0;
}
"""


def sharing_throughput(bench: Bench, program: Path | None) -> dict[str, Any]:
    """Misses per second of one run alone and of two runs sharing one memory server."""
    if program is None:
        bench.notes.append("gcc -static does not work here: sharing a memory server is not "
                           "measured")
        return {}
    args = [str(SHARING_PAGES), str(SHARING_PASSES)]
    reference = bench.run(Runner(NATIVE).argv(program, args))
    with memory_server() as address:
        runner = legorun_runner(["--memory", address, "--rpc-timeout", SHARING_RPC_TIMEOUT,
                                 "--excache", SHARING_EXCACHE])
        argv = runner.argv(program, args)
        alone = _walks(bench, [argv], reference.stdout)
        together = _walks(bench, [argv, argv], reference.stdout)
    if alone is None or together is None:
        return {}
    ratio = together["misses_per_s"] / alone["misses_per_s"]
    bench.progress(f"one processor {alone['misses_per_s']:.0f} misses/s, two sharing a "
                   f"memory server {together['misses_per_s']:.0f} misses/s (x{ratio:.2f})")
    return {"program": f"walk {SHARING_PAGES} pages x {SHARING_PASSES}, ExCache "
                       f"{SHARING_EXCACHE}", "alone": alone, "together": together,
            "ratio": ratio}


def _walks(bench: Bench, argvs: list[list[str]], expected: bytes) -> dict[str, Any] | None:
    """Run every argv at once; their misses and the span of their timed passes, or None
    (noted as a mismatch) when one of them went wrong."""
    started = time.perf_counter()
    runs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=bench.env, cwd=bench.workdir)
            for argv in argvs]
    outcomes = [run.communicate() + (run.returncode,) for run in runs]
    wall = time.perf_counter() - started
    misses, starts, ends = 0, [], []
    for stdout, stderr, status in outcomes:
        walked = WALK_LINE.search(stderr)
        if status != 0 or stdout != expected or walked is None:
            tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
            bench.mismatches.append(f"memory-server sharing under {LEGORUN}: status {status}, "
                                    f"stdout {stdout[:60]!r} [stderr: {' | '.join(tail)}]")
            return None
        misses += int(walked.group(1))
        starts.append(float(walked.group(2)))
        ends.append(float(walked.group(3)))
    span = max(ends) - min(starts)
    bench.progress(f"{len(argvs)} processor(s) sharing a memory server: {misses} misses in "
                   f"{span:.3f} s (runs took {wall:.3f} s)")
    return {"processors": len(argvs), "misses": misses, "seconds": span,
            "misses_per_s": misses / span, "wall_s": wall}


def sharing_report(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    alone, together = result["alone"], result["together"]
    return [
        f"Two processors sharing one memory server: {result['program']}, every timed access "
        "a miss",
        f"  one processor alone    {alone['misses_per_s']:9.0f} misses/s "
        f"({alone['misses']} in {alone['seconds']:.3f} s)",
        f"  two processors at once {together['misses_per_s']:9.0f} misses/s in all "
        f"({together['misses']} in {together['seconds']:.3f} s)",
        f"  ratio                  {result['ratio']:9.2f} (2.0: the server adds no contention, "
        "1.0: the server is the bottleneck)",
        "",
    ]
