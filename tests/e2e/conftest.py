"""Shared machinery for the end-to-end tests: build the sample guests once per session, run a
program natively and under `python -m legorun`, and compare the two runs as a shell would see
them (stdout, stderr, exit status).

Helpers are handed to tests through fixtures (`e2e`), not imported, so that this conftest does
not clash with any other `conftest` module in the tree.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = ROOT / "samples"
BUILD_DIR = SAMPLES_DIR / "build"
DATA_DIR = SAMPLES_DIR / "data"

#: Seconds a single legorun run may take before the test fails.
LEGORUN_TIMEOUT = float(os.environ.get("LEGORUN_E2E_TIMEOUT", "120"))
#: Seconds a single native run may take (they all take well under a second).
NATIVE_TIMEOUT = 60.0

#: Shell-style message that legorun prints when the guest dies of SIGSEGV.
SEGV_LINE = b"Segmentation fault\n"


def _base_env() -> dict[str, str]:
    """The environment every run (native and legorun) gets: the caller's, minus pytest's
    per-test bookkeeping (which changes between tests), plus a few known variables for
    args_env, plus PYTHONPATH so that `python -m legorun` finds the package in this tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    for k in list(env):
        if k.startswith("LEGORUN_SAMPLE_"):
            del env[k]
    env["LEGORUN_SAMPLE_A"] = "alpha"
    env["LEGORUN_SAMPLE_B"] = "two words, \u00fcn\u00efc\u00f6de and \"quotes\""
    env["LEGORUN_SAMPLE_EMPTY"] = ""
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + pp if pp else "")
    return env


BASE_ENV = _base_env()


@dataclass
class Run:
    """The outcome of one run, as a shell sees it."""

    argv: list[str]
    returncode: int  # subprocess convention: -N when killed by signal N
    stdout: bytes
    stderr: bytes
    cwd: Path | None = None

    @property
    def status(self) -> int:
        """The shell's $?: 128+N for a death by signal N."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None

    def describe(self, limit: int = 2000) -> str:
        def cut(b: bytes) -> str:
            s = b.decode("utf-8", "backslashreplace")
            return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit} more chars]"

        return (
            f"argv: {self.argv}\ncwd: {self.cwd}\nreturncode: {self.returncode} "
            f"(status {self.status})\n--- stdout ---\n{cut(self.stdout)}\n"
            f"--- stderr ---\n{cut(self.stderr)}"
        )


def _no_core_dumps() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _stdin_bytes(stdin: bytes | str | Path | None) -> bytes:
    if stdin is None:
        return b""
    if isinstance(stdin, (str, Path)):
        return Path(stdin).read_bytes()
    return stdin


def run_native(
    program: str | Path,
    args: Sequence[str] = (),
    *,
    cwd: Path,
    stdin: bytes | str | Path | None = None,
    env: Mapping[str, str] | None = None,
    argv0: str | None = None,
    timeout: float = NATIVE_TIMEOUT,
) -> Run:
    """Runs `program` directly (argv[0] = its path, or `argv0`)."""
    argv = [argv0 if argv0 is not None else str(program), *args]
    try:
        proc = subprocess.run(
            argv,
            executable=str(program),
            input=_stdin_bytes(stdin),
            capture_output=True,
            cwd=cwd,
            env=dict(BASE_ENV if env is None else env),
            timeout=timeout,
            preexec_fn=_no_core_dumps,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"native run timed out after {timeout}s: {argv}")
    return Run(argv, proc.returncode, proc.stdout, proc.stderr, cwd)


def legorun_argv(program: str | Path, args: Sequence[str] = (), options: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "legorun", *options, str(program), *args]


def run_legorun(
    program: str | Path | None,
    args: Sequence[str] = (),
    *,
    cwd: Path,
    options: Sequence[str] = (),
    stdin: bytes | str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = LEGORUN_TIMEOUT,
    raw_argv: Sequence[str] | None = None,
) -> Run:
    """Runs `python -m legorun [options] program [args]` (or `raw_argv` appended to
    `python -m legorun` verbatim); fails the test if it does not finish within `timeout`."""
    if raw_argv is not None:
        argv = [sys.executable, "-m", "legorun", *raw_argv]
    else:
        assert program is not None
        argv = legorun_argv(program, args, options)
    try:
        proc = subprocess.run(
            argv,
            input=_stdin_bytes(stdin),
            capture_output=True,
            cwd=cwd,
            env=dict(BASE_ENV if env is None else env),
            timeout=timeout,
            preexec_fn=_no_core_dumps,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-2000:].decode("utf-8", "backslashreplace")
        err = (e.stderr or b"")[-2000:].decode("utf-8", "backslashreplace")
        pytest.fail(
            f"legorun timed out after {timeout}s: {argv}\n--- stdout (tail) ---\n{out}\n"
            f"--- stderr (tail) ---\n{err}"
        )
    return Run(argv, proc.returncode, proc.stdout, proc.stderr, cwd)


def expected_stderr(native: Run) -> bytes:
    """What legorun must print on stderr for a guest that behaved like `native`: the guest's
    own stderr, followed by the shell's `Segmentation fault` line if it died of SIGSEGV."""
    if native.signal == signal.SIGSEGV:
        return native.stderr + SEGV_LINE
    return native.stderr


