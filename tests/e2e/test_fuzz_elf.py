"""500 mutated ELF files fed to legorun: each gets a clear one-line refusal or runs; never a
Python traceback, never a hang in legorun itself.

Files the loader refuses go through the real command line in-process (fast); files the loader
accepts would execute mutated code, so they run in a subprocess with a time limit, and a run
that times out counts as a hang only if the same file finishes natively.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from legorun.cli import main
from legorun.errors import LegorunError
from legorun.loader.elf import parse_elf

MUTATIONS = 500
RUN_LIMIT_S = 20.0


def _mutate(original: bytes, rng: random.Random) -> bytes:
    data = bytearray(original)
    kind = rng.randrange(5)
    if kind == 0:  # truncate anywhere in the first pages
        return bytes(data[: rng.randrange(0, min(len(data), 8192))])
    if kind == 1:  # flip bits in the ELF header and program headers
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(0, 64 + 56 * 12)] ^= 1 << rng.randrange(8)
    elif kind == 2:  # a random 64-bit value in one ELF-header field
        offset = rng.choice((0x18, 0x20, 0x28, 0x36, 0x38))
        width = 8 if offset < 0x30 else 2
        data[offset : offset + width] = rng.getrandbits(8 * width).to_bytes(width, "little")
    elif kind == 3:  # a random value in one program-header field
        phoff = struct.unpack_from("<Q", data, 0x20)[0]
        index = rng.randrange(struct.unpack_from("<H", data, 0x38)[0])
        field = rng.choice((4, 8, 16, 32, 40, 48))
        data[phoff + 56 * index + field : phoff + 56 * index + field + 8] = rng.getrandbits(
            64
        ).to_bytes(8, "little")
    else:  # random bytes over a random stretch of the first 4 KiB
        start = rng.randrange(0, 4096)
        length = rng.randrange(1, 64)
        data[start : start + length] = rng.randbytes(length)
    return bytes(data)


@pytest.fixture(scope="module")
def seed_binary(samples_built: Path) -> bytes:
    return (samples_built / "hello").read_bytes()


def test_mutated_elf_files_never_crash_legorun(seed_binary, tmp_path, capsys):
    rng = random.Random(20261127)
    accepted: list[Path] = []
    for index in range(MUTATIONS):
        path = tmp_path / f"mutant{index:03d}"
        data = _mutate(seed_binary, rng)
        path.write_bytes(data)
        path.chmod(0o755)
        try:
            parse_elf(data, str(path))
        except LegorunError:
            status = main([str(path)])  # refused before any code runs: safe in-process
            err = capsys.readouterr().err
            assert status == 126, (path, err)
            assert err.count("\n") == 1 and err.startswith("legorun: "), err
            continue
        accepted.append(path)

    for path in accepted:
        try:
            run = subprocess.run(
                [sys.executable, "-m", "legorun", str(path)], capture_output=True,
                timeout=RUN_LIMIT_S, stdin=subprocess.DEVNULL, cwd=tmp_path,
            )
        except subprocess.TimeoutExpired:
            assert not _finishes_natively(path, tmp_path), f"{path.name}: legorun hangs"
            continue
        assert b"Traceback" not in run.stderr, (path.name, run.stderr.decode(errors="replace"))
        assert 0 <= run.returncode <= 255
    assert len(accepted) < MUTATIONS  # the mutations really do break most files


def _finishes_natively(path: Path, cwd: Path) -> bool:
    try:
        subprocess.run([str(path)], capture_output=True, timeout=RUN_LIMIT_S,
                       stdin=subprocess.DEVNULL, cwd=cwd, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return True

