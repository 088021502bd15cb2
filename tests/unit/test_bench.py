"""The benchmark harness (legorun.bench): ratios, target checks, the table, the miss-cost
arithmetic, option parsing, and the raw Unicorn baseline runner, which must run a small
static program exactly as the host does. Nothing here measures or asserts on time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from legorun.bench.__main__ import Bench, miss_cost_s, miss_costs, parse_args, report
from legorun.bench.processes import FORK_LINE, processes_report
from legorun.bench.tools import tool_report, tool_targets
from legorun.bench.rawunicorn import ENOMEM, RawMachine, RawUnicornError, load_static, page_ranges
from legorun.loader.elf import ET_EXEC, LoadedImage, Segment
from legorun.managers.vma import PAGE_SIZE, PROT_EXEC, PROT_READ
from legorun.bench.runners import (
    LEGORUN,
    NATIVE,
    QEMU,
    RAW,
    ROOT,
    RunOutcome,
    Runner,
    SampleResult,
    bound_target,
    compare_output,
    format_table,
    ratio,
    sample_targets,
    subprocess_env,
)

TINY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    char *small = malloc(100), *big = malloc(8 << 20);   /* brk, then mmap */
    if (!small || !big)
        return 1;
    memset(big, 'x', 8 << 20);
    strcpy(small, "small");
    printf("argc=%d", argc);
    for (int i = 1; i < argc; i++)
        printf(" [%s]", argv[i]);
    printf(" %s %c\n", small, big[(8 << 20) - 1]);
    fprintf(stderr, "to stderr\n");
    free(big);
    return 7;
}
"""


def _result(sample: str, **times: float) -> SampleResult:
    result = SampleResult(sample)
    for runner, seconds in times.items():
        result.add(runner.replace("_", "-"), seconds)
    return result


# ------------------------------------------------------------------ ratios and results


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_sample_result_keeps_the_best_time() -> None:
    result = SampleResult("stream")
    for seconds in (0.9, 0.7, 0.8):
        result.add(LEGORUN, seconds)
    result.add(NATIVE, 0.1)
    assert result.best(LEGORUN) == 0.7
    assert result.best(QEMU) is None
    assert result.ratio(LEGORUN, NATIVE) == pytest.approx(7.0)
    document = result.to_json()
    assert document["best_s"] == {LEGORUN: 0.7, NATIVE: 0.1}
    assert document["ratios"][f"{LEGORUN}/{QEMU}"] is None


def test_compare_output() -> None:
    native = RunOutcome(0.1, 0, b"same\n", b"")
    assert compare_output(native, RunOutcome(0.5, 0, b"same\n", b"warning\n"), LEGORUN) is None
    wrong = compare_output(native, RunOutcome(0.5, 0, b"other\n", b"oops\n"), RAW)
    assert wrong is not None and wrong.startswith(RAW) and "stdout differs" in wrong
    assert "oops" in wrong
    status = compare_output(native, RunOutcome(0.5, -11, b"same\n", b""), QEMU)
    assert status is not None and "exit status -11" in status


# ------------------------------------------------------------------ table and targets


