"""Waiting on descriptors (syscalls/poll.py, syscalls/epoll.py, processor/wait.py): small
static C programs poll, select and epoll pipes, sockets, eventfds and regular files with
timeouts of zero and a few milliseconds, natively and under legorun, and must print the
same. A wait that only the process itself could end hangs natively, so its deadlock report
is checked under legorun alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import guest_programs
import pytest
from guest_programs import run_both, run_legorun

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

HEADERS = r"""
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
"""


def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    return guest_programs.compile_c(tmp_path, name, HEADERS + source)


def test_poll_and_ppoll(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "poll", r"""
static void show_poll(struct pollfd *fds, int n, int timeout) {
    int ready = poll(fds, n, timeout);
    printf("poll(%d, %d ms) = %d%s", n, timeout, ready, ready < 0 ? strerrorname_np(errno) : "");
    for (int i = 0; i < n; i++)
        printf(" [%d: %#x]", fds[i].fd, fds[i].revents);
    printf("\n");
}

int main(void) {
    int p[2], sv[2];
    char buf[8];
    SHOW(pipe(p));
    SHOW(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int file = SHOW(open("file", O_CREAT | O_RDWR, 0644));
    struct pollfd fds[6] = {
        {p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {sv[0], POLLIN | POLLOUT, 0},
        {file, POLLIN | POLLOUT | POLLPRI, 0}, {-1, POLLIN, 0}, {sv[1], POLLIN | POLLRDHUP, 0},
    };
    show_poll(fds, 6, 0);
    show_poll(fds, 1, 0);
    show_poll(fds, 1, 20);                                       /* times out */
    SHOW(write(p[1], "x", 1));
    show_poll(fds, 1, -1);                                       /* ready at once */
    SHOW(write(sv[0], "abc", 3));
    show_poll(fds + 5, 1, 10);
    SHOW(shutdown(sv[0], SHUT_WR));
    show_poll(fds + 5, 1, 10);
    SHOW(close(p[1]));
    SHOW(read(p[0], buf, 1));
    show_poll(fds, 1, 10);                                       /* POLLHUP: writer gone */
    struct pollfd bad[2] = {{77, POLLIN, 0}, {p[0], POLLIN, 0}};
    show_poll(bad, 2, -1);                                       /* POLLNVAL, at once */
    SHOW(poll(NULL, 0, 15));                                     /* a plain sleep */
    SHOW(poll((struct pollfd *)8, 1, 0));                        /* EFAULT */

    struct timespec ts = {0, 5000000};
    sigset_t mask;
    sigemptyset(&mask);
    SHOW(ppoll(fds, 1, &ts, &mask));
    SHOW(syscall(SYS_ppoll, fds, 1, &ts, &mask, 4));             /* EINVAL: sigset size */
    ts.tv_nsec = -1;
    SHOW(ppoll(fds, 1, &ts, NULL));                              /* EINVAL */
    struct pollfd empty = {p[0], 0, 0};
    SHOW(ppoll(&empty, 1, NULL, NULL));                          /* POLLHUP is always on */
    printf("revents %#x\n", empty.revents);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_select_and_pselect(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "select", r"""
static void show_sets(const char *what, int result, fd_set *r, fd_set *w, int n) {
    printf("%s = %d%s:", what, result, result < 0 ? strerrorname_np(errno) : "");
    for (int fd = 0; fd < n && result > 0; fd++)
        printf(" %d%s%s", fd, FD_ISSET(fd, r) ? "r" : "", FD_ISSET(fd, w) ? "w" : "");
    printf("\n");
}

int main(void) {
    int p[2];
    SHOW(pipe(p));
    int file = SHOW(open("file", O_CREAT | O_RDWR, 0644));
    fd_set r, w;
    struct timeval tv = {0, 0};
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(p[0], &r); FD_SET(p[1], &w); FD_SET(file, &r);
    int n = file + 1;
    show_sets("select ready", select(n, &r, &w, NULL, &tv), &r, &w, n);
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(p[0], &r);
    tv.tv_usec = 20000;
    show_sets("select timeout", select(n, &r, &w, NULL, &tv), &r, &w, n);
    printf("time left %ld.%06ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
    SHOW(write(p[1], "x", 1));
    FD_SET(p[0], &r);
    show_sets("select readable", select(n, &r, NULL, NULL, NULL), &r, &w, n);
    FD_ZERO(&r);
    FD_SET(50, &r);
    tv.tv_usec = 0;
    show_sets("select closed fd", select(51, &r, NULL, NULL, &tv), &r, &w, 51);  /* EBADF */
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv.tv_sec = -1;
    show_sets("select negative", select(n, &r, NULL, NULL, &tv), &r, &w, n);     /* EINVAL */
    tv.tv_sec = 0;
    tv.tv_usec = 1500000;                                        /* carries into seconds */
    show_sets("select big usec", select(n, &r, NULL, NULL, &tv), &r, &w, n);
    show_sets("select nfds<0", select(-1, &r, NULL, NULL, &tv), &r, &w, n);      /* EINVAL */
    SHOW(select(0, NULL, NULL, NULL, &(struct timeval){0, 10000}));  /* a plain sleep */

    struct timespec ts = {0, 1000000};
    sigset_t mask;
    sigemptyset(&mask);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    show_sets("pselect", pselect(n, &r, NULL, NULL, &ts, &mask), &r, &w, n);
    SHOW(close(p[1]));
    char buf[4];
    SHOW(read(p[0], buf, 4));
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    show_sets("pselect eof", pselect(n, &r, &w, NULL, NULL, NULL), &r, &w, n);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_epoll(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "epoll", r"""
static void show_wait(int ep, int max, int timeout) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, max, timeout);
    printf("epoll_wait(max %d, %d ms) = %d%s", max, timeout, n, n < 0 ? strerrorname_np(errno) : "");
    for (int i = 0; i < n; i++)
        printf(" [data %llu: %#x]", (unsigned long long)ev[i].data.u64, ev[i].events);
    printf("\n");
}

int main(void) {
    int p[2], sv[2];
    char buf[16];
    SHOW(pipe(p));
    SHOW(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int ep = SHOW(epoll_create1(EPOLL_CLOEXEC));
    SHOW(fcntl(ep, F_GETFD));
    SHOW(epoll_create1(1));                                      /* EINVAL */
    SHOW(epoll_create(0));                                       /* EINVAL */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 100};
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));               /* EEXIST */
    int dup_read = SHOW(dup(p[0]));
    ev.data.u64 = 101;
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, dup_read, &ev));           /* same file, other fd */
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 200;
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
    show_wait(ep, 8, 0);
    show_wait(ep, 8, 20);                                        /* times out */
    SHOW(write(p[1], "ab", 2));
    show_wait(ep, 8, -1);
    show_wait(ep, 1, 0);                                         /* maxevents */
    SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, dup_read, NULL));
    SHOW(close(dup_read));
    SHOW(write(sv[0], "x", 1));
    show_wait(ep, 8, 10);                                        /* edge: reported once */
    show_wait(ep, 8, 10);
    SHOW(write(sv[0], "y", 1));
    show_wait(ep, 8, 10);                                        /* a new edge */
    ev.events = EPOLLOUT | EPOLLONESHOT;
    ev.data.u64 = 300;
    SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
    show_wait(ep, 8, 10);
    show_wait(ep, 8, 10);                                        /* one-shot: disabled */
    SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));               /* re-armed */
    show_wait(ep, 8, 10);
    SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, 77, &ev));                 /* EBADF */
    SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL));             /* ENOENT */
    SHOW(epoll_ctl(ep, 9, p[0], &ev));                           /* EINVAL */
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));                 /* EINVAL: itself */
    int file = SHOW(open("file", O_CREAT | O_RDWR, 0644));
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, file, &ev));               /* EPERM: regular file */
    SHOW(epoll_ctl(p[0], EPOLL_CTL_ADD, sv[0], &ev));            /* EINVAL: not epoll */
    SHOW(epoll_ctl(file, EPOLL_CTL_ADD, file, &ev));             /* EPERM first */
    SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], (void *)8));        /* EFAULT */
    show_wait(ep, 0, 0);                                         /* EINVAL */
    show_wait(p[0], 8, 0);                                       /* EINVAL: not epoll */
    SHOW(read(ep, buf, 8));                                      /* EINVAL */

    /* Closing the last descriptor of a watched file removes it, and its peer sees the
       close: the write end's reader gets end of file. */
    int q[2];
    SHOW(pipe(q));
    int ep2 = SHOW(epoll_create(1));
    ev.events = EPOLLIN;
    ev.data.u64 = 7;
    SHOW(epoll_ctl(ep2, EPOLL_CTL_ADD, q[1], &ev));
    SHOW(epoll_ctl(ep2, EPOLL_CTL_ADD, q[0], &ev));
    SHOW(close(q[1]));
    SHOW(read(q[0], buf, sizeof buf));                           /* 0: end of file */
    show_wait(ep2, 8, 0);                                        /* only the reader: HUP */

    /* An epoll set inside another. */
    int outer = SHOW(epoll_create1(0));
    ev.events = EPOLLIN;
    ev.data.u64 = 42;
    SHOW(epoll_ctl(outer, EPOLL_CTL_ADD, ep2, &ev));
    show_wait(outer, 8, 0);

    /* epoll_pwait and epoll_pwait2 */
    sigset_t mask;
    sigemptyset(&mask);
    struct epoll_event got[4];
    SHOW(epoll_pwait(ep2, got, 4, 0, &mask));
    SHOW(syscall(SYS_epoll_pwait, ep2, got, 4, 0, &mask, 4));    /* EINVAL: sigset size */
    struct timespec ts = {0, 2000000};
    SHOW(syscall(SYS_epoll_pwait2, ep, got, 4, &ts, NULL, 8));
    ts.tv_nsec = 2000000000;
    SHOW(syscall(SYS_epoll_pwait2, ep, got, 4, &ts, NULL, 8));   /* EINVAL */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_eventfd(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "eventfd", r"""
#include <sys/timerfd.h>
int main(void) {
    uint64_t value = 0;
    int efd = SHOW(eventfd(3, 0));
    SHOW(fcntl(efd, F_GETFL));
    SHOW(read(efd, &value, sizeof value));
    printf("value %llu\n", (unsigned long long)value);
    value = 5;
    SHOW(write(efd, &value, sizeof value));
    value = 2;
    SHOW(write(efd, &value, sizeof value));
    SHOW(read(efd, &value, 4));                                  /* EINVAL: too short */
    SHOW(read(efd, &value, sizeof value));
    printf("value %llu\n", (unsigned long long)value);
    value = ~0ULL;
    SHOW(write(efd, &value, sizeof value));                      /* EINVAL */
    struct pollfd pfd = {efd, POLLIN | POLLOUT, 0};
    SHOW(poll(&pfd, 1, 0));
    printf("revents %#x\n", pfd.revents);

    int sem = SHOW(eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC));
    SHOW(fcntl(sem, F_GETFL) & O_NONBLOCK);
    SHOW(fcntl(sem, F_GETFD));
    for (int i = 0; i < 3; i++) {
        value = 0;
        SHOW(read(sem, &value, sizeof value));                   /* 1, 1, then EAGAIN */
        printf("value %llu\n", (unsigned long long)value);
    }
    value = 0xfffffffffffffffeULL;
    SHOW(write(sem, &value, sizeof value));
    value = 1;
    SHOW(write(sem, &value, sizeof value));                      /* EAGAIN: would overflow */
    SHOW(eventfd(0, 0x40));                                      /* EINVAL */
    SHOW(syscall(SYS_eventfd, 7));
    struct stat st;
    SHOW(fstat(efd, &st));
    printf("mode %o\n", st.st_mode);

    /* timerfd: a relative one-shot, then a periodic timer read after it fired. */
    int tfd = SHOW(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
    SHOW(read(tfd, &value, sizeof value));                       /* EAGAIN: disarmed */
    struct itimerspec its = {{0, 0}, {0, 5000000}}, old;
    SHOW(timerfd_settime(tfd, 0, &its, NULL));
    SHOW(timerfd_gettime(tfd, &old));
    printf("armed %d\n", old.it_value.tv_sec > 0 || old.it_value.tv_nsec > 0);
    pfd.fd = tfd;
    pfd.events = POLLIN;
    SHOW(poll(&pfd, 1, 1000));
    SHOW(read(tfd, &value, sizeof value));
    printf("expirations %llu\n", (unsigned long long)value);
    int blocking = SHOW(timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC));
    its.it_value.tv_nsec = 3000000;
    SHOW(timerfd_settime(blocking, 0, &its, &old));
    SHOW(read(blocking, &value, sizeof value));                  /* waits for it */
    printf("expirations %llu\n", (unsigned long long)value);
    its.it_value.tv_nsec = 2000000000;
    SHOW(timerfd_settime(blocking, 0, &its, NULL));              /* EINVAL */
    SHOW(timerfd_create(99, 0));                                 /* EINVAL */
    SHOW(timerfd_create(CLOCK_MONOTONIC, 1));                    /* EINVAL */
    SHOW(timerfd_gettime(efd, &old));                            /* EINVAL: not a timer */
    return 0;
}
""")
    run_both(tmp_path, exe)


