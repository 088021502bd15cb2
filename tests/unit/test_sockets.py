"""Sockets (syscalls/sockets.py on host sockets, processor/sockets.py): small static C
programs use socketpair, loopback TCP and UDP, Unix stream and datagram sockets within one
process and print what they observe; each must print the same and exit the same natively
and under legorun, each run in a fresh empty cwd."""

from __future__ import annotations

import shutil
from pathlib import Path

import guest_programs
import pytest
from guest_programs import run_both

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

SOCKET_HEADERS = r"""
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/uio.h>
"""


def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    return guest_programs.compile_c(tmp_path, name, SOCKET_HEADERS + source)


def test_socketpair_ping_pong(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "pair", r"""
int main(void) {
    int sv[2];
    char buf[64] = {0};
    struct stat st;
    SHOW(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    for (int round = 0; round < 3; round++) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "ping %d", round);
        SHOW(write(sv[0], msg, len));
        SHOW(read(sv[1], buf, sizeof buf));
        printf("got \"%.*s\"\n", len, buf);
        SHOW(send(sv[1], "pong", 4, 0));
        SHOW(recv(sv[0], buf, sizeof buf, 0));
    }
    SHOW(fstat(sv[0], &st));
    printf("socket %d\n", S_ISSOCK(st.st_mode));
    SHOW(fcntl(sv[0], F_GETFL));
    SHOW(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));            /* EAGAIN */
    SHOW(send(sv[0], "peek", 4, 0));
    SHOW(recv(sv[1], buf, 2, MSG_PEEK));
    SHOW(recv(sv[1], buf, sizeof buf, 0));
    SHOW(shutdown(sv[0], SHUT_WR));
    SHOW(read(sv[1], buf, sizeof buf));                          /* 0: end of file */
    SHOW(shutdown(sv[0], 7));                                    /* EINVAL */
    SHOW(lseek(sv[0], 0, SEEK_SET));                             /* ESPIPE */
    SHOW(close(sv[1]));
    signal(SIGPIPE, SIG_IGN);
    SHOW(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    SHOW(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    SHOW(fcntl(sv[1], F_GETFD));
    SHOW(close(sv[1]));
    SHOW(write(sv[0], "x", 1));                                  /* EPIPE */
    SHOW(send(sv[0], "x", 1, MSG_NOSIGNAL));                     /* EPIPE */
    SHOW(socketpair(AF_INET, SOCK_STREAM, 0, sv));               /* EOPNOTSUPP */
    SHOW(socketpair(AF_UNIX, SOCK_STREAM, 0, (int *)8));         /* EFAULT */

    /* Datagrams keep their boundaries, and MSG_TRUNC reports a datagram's length. */
    SHOW(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    SHOW(send(sv[0], "first", 5, 0));
    SHOW(send(sv[0], "second!", 7, 0));
    SHOW(recv(sv[1], buf, 3, MSG_TRUNC));
    SHOW(recv(sv[1], buf, sizeof buf, 0));
    printf("got \"%.7s\"\n", buf);

    /* sendmsg / recvmsg with several buffers. */
    struct iovec out[2] = {{"abc", 3}, {"defgh", 5}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 2};
    SHOW(sendmsg(sv[0], &m, 0));
    char a[4] = {0}, b[10] = {0};
    struct iovec in[2] = {{a, 2}, {b, sizeof b}};
    struct msghdr r = {.msg_iov = in, .msg_iovlen = 2};
    SHOW(recvmsg(sv[1], &r, 0));
    printf("\"%s\" \"%s\" flags %d namelen %d\n", a, b, r.msg_flags, (int)r.msg_namelen);
    SHOW(recv(sv[1], buf, 1, MSG_DONTWAIT));                     /* EAGAIN */
    SHOW(read(0 /* not a socket */, buf, 0));
    SHOW(send(0, "x", 1, 0));                                    /* ENOTSOCK */
    SHOW(send(99, "x", 1, 0));                                   /* EBADF */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_loopback_tcp_echo_within_one_process(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "tcp", r"""
static void show_addr(const char *what, struct sockaddr_in *a, socklen_t len) {
    printf("%s: len %d family %d addr %s port %s\n", what, (int)len, a->sin_family,
           inet_ntoa(a->sin_addr), ntohs(a->sin_port) ? "set" : "0");
}

int main(void) {
    char buf[256] = {0};
    int one = 1, value = 0;
    socklen_t len = sizeof value;
    int server = SHOW(socket(AF_INET, SOCK_STREAM, 0));
    SHOW(setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    SHOW(getsockopt(server, SOL_SOCKET, SO_REUSEADDR, &value, &len));
    printf("SO_REUSEADDR %d len %d\n", value, (int)len);
    SHOW(getsockopt(server, SOL_SOCKET, SO_TYPE, &value, &len));
    printf("SO_TYPE %d\n", value);
    SHOW(setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, 1));  /* EINVAL: too short */
    SHOW(setsockopt(server, SOL_SOCKET, 9999, &one, sizeof one)); /* ENOPROTOOPT */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SHOW(bind(server, (struct sockaddr *)&addr, sizeof addr));
    SHOW(bind(server, (struct sockaddr *)&addr, sizeof addr));   /* EINVAL: bound */
    SHOW(bind(server, (struct sockaddr *)&addr, 200));           /* EINVAL: too long */
    len = sizeof addr;
    SHOW(getsockname(server, (struct sockaddr *)&addr, &len));
    show_addr("server", &addr, len);
    SHOW(accept4(server, NULL, NULL, SOCK_NONBLOCK));            /* EINVAL: not listening */
    SHOW(listen(server, 4));

    int client = SHOW(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int rc = connect(client, (struct sockaddr *)&addr, sizeof addr);
    printf("connect: %s\n", rc == 0 || errno == EINPROGRESS ? "started" : strerrorname_np(errno));
    struct sockaddr_in peer;
    len = sizeof peer;
    int conn = SHOW(accept(server, (struct sockaddr *)&peer, &len));
    show_addr("peer", &peer, len);
    len = 2;
    SHOW(getpeername(client, (struct sockaddr *)&peer, &len));   /* truncated copy */
    printf("full length %d\n", (int)len);
    SHOW(setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));

    for (int i = 0; i < 3; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "message %d", i);
        SHOW(send(client, msg, n, 0));
        SHOW(recv(conn, buf, sizeof buf, 0));                    /* blocking: waits */
        SHOW(send(conn, buf, n, 0));                             /* echo */
        int got = 0;
        while (got < n) {
            int r = recv(client, buf + got, sizeof buf - got, 0);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) break;
            got += r;
        }
        printf("echo: %.*s\n", got, buf);
    }
    /* A big transfer that does not fit the socket buffers at once: the sender is
       non-blocking, the receiver drains as it goes. */
    static char big[1 << 20], back[1 << 20];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    size_t sent = 0, received = 0;
    while (received < sizeof big) {
        if (sent < sizeof big) {
            ssize_t n = send(client, big + sent, sizeof big - sent, 0);
            if (n > 0) sent += n;
        }
        ssize_t n = recv(conn, back + received, sizeof back - received, MSG_DONTWAIT);
        if (n > 0) received += n;
    }
    printf("transferred %zu bytes, same %d\n", received, memcmp(big, back, sizeof big) == 0);
    SHOW(close(client));
    SHOW(recv(conn, buf, sizeof buf, 0));                        /* 0: peer closed */
    SHOW(recv(conn, buf, sizeof buf, MSG_WAITALL));
    SHOW(close(conn));
    SHOW(close(server));
    SHOW(socket(AF_INET, 77, 0));                                /* EINVAL */
    SHOW(socket(12345, SOCK_STREAM, 0));                         /* EAFNOSUPPORT */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_udp_and_ipv6_loopback(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "udp", r"""
int main(void) {
    char buf[64] = {0};
    int a = SHOW(socket(AF_INET, SOCK_DGRAM, 0));
    int b = SHOW(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SHOW(bind(b, (struct sockaddr *)&addr, sizeof addr));
    socklen_t len = sizeof addr;
    SHOW(getsockname(b, (struct sockaddr *)&addr, &len));
    SHOW(sendto(a, "datagram", 8, 0, (struct sockaddr *)&addr, sizeof addr));
    struct sockaddr_in from;
    len = sizeof from;
    SHOW(recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len));
    printf("from %s len %d: %.8s\n", inet_ntoa(from.sin_addr), (int)len, buf);
    SHOW(recvfrom(b, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL)); /* EAGAIN */

    struct mmsghdr msgs[3];
    struct iovec iov[3] = {{"one", 3}, {"two", 3}, {"three", 5}};
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < 3; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addr;
        msgs[i].msg_hdr.msg_namelen = sizeof addr;
    }
    SHOW(sendmmsg(a, msgs, 3, 0));
    printf("lengths %u %u %u\n", msgs[0].msg_len, msgs[1].msg_len, msgs[2].msg_len);
    char bufs[4][8];
    struct iovec riov[4];
    struct mmsghdr rmsgs[4];
    memset(rmsgs, 0, sizeof rmsgs);
    memset(bufs, 0, sizeof bufs);
    for (int i = 0; i < 4; i++) {
        riov[i].iov_base = bufs[i];
        riov[i].iov_len = sizeof bufs[i];
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    SHOW(recvmmsg(b, rmsgs, 4, MSG_WAITFORONE, NULL));
    printf("%s %s %s\n", bufs[0], bufs[1], bufs[2]);

    int six = socket(AF_INET6, SOCK_STREAM, 0);
    if (six < 0) {
        printf("no IPv6\n");
        return 0;
    }
    int one = 1;
    SHOW(setsockopt(six, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (bind(six, (struct sockaddr *)&a6, sizeof a6) < 0) {
        printf("no IPv6 loopback\n");
        return 0;
    }
    SHOW(listen(six, 1));
    len = sizeof a6;
    SHOW(getsockname(six, (struct sockaddr *)&a6, &len));
    int c6 = SHOW(socket(AF_INET6, SOCK_STREAM, 0));
    SHOW(connect(c6, (struct sockaddr *)&a6, sizeof a6));        /* blocking connect */
    int s6 = SHOW(accept(six, NULL, NULL));
    SHOW(write(c6, "six", 3));
    SHOW(read(s6, buf, sizeof buf));
    printf("len %d, got %.3s\n", (int)len, buf);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_unix_sockets_with_paths(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "unix", r"""
int main(void) {
    char buf[64] = {0};
    int server = SHOW(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    SHOW(mkdir("dir", 0755));
    SHOW(chdir("dir"));
    strcpy(addr.sun_path, "server.sock");                     /* relative to the new cwd */
    SHOW(bind(server, (struct sockaddr *)&addr, sizeof addr));
    struct stat st;
    SHOW(stat("server.sock", &st));
    printf("socket file %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 0777);
    SHOW(bind(server, (struct sockaddr *)&addr, sizeof addr));   /* EINVAL: bound */
    int other = SHOW(socket(AF_UNIX, SOCK_STREAM, 0));
    SHOW(bind(other, (struct sockaddr *)&addr, sizeof addr));    /* EADDRINUSE */
    SHOW(listen(server, 2));
    int client = SHOW(socket(AF_UNIX, SOCK_STREAM, 0));
    SHOW(connect(client, (struct sockaddr *)&addr, sizeof addr));
    int conn = SHOW(accept4(server, NULL, NULL, SOCK_CLOEXEC));
    SHOW(fcntl(conn, F_GETFD));
    SHOW(write(client, "hello", 5));
    SHOW(read(conn, buf, sizeof buf));
    struct ucred cred;
    socklen_t len = sizeof cred;
    SHOW(getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len));
    printf("peer is me: %d\n", cred.pid == getpid() && cred.uid == getuid());
    strcpy(addr.sun_path, "missing.sock");
    SHOW(connect(other, (struct sockaddr *)&addr, sizeof addr)); /* ENOENT */

    /* An abstract address lives in no directory. */
    int abs = SHOW(socket(AF_UNIX, SOCK_DGRAM, 0));
    struct sockaddr_un an = {.sun_family = AF_UNIX};
    snprintf(an.sun_path + 1, sizeof an.sun_path - 1, "legorun-test-%d", getpid());
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(an.sun_path + 1);
    SHOW(bind(abs, (struct sockaddr *)&an, alen));
    int sender = SHOW(socket(AF_UNIX, SOCK_DGRAM, 0));
    SHOW(sendto(sender, "abstract", 8, 0, (struct sockaddr *)&an, alen));
    SHOW(recv(abs, buf, sizeof buf, 0));
    struct sockaddr_un got;
    len = sizeof got;
    SHOW(getsockname(abs, (struct sockaddr *)&got, &len));
    printf("same name %d\n", len == alen && memcmp(&got, &an, alen) == 0);
    SHOW(unlink("server.sock"));
    return 0;
}
""")
    run_both(tmp_path, exe)