def test_format_table_rows_and_ratios() -> None:
    results = [
        _result("cpu_loop", native=0.2, legorun=0.8, qemu=0.4, raw_unicorn=0.5),
        _result("stream", native=0.1, legorun=0.6),
    ]
    results[1].mismatches.append(RAW)
    lines = format_table(results).splitlines()
    assert lines[0].split() == ["sample", "native", "s", "legorun", "s", "qemu", "s",
                                "raw-unicorn", "s", "legorun/native", "legorun/qemu",
                                "legorun/raw-unicorn"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["cpu_loop", "0.200", "0.800", "0.400", "0.500", "4.00", "2.00",
                                "1.60"]
    assert lines[3].split() == ["stream", "!", "0.100", "0.600", "-", "-", "6.00", "-", "-"]
    # Numbers are right-aligned under their headers.
    header_end = lines[0].index("legorun/raw-unicorn") + len("legorun/raw-unicorn")
    assert len(lines[2]) == header_end


def test_sample_targets() -> None:
    results = [
        _result("cpu_loop", legorun=1.05, raw_unicorn=1.0, qemu=0.2),
        _result("stream", legorun=1.2, raw_unicorn=1.0),
    ]
    targets = {t.what: t for t in sample_targets(results)}
    assert targets["cpu_loop: legorun within 10% of raw Unicorn"].met is True
    assert targets["stream: legorun faster than raw Unicorn"].met is False
    assert targets["cpu_loop: legorun within 4x of qemu"].met is False
    assert targets["stream: legorun within 4x of qemu"].met is None
    assert "MISSED" in targets["stream: legorun faster than raw Unicorn"].line()
    assert "n/a" in targets["stream: legorun within 4x of qemu"].line()


def test_bound_target() -> None:
    met = bound_target("miss", 12e-6, 15, "us", 1e6)
    assert met.met is True and met.measured == "12 us"
    assert bound_target("miss", 20e-6, 15, "us", 1e6).met is False
    assert bound_target("miss", None, 15, "us", 1e6).met is None


# ------------------------------------------------------------------ the miss arithmetic


def test_miss_cost_is_extra_time_over_extra_misses() -> None:
    assert miss_cost_s(2.0, 101_000, 1.0, 1_000) == pytest.approx(1e-5)
    assert miss_cost_s(2.0, 1_000, 1.0, 1_000) is None


def test_miss_costs_take_out_the_start_up_difference() -> None:
    runs = {
        "1M x48": {"seconds": 1.5, "misses": 50_000},
        "1G x48": {"seconds": 0.3, "misses": 1_000},
        "1M x1": {"seconds": 0.2, "misses": 1_000},
        "1G x1": {"seconds": 0.25, "misses": 1_000},  # the big ExCache starts 50 ms slower
    }
    costs = miss_costs(runs, "1M", "1G", 48)
    assert costs["seconds_per_miss_uncorrected"] == pytest.approx(1.2 / 49_000)
    assert costs["seconds_per_miss"] == pytest.approx(1.25 / 49_000)


def test_report_shouts_about_mismatches(tmp_path: Path) -> None:
    messages: list[str] = []
    bench = Bench(1, "64M", tmp_path, messages.append)
    native = RunOutcome(0.1, 0, b"right\n", b"")
    assert bench.check("stream", native, RunOutcome(0.2, 0, b"right\n", b""), LEGORUN)
    assert not bench.check("stream", native, RunOutcome(0.2, 0, b"wrong\n", b""), RAW)
    assert not bench.check("stream", native, RunOutcome(0.2, 0, b"wrong\n", b""), RAW)
    assert len(bench.mismatches) == 1 and "MISMATCH" in messages[-1]
    result = _result("stream", native=0.1, legorun=0.5)
    result.mismatches.append(RAW)
    text = report([result], {}, {LEGORUN: 0.2}, {}, {}, [], sample_targets([result]), bench, 1,
                  "64M")
    assert "stream !" in text
    assert "OUTPUT MISMATCHES" in text and "stream: raw-unicorn: stdout differs" in text
    assert "Start-up" in text and "Targets" in text


# ------------------------------------------------------------------ options and runners


def test_parse_args() -> None:
    options = parse_args(["--repeat", "2", "--samples", "stream,randwalk", "--json", "out.json"])
    assert options.repeat == 2
    assert options.samples == ["stream", "randwalk"]
    assert options.json == Path("out.json")
    defaults = parse_args([])
    assert defaults.repeat == 3 and defaults.samples == ["cpu_loop", "stream", "randwalk"]
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "0"])


