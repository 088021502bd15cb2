"""The benchmark's memory replication: what logging every change to a backup memory server
costs a run (LegoOS reports 2-23%).

One guest with a working set larger than its ExCache (so that most misses carry a dirty
line to write back, each a change the primary logs to its backup before it answers) runs
against a memory server on loopback, one without a backup and one started with `--backup`,
in turn; the overhead is the ratio of their best wall times, less one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from legorun.bench.runners import (
    LEGORUN, NATIVE, Runner, legorun_runner, memory_server, ratio,
)

if TYPE_CHECKING:
    from legorun.bench.__main__ import Bench

# workingset: 1 MiB of rows, 2000 requests, through a 256 KiB ExCache: about 1000 misses,
# nearly all with a write-back: about a second per run on loopback.
PROGRAM_ARGS = ["1", "2000"]
EXCACHE = "256K"
LEGOOS_OVERHEAD = "2-23%"


def replication_overhead(bench: Bench, program: Path) -> dict[str, Any]:
    """Best wall time of `program` against a memory server without and with a backup,
    the two interleaved round by round, each run checked against the native run."""
    reference = bench.run(Runner(NATIVE).argv(program, PROGRAM_ARGS))
    times: dict[str, float] = {}
    with memory_server() as plain, memory_server() as backup, \
            memory_server("--backup", backup) as primary:
        servers = {"without a backup": plain, "with a backup": primary}
        for round_ in range(1, bench.repeat + 1):
            for name, address in servers.items():
                runner = legorun_runner(["--excache", EXCACHE, "--memory", address])
                outcome = bench.run(runner.argv(program, PROGRAM_ARGS))
                bench.check(f"{program.name} {name}", reference, outcome, LEGORUN)
                times[name] = min(times.get(name, outcome.seconds), outcome.seconds)
                bench.progress(f"[{round_}/{bench.repeat}] {program.name} {name:<17} "
                               f"{outcome.seconds:7.3f} s")
    slowdown = ratio(times["with a backup"], times["without a backup"])
    return {"program": f"{program.name} {' '.join(PROGRAM_ARGS)}, --excache {EXCACHE}",
            "times_s": times, "overhead": None if slowdown is None else slowdown - 1}


def replication_report(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    overhead = result["overhead"]
    shown = "n/a" if overhead is None else f"{overhead * 100:+.0f}%"
    return [
        f"Memory replication: {result['program']}, against a memory server on loopback, "
        "best wall time",
        *(f"  {name:<18} {seconds:.3f} s" for name, seconds in result["times_s"].items()),
        f"  overhead           {shown} (LegoOS reports {LEGOOS_OVERHEAD})",
        "",
    ]
