"""Threads on the one emulated core: clone, futexes between threads, robust and
priority-inheritance mutexes, exit and join, deadlock reports, --strace lines per thread and
reproducible interleavings. Differential where the output is deterministic."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from guest_programs import TIMEOUT, compile_c, guest_env, run_both, run_legorun

THREADS_PRELUDE = r"""
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/time.h>
static long futex(unsigned *word, int op, unsigned val, const struct timespec *ts,
                  unsigned *word2, unsigned val3) {
    return syscall(SYS_futex, word, op, val, ts, word2, val3);
}
/* Spin (yielding) until *word holds value: the other thread got that far. */
static void await_value(volatile unsigned *word, unsigned value) {
    while (*word != value)
        sched_yield();
}
"""


def test_futex_wake_requeue_wake_op_and_bitsets_between_threads(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "futexes", THREADS_PRELUDE + r"""
static unsigned word, other, waiting, woken_by[4];
static void *waiter(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned bitset = 1u << id;
    __atomic_fetch_add(&waiting, 1, __ATOMIC_SEQ_CST);
    long r = futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, bitset);
    woken_by[id] = r == 0;
    return NULL;
}
static void start(pthread_t *t) {
    waiting = 0;
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, waiter, (void *)(intptr_t)i);
    await_value(&waiting, 4);
    usleep(10000); /* all four are in the kernel now */
}
static void finish(pthread_t *t) {
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}
int main(void) {
    pthread_t t[4];
    start(t);
    SHOW(futex(&word, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 1u << 2)); /* only id 2 */
    SHOW(futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));               /* the first */
    SHOW(futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)1, &other, 1)); /* EAGAIN */
    SHOW(futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)1, &other, 0)); /* moves one */
    SHOW(futex(&word, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));              /* the last */
    SHOW(futex(&other, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));             /* the moved */
    finish(t);
    printf("woken: %u %u %u %u\n", woken_by[0], woken_by[1], woken_by[2], woken_by[3]);
    start(t);
    other = 0;
    SHOW(futex(&word, FUTEX_WAKE_OP_PRIVATE, 1, (void *)10, &other,
               FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_EQ, 0)));             /* 1 + 0 */
    SHOW(futex(&word, FUTEX_REQUEUE_PRIVATE, 1, (void *)10, &word, 0));     /* 1 + 2 */
    printf("other = %u\n", other);
    SHOW(futex(&word, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));              /* the other 2 */
    finish(t);
    struct timespec ms = {0, 1000000};
    SHOW(futex(&word, FUTEX_WAIT_PRIVATE, 0, &ms, NULL, 0));                /* ETIMEDOUT */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_robust_and_priority_inheritance_mutexes(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "robust", THREADS_PRELUDE + r"""
static pthread_mutex_t robust, pi;
static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL; /* ends without unlocking: the kernel marks the owner dead */
}
static volatile unsigned stage;
static void *hold_pi(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pi);
    stage = 1;
    await_value(&stage, 2);
    usleep(10000);
    pthread_mutex_unlock(&pi); /* hands the lock to the waiting main thread */
    return NULL;
}
int main(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    pthread_t t;
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&robust);
    printf("lock after the owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    printf("consistent: %d\n", pthread_mutex_consistent(&robust));
    printf("unlock: %d\n", pthread_mutex_unlock(&robust));

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&pi, &attr);
    pthread_create(&t, NULL, hold_pi, NULL);
    await_value(&stage, 1);
    printf("trylock while held: %s\n", strerrorname_np(pthread_mutex_trylock(&pi)));
    stage = 2;
    printf("lock: %d\n", pthread_mutex_lock(&pi));
    printf("unlock: %d\n", pthread_mutex_unlock(&pi));
    pthread_join(t, NULL);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_thread_ids_exit_and_affinity(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "ids", THREADS_PRELUDE + r"""
static pid_t tids[3];
static void *record(void *arg) {
    int id = (int)(intptr_t)arg;
    tids[id] = gettid();
    cpu_set_t set;
    CPU_ZERO(&set);
    printf("thread %d: getaffinity %d, ", id, sched_getaffinity(0, sizeof set, &set));
    printf("cpus %d, pid is the process's %d\n", CPU_COUNT(&set) >= 1, getpid() == tids[0]);
    fflush(stdout);
    if (id == 2)
        syscall(SYS_exit, 7); /* this thread only */
    return (void *)(intptr_t)(id * 11);
}
int main(void) {
    tids[0] = gettid();
    printf("main's tid is the pid: %d\n", tids[0] == getpid());
    for (int i = 1; i < 3; i++) {
        pthread_t t;
        void *back;
        pthread_create(&t, NULL, record, (void *)(intptr_t)i);
        pthread_join(t, &back);
        printf("joined %d: %ld\n", i, (long)(intptr_t)back);
    }
    printf("tids distinct: %d\n", tids[0] != tids[1] && tids[1] != tids[2] && tids[0] != tids[2]);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    SHOW(sched_setaffinity(0, sizeof one, &one));
    SHOW(sched_setaffinity(999999, sizeof one, &one));                     /* ESRCH */
    SHOW(syscall(SYS_tgkill, getpid(), 999999, 0));                          /* ESRCH */
    SHOW(syscall(SYS_tgkill, getpid(), gettid(), 0));
    pthread_t t;
    pthread_create(&t, NULL, record, (void *)(intptr_t)0);
    pthread_exit(NULL); /* main ends first: the process ends with the last thread */
}
""")
    run_both(tmp_path, exe)


def test_every_thread_blocked_forever_is_a_deadlock(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "deadlock", THREADS_PRELUDE + r"""
static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned stage;
static void *other(void *arg) {
    (void)arg;
    pthread_mutex_lock(&b);
    stage = 1;
    await_value(&stage, 2);
    pthread_mutex_lock(&a);
    return NULL;
}
int main(void) {
    pthread_t t;
    pthread_mutex_lock(&a);
    pthread_create(&t, NULL, other, NULL);
    await_value(&stage, 1);
    stage = 2;
    printf("locking\n");
    fflush(stdout);
    pthread_mutex_lock(&b);
    return 0;
}
""")
    lego = run_legorun(exe, tmp_path / "run")
    assert lego.stdout == b"locking\n"
    assert lego.returncode == 1
    (line,) = lego.stderr.decode().splitlines()
    assert re.fullmatch(r"legorun: deadlock: all 2 threads of the guest wait forever: "
                        r"thread \d+ on futex 0x[0-9a-f]+; thread \d+ on futex 0x[0-9a-f]+",
                        line), line


CONTENDED = THREADS_PRELUDE + r"""
static long counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg) {
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&lock);
        counter += (long)(intptr_t)arg;
        pthread_mutex_unlock(&lock);
        for (volatile int spin = 0; spin < 50; spin++)
            ;
    }
    return NULL;
}
int main(void) {
    pthread_t t[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, work, (void *)(i + 1));
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("counter %ld\n", counter);
    return 0;
}
"""


def _traced_run(exe: Path, cwd: Path, seed: int) -> tuple[str, str]:
    """(stdout, the --strace log) of a run with --seed."""
    log = cwd / f"strace-{seed}-{len(list(cwd.iterdir()))}.log"
    run = subprocess.run([sys.executable, "-m", "legorun", "--seed", str(seed), "--strace",
                          "-D", str(log), "--stats", str(exe)], cwd=cwd, env=guest_env(),
                         capture_output=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    instructions = re.search(rb"\((\d+) instructions", run.stderr)
    assert instructions is not None, run.stderr.decode(errors="replace")
    return run.stdout.decode() + instructions.group(1).decode(), _comparable(log.read_text())


def _comparable(trace: str) -> str:
    """A trace without what differs between two runs anyway: the pid (the main thread's
    id), the random bytes getrandom returned."""
    pid = trace.split(maxsplit=1)[0]
    trace = re.sub(rf"\b{pid}\b", "PID", trace)
    return re.sub(r'getrandom\(".*?", ', "getrandom(..., ", trace)


def test_a_seed_makes_the_interleaving_reproducible(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "contended", CONTENDED)
    cwd = tmp_path / "runs"
    cwd.mkdir()
    first = _traced_run(exe, cwd, 3)
    second = _traced_run(exe, cwd, 3)
    assert first[0].startswith("counter 18000\n")
    assert first == second  # same output, instruction count and syscall trace
    lines = first[1].splitlines()
    tids = {line.split()[0] for line in lines if not line.startswith("+++")}
    assert len(tids) == 4, tids  # every line names its thread: main and three workers
    assert any(re.match(r"\d+ futex\(", line) for line in lines)
