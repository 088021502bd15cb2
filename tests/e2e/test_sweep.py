"""`legorun sweep`: one run per ExCache size, results as CSV, Markdown and a plot; runs that
disagree are reported; bad command lines are usage errors."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CSV_REQUIRED = {"excache", "policy", "slowdown", "instructions", "compute_s", "remote_s",
                "total_s", "misses", "evictions", "writebacks", "exit_status"}


def sweep(e2e, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "legorun", "sweep", *argv], cwd=cwd,
                          env=e2e.BASE_ENV, capture_output=True, text=True,
                          timeout=e2e.LEGORUN_TIMEOUT)


def legorun_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("legorun:")]


def test_workingset_sweep_has_the_legoos_shape(e2e, samples_built, tmp_path):
    """The default workingset (4 MiB) at 6%, 25% and 200% of its working set: the slowdown
    falls as the ExCache grows, is about 1.5x at 25% (as in LegoOS) and ~1 when it all fits."""
    program = samples_built / "workingset"
    native = e2e.run_native(program, cwd=tmp_path)
    assert native.status == 0, native.describe()

    done = sweep(e2e, tmp_path, "--excache", "8M,256K,1M", "-j", "2", str(program))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr

    out = tmp_path / "sweep-workingset"
    with (out / "sweep.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert CSV_REQUIRED <= set(rows[0]), rows[0].keys()
    assert [int(row["excache"]) for row in rows] == [256 << 10, 1 << 20, 8 << 20]
    assert {row["policy"] for row in rows} == {"fifo"}
    slowdowns = [float(row["slowdown"]) for row in rows]
    assert all(s >= 1.0 for s in slowdowns), slowdowns
    assert slowdowns[0] > slowdowns[1] > slowdowns[2], slowdowns
    assert 1.3 <= slowdowns[1] <= 1.7, slowdowns
    assert slowdowns[2] < 1.05, slowdowns
    for row in rows:
        assert int(row["exit_status"]) == 0
        assert int(row["instructions"]) > 0
        assert float(row["total_s"]) == pytest.approx(
            float(row["compute_s"]) + float(row["remote_s"]))
    small, big = rows[0], rows[2]
    assert int(small["misses"]) > int(big["misses"])
    assert int(small["writebacks"]) > int(big["writebacks"]) == 0

    table = (out / "sweep.md").read_text()
    assert table.startswith("| ExCache |")
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["256K", "1M", "8M"]
    assert table in done.stdout, "the Markdown table is printed too"
    assert (out / "sweep.png").read_bytes().startswith(PNG_MAGIC)
    # Every run kept its own output, the program's own.
    assert (out / "runs" / "1M-fifo.stdout").read_bytes() == native.stdout


def test_policies_share_one_table(e2e, samples_built, tmp_path):
    """Two policies, two sizes, custom output directory and machine options."""
    program = samples_built / "workingset"
    done = sweep(e2e, tmp_path, "--excache", "256K,4M", "--policy", "lru,random",
                 "--assoc", "16", "--cpi", "2", "-o", "out/here", str(program), "1", "2000")
    assert done.returncode == 0, done.stderr
    with (tmp_path / "out" / "here" / "sweep.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["policy"], int(row["excache"])) for row in rows] == [
        ("lru", 256 << 10), ("lru", 4 << 20), ("random", 256 << 10), ("random", 4 << 20)]
    for row in rows:
        # CPI 2 at the default 2.4 GHz.
        assert float(row["compute_s"]) == pytest.approx(int(row["instructions"]) * 2 / 2.4e9)
        assert float(row["slowdown"]) >= 1.0
    assert float(rows[0]["slowdown"]) > float(rows[1]["slowdown"])


RANDOM_OUTPUT = r"""
#include <stdio.h>
#include <sys/random.h>
int main(void)
{
    unsigned long long value = 0;
    if (getrandom(&value, sizeof value, 0) != sizeof value)
        return 1;
    printf("%016llx\n", value);
    return 0;
}
"""


def test_runs_that_disagree_are_reported(e2e, tmp_path):
    program = e2e.compile_c(tmp_path, "random_output", RANDOM_OUTPUT)

    done = sweep(e2e, tmp_path, "--excache", "64K,1M", str(program))
    assert done.returncode == 1, done.stderr
    lines = legorun_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("legorun: the runs differ in stdout: "), lines
    assert "64K fifo" in lines[0] and "1M fifo" in lines[0], lines
    # What was measured is still written.
    out = tmp_path / "sweep-random_output"
    with (out / "sweep.csv").open() as stream:
        assert [int(row["excache"]) for row in csv.DictReader(stream)] == [64 << 10, 1 << 20]
    outputs = {(out / "runs" / f"{name}.stdout").read_text() for name in ("64K-fifo", "1M-fifo")}
    assert len(outputs) == 2


@pytest.mark.parametrize("argv, status, words", [
    (["--excache", "1Q", "PROGRAM"], 2, "not a size"),
    (["--excache", "1000", "PROGRAM"], 2, "multiple of 4096"),
    (["--excache", "64K", "--policy", "fifo,lfu", "PROGRAM"], 2, "unknown policy 'lfu'"),
    (["PROGRAM"], 2, "--excache"),
    (["--excache", "64K", "-j", "0", "PROGRAM"], 2, "must be positive"),
    (["--excache", "64K", "--net-latency", "soon", "PROGRAM"], 2, "not a duration"),
    (["--excache", "64K", "-o", "hello/out", "PROGRAM"], 2, "not a directory"),
    (["--excache", "64K,1M", "./no-such-program"], 127, "No such file or directory"),
])
def test_bad_command_lines(e2e, samples_built, tmp_path, argv, status, words):
    shutil.copy2(samples_built / "hello", tmp_path / "hello")
    argv = [str(tmp_path / "hello") if arg == "PROGRAM" else arg for arg in argv]
    done = sweep(e2e, tmp_path, *argv)
    assert done.returncode == status, done.stderr
    lines = legorun_lines(done.stderr)
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("sweep-*")), "a failed sweep leaves no output directory"
