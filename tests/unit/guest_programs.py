"""Differential runs of small C programs written by unit tests: compile with gcc -static,
run natively and under legorun, each in a fresh cwd, and compare what they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120

# Headers and the SHOW() helper every test program starts with.
PRELUDE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Print a call's result, and its errno name when it failed: the output is the check. */
static long show(const char *what, long result) {
    if (result < 0)
        printf("%s = %ld (%s)\n", what, result, strerrorname_np(errno));
    else
        printf("%s = %ld\n", what, result);
    fflush(stdout);
    return result;
}
#define SHOW(expr) show(#expr, (long)(expr))
"""


def guest_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(PRELUDE + source)
    exe = tmp_path / name
    built = subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", str(exe), str(src)],
                           capture_output=True, text=True)
    if built.returncode:
        pytest.fail(f"gcc failed on {name}.c:\n{built.stderr}", pytrace=False)
    return exe


def run_legorun(exe: Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    cwd.mkdir()
    lego = subprocess.run([sys.executable, "-m", "legorun", str(exe)], cwd=cwd,
                          env=guest_env(), capture_output=True, timeout=TIMEOUT)
    assert b"Traceback" not in lego.stderr, lego.stderr.decode(errors="replace")
    return lego


def run_both(tmp_path: Path, exe: Path, expected_status: int = 0) -> None:
    """Run `exe` natively and under legorun, each in a fresh cwd; assert that the native run
    ends with `expected_status` (128+N for a death by signal N) and legorun's run with the
    same status and stdout."""
    native_cwd = tmp_path / "native"
    native_cwd.mkdir()
    native = subprocess.run([str(exe)], cwd=native_cwd, env=guest_env(), capture_output=True,
                            timeout=TIMEOUT)
    lego = run_legorun(exe, tmp_path / "legorun")
    status = 128 - native.returncode if native.returncode < 0 else native.returncode
    assert status == expected_status, native.stdout.decode(errors="replace")
    assert lego.stdout.decode(errors="replace") == native.stdout.decode(errors="replace")
    assert lego.returncode == status, lego.stderr.decode(errors="replace")
