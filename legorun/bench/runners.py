"""Runners and their comparison: the ways of running one guest binary that the benchmark sets
side by side (natively, under legorun, under qemu-user, on raw Unicorn), how one run is timed,
and how the best times become ratios, target checks and the printed table.

Every run is a fresh subprocess timed from the outside (wall clock around `subprocess.run`),
so interpreter and emulator start-up count for every runner alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NATIVE, LEGORUN, QEMU, RAW = "native", "legorun", "qemu", "raw-unicorn"
RUNNER_NAMES = (NATIVE, LEGORUN, QEMU, RAW)
# The ratios in the table: numerator and denominator runner.
RATIOS = ((LEGORUN, NATIVE), (LEGORUN, QEMU), (LEGORUN, RAW))

RUN_TIMEOUT_S = 600.0
TIMED_OUT = -9  # the status of a run that was killed at the timeout (as by SIGKILL)


@dataclass(frozen=True, slots=True)
class Runner:
    """One way of running a program: `prefix` goes before the program's own argv."""

    name: str
    prefix: tuple[str, ...] = ()

    def argv(self, program: Path, args: Sequence[str] = ()) -> list[str]:
        return [*self.prefix, str(program), *args]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    seconds: float
    status: int  # subprocess convention: -N when killed by signal N
    stdout: bytes
    stderr: bytes


def legorun_runner(options: Sequence[str] = ()) -> Runner:
    return Runner(LEGORUN, (sys.executable, "-m", "legorun", *options))


def raw_unicorn_runner() -> Runner:
    return Runner(RAW, (sys.executable, "-m", "legorun.bench.rawunicorn"))


def qemu_runner() -> Runner | None:
    """qemu-user, or None when it is not installed."""
    path = shutil.which("qemu-x86_64")
    return Runner(QEMU, (path,)) if path else None


def subprocess_env() -> dict[str, str]:
    """The caller's environment, with this tree first on PYTHONPATH so that `-m legorun`
    runs the code under test rather than some installed copy."""
    env = dict(os.environ)
    previous = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + previous if previous else "")
    return env


@contextmanager
def memory_server(*args: str) -> Iterator[str]:
    """A `legorun memory-server` on a free loopback port for the block; its address."""
    server = subprocess.Popen([sys.executable, "-m", "legorun", "memory-server",
                               "--listen", "tcp://127.0.0.1:*", *args],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=subprocess_env())
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        if "listening on " not in line:
            raise RuntimeError(f"the memory server did not start: {line!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        server.kill()
        server.wait()


def run_once(argv: Sequence[str], env: Mapping[str, str], cwd: Path,
             timeout: float = RUN_TIMEOUT_S) -> RunOutcome:
    """Run argv to completion with stdin empty and both outputs captured; the wall time
    includes process creation, which is the same for every runner."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              env=dict(env), cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        # Reported as a killed run, so that the output check flags it and the rest of the
        # benchmark still runs.
        return RunOutcome(time.perf_counter() - start, TIMED_OUT, expired.stdout or b"",
                          expired.stderr or b"")
    seconds = time.perf_counter() - start
    return RunOutcome(seconds, proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------ results


@dataclass(slots=True)
class SampleResult:
    """Every timing of one sample, by runner; `skipped` runners were not run at all."""

    sample: str
    times: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # runner -> why
    mismatches: list[str] = field(default_factory=list)

    def add(self, runner: str, seconds: float) -> None:
        self.times.setdefault(runner, []).append(seconds)

    def best(self, runner: str) -> float | None:
        times = self.times.get(runner)
        return min(times) if times else None

    def ratio(self, numerator: str, denominator: str) -> float | None:
        return ratio(self.best(numerator), self.best(denominator))

    def to_json(self) -> dict[str, object]:
        return {
            "times_s": self.times,
            "best_s": {name: self.best(name) for name in self.times},
            "ratios": {f"{a}/{b}": self.ratio(a, b) for a, b in RATIOS},
            "skipped": self.skipped,
            "mismatches": self.mismatches,
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def compare_output(reference: RunOutcome, other: RunOutcome, runner: str) -> str | None:
    """Why `other` does not match the native `reference` run, or None when it does: same
    stdout byte for byte and the same exit status."""
    problems = []
    if other.status != reference.status:
        problems.append(f"exit status {other.status}, native {reference.status}")
    if other.stdout != reference.stdout:
        problems.append(
            f"stdout differs ({len(other.stdout)} bytes, native {len(reference.stdout)}): "
            f"{_preview(other.stdout)!r} vs native {_preview(reference.stdout)!r}"
        )
    if not problems:
        return None
    detail = "; ".join(problems)
    tail = other.stderr.decode(errors="replace").strip().splitlines()[-3:]
    return f"{runner}: {detail}" + (f" [stderr: {' | '.join(tail)}]" if tail else "")


def _preview(data: bytes, limit: int = 60) -> str:
    text = data.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------ targets


@dataclass(frozen=True, slots=True)
class Target:
    """A goal for one measured value: `met` is None when the value could not be measured."""

    what: str
    goal: str
    measured: str
    met: bool | None

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[self.met]
        return f"  {self.what:<44} {self.goal:<18} {self.measured:<18} {verdict}"


def ratio_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def sample_targets(results: Sequence[SampleResult]) -> list[Target]:
    """legorun beats raw Unicorn on stream, stays within 10% of it on cpu_loop, and within
    4x of qemu everywhere."""
    targets: list[Target] = []
    for result in results:
        vs_raw = result.ratio(LEGORUN, RAW)
        if result.sample == "stream":
            targets.append(Target("stream: legorun faster than raw Unicorn", "< 1.00x",
                                  ratio_text(vs_raw), None if vs_raw is None else vs_raw < 1.0))
        if result.sample == "cpu_loop":
            targets.append(Target("cpu_loop: legorun within 10% of raw Unicorn", "<= 1.10x",
                                  ratio_text(vs_raw), None if vs_raw is None else vs_raw <= 1.10))
    for result in results:
        vs_qemu = result.ratio(LEGORUN, QEMU)
        targets.append(Target(f"{result.sample}: legorun within 4x of qemu", "<= 4.00x",
                              ratio_text(vs_qemu), None if vs_qemu is None else vs_qemu <= 4.0))
    return targets


def bound_target(what: str, value: float | None, limit: float, unit: str,
                 scale: float) -> Target:
    """`value` (in seconds) must be under `limit` (in `unit`, `scale` of them per second)."""
    measured = "n/a" if value is None else f"{value * scale:.3g} {unit}"
    return Target(what, f"< {limit:g} {unit}", measured,
                  None if value is None else value * scale < limit)


# ------------------------------------------------------------------ the table


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(results: Sequence[SampleResult]) -> str:
    """One row per sample: best wall time per runner, then legorun's ratios to the others;
    `-` marks a runner that was skipped, `!` a sample whose output did not match native."""
    headers = ["sample", "native s", "legorun s", "qemu s", "raw-unicorn s",
               "legorun/native", "legorun/qemu", "legorun/raw-unicorn"]
    rows = []
    for result in results:
        rows.append([
            result.sample + (" !" if result.mismatches else ""),
            *(_cell(result.best(name), ".3f") for name in RUNNER_NAMES),
            *(_cell(result.ratio(a, b), ".2f") for a, b in RATIOS),
        ])
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
