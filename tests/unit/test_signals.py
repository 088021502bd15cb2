"""Signal delivery: handlers for faults and for signals sent to oneself or by timers, the
state a handler must not disturb, default actions with the shell's status, and signals
sent to legorun from outside. Differential where the output is deterministic."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from guest_programs import TIMEOUT, compile_c, guest_env, run_both, run_legorun


def test_alarm_interrupts_pause(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "alarm", r"""
#include <sys/time.h>
static volatile int alarms;
static void on_alarm(int sig) { alarms += sig == SIGALRM; }
int main(void) {
    signal(SIGALRM, on_alarm);
    SHOW(alarm(1));
    SHOW(alarm(1));          /* the first one's time left, rounded: 1 */
    SHOW(pause());           /* EINTR once the handler ran */
    printf("alarms %d\n", alarms);
    struct itimerval left;
    SHOW(getitimer(ITIMER_REAL, &left));
    printf("disarmed %d\n", left.it_value.tv_sec == 0 && left.it_value.tv_usec == 0);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_a_handler_that_returns_runs_the_faulting_instruction_again(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "retry", r"""
#include <sys/mman.h>
static char *page;
static int faults;
static void grant(int sig, siginfo_t *info, void *context) {
    (void)context;
    faults++;
    printf("signal %d code %d at page offset %ld\n", sig, info->si_code,
           (long)((char *)info->si_addr - page));
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}
int main(void) {
    page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction action = {0};
    action.sa_sigaction = grant;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, NULL);
    page[100] = 42;  /* SEGV_ACCERR, then the store is made again and succeeds */
    printf("stored %d after %d fault(s)\n", page[100], faults);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_a_handler_does_not_disturb_the_interrupted_registers(tmp_path: Path) -> None:
    """Timer signals land in the middle of floating-point code (x87 and SSE); the handler
    does floating-point work of its own; the results must be exactly the native ones."""
    exe = compile_c(tmp_path, "fpstate", r"""
#include <sys/time.h>
static volatile double sink;
static volatile int ticks;
static void on_tick(int sig) {
    double x = sig;
    long double y = sig;
    for (int i = 0; i < 50; i++) {
        x = x * 1.000001 + 0.5;   /* clobbers xmm registers, as handlers do */
        y = y * 1.000001L + 0.5L; /* and the x87 stack */
    }
    sink = x + (double)y;
    ticks++;
}
int main(void) {
    signal(SIGALRM, on_tick);
    struct itimerval every = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &every, NULL);
    double a = 1.0, b = 0.0;
    long double c = 1.0L;
    for (long i = 1; i <= 4000000 || ticks == 0; i++) {
        a = a * 1.0000001 + 1e-9;
        b += 1.0 / (double)(i % 1000 + 1);
        c = c * 1.00000001L + 1e-12L;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("a=%.12f b=%.9f c=%.12Lf interrupted=%d\n", a, b, c, ticks > 0);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_unhandled_sigterm_to_oneself_ends_with_the_shell_status(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "term", r"""
int main(void) {
    printf("before\n");
    fflush(stdout);
    kill(getpid(), SIGTERM);
    printf("not reached\n");
    return 0;
}
""")
    run_both(tmp_path, exe, expected_status=128 + signal.SIGTERM)
    lego = run_legorun(exe, tmp_path / "again")
    assert lego.stderr == b"Terminated\n"


def test_a_timer_signal_without_handler_ends_the_process(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "alarm_default", r"""
#include <sys/time.h>
int main(void) {
    struct itimerval soon = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &soon, NULL);
    for (volatile unsigned long spin = 0;; spin++)
        ;
}
""")
    run_both(tmp_path, exe, expected_status=128 + signal.SIGALRM)
    lego = run_legorun(exe, tmp_path / "again")
    assert lego.stderr == b"Alarm clock\n"


GUEST_WAITS_FOR_SIGNALS = r"""
static volatile int got;
static void on_signal(int sig) { got = sig; }
int main(int argc, char **argv) {
    if (argc > 1) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }
    printf("ready\n");
    fflush(stdout);
    for (volatile unsigned long spin = 0; !got; spin++)
        ;                          /* compute until a handler ran */
    printf("handled %d\n", got);
    fflush(stdout);
    got = 0;
    pause();                       /* wait with every thread blocked */
    printf("handled %d\n", got);
    return 0;
}
"""


def _started(exe: Path, *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "legorun", str(exe), *args],
                               env=guest_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def test_signals_from_outside_reach_the_guests_handlers(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "outside", GUEST_WAITS_FOR_SIGNALS)
    process = _started(exe, "handle")
    assert process.stdout is not None
    process.send_signal(signal.SIGTERM)  # while the guest computes
    assert process.stdout.readline() == b"handled 15\n"
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # while it waits in pause()
    out, err = process.communicate(timeout=TIMEOUT)
    assert (out, err, process.returncode) == (b"handled 2\n", b"", 0)


def test_a_signal_from_outside_without_handler_ends_legorun_as_it_would_the_guest(
        tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "outside", GUEST_WAITS_FOR_SIGNALS)
    process = _started(exe)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGTERM


def test_sigchld_from_a_child_reaches_the_handler_with_its_status(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "sigchld", r"""
#include <sys/wait.h>
static volatile pid_t from;
static volatile int code, status;
static void on_child(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    from = info->si_pid;
    code = info->si_code;
    status = info->si_status;
}
int main(void) {
    struct sigaction action = {0};
    action.sa_sigaction = on_child;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGCHLD, &action, NULL);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t child = fork();
    if (child == 0)
        _exit(3);
    sigsuspend(&old);
    printf("from the child %d, CLD_EXITED %d, status %d\n", from == child,
           code == CLD_EXITED, status);
    int wstatus;
    SHOW(waitpid(child, &wstatus, 0) == child);
    printf("exit status %d\n", WEXITSTATUS(wstatus));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_ppoll_and_pselect_wait_under_their_temporary_mask(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "pmask", r"""
#include <poll.h>
#include <sys/select.h>
static volatile int got;
static void on_usr1(int sig) { (void)sig; got++; }
static int blocked(void) { sigset_t cur; sigprocmask(SIG_SETMASK, NULL, &cur); return sigismember(&cur, SIGUSR1); }
int main(void) {
    signal(SIGUSR1, on_usr1);
    sigset_t block, empty;
    sigemptyset(&block); sigaddset(&block, SIGUSR1); sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    int p[2]; pipe(p);
    struct pollfd fd = {p[0], POLLIN, 0};
    struct timespec ts = {0, 1000000};
    int r = ppoll(&fd, 1, &ts, &empty);
    printf("ppoll timeout: %d got %d blocked %d\n", r, got, blocked());
    raise(SIGUSR1);
    printf("pending, got %d\n", got);
    r = ppoll(&fd, 1, &ts, &empty);
    printf("ppoll with pending: %d %s got %d blocked %d\n", r, r < 0 ? strerrorname_np(errno) : "-", got, blocked());
    raise(SIGUSR1);
    fd_set rd; FD_ZERO(&rd); FD_SET(p[0], &rd);
    r = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &empty);
    printf("pselect with pending: %d %s got %d blocked %d\n", r, r < 0 ? strerrorname_np(errno) : "-", got, blocked());
    r = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &block);
    printf("pselect timeout: %d got %d blocked %d\n", r, got, blocked());
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_a_forked_child_starts_with_no_pending_signals(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "pending_fork", r"""
#include <sys/wait.h>
int main(void) {
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    sigpending(&pending);
    printf("parent pending %d\n", sigismember(&pending, SIGUSR1));
    fflush(stdout);
    if (fork() == 0) {
        sigpending(&pending);
        printf("child pending %d\n", sigismember(&pending, SIGUSR1));
        return 0;
    }
    wait(NULL);
    sigpending(&pending);
    printf("parent still pending %d\n", sigismember(&pending, SIGUSR1));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_an_interval_timer_armed_at_exit_ends_with_the_guest(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "armed_at_exit", r"""
#include <sys/time.h>
static void tick(int sig) { (void)sig; }
int main(void) {
    signal(SIGALRM, tick);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &every_ms, 0);
    for (volatile long i = 0; i < 20000000; i++)
        ;
    puts("done with the timer still armed");
    return 0;
}
""")
    run_both(tmp_path, exe)
