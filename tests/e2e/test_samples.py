"""Every sample guest (samples/*.c, in all built variants) must behave exactly the same under
legorun as natively: same stdout, stderr and exit status, each run in a fresh cwd with the same
argv, stdin and environment. The static-gcc builds are repeated with a 64 KiB ExCache under
every eviction policy, which forces constant eviction and writeback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SAMPLES_DIR = HERE.parent.parent / "samples"
DATA_DIR = SAMPLES_DIR / "data"

#: One entry per samples/*.c, discovered at collection time (the binaries are built later).
SAMPLES = sorted(p.stem for p in SAMPLES_DIR.glob("*.c"))

#: Build variants: suffix of samples/build/<name><suffix> -> test id.
VARIANTS = {"": "static", ".pie": "static-pie", ".musl": "musl"}

POLICIES = ("fifo", "lru", "random")

_WC_TEXT = (DATA_DIR / "wc_input.txt").read_bytes() if (DATA_DIR / "wc_input.txt").exists() else b""

#: How each sample is run: argv[1:] and stdin (bytes). Samples not listed run without
#: arguments and with an empty stdin.
RUNS: dict[str, dict] = {
    "args_env": {"args": ["first", "two words", "", "--flag=value", "\u00fcn\u00efc\u00f6de", "-E"]},
    # ~170 KB through a pipe: several reads, more than the pipe buffer.
    "wc": {"stdin": _WC_TEXT * 2000 + b"tail without newline"},
    "hello": {"args": ["ignored", "arguments"]},
}

#: Samples that are expected to fail natively in a particular way (anything else must exit 0).
NATIVE_STATUS = {"segfault": 139, "guard": 139, "stdio_mix": 3}


def _binary(build: Path, name: str, suffix: str) -> Path:
    path = build / f"{name}{suffix}"
    if not path.exists():
        if suffix == ".musl" and shutil.which("musl-gcc") is None:
            pytest.skip("musl-gcc is not installed")
        pytest.fail(f"{path} was not built by make -C samples")
    return path


def _run_pair(e2e, binary: Path, name: str, options=(), what=""):
    spec = RUNS.get(name, {})
    args = spec.get("args", [])
    stdin = spec.get("stdin", b"")
    native = e2e.run_native(binary, args, cwd=e2e.fresh_dir("native"), stdin=stdin)
    assert native.status == NATIVE_STATUS.get(name, 0), (
        f"the sample itself fails natively:\n{native.describe()}"
    )
    lego = e2e.run_legorun(binary, args, cwd=e2e.fresh_dir("legorun"), options=options, stdin=stdin)
    e2e.assert_same(native, lego, what or f"{binary.name} {' '.join(options)}")
    return native, lego


def test_samples_exist():
    assert len(SAMPLES) >= 12, SAMPLES
    for required in (
        "hello", "args_env", "fileio", "malloc_heavy", "strings_qsort", "matmul", "bigwalk", "wc",
        "segfault", "guard", "tls", "stdio_mix", "cpu_loop", "stream", "randwalk",
    ):
        assert required in SAMPLES


@pytest.mark.parametrize("suffix", list(VARIANTS), ids=list(VARIANTS.values()))
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_matches_native(e2e, samples_built, name, suffix):
    _run_pair(e2e, _binary(samples_built, name, suffix), name)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_small_excache(e2e, samples_built, name, policy):
    """A 64 KiB, 4-way ExCache: most accesses of the big samples miss and evict."""
    options = ["--excache", "64K", "--policy", policy, "--assoc", "4"]
    _run_pair(e2e, _binary(samples_built, name, ""), name, options)


# ---------------------------------------------------------------------------------------------
# Options that change what the guest sees: -E, -U, -0.


def _lines_without_envsum(out: bytes) -> list[bytes]:
    return [line for line in out.splitlines() if not line.startswith(b"envc=")]


def _envc(out: bytes) -> bytes:
    return next(line.split()[0] for line in out.splitlines() if line.startswith(b"envc="))


def test_env_set_and_unset_options(e2e, samples_built):
    binary = _binary(samples_built, "args_env", "")
    env = dict(e2e.BASE_ENV)
    env["LEGORUN_SAMPLE_A"] = "changed=value"
    del env["LEGORUN_SAMPLE_B"]
    env["LEGORUN_SAMPLE_UNSET"] = "now set"
    native = e2e.run_native(binary, ["x"], cwd=e2e.fresh_dir("native"), env=env)
    assert native.status == 0, native.describe()
    lego = e2e.run_legorun(
        binary,
        ["x"],
        cwd=e2e.fresh_dir("legorun"),
        options=[
            "-E", "LEGORUN_SAMPLE_A=changed=value",
            "-U", "LEGORUN_SAMPLE_B",
            "-E", "LEGORUN_SAMPLE_UNSET=now set",
        ],
    )
    assert lego.returncode == 0, lego.describe()
    assert lego.stderr == native.stderr, lego.describe()
    # Where a new variable lands in envp is legorun's choice: compare everything but the
    # order-sensitive environment checksum, and the variable count.
    assert _lines_without_envsum(lego.stdout) == _lines_without_envsum(native.stdout), (
        f"{native.describe()}\n{lego.describe()}"
    )
    assert _envc(lego.stdout) == _envc(native.stdout)


def test_argv0_option(e2e, samples_built):
    binary = _binary(samples_built, "args_env", "")
    native = e2e.run_native(binary, ["a", "b"], cwd=e2e.fresh_dir("native"), argv0="custom-argv0")
    assert b'argv[0]="custom-argv0"' in native.stdout
    lego = e2e.run_legorun(binary, ["a", "b"], cwd=e2e.fresh_dir("legorun"), options=["-0", "custom-argv0"])
    e2e.assert_same(native, lego, "-0 custom-argv0")


def test_relative_program_path(e2e, samples_built):
    """PROGRAM given relative to the cwd; argv[0] is passed through as typed."""
    binary = _binary(samples_built, "args_env", "")
    native_cwd, lego_cwd = e2e.fresh_dir("native"), e2e.fresh_dir("legorun")
    for d in (native_cwd, lego_cwd):
        shutil.copy2(binary, d / "prog")
    native = e2e.run_native(native_cwd / "prog", ["r"], cwd=native_cwd, argv0="./prog")
    lego = e2e.run_legorun("./prog", ["r"], cwd=lego_cwd)
    e2e.assert_same(native, lego, "./prog")


# ---------------------------------------------------------------------------------------------
# Statistics.


def _check_count(value, where: str) -> int:
    assert isinstance(value, int) and not isinstance(value, bool), f"{where} is not an int: {value!r}"
    assert value >= 0, f"{where} is negative: {value}"
    return value


def _check_stats_schema(data) -> None:
    assert isinstance(data, dict), data
    excache = data.get("excache")
    assert isinstance(excache, dict), f"no excache section: {data!r}"
    for key in ("misses", "evictions", "writebacks", "zero_fills"):
        assert key in excache, f"excache.{key} missing: {excache!r}"
        _check_count(excache[key], f"excache.{key}")

    rpc = data.get("rpc")
    assert isinstance(rpc, dict), f"rpc is not a dict: {rpc!r}"
    for opname, entry in rpc.items():
        assert isinstance(opname, str) and opname, opname
        assert isinstance(entry, dict), f"rpc.{opname}: {entry!r}"
        _check_count(entry.get("count"), f"rpc.{opname}.count")
        _check_count(entry.get("bytes"), f"rpc.{opname}.bytes")

    syscalls = data.get("syscalls")
    assert isinstance(syscalls, dict), f"syscalls is not a dict: {syscalls!r}"
    for name, count in syscalls.items():
        assert isinstance(name, str) and name, name
        _check_count(count, f"syscalls.{name}")

    remote = data.get("modelled_remote_s")
    assert isinstance(remote, float), f"modelled_remote_s is not a float: {remote!r}"
    assert remote >= 0.0


def test_stats_json(e2e, samples_built, tmp_path):
    binary = _binary(samples_built, "bigwalk", "")
    native = e2e.run_native(binary, cwd=e2e.fresh_dir("native"))
    assert native.status == 0, native.describe()
    stats = {}
    for size in ("64K", "64M"):
        out = tmp_path / f"stats-{size}.json"
        lego = e2e.run_legorun(
            binary, cwd=e2e.fresh_dir("legorun"), options=["--excache", size, "--stats-json", str(out)]
        )
        # Writing statistics must not change what the guest prints.
        e2e.assert_same(native, lego, f"bigwalk --excache {size} --stats-json")
        assert out.exists(), f"--stats-json {out} wrote nothing"
        data = json.loads(out.read_text())
        _check_stats_schema(data)
        stats[size] = data

    small, big = stats["64K"], stats["64M"]
    for s in (small, big):
        assert s["syscalls"].get("write", 0) >= 1, s["syscalls"]
        assert s["syscalls"].get("mmap", 0) >= 1, s["syscalls"]
        assert s["excache"]["misses"] > 0
        assert s["excache"]["zero_fills"] > 0  # 80 MiB of fresh anonymous pages
    assert small["excache"]["misses"] > big["excache"]["misses"], (small["excache"], big["excache"])
    assert small["excache"]["evictions"] > big["excache"]["evictions"], (small["excache"], big["excache"])
    # 80 MiB of dirty pages cannot stay in 64 KiB: they are written back to remote memory.
    assert small["excache"]["writebacks"] > 0, small["excache"]
    assert sum(e["count"] for e in small["rpc"].values()) > 0, small["rpc"]
    assert small["modelled_remote_s"] > big["modelled_remote_s"], (
        small["modelled_remote_s"], big["modelled_remote_s"])


def test_stats_option_keeps_guest_output(e2e, samples_built):
    """--stats reports somewhere, but never mixed into the guest's stdout or exit status."""
    binary = _binary(samples_built, "stdio_mix", "")
    native = e2e.run_native(binary, cwd=e2e.fresh_dir("native"))
    lego = e2e.run_legorun(binary, cwd=e2e.fresh_dir("legorun"), options=["--stats"])
    assert lego.returncode == native.status == 3, lego.describe()
    assert lego.stdout == native.stdout, lego.describe()
    assert lego.stderr.startswith(native.stderr), lego.describe()
    assert b"Traceback" not in lego.stderr
