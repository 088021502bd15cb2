"""Memory replication and failover: a primary memory server started with `--backup B` logs
every change to a processor's memory to B before acknowledging it; killed with kill -9 at
any point of a run, the processor goes on against B and the program prints exactly what an
undisturbed run prints.

Most kills land mid-run by construction, not by timing: a guest works through its pages,
says so, and waits for a line on stdin before its last stretch of work, which the test
sends only after the kill. Random delays (seeded: LEGORUN_FAILOVER_SEED draws the same ones)
spread the kills over the work before that point, so that some catch the primary with a
request in flight: before, while or after it relayed it to the backup.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq

from legorun.managers.vma import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE
from legorun.rpc.codec import decode, encode
from legorun.rpc.frames import PROTOCOL_VERSION, header, request_number
from legorun.rpc.messages import (
    ErrorReply,
    ExecRequest,
    HelloReply,
    HelloRequest,
    MmapRequest,
    RelayRequest,
    Request,
)

RPC_TIMEOUT = "300ms"  # a dead primary is noticed after 4 tries of this
EXCACHE = "256K"
PAGES, PASSES = "96", "5"  # 384 KiB of dirty pages through a 256 KiB ExCache
FAILOVER_RUNS = 20
GO = b"go\n"

# Fills `pages` pages with a pattern of their own, says so, then makes `passes` passes:
# each checks that every page still holds what the previous pass wrote and writes the next
# pattern. The pages do not fit in the ExCache, so every pass evicts dirty lines: each write
# reaches the memory server, and a lost or doubled write-back shows as a wrong page.
FILL_AND_CHECK = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#define WORDS 512
#define STRIDE 8
static uint64_t pattern(long page, long pass, long word) {
    return ((uint64_t)page * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)pass << 40) ^ (uint64_t)word;
}
int main(int argc, char **argv) {
    long pages = atol(argv[1]), passes = atol(argv[2]);
    uint64_t *heap = malloc((size_t)pages * WORDS * sizeof *heap), sum = 0;
    char line[16];
    setvbuf(stdout, NULL, _IOLBF, 0);  /* the test watches the run's progress */
    for (long p = 0; p < pages; p++)
        for (long w = 0; w < WORDS; w += STRIDE)
            heap[p * WORDS + w] = pattern(p, 0, w);
    printf("filled %ld pages\n", pages);
    for (long pass = 1; pass <= passes; pass++) {
        if (pass == passes && !fgets(line, sizeof line, stdin))  /* the last pass waits */
            return 2;
        for (long p = 0; p < pages; p++)
            for (long w = 0; w < WORDS; w += STRIDE) {
                uint64_t *word = &heap[p * WORDS + w];
                if (*word != pattern(p, pass - 1, w)) {
                    printf("pass %ld: page %ld lost what the pass before wrote\n", pass, p);
                    return 1;
                }
                sum += *word;
                *word = pattern(p, pass, w);
            }
        printf("pass %ld checked\n", pass);
    }
    printf("checksum %016llx\n", (unsigned long long)sum);
    return 0;
}
"""


# The parent fills `pages` pages and forks; the child checks and rewrites its copy, the
# parent its own, and the parent says so; then the parent waits for a line on stdin (the
# test kills the primary first) and lets the child go on: both check that their copy holds
# what they wrote before the failover, and write once more. The child's exit status says
# whether it lost anything.
FORK_AND_CHECK = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#define WORDS 512
#define STRIDE 8
static uint64_t pattern(long page, long writer, long word) {
    return ((uint64_t)page * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)writer << 40) ^ (uint64_t)word;
}
/* Check that every page holds `before`'s pattern and write `after`'s: 0, or 1 + the first
 * page that did not. */
