"""Memory protection keys on a processor without them: what a program that probes for
keys sees (the answers of Linux on a CPU without PKU), compared with the native run when
the host's CPU has no keys either."""

from __future__ import annotations

from pathlib import Path

import pytest

from guest_programs import compile_c, run_both, run_legorun

PROBE = r"""
#include <cpuid.h>
#include <sys/mman.h>
int main(void) {
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    printf("PKU %u OSPKE %u\n", (c >> 3) & 1, (c >> 4) & 1);
    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    SHOW(syscall(SYS_pkey_alloc, 0, 0));
    SHOW(syscall(SYS_pkey_alloc, 1, 0));
    SHOW(syscall(SYS_pkey_free, 0));
    SHOW(syscall(SYS_pkey_free, 1));
    SHOW(syscall(SYS_pkey_mprotect, page, 4096, PROT_READ | PROT_WRITE, -1));
    page[0] = 1;  /* writable now */
    SHOW(syscall(SYS_pkey_mprotect, page, 4096, PROT_READ, 0));
    SHOW(syscall(SYS_pkey_mprotect, page, 4096, PROT_READ, 1));
    page[1] = 2;  /* still writable: the failed calls changed nothing */
    return page[0] + page[1];
}
"""
EXPECTED = """PKU 0 OSPKE 0
syscall(SYS_pkey_alloc, 0, 0) = -1 (EINVAL)
syscall(SYS_pkey_alloc, 1, 0) = -1 (EINVAL)
syscall(SYS_pkey_free, 0) = -1 (EINVAL)
syscall(SYS_pkey_free, 1) = -1 (EINVAL)
syscall(SYS_pkey_mprotect, page, 4096, PROT_READ | PROT_WRITE, -1) = 0
syscall(SYS_pkey_mprotect, page, 4096, PROT_READ, 0) = -1 (EINVAL)
syscall(SYS_pkey_mprotect, page, 4096, PROT_READ, 1) = -1 (EINVAL)
"""


def _host_has_keys() -> bool:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return "pku" in flags.split()


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(tmp_path_factory.mktemp("pkeys"), "pkeys", PROBE)


def test_no_keys_to_allocate_and_pkey_mprotect_without_one(probe: Path,
                                                           tmp_path: Path) -> None:
    run = run_legorun(probe, tmp_path / "legorun")
    assert run.stdout.decode() == EXPECTED, run.stderr.decode()
    assert run.stderr == b""  # answered, not the warning of a missing syscall
    assert run.returncode == 3


@pytest.mark.skipif(_host_has_keys(), reason="the host's CPU has protection keys")
def test_as_natively_on_a_cpu_without_keys(probe: Path, tmp_path: Path) -> None:
    run_both(tmp_path, probe, expected_status=3)
