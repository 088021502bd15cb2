"""Processor checkpoints at a memory server, and `legorun --restore`: a run whose processor
is killed (kill -9) and restored, twice, prints, writes and exits exactly as one undisturbed
run does."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Prints a line per round with a checksum of a 1 MiB working set it keeps rewriting (more
# than the 256K ExCache the runs get, so dirty lines are evicted and flushed at each
# checkpoint), and appends each line to a journal file through the storage manager.
PROGRESS = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rounds = atoi(argv[1]);
    size_t n = (1 << 20) / sizeof(unsigned);
    unsigned *a = malloc(n * sizeof *a);
    unsigned long long sum = 0;
    char line[80];
    int journal = open("journal", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (!a || journal < 0) return 1;
    for (size_t i = 0; i < n; i++) a[i] = i * 2654435761u;
    setvbuf(stdout, NULL, _IOLBF, 0);  /* the test counts lines as they come */
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) { a[i] = a[i] * 1103515245u + 12345u + r; sum += a[i] >> 7; }
        int len = snprintf(line, sizeof line, "round %d checksum %llu\n", r, sum);
        fputs(line, stdout);
        if (write(journal, line, len) != len) return 2;
    }
    fprintf(stderr, "%d rounds\n", rounds);
    return 3;
}
"""
ROUNDS = "40"
EXCACHE = ["--excache", "256K"]


@pytest.fixture(scope="module")
def progress(e2e, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e2e.compile_c(tmp_path_factory.mktemp("checkpoint"), "progress", PROGRESS)


def _run_until_killed(e2e, argv: list[str], cwd: Path,  # type: ignore[no-untyped-def]
                      lines: int) -> bytes:
    """Start legorun, read `lines` lines of its stdout, kill -9 it; all it printed."""
    run = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(e2e.BASE_ENV))
    assert run.stdout is not None and run.stderr is not None
    printed = b"".join(run.stdout.readline() for _ in range(lines))
    run.send_signal(signal.SIGKILL)
    # Through the same buffered reader: readline may have read ahead of the last line.
    printed += run.stdout.read()
    stderr = run.stderr.read()
    assert run.wait(timeout=60) == -signal.SIGKILL, stderr.decode()
    assert stderr == b"", stderr.decode()
    return printed


def _assert_resumed(native: bytes, killed: list[bytes], last: bytes, context: str) -> None:
    """`killed` (what each killed run printed) and `last` (the run that finished) make up
    `native` with nothing printed twice. The output commit counter reports a write before
    making it (checkpoint_output.py), so a kill that lands between the two loses that one
    line write, and only that one: a restored run starts where the killed run stopped or
    one line further."""
    assert native.startswith(killed[0]), f"{killed[0][:80]!r} is not how it starts\n{context}"
    position = len(killed[0])
    for piece in [*killed[1:], last]:
        if not native.startswith(piece, position):
            next_line = native.find(b"\n", position) + 1
            assert next_line and native.startswith(piece, next_line), (
                f"{piece[:80]!r} does not continue {native[:position][-80:]!r}\n{context}")
            position = next_line
        position += len(piece)
    assert position == len(native), f"ends at byte {position} of {len(native)}\n{context}"


def test_killed_twice_and_restored(e2e, servers, progress: Path) -> None:
    native_cwd = e2e.fresh_dir()
    native = e2e.run_native(progress, [ROUNDS], cwd=native_cwd)
    memory = servers.memory()
    remote = ["--memory", memory.address]
    cwd = e2e.fresh_dir()
    first = _run_until_killed(e2e, e2e.legorun_argv(
        progress, [ROUNDS], [*remote, *EXCACHE, "--checkpoint-interval", "200ms",
                             "--checkpoint-name", "progress-run"]), cwd, 8)
    # The restored run takes checkpoints as the first one did, under the same name.
    restore = [sys.executable, "-m", "legorun", *remote, "--restore", "progress-run"]
    second = _run_until_killed(e2e, restore, e2e.fresh_dir(), 8)
    last = e2e.run_legorun(None, raw_argv=[*remote, "--restore", "progress-run"],
                           cwd=e2e.fresh_dir())
    _assert_resumed(native.stdout, [first, second], last.stdout, last.describe())
    assert last.stderr == native.stderr, last.describe()
    assert last.returncode == native.status == 3
    assert (cwd / "journal").read_bytes() == (native_cwd / "journal").read_bytes()