static long rewrite(uint64_t *heap, long pages, long before, long after) {
    for (long p = 0; p < pages; p++)
        for (long w = 0; w < WORDS; w += STRIDE) {
            if (heap[p * WORDS + w] != pattern(p, before, w))
                return 1 + p;
            heap[p * WORDS + w] = pattern(p, after, w);
        }
    return 0;
}
int main(int argc, char **argv) {
    long pages = atol(argv[1]), lost;
    uint64_t *heap = malloc((size_t)pages * WORDS * sizeof *heap);
    int go[2], status;
    char line[16], c;
    setvbuf(stdout, NULL, _IOLBF, 0);  /* the test watches the run's progress */
    for (long p = 0; p < pages; p++)
        for (long w = 0; w < WORDS; w += STRIDE)
            heap[p * WORDS + w] = pattern(p, 0, w);
    if (pipe(go) != 0)
        return 3;
    pid_t child = fork();
    if (child == 0) {
        lost = rewrite(heap, pages, 0, 2);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        _exit(lost || rewrite(heap, pages, 2, 3) ? 1 : 0);
    }
    lost = rewrite(heap, pages, 0, 1);
    printf("forked\n");
    if (!fgets(line, sizeof line, stdin))
        return 2;
    if (write(go[1], "g", 1) != 1)
        return 3;
    lost = lost ? lost : rewrite(heap, pages, 1, 4);
    waitpid(child, &status, 0);
    printf("parent: %s; child: exit status %d\n", lost ? "lost a page" : "nothing lost",
           WEXITSTATUS(status));
    return 0;
}
"""

# Says it runs (so the processor has met its memory server and learnt of the backup),
# waits for a line on stdin, then becomes the program its arguments name.
LAUNCH = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char line[16];
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    if (argc < 2 || !fgets(line, sizeof line, stdin))
        return 2;
    execv(argv[1], argv + 1);
    return 127;
}
"""