def test_runner_argv_and_environment() -> None:
    runner = Runner(QEMU, ("/usr/bin/qemu-x86_64",))
    assert runner.argv(Path("/p"), ["a", "b"]) == ["/usr/bin/qemu-x86_64", "/p", "a", "b"]
    assert Runner(NATIVE).argv(Path("/p")) == ["/p"]
    assert subprocess_env()["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)


# ------------------------------------------------------------------ the raw Unicorn runner


def _image(*segments: tuple[int, int, bytes]) -> LoadedImage:
    loaded = tuple(Segment(vaddr, memsz, len(data), 0, PROT_READ | PROT_EXEC, data)
                   for vaddr, memsz, data in segments)
    end = max(((vaddr + memsz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) for vaddr, memsz, _ in segments)
    return LoadedImage(e_type=ET_EXEC, load_bias=0, entry=segments[0][0], phdr=0x400040,
                       phent=56, phnum=len(segments), segments=loaded, interp=None, tls=None,
                       stack_executable=False, end=end)


def _tiny_image() -> LoadedImage:
    return _image((0x401000, 0x20, b"\x0f\x05"))


def test_page_ranges_merge_shared_pages() -> None:
    image = _image(
        (0x400000, 0x518, b""),
        (0x401000, 0x77C31, b""),
        (0x4A06D8, 0xB3C8, b""),
        (0x478F00, 0x200, b""),  # shares its first page with the segment before
    )
    assert page_ranges(image) == [(0x400000, 0x47A000), (0x4A0000, 0x4AC000)]


def test_brk_and_mmap_bump_allocator() -> None:
    machine = RawMachine(_tiny_image(), [b"prog"], [], heap_size=64 * PAGE_SIZE)
    start = machine.heap_start
    assert machine._brk(0) == start
    assert machine._brk(start + 3 * PAGE_SIZE) == start + 3 * PAGE_SIZE
    machine.uc.mem_write(start + PAGE_SIZE, b"dirty")
    machine._brk(start + PAGE_SIZE)  # shrink, then grow again: the memory must read as zero
    machine._brk(start + 2 * PAGE_SIZE)
    assert bytes(machine.uc.mem_read(start + PAGE_SIZE, 5)) == bytes(5)

    anonymous = 0x22
    first = machine._mmap(10 * PAGE_SIZE, anonymous)
    second = machine._mmap(1, anonymous)
    assert first == machine.heap_end - 10 * PAGE_SIZE and second == first - PAGE_SIZE
    assert machine._mmap(PAGE_SIZE, 0x02) < 0  # file-backed: not served
    assert machine._mmap(60 * PAGE_SIZE, anonymous) == -ENOMEM
    assert machine._brk(second + PAGE_SIZE) == start + 2 * PAGE_SIZE  # into mmap: refused


def test_load_static_rejects_non_elf() -> None:
    with pytest.raises(RawUnicornError):
        load_static(b"#!/bin/sh\necho hi\n", "script")


@pytest.fixture(scope="module")
def tiny_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("bench")
    (work / "tiny.c").write_text(TINY_C)
    proc = subprocess.run(["gcc", "-static", "-O2", "-o", str(work / "tiny"),
                           str(work / "tiny.c")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"gcc -static failed (no static libc?): {proc.stderr[-500:]}")
    return work / "tiny"


def test_raw_unicorn_runs_like_native(tiny_static: Path, tmp_path: Path) -> None:
    args = ["one", "two words"]
    native = subprocess.run([str(tiny_static), *args], capture_output=True, cwd=tmp_path)
    raw = subprocess.run(
        [sys.executable, "-m", "legorun.bench.rawunicorn", str(tiny_static), *args],
        capture_output=True, cwd=tmp_path, env=subprocess_env(), timeout=120,
    )
    assert native.returncode == 7
    assert raw.stdout == native.stdout == b"argc=3 [one] [two words] small x\n"
    assert raw.returncode == native.returncode
    assert raw.stderr == native.stderr == b"to stderr\n"


def test_raw_unicorn_loads_the_program_headers(tiny_static: Path) -> None:
    image = load_static(tiny_static.read_bytes(), str(tiny_static))
    assert image.phnum > 0 and image.phent == 56
    assert any(s.vaddr <= image.phdr < s.vaddr + s.memsz for s in image.segments)
    assert any(s.vaddr <= image.entry < s.vaddr + s.memsz for s in image.segments)


def test_tool_targets_and_report():
    cache_sim = {"matmul": {"legorun_s": 6.0, "cachegrind_s": 2.5, "ratio": 2.4},
                 "stream": {"legorun_s": 9.0, "cachegrind_s": 2.0, "ratio": 4.5}}
    trace = {"program": "syscall_heavy 10", "times_s": {"plain": 1.0, "--trace": 1.5,
                                                        "--strace": 2.5},
             "ratios": {"--trace": 1.5, "--strace": 2.5}}
    verdicts = {t.what: t.met for t in tool_targets(cache_sim, trace)}
    assert verdicts == {
        "matmul: --cache-sim within 3x of cachegrind": True,
        "stream: --cache-sim within 3x of cachegrind": False,
        "syscall-heavy: --trace overhead": True,
        "syscall-heavy: --strace overhead": False,
    }
    text = "\n".join(tool_report(cache_sim, trace))
    assert "ratio 4.50x" in text and "2.50x of plain" in text
    assert tool_report({}, {}) == [] and tool_targets({}, {}) == []


def test_processes_report():
    threads = {"program": "pthreads_wc (4 threads)", "times_s": {"native": 0.01, "legorun": 0.4,
                                                                 "qemu": 0.04},
               "legorun/qemu": 10.0}
    fork = {"native": {"fork_ms": 1.0, "fork_exit_wait_ms": 2.0},
            "legorun": {"fork_ms": 3.0, "fork_exit_wait_ms": 9.5}}
    text = "\n".join(processes_report(threads, 17e-6, fork))
    assert "legorun/qemu     10.00x" in text
    assert "17.00 us" in text
    assert "legorun          fork 3.00 ms, fork+exit+wait 9.50 ms" in text
    assert processes_report({}, None, {}) == []


def test_fork_line_matches_the_sample_output():
    match = FORK_LINE.search(b"fork_cost: 64 MiB touched, 10 forks\n"
                             b"fork 0.96 ms, fork+exit+wait 1.93 ms (mean)\n")
    assert match is not None and match.groups() == (b"0.96", b"1.93")
