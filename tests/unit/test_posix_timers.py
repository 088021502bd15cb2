"""POSIX timers (timer_create and friends): how each notifies (a signal to the process or to
one thread, glibc's SIGEV_THREAD, none), what the delivered siginfo says, overruns,
absolute settings, ids and errors, default actions, and what fork and execve do to them.
Differential: the programs print facts, never times."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guest_programs import TIMEOUT, compile_c, guest_env, run_both

TIMER_HELPERS = r"""
#include <pthread.h>
#include <semaphore.h>
#ifndef sigev_notify_thread_id  /* named in glibc 2.37 */
#define sigev_notify_thread_id _sigev_un._tid
#endif

static void arm(timer_t timer, int flags, long sec, long nsec, long interval_nsec) {
    struct itimerspec setting = {{0, interval_nsec}, {sec, nsec}};
    if (timer_settime(timer, flags, &setting, NULL))
        printf("timer_settime failed: %s\n", strerrorname_np(errno));
}
"""


def test_notifications_siginfo_overruns_and_errors(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "timers", TIMER_HELPERS + r"""
static volatile sig_atomic_t caught;
static volatile int caught_code, caught_value, caught_timerid, caught_overrun;

static void on_timer(int sig, siginfo_t *info, void *context) {
    (void)context;
    caught_code = info->si_code;
    caught_value = info->si_value.sival_int;
    caught_timerid = info->si_timerid;
    caught_overrun = info->si_overrun;
    caught = sig;
}

static void await_handler(int sig) {
    sigset_t none;
    sigemptyset(&none);
    while (caught != sig)
        sigsuspend(&none);  /* the timer's signal is blocked outside of it */
    printf("signal %d: si_code %d si_value %d si_timerid %d si_overrun %d\n", sig,
           caught_code, caught_value, caught_timerid, caught_overrun);
    caught = 0;
}

static int worker_tid;
static sem_t worker_ready, notified;
static volatile int notified_with;

static void *worker(void *unused) {
    (void)unused;
    worker_tid = gettid();
    sem_post(&worker_ready);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    siginfo_t info;
    int sig = sigwaitinfo(&usr2, &info);
    printf("worker thread took signal %d: si_code %d si_value %d\n", sig, info.si_code,
           info.si_value.sival_int);
    return NULL;
}

static void on_expiry(union sigval value) {
    notified_with = value.sival_int;
    sem_post(&notified);
}

