"""signalfd: blocked signals read as struct signalfd_siginfo, through read, poll and epoll,
from the process itself and from a child. Compared with native runs."""

from __future__ import annotations

from pathlib import Path

from guest_programs import compile_c, run_both

PROGRAM = r"""
#include <poll.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

static void show_info(int fd) {
    struct signalfd_siginfo info;
    long n = read(fd, &info, sizeof info);
    printf("read %ld: signo %u code %d from me %d int %d\n", n, info.ssi_signo,
           info.ssi_code, info.ssi_pid == (unsigned)getpid(), info.ssi_int);
}

int main(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    SHOW(fd >= 0);
    struct signalfd_siginfo info;
    SHOW(read(fd, &info, sizeof info));  /* nothing pending: EAGAIN */
    SHOW(read(fd, &info, 10));  /* too small: EINVAL */
    struct pollfd p = {fd, POLLIN, 0};
    SHOW(poll(&p, 1, 0));
    raise(SIGUSR1);
    SHOW(poll(&p, 1, 0));
    printf("revents %#x\n", p.revents);
    show_info(fd);
    SHOW(poll(&p, 1, 0));
    union sigval value = {.sival_int = 1234};
    sigqueue(getpid(), SIGUSR2, value);
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = 7};
    SHOW(epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event));
    struct epoll_event got;
    SHOW(epoll_wait(epoll, &got, 1, 1000));
    printf("epoll data %u\n", got.data.u32);
    show_info(fd);

    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        usleep(20000);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    int blocking = signalfd(-1, &mask, 0);  /* a blocking read waits for the child's kill */
    struct signalfd_siginfo from_child;
    SHOW(read(blocking, &from_child, sizeof from_child));
    printf("signo %u from the child %d\n", from_child.ssi_signo,
           from_child.ssi_pid == (unsigned)child);
    waitpid(child, NULL, 0);

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    SHOW(signalfd(fd, &mask, 0) == fd);  /* a new mask for the same file */
    SHOW(signalfd(0, &mask, 0));  /* not a signalfd: EINVAL */
    SHOW(signalfd(-1, &mask, 4));  /* a bad mask size: EINVAL */
    return 0;
}
"""


def test_signalfd(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "signalfd", PROGRAM))
