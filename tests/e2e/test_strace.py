"""--strace end to end: the lines a real program's syscalls produce, -D FILE with %p, the guest's
own output and exit status left alone, and the same sequence of calls as the real strace sees
natively."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

PROGRAM = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    open("/nonexistent", O_RDONLY);
    write(1, "hello\n", 6);
    int fd = open("data.txt", O_WRONLY | O_CREAT | O_TRUNC, 0640);
    write(fd, "payload", 7);
    close(fd);
    char buf[16];
    fd = open("data.txt", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    fprintf(stderr, "read %zd\n", n);
    return 3;
}
"""
# What PROGRAM's calls look like, in order (other calls, from the C library, come between).
EXPECTED = [
    'openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)',
    'write(1, "hello\\n", 6) = 6',
    'openat(AT_FDCWD, "data.txt", O_WRONLY|O_CREAT|O_TRUNC, 0640) = 3',
    'write(3, "payload", 7) = 7',
    "close(3) = 0",
    'openat(AT_FDCWD, "data.txt", O_RDONLY) = 3',
    'read(3, "payload", 16) = 7',
    'write(2, "read 7\\n", 7) = 7',
    "exit_group(3) = ?",
    "+++ exited with 3 +++",
]


@pytest.fixture(scope="module")
def program(e2e, tmp_path_factory) -> Path:
    return e2e.compile_c(tmp_path_factory.mktemp("strace_program"), "calls", PROGRAM)


def run_with_pid(e2e, program: Path, options: list[str], cwd: Path):
    """Run legorun and return (pid, returncode, stdout, stderr): the pid names the trace."""
    process = subprocess.Popen(e2e.legorun_argv(program, (), options), cwd=cwd,
                               env=e2e.BASE_ENV, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=e2e.LEGORUN_TIMEOUT)
    return process.pid, process.returncode, stdout, stderr


def calls_of(lines: list[str], pid: int) -> list[str]:
    """The trace lines without their pid prefix; every line must carry the pid."""
    prefix = f"{pid} "
    assert lines and all(line.startswith(prefix) for line in lines), lines[:5]
    return [line[len(prefix):] for line in lines]


def assert_in_order(expected: list[str], calls: list[str]) -> None:
    position = 0
    for line in expected:
        assert line in calls[position:], f"missing, or out of order: {line}\n" + "\n".join(calls)
        position = calls.index(line, position) + 1


def test_lines_on_stderr_for_a_program_that_opens_reads_and_writes(e2e, program):
    pid, status, stdout, stderr = run_with_pid(e2e, program, ["--strace"], e2e.fresh_dir())
    assert status == 3
    assert stdout == b"hello\n"
    lines = stderr.decode().splitlines()
    assert "read 7" in lines  # the guest's own line, whole, between the trace lines
    trace = [line for line in lines if line != "read 7"]
    calls = calls_of(trace, pid)
    assert_in_order(EXPECTED, calls)
    assert calls[-2:] == EXPECTED[-2:]
    assert "Traceback" not in stderr.decode()


def test_log_file_named_by_pid_and_guest_output_unchanged(e2e, program):
    plain = e2e.run_legorun(program, cwd=e2e.fresh_dir())
    cwd = e2e.fresh_dir()
    pid, status, stdout, stderr = run_with_pid(e2e, program, ["--strace", "-D", "trace.%p"], cwd)
    assert (status, stdout, stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert (status, stdout, stderr) == (3, b"hello\n", b"read 7\n")
    assert sorted(path.name for path in cwd.iterdir()) == ["data.txt", f"trace.{pid}"]
    calls = calls_of((cwd / f"trace.{pid}").read_text().splitlines(), pid)
    assert_in_order(EXPECTED, calls)


def test_unwritable_log_file_is_one_usage_error(e2e, program, tmp_path):
    run = e2e.run_legorun(program, cwd=e2e.fresh_dir(),
                          options=["--strace", "-D", str(tmp_path / "missing" / "log")])
    assert run.returncode == 2
    assert run.stdout == b""
    assert run.stderr.startswith(b"legorun: -D ") and run.stderr.count(b"\n") == 1, run.stderr


def test_death_by_signal_ends_the_trace_and_changes_nothing_else(e2e, samples_built):
    program = samples_built / "segfault"
    native = e2e.run_native(program, cwd=e2e.fresh_dir())
    cwd = e2e.fresh_dir()
    pid, status, stdout, stderr = run_with_pid(e2e, program, ["--strace", "-D", "log"], cwd)
    lego = e2e.Run([], status, stdout, stderr, cwd)
    e2e.assert_same(native, lego, "segfault under --strace")
    calls = calls_of((cwd / "log").read_text().splitlines(), pid)
    assert calls[-1] == "+++ killed by SIGSEGV +++"


def test_tracing_does_not_change_what_the_machine_does(e2e, samples_built, tmp_path):
    """The trace reads guest memory through the ExCache exactly where the handlers do, so the
    ExCache and the RPCs see the same traffic with and without it."""
    program = samples_built / "fileio"
    stats = {}
    for name, options in (("plain", []), ("trace", ["--strace", "-D", str(tmp_path / "log")])):
        # Paths of one length in both runs: RPC sizes count the bytes of every path.
        cwd = tmp_path / f"cwd-{name}"
        cwd.mkdir()
        run = e2e.run_legorun(program, ["."], cwd=cwd,
                              options=[*options, "--stats-json", str(tmp_path / name)])
        assert run.returncode == 0, run.describe()
        stats[name] = json.loads((tmp_path / name).read_text())
    for section in ("excache", "rpc", "syscalls"):
        assert stats["trace"][section] == stats["plain"][section], section
    log = (tmp_path / "log").read_text()
    assert re.search(r' newfstatat\(AT_FDCWD, "\./fileio-scratch/gamma\.txt", '
                     r"\{st_mode=S_IFREG\|0[0-7]{3}, st_size=57, \.\.\.\}, 0\) = 0\n", log), log
    assert re.search(r" getdents64\(3, 0x[0-9a-f]+ /\* [1-9]\d* entries \*/, \d+\) = [1-9]", log)


def test_same_calls_as_the_real_strace_natively(e2e, samples_built, tmp_path):
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    program = samples_built / "hello"
    native_log = tmp_path / "native"
    native = subprocess.run(["strace", "-qq", "-o", str(native_log), str(program)],
                            capture_output=True, cwd=tmp_path, env=e2e.BASE_ENV)
    if native.returncode != 0 or not native_log.exists():
        pytest.skip(f"strace cannot trace here: {native.stderr.decode(errors='replace')}")
    native_names = [line.split("(", 1)[0] for line in native_log.read_text().splitlines()
                    if not line.startswith(("+++", "---"))]
    assert native_names[0] == "execve"  # legorun's loader does the exec itself
    cwd = e2e.fresh_dir()
    pid, status, _stdout, _stderr = run_with_pid(e2e, program, ["--strace", "-D", "log"], cwd)
    assert status == 0
    calls = calls_of((cwd / "log").read_text().splitlines(), pid)
    assert [call.split("(", 1)[0] for call in calls[:-1]] == native_names[1:]
    assert calls[-1] == "+++ exited with 0 +++"
