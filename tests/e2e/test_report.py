"""`legorun report TRACE [-o DIR]`: the text summary of a --trace file agrees with the run's
statistics, the plots are PNG files, other Chrome traces are summarized too, and bad input is
one `legorun:` line with exit status 1 (the trace) or 2 (the command line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WC_INPUT = (HERE.parents[1] / "samples" / "data" / "wc_input.txt").read_bytes() * 500
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trace(e2e, samples_built):
    """A --trace of wc with a small ExCache, and the same run's --stats-json."""
    out = e2e.fresh_dir("report")
    lego = e2e.run_legorun(samples_built / "wc", cwd=out, stdin=WC_INPUT, options=[
        "--excache", "64K", "--assoc", "4", "--trace", str(out / "wc.json"),
        "--stats-json", str(out / "stats.json"),
    ])
    assert lego.status == 0, lego.describe()
    return out / "wc.json", json.loads((out / "stats.json").read_text())


def report(e2e, *args: str):
    return e2e.run_legorun(None, cwd=e2e.fresh_dir("report-run"), raw_argv=["report", *args])


def test_report_summarizes_the_trace(e2e, trace):
    path, stats = trace
    run = report(e2e, str(path))
    assert run.status == 0, run.describe()
    text = run.stdout.decode()
    modelled = stats["modelled"]
    assert f"{modelled['total_s'] * 1e3:.3f} ms = compute {modelled['compute_s'] * 1e3:.3f} ms" \
        in text
    assert f"{modelled['instructions']} instructions" in text
    # Syscalls by count: every count of --stats-json (the table shows the top 15).
    for name, count in list(stats["syscalls"].items())[:5]:
        assert re.search(rf"^  {name}\s+{count}\s", text, re.MULTILINE), (name, text)
    for name, entry in stats["rpc"].items():
        assert re.search(rf"^  {name}\s+{entry['count']}\s+{entry['bytes']}\s", text,
                         re.MULTILINE), (name, text)
    misses = stats["excache"]["misses"]
    assert f"misses {misses} (zero-filled locally {stats['excache']['zero_fills']})" in text
    assert "misses by function" in text


def test_report_writes_plots(e2e, trace, tmp_path):
    path, _stats = trace
    out = tmp_path / "plots"
    run = report(e2e, str(path), "-o", str(out))
    assert run.status == 0, run.describe()
    written = sorted(p.name for p in out.iterdir())
    assert written == ["excache.png", "misses_by_function.png", "rpc_latency.png"]
    for name in written:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name


def test_report_reads_a_trace_cut_short(e2e, trace, tmp_path):
    # A run killed from outside leaves no closing bracket and no end record: every whole
    # line is still an event.
    path, stats = trace
    lines = path.read_text().splitlines()
    cut = tmp_path / "cut.json"
    cut.write_text("\n".join(lines[:-2]) + "\n")
    run = report(e2e, str(cut))
    assert run.status == 0, run.describe()
    assert b"no end-of-run record" in run.stdout
    assert f"misses {stats['excache']['misses']} ".encode() in run.stdout


def test_report_on_another_chrome_trace(e2e, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"traceEvents": [
        {"name": "parse", "ph": "X", "ts": 0, "dur": 1500, "pid": 1, "tid": 1},
        {"name": "parse", "ph": "X", "ts": 2000, "dur": 500, "pid": 1, "tid": 1},
        {"name": "layout", "ph": "X", "ts": 3000, "dur": 250, "pid": 1, "tid": 2},
    ]}, indent=1))
    run = report(e2e, str(other), "-o", str(tmp_path / "plots"))
    assert run.status == 0, run.describe()
    assert re.search(rb"^  parse\s+2\s+2000\.000$", run.stdout, re.MULTILINE), run.stdout
    assert re.search(rb"^  layout\s+1\s+250\.000$", run.stdout, re.MULTILINE), run.stdout
    assert (tmp_path / "plots" / "rpc_latency.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("content, message", [
    (None, b"No such file or directory"),
    (b"", b"not a Chrome trace"),
    (b"[\n{\"name\": \"x\", \"ph\": \"X\"\n", b"not a Chrome trace"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", b"not a Chrome trace"),
    (b"{\"traceEvents\": 3}", b"not a Chrome trace"),
    (b"[1, 2]", b"not a Chrome trace"),
    (b"[{\"name\": \"x\", \"ph\": \"X\", \"dur\": \"long\"}]", b"not a Chrome trace"),
], ids=["missing", "empty", "truncated-json", "binary", "object", "numbers", "bad-duration"])
def test_bad_trace_is_one_line_and_status_1(e2e, tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    run = report(e2e, str(path))
    assert run.status == 1, run.describe()
    assert run.stderr.startswith(b"legorun: report: ") and message in run.stderr, run.stderr
    assert run.stderr.count(b"\n") == 1 and run.stdout == b""


@pytest.mark.parametrize("args", [[], ["--top", "0"], ["--bogus"]],
                         ids=["no-trace", "top", "option"])
def test_bad_command_line_is_status_2(e2e, trace, args):
    path, _stats = trace
    run = report(e2e, *([str(path)] if args else []), *args)
    assert run.status == 2, run.describe()
    assert run.stderr.startswith(b"legorun: ") and run.stderr.count(b"\n") == 1


def test_unwritable_plot_directory_is_status_2(e2e, trace, tmp_path):
    path, _stats = trace
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = report(e2e, str(path), "-o", str(blocker / "plots"))
    assert run.status == 2, run.describe()
    assert run.stderr.startswith(b"legorun: report: -o ") and run.stderr.count(b"\n") == 1
    assert run.stdout == b""
