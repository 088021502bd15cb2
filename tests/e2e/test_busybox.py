"""Real-world static binary: busybox applets under legorun must behave exactly as natively.

Skipped when /bin/busybox is missing or is not a static executable (install busybox-static).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import struct
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
PT_INTERP = 3


def _static_elf(path: Path) -> bool:
    """True if `path` is an x86-64 ELF executable without a PT_INTERP (a static binary)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            e_machine = struct.unpack_from("<H", head, 18)[0]
            phoff = struct.unpack_from("<Q", head, 32)[0]
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            if e_machine != 62:  # EM_X86_64
                return False
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(
        struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP for i in range(phnum)
    )


pytestmark = pytest.mark.skipif(
    not (BUSYBOX.exists() and os.access(BUSYBOX, os.X_OK) and _static_elf(BUSYBOX)),
    reason="needs a static x86-64 /bin/busybox (busybox-static)",
)

# A fixed mtime (2021-03-04 05:06:07 UTC) for every file the tests create, so that `ls -l`
# prints the same thing for the native and the legorun directory.
FIXED_MTIME = 1614834367

TEXT = (
    b"banana apple\ncherry\napple pie and a banana\n"
    b"zebra\n\nAardvark at a cafe\nmango tango\napple\n"
) * 50
NUMBERS = b"".join(b"%d\n" % ((i * 7919) % 1009 - 300) for i in range(400)) + b"42\n-0\n007\n"


def _random_bytes(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(n))


BINARY_BLOB = _random_bytes(300_000, 1234)


def _populate(d: Path) -> Path:
    """Creates the same files in `d` for every run and returns `d`."""
    (d / "input.txt").write_bytes(TEXT)
    (d / "numbers.txt").write_bytes(NUMBERS)
    fixed = d / "fixed"
    fixed.mkdir()
    (fixed / "b.txt").write_bytes(b"bee\n")
    (fixed / "a.txt").write_bytes(b"a" * 1000)
    (fixed / ".hidden").write_bytes(b"")
    (fixed / "Zed").write_bytes(b"capital\n")
    (fixed / "sub").mkdir()
    (fixed / "sub" / "inner").write_bytes(b"x")
    (fixed / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(fixed / "run.sh", 0o755)
    os.chmod(fixed / "a.txt", 0o640)
    for p in [fixed / "sub" / "inner", *fixed.iterdir(), fixed, d / "input.txt", d / "numbers.txt"]:
        os.utime(p, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    return d


# (id, busybox argv[1:], stdin)
CASES = [
    ("echo", ["echo", "hello", "world"], b""),
    ("echo-n", ["echo", "-n", "no newline", "here"], b""),
    ("echo-e", ["echo", "-e", "tab\\there\\nnext line\\\\"], b""),
    ("wc-file", ["wc", "input.txt"], b""),
    ("wc-l-two-files", ["wc", "-l", "input.txt", "numbers.txt"], b""),
    ("wc-stdin", ["wc"], TEXT),
    ("sort", ["sort"], TEXT),
    ("sort-n-r", ["sort", "-n", "-r"], NUMBERS),
    ("sort-file-u", ["sort", "-u", "input.txt"], b""),
    ("sed", ["sed", "s/a/b/g"], TEXT),
    ("sed-file", ["sed", "-n", "s/apple/APPLE/gp", "input.txt"], b""),
    ("sha256sum-file", ["sha256sum", "input.txt"], b""),
    ("sha256sum-stdin", ["sha256sum"], BINARY_BLOB),
    ("ls", ["ls", "fixed"], b""),
    ("ls-a", ["ls", "-a", "fixed"], b""),
    ("ls-l", ["ls", "-l", "fixed"], b""),
    ("ls-missing", ["ls", "no-such-dir"], b""),
    ("cat-stdin", ["cat"], BINARY_BLOB),
    ("cat-file-and-stdin", ["cat", "input.txt", "-"], b"from stdin\n"),
    ("false", ["false"], b""),
]


def _pair(e2e, args, stdin):
    native = e2e.run_native(BUSYBOX, args, cwd=_populate(e2e.fresh_dir("bb-native")), stdin=stdin)
    lego = e2e.run_legorun(BUSYBOX, args, cwd=_populate(e2e.fresh_dir("bb-legorun")), stdin=stdin)
    e2e.assert_same(native, lego, f"busybox {' '.join(args)}")
    return native, lego


@pytest.mark.parametrize("args,stdin", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_busybox_applet(e2e, args, stdin):
    _pair(e2e, args, stdin)


def test_busybox_sha256sum_is_right(e2e):
    _, lego = _pair(e2e, ["sha256sum"], BINARY_BLOB)
    assert lego.stdout.split()[0].decode() == hashlib.sha256(BINARY_BLOB).hexdigest()


def test_busybox_gzip_round_trip(e2e):
    """gzip -c | gunzip -c, as two legorun runs with the bytes piped through."""
    data = TEXT * 20 + BINARY_BLOB[:50_000]
    native_gz, lego_gz = _pair(e2e, ["gzip", "-c"], data)
    assert lego_gz.returncode == 0
    assert gzip.decompress(lego_gz.stdout) == data
    assert len(lego_gz.stdout) < len(data)

    native_plain, lego_plain = _pair(e2e, ["gunzip", "-c"], lego_gz.stdout)
    assert lego_plain.returncode == 0
    assert lego_plain.stdout == data


def test_busybox_small_excache(e2e):
    """A busybox run with a tiny ExCache (heavy eviction) still matches natively."""
    args = ["sort", "-n", "-r"]
    native = e2e.run_native(BUSYBOX, args, cwd=_populate(e2e.fresh_dir("bb-native")), stdin=NUMBERS)
    lego = e2e.run_legorun(
        BUSYBOX, args, cwd=_populate(e2e.fresh_dir("bb-legorun")), stdin=NUMBERS,
        options=["--excache", "64K", "--policy", "lru"],
    )
    e2e.assert_same(native, lego, "busybox sort -n -r with --excache 64K")
