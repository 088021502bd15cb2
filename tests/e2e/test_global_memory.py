"""Several memory servers: a process's 1 GiB vRegions placed by the global memory manager
(striped or by free capacity), memory servers with a capacity, and processors sharing one
server. Runs are kept short; a small ExCache forces write-backs and misses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

# Saying hello to a server that is still being connected to waits one timeout: short keeps
# the runs quick, and a second is still ample for a reply on a loaded host.
TIMEOUT = ["--rpc-timeout", "1s"]
SMALL_EXCACHE = ["--excache", "64K"]

VREGIONS_C = r"""
/* Memory spread over several 1 GiB vRegions: fixed-address areas in different GiB, filled,
 * read back, moved (mremap), partly dropped (madvise, munmap), inherited by a fork child and
 * grown and shrunk with brk; every check prints a checksum. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB (1UL << 30)
#define PAGE 4096UL
#define AREA (64 * PAGE)
#define AREAS 4

static void fill(unsigned char *p, unsigned long n, unsigned seed) {
    for (unsigned long i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + seed + i / PAGE);
}

static unsigned long sum(const unsigned char *p, unsigned long n) {  /* FNV-1a */
    unsigned long s = 14695981039346656037UL;
    for (unsigned long i = 0; i < n; i++)
        s = (s ^ p[i]) * 1099511628211UL;
    return s;
}

