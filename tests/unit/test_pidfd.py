"""pidfd_open and pidfd_send_signal on the guest's own children and on itself, compared
with native runs."""

from __future__ import annotations

from pathlib import Path

from guest_programs import compile_c, run_both

PROGRAM = r"""
#include <poll.h>
#include <sys/wait.h>

static volatile int got;
static void on_usr1(int sig) { got = sig; }

int main(void) {
    pid_t quick = fork();
    if (quick == 0) {
        usleep(30000);
        _exit(5);
    }
    int fd = syscall(SYS_pidfd_open, quick, 0);
    SHOW(fd >= 0);
    struct pollfd p = {fd, POLLIN, 0};
    SHOW(poll(&p, 1, 0));  /* still running */
    SHOW(poll(&p, 1, 5000));  /* readable once it has exited */
    int status;
    waitpid(quick, &status, 0);
    printf("exit status %d\n", WEXITSTATUS(status));
    char byte;
    SHOW(read(fd, &byte, 1));

    pid_t sleeper = fork();
    if (sleeper == 0) {
        pause();
        _exit(0);
    }
    int target = syscall(SYS_pidfd_open, sleeper, 0);
    SHOW(syscall(SYS_pidfd_send_signal, target, SIGTERM, NULL, 0));
    waitpid(sleeper, &status, 0);
    printf("signaled %d by %d\n", WIFSIGNALED(status), WTERMSIG(status));

    signal(SIGUSR1, on_usr1);
    int self = syscall(SYS_pidfd_open, getpid(), 0);
    SHOW(syscall(SYS_pidfd_send_signal, self, SIGUSR1, NULL, 0));
    printf("handler ran for %d\n", got);
    SHOW(syscall(SYS_pidfd_send_signal, 0, SIGUSR1, NULL, 0));  /* not a pidfd */
    SHOW(syscall(SYS_pidfd_send_signal, self, SIGUSR1, NULL, 3));  /* two scopes */
    SHOW(syscall(SYS_pidfd_open, getpid(), 1));  /* flags */
    SHOW(syscall(SYS_pidfd_open, 0, 0));
    SHOW(fcntl(self, F_GETFD));
    return 0;
}
"""


def test_pidfd(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "pidfd", PROGRAM))