@pytest.mark.parametrize("wait, waited_for", [
    ("char c; read(p[0], &c, 1);", "pipe:["),
    ("static char big[1 << 20]; write(p[1], big, sizeof big);", "to become writable"),
    ("char c; recv(sv[0], &c, 1, 0);", "socket:["),
    ("uint64_t v; read(efd, &v, 8);", "anon_inode:[eventfd]"),
    ("struct pollfd f = {p[0], POLLIN, 0}; poll(&f, 1, -1);", "pipe:["),
    ("int ep = epoll_create1(0); struct epoll_event e = {EPOLLIN, {0}};"
     " epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e); epoll_wait(ep, &e, 1, -1);",
     "anon_inode:[eventpoll]"),
])
def test_a_wait_only_the_guest_could_end_is_a_deadlock(tmp_path: Path, wait: str,
                                                        waited_for: str) -> None:
    exe = compile_c(tmp_path, "deadlock", r"""
int main(void) {
    int p[2], sv[2];
    int efd = eventfd(0, 0);
    pipe(p);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    printf("waiting\n");
    fflush(stdout);
    WAIT
    printf("not reached\n");
    return 0;
}
""".replace("WAIT", wait))
    lego = run_legorun(exe, tmp_path / "run")
    assert lego.stdout == b"waiting\n"
    assert lego.returncode == 1
    (line,) = lego.stderr.decode().splitlines()
    assert line.startswith("legorun: deadlock: the guest's only thread waits forever for ")
    assert waited_for in line