# A dynamically linked program whose state is more than registers and memory: a signal
# handler driven by an interval timer, a blocked signal left pending, a file read at its
# offset. Each step waits for two more timer ticks.
TICKS = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
static volatile int ticks;
static void on_alarm(int sig) { ticks++; }
int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    action.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &action, NULL);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    struct itimerval every = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &every, NULL);
    int input = open("input", O_RDONLY);
    char word[5] = {0};
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int step = 0; step < 24; step++) {
        while (ticks < 2 * (step + 1)) ;
        if (read(input, word, 4) != 4) return 1;
        sigset_t pending;
        sigpending(&pending);
        printf("step %d: %s, SIGUSR1 pending %d, at %ld\n", step, word,
               sigismember(&pending, SIGUSR1), (long)lseek(input, 0, SEEK_CUR));
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    return 0;
}
"""


def test_signal_state_timers_and_file_offsets_are_restored(e2e, servers,
                                                           tmp_path: Path) -> None:
    program = e2e.compile_c(tmp_path, "ticks", TICKS, flags=("-O1",))  # dynamic
    words = bytes(range(ord("a"), ord("z") + 1)) * 4
    native_cwd, cwd = e2e.fresh_dir(), e2e.fresh_dir()
    for where in (native_cwd, cwd):
        (where / "input").write_bytes(words)
    native = e2e.run_native(program, cwd=native_cwd)
    memory = servers.memory()
    remote = ["--memory", memory.address]
    first = _run_until_killed(e2e, e2e.legorun_argv(
        program, options=[*remote, "--checkpoint-interval", "200ms"]), cwd, 10)
    rest = e2e.run_legorun(None, raw_argv=[*remote, "--restore", "ticks"], cwd=e2e.fresh_dir())
    _assert_resumed(native.stdout, [first], rest.stdout, rest.describe())
    assert rest.returncode == native.status == 0, rest.describe()


def test_an_unknown_checkpoint_is_one_clear_error(e2e, servers) -> None:
    memory = servers.memory()
    run = e2e.run_legorun(None, raw_argv=["--memory", memory.address, "--restore", "nothing"],
                          cwd=e2e.fresh_dir())
    assert run.returncode == 1, run.describe()
    assert run.stderr.decode().splitlines() == [
        "legorun: --restore nothing: the memory server has no checkpoint of that name"]


@pytest.mark.parametrize("sample, refusal", [
    ("processes", "legorun: cannot checkpoint: the guest forks"),
    ("pthreads_sync", "legorun: cannot checkpoint: the guest runs "),
])
def test_a_process_a_checkpoint_cannot_keep_is_refused(e2e, samples_built, servers, sample,
                                                       refusal) -> None:
    memory = servers.memory()
    run = e2e.run_legorun(samples_built / sample, cwd=e2e.fresh_dir(),
                          options=["--memory", memory.address, "--checkpoint-interval", "1ms"])
    assert run.returncode == 1, run.describe()
    (line,) = [line for line in run.stderr.decode().splitlines() if line.startswith("legorun")]
    assert line.startswith(refusal), run.describe()


POSIX_TIMER = r"""
#include <signal.h>
#include <stdio.h>
#include <time.h>
int main(void) {
    timer_t timer;
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    timer_create(CLOCK_MONOTONIC, &none, &timer);
    for (volatile long i = 0; i < 50000000; i++)
        ;
    puts("done");
    return 0;
}
"""


SHARED_MEMORY = r"""
#include <stdio.h>
#include <sys/mman.h>
int main(void) {
    volatile long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (long i = 0; i < 50000000; i++)
        *shared = i;
    puts("done");
    return 0;
}
"""


@pytest.mark.parametrize("source, refusal", [
    (POSIX_TIMER, "the process has POSIX timers (timer_create), which checkpoints do not keep"),
    (SHARED_MEMORY, "the process has writable MAP_SHARED memory, which lives beside the "
                    "memory manager and checkpoints do not keep"),
], ids=["posix-timers", "shared-memory"])
def test_state_a_checkpoint_cannot_keep_is_refused(e2e, servers, tmp_path: Path, source: str,
                                                   refusal: str) -> None:
    program = e2e.compile_c(tmp_path, "unkept", source)
    memory = servers.memory()
    run = e2e.run_legorun(program, cwd=e2e.fresh_dir(),
                          options=["--memory", memory.address, "--checkpoint-interval", "1ms"])
    assert run.returncode == 1, run.describe()
    assert run.stderr.decode().splitlines() == [f"legorun: cannot checkpoint: {refusal}"], \
        run.describe()