@pytest.fixture(scope="module")
def guests(e2e, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test's guest programs, compiled with gcc -static."""
    workdir = tmp_path_factory.mktemp("failover-guests")
    return {name: e2e.compile_c(workdir, name, source)
            for name, source in (("fill_and_check", FILL_AND_CHECK),
                                 ("fork_and_check", FORK_AND_CHECK), ("launch", LAUNCH))}


def _seed() -> int:
    return int(os.environ.get("LEGORUN_FAILOVER_SEED", random.randrange(1 << 32)))


def _repeat_with(seed: int) -> str:
    return f"seed {seed}: LEGORUN_FAILOVER_SEED={seed} draws the same delays"


def _replicated_pair(servers):  # type: ignore[no-untyped-def]
    backup = servers.memory()
    return servers.memory("--backup", backup.address), backup


@dataclass
class _Started:
    """A legorun run under way, its stdin and stdout pipes held by the test."""

    e2e: Any  # the e2e fixture (conftest.py)
    argv: list[str]
    cwd: Path
    process: subprocess.Popen[bytes]

    def finish(self, seen: bytes, stdin: bytes):  # type: ignore[no-untyped-def]
        """Send the rest of stdin and wait for the end: the run as a shell sees it, its
        stdout starting with what the test read of it already (`seen`)."""
        try:
            rest, stderr = self.process.communicate(stdin, timeout=self.e2e.LEGORUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, stderr = self.process.communicate()
        return self.e2e.Run(self.argv, self.process.returncode, seen + rest, stderr, self.cwd)


def _started(e2e, argv: list[str]) -> _Started:  # type: ignore[no-untyped-def]
    cwd = e2e.fresh_dir()
    process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=dict(e2e.BASE_ENV))
    return _Started(e2e, argv, cwd, process)


def _fill_and_check_killing(e2e, program: Path, primary,  # type: ignore[no-untyped-def]
                            delay_s: float):
    """Run fill_and_check against `primary` and kill -9 it `delay_s` after the guest
    filled its pages; then let the guest's last pass go."""
    run = _started(e2e, e2e.legorun_argv(program, [PAGES, PASSES], options=[
        "--excache", EXCACHE, "--memory", primary.address, "--rpc-timeout", RPC_TIMEOUT]))
    first = run.process.stdout.readline()
    if first.startswith(b"filled"):
        time.sleep(delay_s)
        primary.kill()
    return run.finish(first, GO)


def _undisturbed(e2e, program: Path, options=()):  # type: ignore[no-untyped-def]
    return e2e.run_legorun(program, [PAGES, PASSES], cwd=e2e.fresh_dir(), stdin=GO,
                           options=["--excache", EXCACHE, *options])


def _assert_not_diverged(*servers) -> None:  # type: ignore[no-untyped-def]
    """A primary reports on its stderr a backup that answered a request otherwise."""
    for server in servers:
        assert "diverged" not in server.stderr(), server.stderr()


def test_a_replicated_run_prints_what_an_embedded_run_prints(e2e, guests, servers) -> None:
    primary, backup = _replicated_pair(servers)
    embedded = _undisturbed(e2e, guests["fill_and_check"])
    assert embedded.returncode == 0 and b"checksum" in embedded.stdout, embedded.describe()
    replicated = _undisturbed(e2e, guests["fill_and_check"], ["--memory", primary.address])
    e2e.assert_same(embedded, replicated, "a run against a replicated memory server")
    _assert_not_diverged(primary, backup)


def test_the_backup_holds_the_state_when_the_primary_dies_at_once(e2e, guests,
                                                                  servers) -> None:
    """Killed as soon as the pages are filled: everything the guest did so far (its
    address space, the write-backs of the fill) must be at the backup already."""
    primary, backup = _replicated_pair(servers)
    embedded = _undisturbed(e2e, guests["fill_and_check"])
    run = _fill_and_check_killing(e2e, guests["fill_and_check"], primary, 0.0)
    e2e.assert_same(embedded, run, "primary killed right after the fill")
    _assert_not_diverged(primary, backup)


def _work_before_the_wait(e2e, program: Path, primary):  # type: ignore[no-untyped-def]
    """An undisturbed run of fill_and_check against `primary`, and the seconds from its
    "filled" line to its wait for stdin: the span in which a kill catches it at work."""
    run = _started(e2e, e2e.legorun_argv(program, [PAGES, PASSES], options=[
        "--excache", EXCACHE, "--memory", primary.address, "--rpc-timeout", RPC_TIMEOUT]))
    seen = run.process.stdout.readline()
    started = time.monotonic()
    for _ in range(int(PASSES) - 1):
        seen += run.process.stdout.readline()
    span = time.monotonic() - started
    return run.finish(seen, GO), span


def test_kill_9_of_the_primary_at_random_points_loses_nothing(e2e, guests, servers) -> None:
    seed = _seed()
    rng = random.Random(seed)
    embedded = _undisturbed(e2e, guests["fill_and_check"])
    backup = servers.memory()
    undisturbed, span = _work_before_the_wait(e2e, guests["fill_and_check"],
                                              servers.memory("--backup", backup.address))
    e2e.assert_same(embedded, undisturbed, "an undisturbed run")
    for attempt in range(FAILOVER_RUNS):
        primary = servers.memory("--backup", backup.address)
        delay = rng.uniform(0.0, span)
        run = _fill_and_check_killing(e2e, guests["fill_and_check"], primary, delay)
        e2e.assert_same(embedded, run, f"run {attempt + 1} of {FAILOVER_RUNS}, primary "
                                       f"killed {delay:.3f} s after the fill "
                                       f"({_repeat_with(seed)})")
        _assert_not_diverged(primary, backup)


def test_a_forked_child_and_its_parent_both_fail_over(e2e, guests, servers) -> None:
    primary, backup = _replicated_pair(servers)
    program = guests["fork_and_check"]
    native = e2e.run_native(program, [PAGES], cwd=e2e.fresh_dir(), stdin=GO)
    assert b"nothing lost; child: exit status 0" in native.stdout, native.describe()
    argv = e2e.legorun_argv(program, [PAGES], options=["--excache", EXCACHE, "--memory",
                                                       primary.address,
                                                       "--rpc-timeout", RPC_TIMEOUT])
    run = _started(e2e, argv)
    first = run.process.stdout.readline()
    if first == b"forked\n":
        primary.kill()
    e2e.assert_same(native, run.finish(first, GO), "fork, then the primary killed")
    _assert_not_diverged(primary, backup)


def test_processes_sample_across_a_failover(e2e, guests, samples_built, servers) -> None:
    """samples/processes forks, execs and waits (each child connects on its own, and fails
    over by itself); the primary dies at a random point of it."""
    seed = _seed()
    delay = random.Random(seed).uniform(0.0, 1.0)  # processes takes about a second
    program = samples_built / "processes"
    native = e2e.run_native(program, cwd=e2e.fresh_dir())
    primary, backup = _replicated_pair(servers)
    argv = e2e.legorun_argv(guests["launch"], [str(program)],
                            options=["--memory", primary.address, "--rpc-timeout", RPC_TIMEOUT])
    run = _started(e2e, argv)
    ready = run.process.stdout.readline()
    assert ready == b"ready\n", run.finish(ready, b"").describe()
    run.process.stdin.write(GO)
    run.process.stdin.flush()
    time.sleep(delay)
    primary.kill()
    e2e.assert_same(native, run.finish(b"", b""),
                    f"processes, primary killed {delay:.3f} s in ({_repeat_with(seed)})")
    _assert_not_diverged(primary, backup)


class _RawClient:
    """A connection that numbers its requests itself: a processor's channel after its
    failover, or the primary relaying its clients' requests, at chosen points."""

    def __init__(self, address: str, processor: int, client: int) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(address)
        hello = self.call(1 << 40, HelloRequest(PROTOCOL_VERSION, processor, "", client))
        assert isinstance(hello, HelloReply), hello

    def call(self, seq: int, request: Request) -> object:
        self._socket.send_multipart([header(seq), encode(request)])
        assert self._socket.poll(10_000), f"no reply to {request}"
        head, body = self._socket.recv_multipart()
        assert request_number(head) == seq
        return decode(body)

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()


def _mapped_bytes(reply) -> int:  # type: ignore[no-untyped-def]
    return sum(vma.end - vma.start for vma in reply.layout)


def test_a_request_relayed_before_the_primary_died_is_done_once(samples_built,
                                                                servers) -> None:
    """The primary relayed the client's request 7 (an mmap) to the backup and died before
    answering; the client, failed over, resends request 7 to the backup and gets the
    backup's reply to the relayed copy, without a second mapping."""
    backup = servers.memory()
    processor, client = 4242, 0x5EED
    primary = _RawClient(backup.address, processor, client=1)
    started = primary.call(1, ExecRequest(1, str(samples_built / "hello"), (b"hello",), (),
                                          b"hello"))
    assert started.status == 0, started
    mmap = MmapRequest(1, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS)
    relayed = primary.call(2, RelayRequest(client, 7, encode(mmap)))
    assert relayed.status == 0 and _mapped_bytes(relayed) == _mapped_bytes(started) + 2 * PAGE_SIZE
    assert primary.call(2, RelayRequest(client, 7, encode(mmap))) == relayed  # its own resend

    failed_over = _RawClient(backup.address, processor, client)
    assert failed_over.call(7, mmap) == relayed  # the copy, not a second mmap
    after = failed_over.call(8, MmapRequest(1, 0, PAGE_SIZE, PROT_READ,
                                            MAP_PRIVATE | MAP_ANONYMOUS))
    assert after.status == 0 and _mapped_bytes(after) == _mapped_bytes(relayed) + PAGE_SIZE

    # A copy of an older request, relayed late by a primary the client has left, is refused.
    stale = primary.call(3, RelayRequest(client, 6, encode(mmap)))
    assert isinstance(stale, ErrorReply) and stale.status == errno.ESTALE, stale
    primary.close()
    failed_over.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("backup", ["nonsense", "itself"])
def test_a_bad_backup_is_one_clear_error(e2e, backup: str) -> None:
    listen = f"tcp://127.0.0.1:{_free_port()}"
    address = listen if backup == "itself" else backup
    run = e2e.run_legorun(None, cwd=e2e.fresh_dir(),
                          raw_argv=["memory-server", "--listen", listen, "--backup", address])
    assert run.returncode == 2, run.describe()
    (line,) = run.stderr.decode().splitlines()
    assert line.startswith(f"legorun: --backup {address}: "), line