int main(void) {
    struct sigaction action = {0};
    action.sa_sigaction = on_timer;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &action, NULL);
    sigaction(SIGALRM, &action, NULL);
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGUSR2);
    sigaddset(&blocked, SIGALRM);
    sigaddset(&blocked, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &blocked, NULL);

    /* SIGEV_SIGNAL: a handler sees SI_TIMER, the timer id and sigev_value */
    struct sigevent event = {0};
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGUSR1;
    event.sigev_value.sival_int = 42;
    timer_t usr1_timer, alarm_timer, silent, rt_timer, thread_timer, glibc_thread_timer;
    SHOW(timer_create(CLOCK_MONOTONIC, &event, &usr1_timer));
    printf("first id %ld\n", (long)usr1_timer);
    arm(usr1_timer, 0, 0, 10000000, 0);
    await_handler(SIGUSR1);

    /* No sigevent: SIGALRM with the timer id as sigev_value */
    SHOW(timer_create(CLOCK_REALTIME, NULL, &alarm_timer));
    printf("second id %ld\n", (long)alarm_timer);
    arm(alarm_timer, 0, 0, 5000000, 0);
    await_handler(SIGALRM);

    /* SIGEV_NONE: only the time left */
    event.sigev_notify = SIGEV_NONE;
    SHOW(timer_create(CLOCK_BOOTTIME, &event, &silent));
    struct itimerspec now, old;
    SHOW(timer_gettime(silent, &now));
    printf("disarmed: %d\n", now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0);
    arm(silent, 0, 10, 0, 500000000);
    SHOW(timer_gettime(silent, &now));
    printf("about 10 s left: %d, interval %ld ms\n",
           now.it_value.tv_sec == 9 || now.it_value.tv_sec == 10,
           now.it_interval.tv_nsec / 1000000);
    struct itimerspec off = {0};
    SHOW(timer_settime(silent, 0, &off, &old));
    printf("old setting: about 10 s left: %d, interval %ld ms\n",
           old.it_value.tv_sec == 9 || old.it_value.tv_sec == 10,
           old.it_interval.tv_nsec / 1000000);
    SHOW(timer_getoverrun(silent));

    /* TIMER_ABSTIME: not before the deadline; a deadline past fires at once */
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGRTMIN;
    event.sigev_value.sival_int = 7;
    SHOW(timer_create(CLOCK_MONOTONIC, &event, &rt_timer));
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long deadline_ns = start.tv_nsec + 20000000;
    arm(rt_timer, TIMER_ABSTIME, start.tv_sec + deadline_ns / 1000000000,
        deadline_ns % 1000000000, 0);
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN);
    siginfo_t info;
    SHOW(sigwaitinfo(&rt, &info) == SIGRTMIN);
    clock_gettime(CLOCK_MONOTONIC, &end);
    long waited_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
    printf("absolute: si_code %d si_value %d, waited at least 19 ms: %d\n", info.si_code,
           info.si_value.sival_int, waited_ms >= 19);
    arm(rt_timer, TIMER_ABSTIME, start.tv_sec, start.tv_nsec, 0);
    SHOW(sigwaitinfo(&rt, &info) == SIGRTMIN);

    /* A periodic timer whose signal stays blocked: one signal, the rest are overruns */
    arm(rt_timer, 0, 0, 1000000, 1000000);
    struct timespec nap = {0, 60000000};
    nanosleep(&nap, NULL);
    SHOW(sigwaitinfo(&rt, &info) == SIGRTMIN);
    printf("periodic: si_code %d, overruns counted: %d, timer_getoverrun agrees: %d\n",
           info.si_code, info.si_overrun >= 10, timer_getoverrun(rt_timer) == info.si_overrun);
    arm(rt_timer, 0, 0, 0, 0);
    struct timespec zero = {0, 0};
    sigtimedwait(&rt, &info, &zero);  /* one more may have come before the disarming */

    /* SIGEV_THREAD_ID: to that thread */
    sem_init(&worker_ready, 0, 0);
    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);
    sem_wait(&worker_ready);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = SIGUSR2;
    event.sigev_value.sival_int = 9;
    event.sigev_notify_thread_id = worker_tid;
    SHOW(timer_create(CLOCK_MONOTONIC, &event, &thread_timer));
    arm(thread_timer, 0, 0, 10000000, 0);
    pthread_join(thread, NULL);

    /* SIGEV_THREAD: glibc runs the function in a thread, on top of SIGEV_THREAD_ID */
    sem_init(&notified, 0, 0);
    event.sigev_notify = SIGEV_THREAD;
    event.sigev_notify_function = on_expiry;
    event.sigev_notify_attributes = NULL;
    event.sigev_value.sival_int = 5;
    SHOW(timer_create(CLOCK_MONOTONIC, &event, &glibc_thread_timer));
    arm(glibc_thread_timer, 0, 0, 10000000, 0);
    sem_wait(&notified);
    printf("SIGEV_THREAD function ran with %d\n", notified_with);
    SHOW(timer_delete(glibc_thread_timer));

    /* Deleted timers and bad arguments (raw calls: the kernel's own answers) */
    int id = -1;
    struct itimerspec bad = {{0, 0}, {0, 1000000000}};
    SHOW(timer_delete(usr1_timer));
    SHOW(syscall(SYS_timer_delete, (long)usr1_timer));
    SHOW(syscall(SYS_timer_settime, (long)usr1_timer, 0, &off, NULL));
    SHOW(syscall(SYS_timer_gettime, (long)usr1_timer, &now));
    SHOW(syscall(SYS_timer_getoverrun, (long)usr1_timer));
    SHOW(syscall(SYS_timer_settime, (long)alarm_timer, 0, NULL, NULL));
    SHOW(syscall(SYS_timer_settime, (long)alarm_timer, 0, &bad, NULL));
    SHOW(syscall(SYS_timer_create, 100, NULL, &id));
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC_RAW, NULL, &id));
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, (void *)8, &id));
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = 65;
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, &event, &id));
    event.sigev_signo = SIGUSR1;
    event.sigev_notify = 7;
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, &event, &id));
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_notify_thread_id = 1;  /* not a thread of this process */
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, &event, &id));
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, (void *)8));
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &id));
    printf("next id %d\n", id);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_a_timer_signal_with_the_default_action_ends_a_busy_process(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "busy", TIMER_HELPERS + r"""
int main(void) {
    timer_t timer;
    SHOW(timer_create(CLOCK_MONOTONIC, NULL, &timer));
    arm(timer, 0, 0, 20000000, 0);
    for (volatile unsigned long spins = 0;; spins++)
        ;
}
""")
    run_both(tmp_path, exe, expected_status=128 + 14)


def test_fork_does_not_inherit_timers_and_execve_deletes_them(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "inherit", TIMER_HELPERS + r"""
#include <sys/wait.h>
int main(int argc, char **argv) {
    int id = -1;
    struct itimerspec now;
    if (argc > 1) {
        SHOW(syscall(SYS_timer_gettime, 0, &now));
        SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &id));
        printf("first id after execve %d\n", id);
        return 0;
    }
    SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &id));
    arm((timer_t)(long)id, 0, 10, 0, 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        SHOW(syscall(SYS_timer_gettime, id, &now));
        SHOW(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &id));
        printf("the child's first id %d\n", id);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exit status %d\n", status);
    SHOW(syscall(SYS_timer_gettime, id, &now));
    printf("still armed: %d\n", now.it_value.tv_sec > 0);
    fflush(stdout);
    execl(argv[0], argv[0], "again", (char *)NULL);
    return 1;
}
""")
    run_both(tmp_path, exe)


def _timeout_and_sleep() -> tuple[str, str]:
    timeout, sleep = shutil.which("timeout"), shutil.which("sleep")
    if timeout is None or sleep is None:
        pytest.skip("coreutils timeout and sleep are not installed")
    return timeout, sleep


@pytest.mark.parametrize("limit, nap, status", [("5", "0.1", 0), ("0.2", "5", 124)])
def test_coreutils_timeout(tmp_path: Path, limit: str, nap: str, status: int) -> None:
    """timeout(1) arms a POSIX timer (timer_create, SIGALRM) and kills the command when
    it expires."""
    timeout, sleep = _timeout_and_sleep()
    argv = [timeout, limit, sleep, nap]
    native = subprocess.run(argv, capture_output=True, timeout=TIMEOUT)
    lego = subprocess.run([sys.executable, "-m", "legorun", *argv], cwd=tmp_path,
                          env=guest_env(), capture_output=True, timeout=TIMEOUT)
    assert native.returncode == status
    assert lego.returncode == status, lego.stderr.decode(errors="replace")
    assert lego.stdout == native.stdout
    assert b"unimplemented syscall" not in lego.stderr, lego.stderr.decode(errors="replace")