def assert_same(native: Run, lego: Run, what: str = "") -> None:
    """legorun must be indistinguishable from the native run: same stdout, same stderr (plus
    `Segmentation fault` after a SIGSEGV death) and the shell's exit status (128+N for a
    native death by signal N)."""
    problems = []
    if lego.returncode != native.status:
        problems.append(f"exit status {lego.returncode}, native {native.status}")
    if lego.stdout != native.stdout:
        problems.append("stdout differs")
    want_err = expected_stderr(native)
    if native.signal is not None and native.signal != signal.SIGSEGV:
        # The shell's message for other signals varies ("Aborted", "Killed", ...): only the
        # guest's own output is compared.
        if not lego.stderr.startswith(native.stderr):
            problems.append("stderr does not start with the native stderr")
    elif lego.stderr != want_err:
        problems.append("stderr differs")
    if b"Traceback (most recent call last)" in lego.stderr:
        problems.append("legorun printed a Python traceback")
    if problems:
        pytest.fail(
            f"{what}: legorun differs from the native run: {'; '.join(problems)}\n"
            f"===== native =====\n{native.describe()}\n===== legorun =====\n{lego.describe()}",
            pytrace=False,
        )


def build_samples() -> Path:
    """`make -C samples` (target all); skips when no compiler is installed."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the samples")
    if shutil.which("make") is None:
        pytest.skip("make is not installed: cannot build the samples")
    # Serialise concurrent builds (pytest-xdist workers each build once per session).
    BUILD_DIR.mkdir(exist_ok=True)
    with open(BUILD_DIR / ".build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            proc = subprocess.run(
                ["make", "-C", str(SAMPLES_DIR), "all"],
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("make -C samples timed out")
    if proc.returncode != 0:
        pytest.fail(
            f"make -C samples failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return BUILD_DIR


STATIC = ("-static", "-O1")


def compile_c(directory: Path, name: str, source: str,
              flags: Sequence[str] = STATIC) -> Path:
    """Compile the C program `source` into directory/name (gcc -static -O1 unless `flags`
    say otherwise); skips without gcc, fails the test with gcc's messages."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    (directory / f"{name}.c").write_text(source)
    built = subprocess.run(["gcc", *flags, "-o", str(directory / name),
                            str(directory / f"{name}.c")], capture_output=True, text=True)
    if built.returncode:
        pytest.fail(f"gcc failed on {name}.c:\n{built.stderr}", pytrace=False)
    return directory / name


class E2E:
    """Bundle of helpers handed to tests by the `e2e` fixture."""

    ROOT = ROOT
    SAMPLES_DIR = SAMPLES_DIR
    BUILD_DIR = BUILD_DIR
    DATA_DIR = DATA_DIR
    BASE_ENV = BASE_ENV
    LEGORUN_TIMEOUT = LEGORUN_TIMEOUT
    SEGV_LINE = SEGV_LINE
    Run = Run

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self._tmp = tmp_path_factory

    def fresh_dir(self, prefix: str = "cwd") -> Path:
        """A new, empty directory (a fresh cwd for one run)."""
        return self._tmp.mktemp(prefix, numbered=True)

    run_native = staticmethod(run_native)
    run_legorun = staticmethod(run_legorun)
    legorun_argv = staticmethod(legorun_argv)
    assert_same = staticmethod(assert_same)
    expected_stderr = staticmethod(expected_stderr)
    compile_c = staticmethod(compile_c)


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> E2E:
    return E2E(tmp_path_factory)


@pytest.fixture(scope="session")
def samples_built() -> Path:
    """The samples/build directory, after `make -C samples` succeeded (once per session)."""
    return build_samples()


@pytest.fixture
def servers(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Real memory and storage servers on loopback (see servers.py), stopped after the test;
    a server that wrote a traceback fails it."""
    sys.path.insert(0, str(Path(__file__).parent))
    from servers import Servers

    started = Servers(tmp_path)
    yield started
    complaints = list(started.close())
    assert not complaints, "\n".join(complaints)