int main(void) {
    unsigned char *area[AREAS];
    for (int a = 0; a < AREAS; a++) {
        void *want = (void *)((4UL + a) * GIB + a * PAGE);
        area[a] = mmap(want, AREA, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (area[a] != want) {
            perror("mmap");
            return 1;
        }
        fill(area[a], AREA, 7 * a + 1);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int a = 0; a < AREAS; a++)
            printf("pass %d area %d: %lx\n", pass, a, sum(area[a], AREA));

    unsigned char *moved = mremap(area[0], AREA, 2 * AREA, MREMAP_MAYMOVE | MREMAP_FIXED,
                                  (void *)(9 * GIB));
    if (moved == MAP_FAILED) {
        perror("mremap");
        return 1;
    }
    printf("moved: %lx, grown part %lx\n", sum(moved, AREA), sum(moved + AREA, AREA));
    fill(moved + AREA, AREA, 99);

    madvise(area[1], AREA / 2, MADV_DONTNEED);
    printf("after madvise: %lx %lx\n", sum(area[1], AREA / 2),
           sum(area[1] + AREA / 2, AREA / 2));
    munmap(area[2], AREA);
    unsigned char *again = mmap(area[2], AREA, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("remapped: %lx\n", sum(again, AREA));

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("child: %lx %lx\n", sum(moved, 2 * AREA), sum(area[3], AREA));
        fill(area[3], AREA, 55);
        printf("child wrote: %lx\n", sum(area[3], AREA));
        return 0;
    }
    waitpid(child, NULL, 0);
    printf("parent: %lx %lx\n", sum(moved, 2 * AREA), sum(area[3], AREA));

    unsigned char *heap = sbrk(0);
    sbrk(AREA);
    fill(heap, AREA, 3);
    printf("heap: %lx\n", sum(heap, AREA));
    sbrk(-(long)AREA);
    sbrk(AREA);
    printf("heap again: %lx\n", sum(heap, AREA));
    return 0;
}
"""

FILL_C = r"""
/* Asks for more than a small memory server holds: one mapping larger than its whole
 * capacity, then argv[1] MiB touched page by page. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    unsigned long want = strtoul(argv[1], NULL, 0) << 20;
    void *big = mmap(NULL, 64UL << 20, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 64M: %s\n", big == MAP_FAILED ? strerrorname_np(errno) : "ok");
    fflush(stdout);
    unsigned char *p = mmap(NULL, want, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (unsigned long i = 0; i < want; i += 4096)
        p[i] = (unsigned char)(i >> 12) + 1;
    unsigned long s = 0;
    for (unsigned long i = 0; i < want; i += 4096)
        s += p[i];
    printf("filled %lu MiB: %lu\n", want >> 20, s);
    return 0;
}
"""


WARNINGS = ("-static", "-O1", "-Wall")


@pytest.fixture(scope="module")
def programs(e2e, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("global-memory")
    return {"vregions": e2e.compile_c(directory, "vregions", VREGIONS_C, WARNINGS),
            "fill": e2e.compile_c(directory, "fill", FILL_C, WARNINGS)}


def _memory(*servers) -> list[str]:  # type: ignore[no-untyped-def]
    return ["--memory", ",".join(server.address for server in servers)]


def _stats(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())["memory_servers"]


def test_striped_vregions_over_two_servers(e2e, programs, servers, tmp_path: Path) -> None:
    home, other = servers.memory(), servers.memory()
    native = e2e.run_native(programs["vregions"], cwd=e2e.fresh_dir())
    stats = tmp_path / "stats.json"
    remote = e2e.run_legorun(programs["vregions"], cwd=e2e.fresh_dir(), options=[
        *SMALL_EXCACHE, *TIMEOUT, *_memory(home, other), "--placement", "striped",
        "--stats-json", str(stats)])
    assert native.returncode == 0, native.describe()
    e2e.assert_same(native, remote, "vRegions striped over two memory servers")
    load = _stats(stats)
    assert list(load) == [home.address, other.address] and load[home.address]["home"]
    for index, address in enumerate(load):
        # Areas at 4..7 and 9 GiB, the stack at the top: both servers own some.
        assert load[address]["vregions"], load
        assert all(vregion % 2 == index for vregion in load[address]["vregions"]), load
        assert load[address]["requests"] > 0 and load[address]["pages_held"] > 0, load


def test_capacity_placement_over_three_servers(e2e, programs, servers, tmp_path: Path) -> None:
    """The home has a capacity, the two others none: every vRegion goes to one of those,
    to the one holding less at the time."""
    home, first, second = servers.memory("--capacity", "64M"), servers.memory(), servers.memory()
    native = e2e.run_native(programs["vregions"], cwd=e2e.fresh_dir())
    stats = tmp_path / "stats.json"
    remote = e2e.run_legorun(programs["vregions"], cwd=e2e.fresh_dir(), options=[
        *SMALL_EXCACHE, *TIMEOUT, *_memory(home, first, second), "--placement", "capacity",
        "--stats-json", str(stats)])
    e2e.assert_same(native, remote, "vRegions placed by capacity over three memory servers")
    load = _stats(stats)
    assert load[home.address]["vregions"] == [] and load[home.address]["capacity"] == 64 << 20
    for server in (first, second):
        assert load[server.address]["vregions"], load
        assert load[server.address]["pages_held"] > 0, load


def test_a_full_memory_server_refuses_cleanly(e2e, programs, servers) -> None:
    small = servers.memory("--capacity", "2M")
    run = e2e.run_legorun(programs["fill"], ["2"], cwd=e2e.fresh_dir(),
                          options=[*SMALL_EXCACHE, *TIMEOUT, *_memory(small)])
    # The guest sees ENOMEM for a mapping larger than the whole capacity; the pages of one
    # as large as the capacity do not fit next to the program's own: the write-back that
    # finds the server full ends the run.
    assert run.stdout == b"mmap 64M: ENOMEM\n", run.describe()
    assert run.stderr.decode() == f"legorun: memory server {small.address} is full " \
                                  "(capacity 2M)\n", run.describe()
    assert run.returncode == 125
    # With a second server, the same pages find room there.
    native = e2e.run_native(programs["fill"], ["2"], cwd=e2e.fresh_dir())
    roomy = servers.memory()
    run = e2e.run_legorun(programs["fill"], ["2"], cwd=e2e.fresh_dir(),
                          options=[*SMALL_EXCACHE, *TIMEOUT, *_memory(small, roomy)])
    assert run.returncode == 0, run.describe()
    filled = native.stdout.split(b"\n", 1)[1]
    assert run.stdout == b"mmap 64M: ENOMEM\n" + filled, run.describe()


def test_a_program_that_does_not_fit_is_not_executed(e2e, programs, servers) -> None:
    tiny = servers.memory("--capacity", "64K")
    run = e2e.run_legorun(programs["fill"], ["1"], cwd=e2e.fresh_dir(),
                          options=[*TIMEOUT, *_memory(tiny)])
    assert run.returncode == 126, run.describe()
    assert run.stderr.decode() == f"legorun: {programs['fill']}: Cannot allocate memory\n"


@pytest.mark.parametrize("argv", [["memory-server", "--capacity", "lots"],
                                  ["memory-server", "--capacity=-1M"]])
def test_bad_capacity(e2e, argv) -> None:
    run = e2e.run_legorun(None, raw_argv=argv, cwd=e2e.fresh_dir())
    assert run.returncode == 2, run.describe()
    (line,) = run.stderr.decode().splitlines()
    assert line.startswith("legorun: argument --capacity: not a size"), line


def test_bad_placement(e2e, samples_built) -> None:
    run = e2e.run_legorun(samples_built / "hello", cwd=e2e.fresh_dir(),
                          options=["--placement", "random"])
    assert run.returncode == 2, run.describe()
    assert run.stderr.decode().startswith("legorun: argument --placement: invalid choice")


def test_two_processors_share_one_memory_server(e2e, programs, servers) -> None:
    shared = servers.memory()
    native = e2e.run_native(programs["vregions"], cwd=e2e.fresh_dir())
    argv = e2e.legorun_argv(programs["vregions"],
                            options=[*SMALL_EXCACHE, *TIMEOUT, *_memory(shared)])
    runs = [subprocess.Popen(argv, cwd=e2e.fresh_dir(), env=e2e.BASE_ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=e2e.LEGORUN_TIMEOUT)
        outcome = e2e.Run(argv, run.returncode, stdout, stderr)
        e2e.assert_same(native, outcome, "one of two runs sharing a memory server")


def test_processors_with_the_same_pid_stay_apart(servers) -> None:
    """Two processors whose processes have the same pid write the same address of one
    server: each reads back its own page, and the server counts both."""
    from legorun.rpc.messages import (
        CapacityRequest,
        PageMissRequest,
        VRegionRequest,
        WritebackRequest,
    )
    from legorun.rpc.remote import ChannelOptions, RemoteChannel

    shared = servers.memory()
    pid, addr = 1234, 5 << 30
    channels = [RemoteChannel(shared.address, "memory", ChannelOptions(timeout_s=1.0),
                              processor=processor) for processor in (1, 2)]
    try:
        for fill, channel in enumerate(channels, 1):
            assert channel.call(VRegionRequest(pid, addr >> 30)).status == 0
            assert channel.call(WritebackRequest(pid, ((addr, bytes([fill]) * 4096),))) \
                .status == 0
        for fill, channel in enumerate(channels, 1):
            assert channel.call(PageMissRequest(pid, addr)).data == bytes([fill]) * 4096
        assert channels[0].call(CapacityRequest()).pages == 2
    finally:
        for channel in channels:
            channel.close()
