"""`--trace FILE.json`: a Chrome Trace Event file that agrees with --stats-json, on a
syscall-heavy sample with a small ExCache (so that lines are evicted and written back), and
stays valid JSON however the run ends."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WC_INPUT = (HERE.parents[1] / "samples" / "data" / "wc_input.txt").read_bytes() * 2000
# 64 KiB, 4-way: constant eviction, and write-backs of the dirty stack and heap lines.
SMALL_EXCACHE = ["--excache", "64K", "--assoc", "4"]


def load_lines(path: Path) -> list[dict]:
    """The trace read line by line, as legorun writes it: `[`, one event per line, `]`."""
    lines = path.read_text().splitlines()
    assert lines[0] == "[" and lines[-1] == "]", (lines[:2], lines[-2:])
    return [json.loads(line.removesuffix(",")) for line in lines[1:-1]]


@pytest.fixture(scope="module")
def traced(e2e, samples_built):
    """wc under legorun with --trace and --stats-json, and the same wc run natively."""
    out = e2e.fresh_dir("trace")
    binary = samples_built / "wc"
    native = e2e.run_native(binary, cwd=e2e.fresh_dir("native"), stdin=WC_INPUT)
    lego = e2e.run_legorun(binary, cwd=e2e.fresh_dir("legorun"), stdin=WC_INPUT, options=[
        *SMALL_EXCACHE, "--trace", str(out / "wc.json"), "--stats-json", str(out / "stats.json"),
    ])
    return native, lego, out / "wc.json", json.loads((out / "stats.json").read_text())


def test_trace_keeps_the_guest_output_and_status(e2e, traced):
    native, lego, _trace, _stats = traced
    e2e.assert_same(native, lego, "wc --trace")


def test_trace_is_json_with_one_event_per_line(traced):
    _native, _lego, trace, _stats = traced
    events = json.loads(trace.read_text())
    assert isinstance(events, list) and len(events) > 100
    assert load_lines(trace) == events
    phases = Counter(event["ph"] for event in events)
    assert {"M", "X", "i", "C"} <= set(phases)
    names = {event["args"]["name"] for event in events if event["name"] == "process_name"}
    assert names == {"processor", "memory manager", "storage manager", "network"}
    categories = Counter(event.get("cat") for event in events)
    assert categories["syscall"] > 10 and categories["rpc"] > 10 and categories["excache"] > 10
    counters = {event["name"] for event in events if event["ph"] == "C"}
    assert counters == {"resident lines", "misses per 1000 instructions", "network bytes"}


def test_timestamps_are_monotonic_per_track(traced):
    _native, _lego, trace, _stats = traced
    last: dict[tuple, float] = {}
    slice_end: dict[tuple, float] = {}
    for event in load_lines(trace):
        if event["ph"] == "M":
            continue
        # A counter's track is its name in its process; other events' their thread.
        track = (event["pid"], event["name" if event["ph"] == "C" else "tid"])
        assert event["ts"] >= last.get(track, 0.0), event
        last[track] = event["ts"]
        if event["ph"] == "X":
            assert event["dur"] >= 0, event
            # Slices on one track follow each other: none starts before the previous ended.
            assert event["ts"] >= slice_end.get(track, 0.0) - 1e-9, event
            slice_end[track] = event["ts"] + event["dur"]


def test_trace_counts_agree_with_stats_json(traced):
    _native, _lego, trace, stats = traced
    events = load_lines(trace)
    syscalls = Counter(e["name"] for e in events if e.get("cat") == "syscall")
    assert syscalls == Counter(stats["syscalls"])
    assert syscalls["read"] > 10  # wc reads its input in small chunks
    rpc_count: Counter[str] = Counter()
    rpc_bytes: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "rpc":
            rpc_count[event["name"]] += 1
            rpc_bytes[event["name"]] += event["args"]["bytes"]
            assert event["dur"] == pytest.approx(event["args"]["latency_us"], abs=0.002)
    assert rpc_count == Counter({name: entry["count"] for name, entry in stats["rpc"].items()})
    assert rpc_bytes == Counter({name: entry["bytes"] for name, entry in stats["rpc"].items()})
    excache = Counter(e["name"] for e in events if e.get("cat") == "excache")
    assert excache["miss"] == stats["excache"]["misses"]
    assert excache["eviction"] + excache["write-back"] == stats["excache"]["evictions"] > 0
    assert 0 < excache["write-back"] <= stats["excache"]["writebacks"]


def test_misses_name_the_code_that_missed(traced):
    _native, _lego, trace, _stats = traced
    misses = [e["args"] for e in load_lines(trace) if e["name"] == "miss"]
    assert {"vaddr", "zero_fill", "kind", "code", "function"} <= set(misses[-1])
    assert {args["kind"] for args in misses} == {"code", "data"}
    functions = Counter(args.get("function") for args in misses)
    # wc prints through printf, whose code and buffers keep being evicted from 64 KiB.
    assert any("printf" in str(name) for name in functions), functions.most_common(10)
    assert functions["???"] < len(misses) / 4, functions.most_common(10)


def test_run_end_carries_the_modelled_clock(traced):
    _native, _lego, trace, stats = traced
    events = load_lines(trace)
    end = events[-1]
    assert end["name"] == "run end" and end["args"]["status"] == 0
    modelled = stats["modelled"]
    assert modelled["instructions"] > 0
    assert end["args"]["instructions"] == modelled["instructions"]
    assert end["args"]["total_s"] == pytest.approx(modelled["total_s"])
    # Every timestamp lies on the modelled clock, which ends at the modelled total.
    assert max(e.get("ts", 0) for e in events) == pytest.approx(modelled["total_s"] * 1e6,
                                                                abs=0.002)


def test_trace_of_a_guest_killed_by_a_signal(e2e, samples_built):
    out = e2e.fresh_dir("segv")
    lego = e2e.run_legorun(samples_built / "segfault", cwd=out,
                           options=["--trace", str(out / "t.json")])
    assert lego.status == 139 and lego.stderr.endswith(e2e.SEGV_LINE), lego.describe()
    end = json.loads((out / "t.json").read_text())[-1]
    assert end["name"] == "run end" and end["args"]["signal"] == 11


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_trace_of_a_run_stopped_by_a_legorun_error(e2e, tmp_path):
    # The only thread waits on a futex nobody can wake: legorun stops the run with an error.
    source = tmp_path / "stuck.c"
    source.write_text("#include <linux/futex.h>\n#include <sys/syscall.h>\n#include <unistd.h>\n"
                      "int main(void) { int word = 0;\n"
                      "  return syscall(SYS_futex, &word, FUTEX_WAIT, 0, 0, 0, 0); }\n")
    exe = tmp_path / "stuck"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(source)], check=True)
    lego = e2e.run_legorun(exe, cwd=tmp_path, options=["--trace", str(tmp_path / "t.json")])
    assert lego.status == 1 and lego.stderr.startswith(b"legorun: "), lego.describe()
    assert b"Traceback" not in lego.stderr
    events = json.loads((tmp_path / "t.json").read_text())
    assert events[-1]["name"] == "run end" and events[-1]["args"]["status"] is None
    # The syscall that never returned is in the trace, without a result.
    futex = [e for e in events if e["name"] == "futex"]
    assert futex and futex[-1]["args"]["result"] is None


def test_unwritable_trace_file_is_a_usage_error(e2e, samples_built):
    lego = e2e.run_legorun(samples_built / "hello", cwd=e2e.fresh_dir("bad"),
                           options=["--trace", "/nonexistent/dir/t.json"])
    assert lego.status == 2 and lego.stdout == b"", lego.describe()
    assert lego.stderr.startswith(b"legorun: --trace /nonexistent/dir/t.json: ")
    assert lego.stderr.count(b"\n") == 1


def test_a_run_that_never_starts_leaves_valid_json(e2e):
    out = e2e.fresh_dir("missing")
    lego = e2e.run_legorun(out / "no-such-program", cwd=out,
                           options=["--trace", str(out / "t.json")])
    assert lego.status == 127, lego.describe()
    events = json.loads((out / "t.json").read_text())
    # Track names, the program check's RPC and the end marker: the guest never ran.
    assert {event.get("cat") for event in events} <= {None, "rpc", "run"}, events
    assert not any(event.get("cat") == "syscall" for event in events)
