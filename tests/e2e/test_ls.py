"""`ls -la` from the host distribution lists a directory under legorun exactly as natively:
it needs lstat, getdents64, readlink, lgetxattr (for the ACL and security-context marks),
getpwuid through /etc/passwd and the time zone. The directory is made here with fixed
times, so nothing in the listing depends on when the test runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

LS = shutil.which("ls")
FIXED_TIME = 1_300_000_000  # 2011-03-13, so ls shows the year, not the time of day


@pytest.mark.skipif(LS is None or not Path("/lib64/ld-linux-x86-64.so.2").exists(),
                    reason="no dynamically linked host ls")
def test_ls_la_matches_native(e2e, tmp_path: Path) -> None:
    listing = tmp_path / "listing"
    listing.mkdir()
    (listing / "plain.txt").write_text("some text\n")
    (listing / "empty").touch()
    script = listing / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (listing / "subdir").mkdir()
    (listing / "link").symlink_to("plain.txt")
    (listing / "dangling").symlink_to("nowhere")
    for entry in [*listing.iterdir(), listing]:
        os.utime(entry, (FIXED_TIME, FIXED_TIME), follow_symlinks=False)
    os.utime(tmp_path, (FIXED_TIME, FIXED_TIME))
    env = {**e2e.BASE_ENV, "LC_ALL": "C", "TZ": "UTC"}
    args = ["-la", "--color=never", str(listing)]
    native = e2e.run_native(LS, args, cwd=tmp_path, env=env)
    lego = e2e.run_legorun(LS, args, cwd=tmp_path, env=env)
    assert native.returncode == 0, native.describe()
    assert b"plain.txt" in native.stdout and b"link -> plain.txt" in native.stdout
    e2e.assert_same(native, lego, "ls -la")
