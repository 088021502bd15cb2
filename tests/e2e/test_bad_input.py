"""legorun given something it cannot run must fail like a shell would: exit 126 (found but
cannot execute), 127 (not found) or 2 (bad command line), with exactly one `legorun: ...` line
on stderr and never a Python traceback.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BUSYBOX = Path("/bin/busybox")

EI_CLASS = 4
ELFCLASS32 = 1
E_MACHINE_OFFSET = 18
EM_AARCH64 = 183


@pytest.fixture(scope="module")
def real_static_binary(request) -> Path:
    """A real static x86-64 executable to mutilate: samples/build/hello if the samples can
    be built, else a static /bin/busybox."""
    try:
        build = request.getfixturevalue("samples_built")
    except pytest.skip.Exception:
        build = None
    if build is not None and (build / "hello").exists():
        return build / "hello"
    if BUSYBOX.exists():
        with BUSYBOX.open("rb") as f:
            head = f.read(20)
        if head[:4] == b"\x7fELF" and head[EI_CLASS] == 2:
            return BUSYBOX
    pytest.skip("no static binary available (needs gcc or busybox-static)")


def _executable(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o755)
    return path


def _assert_one_error_line(lego, status: int) -> None:
    err = lego.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in err, lego.describe()
    assert lego.returncode == status, f"expected exit status {status}\n{lego.describe()}"
    assert err.startswith("legorun: "), f"stderr must start with 'legorun: '\n{lego.describe()}"
    assert err.endswith("\n") and err.count("\n") == 1, (
        f"stderr must be exactly one line\n{lego.describe()}"
    )
    assert lego.stdout == b"", f"nothing may be printed on stdout\n{lego.describe()}"


def _run(e2e, cwd: Path, *legorun_args: str):
    return e2e.run_legorun(None, cwd=cwd, raw_argv=list(legorun_args), timeout=60)


# -- files that exist but cannot be executed: 126 ------------------------------------------


def test_text_file(e2e, tmp_path):
    prog = _executable(tmp_path / "notes.txt", b"this is just some text\nnot a program\n")
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


def test_empty_file(e2e, tmp_path):
    prog = _executable(tmp_path / "empty", b"")
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


def test_elf_magic_only(e2e, tmp_path):
    prog = _executable(tmp_path / "magic", b"\x7fELF")
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


@pytest.mark.parametrize("keep", ["32-bytes", "header-only", "half"])
def test_truncated_binary(e2e, tmp_path, real_static_binary, keep):
    data = real_static_binary.read_bytes()
    size = {"32-bytes": 32, "header-only": 64, "half": len(data) // 2}[keep]
    prog = _executable(tmp_path / f"truncated-{keep}", data[:size])
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


def test_32bit_elf(e2e, tmp_path, real_static_binary):
    """A 32-bit ELF: a real one if `gcc -m32` works, else a copy with EI_CLASS patched."""
    prog = tmp_path / "prog32"
    built = False
    if shutil.which("gcc"):
        src = tmp_path / "m32.c"
        src.write_text("int main(void) { return 0; }\n")
        try:
            built = subprocess.run(
                ["gcc", "-m32", "-static", "-O2", "-o", str(prog), str(src)],
                capture_output=True, timeout=120,
            ).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            built = False
    if not built:
        data = bytearray(real_static_binary.read_bytes())
        data[EI_CLASS] = ELFCLASS32
        _executable(prog, bytes(data))
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


def test_aarch64_elf(e2e, tmp_path, real_static_binary):
    data = bytearray(real_static_binary.read_bytes())
    struct.pack_into("<H", data, E_MACHINE_OFFSET, EM_AARCH64)
    prog = _executable(tmp_path / "prog-aarch64", bytes(data))
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


def test_directory(e2e, tmp_path):
    d = tmp_path / "a-directory"
    d.mkdir()
    _assert_one_error_line(_run(e2e, tmp_path, str(d)), 126)


def test_not_executable(e2e, tmp_path, real_static_binary):
    prog = tmp_path / "no-exec-bit"
    prog.write_bytes(real_static_binary.read_bytes())
    os.chmod(prog, 0o644)
    _assert_one_error_line(_run(e2e, tmp_path, str(prog)), 126)


# -- files that do not exist: 127 ---------------------------------------------------------


def test_missing_file(e2e, tmp_path):
    _assert_one_error_line(_run(e2e, tmp_path, str(tmp_path / "does-not-exist")), 127)


def test_missing_relative_file(e2e, tmp_path):
    _assert_one_error_line(_run(e2e, tmp_path, "./does-not-exist"), 127)


# -- bad command lines: 2 -------------------------------------------------------------------


def test_unknown_option(e2e, tmp_path, real_static_binary):
    _assert_one_error_line(
        _run(e2e, tmp_path, "--no-such-option-xyz", str(real_static_binary)), 2
    )


def test_no_program(e2e, tmp_path):
    _assert_one_error_line(_run(e2e, tmp_path), 2)


def test_option_without_program(e2e, tmp_path):
    _assert_one_error_line(_run(e2e, tmp_path, "--excache", "64K"), 2)


@pytest.mark.parametrize(
    "options",
    [["--excache", "lots"], ["--policy", "clairvoyant"], ["--assoc", "zero"],
     ["--stats-json", "/nonexistent/dir/stats.json"], ["--clock", "fast"], ["--cpi", "0"],
     ["--I1", "32K,3,64"], ["--D1", "32K"], ["-d", "everything"]],
    ids=["bad-size", "bad-policy", "bad-assoc", "unwritable-stats", "bad-clock", "zero-cpi",
         "bad-geometry", "short-geometry", "bad-debug-item"],
)
def test_bad_option_values(e2e, tmp_path, real_static_binary, options):
    _assert_one_error_line(_run(e2e, tmp_path, *options, str(real_static_binary)), 2)
