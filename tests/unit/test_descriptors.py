"""Descriptor syscalls (syscalls/descriptors.py) and pipes (processor/pipe.py): small
static C programs exercise them and print what they observe; each must print the same and
exit the same natively and under legorun, each run in a fresh empty cwd. Blocking waits
(and the deadlock report) are tested in test_waiting.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import guest_programs
import pytest
from guest_programs import run_both


pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

DIRENT64 = r"""
struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};
"""


def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    return guest_programs.compile_c(tmp_path, name, DIRENT64 + source)


def test_getdents64_over_300_entries(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "dents", r"""
#include <dirent.h>
enum { N = 300 };
static char seen[N + 1];

/* Walk the whole directory with getdents64 and a `size`-byte buffer; the order of entries
   is the file system's, so only order-independent facts are printed. */
static void walk(int fd, size_t size) {
    char *buf = malloc(size);
    int total = 0, dots = 0, regular = 0, dirs = 0, calls = 0, bad = 0;
    memset(seen, 0, sizeof seen);
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, size);
        if (n < 0) { perror("getdents64"); exit(1); }
        if (n == 0) break;
        calls++;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (void *)(buf + off);
            if (d->d_reclen % 8 || d->d_reclen < 24 || off + d->d_reclen > n
                || strlen(d->d_name) + 19 >= d->d_reclen || d->d_ino == 0)
                bad++;
            total++;
            int i;
            if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) {
                dots++;
                bad += d->d_type != DT_DIR;
            } else if (!strcmp(d->d_name, "subdir")) {
                dirs++;
                bad += d->d_type != DT_DIR || seen[N]++;
            } else if (sscanf(d->d_name, "entry%03d", &i) == 1 && i >= 0 && i < N - 1) {
                regular++;
                bad += d->d_type != DT_REG || seen[i]++;
            } else {
                bad++;
            }
            off += d->d_reclen;
        }
    }
    printf("buffer %zu: %d entries, %d dots, %d dirs, %d regular, %s calls, %d bad\n",
           size, total, dots, dirs, regular, calls > 1 ? "several" : "one", bad);
    free(buf);
}

int main(void) {
    char name[64];
    mkdir("big", 0755);
    for (int i = 0; i < N - 1; i++) {
        snprintf(name, sizeof name, "big/entry%03d", i);
        close(open(name, O_CREAT | O_WRONLY, 0644));
    }
    mkdir("big/subdir", 0755);
    int fd = SHOW(open("big", O_RDONLY | O_DIRECTORY));
    walk(fd, 1024);
    SHOW(syscall(SYS_getdents64, fd, name, sizeof name));        /* 0: at the end */
    SHOW(lseek(fd, 0, SEEK_SET));
    walk(fd, 1 << 16);
    SHOW(lseek(fd, 0, SEEK_SET));
    walk(fd, 32);                                                /* one entry per call */

    /* d_off of an entry is where the next one is read from. */
    char buf[4096], after[256] = "";
    SHOW(lseek(fd, 0, SEEK_SET));
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    long long resume = -1;
    int k = 0;
    for (long off = 0; off < n; k++) {
        struct linux_dirent64 *d = (void *)(buf + off);
        if (k == 10) resume = d->d_off;
        if (k == 11) strcpy(after, d->d_name);
        off += d->d_reclen;
    }
    SHOW(lseek(fd, resume, SEEK_SET) == resume);
    n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    printf("resumes at the entry after: %d\n",
           n > 0 && !strcmp(((struct linux_dirent64 *)buf)->d_name, after));

    SHOW(lseek(fd, 0, SEEK_SET));
    SHOW(syscall(SYS_getdents64, fd, buf, 8));                   /* EINVAL: too small */
    SHOW(syscall(SYS_getdents64, fd, (void *)8, 4096));          /* EFAULT */
    SHOW(close(fd));
    fd = SHOW(open("big/entry000", O_RDONLY));
    SHOW(syscall(SYS_getdents64, fd, buf, sizeof buf));          /* ENOTDIR */
    SHOW(close(fd));
    SHOW(syscall(SYS_getdents64, 99, buf, sizeof buf));          /* EBADF */
    fd = SHOW(open("big", O_PATH));
    SHOW(syscall(SYS_getdents64, fd, buf, sizeof buf));          /* EBADF: O_PATH */
    SHOW(close(fd));

    SHOW(mkdir("empty", 0755));
    fd = SHOW(open("empty", O_RDONLY | O_DIRECTORY));
    walk(fd, 4096);
    SHOW(close(fd));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_dup_fcntl_and_file_calls(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "dups", r"""
#include <sys/resource.h>
int main(void) {
    char buf[128] = {0};
    struct stat st;

    /* dup2 over stdout: printf lands in the file until stdout is put back. */
    int fd = SHOW(open("out.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644));
    int saved = SHOW(dup(1));
    SHOW(dup2(fd, 1));
    printf("this line goes to out.txt\n");
    fflush(stdout);
    SHOW(dup2(saved, 1));
    SHOW(close(saved));
    SHOW(close(fd));
    fd = SHOW(open("out.txt", O_RDONLY));
    SHOW(read(fd, buf, sizeof buf - 1));
    printf("out.txt holds: %s", buf);
    SHOW(close(fd));

    SHOW(dup2(1, 1));
    SHOW(dup2(99, 5));                                           /* EBADF */
    SHOW(dup2(1, 1 << 20));                                      /* EBADF */
    SHOW(dup3(1, 1, 0));                                         /* EINVAL */
    SHOW(dup3(1, 5, O_NONBLOCK));                                /* EINVAL */
    SHOW(dup3(1, 5, O_CLOEXEC));
    SHOW(fcntl(5, F_GETFD));
    SHOW(dup(99));                                               /* EBADF */
    SHOW(close(99));                                             /* EBADF */
    SHOW(fstat(99, &st));                                        /* EBADF */
    SHOW(write(5, "via dup3\n", 9));

    /* fcntl */
    int f = SHOW(open("data", O_CREAT | O_RDWR | O_TRUNC, 0644));
    SHOW(fcntl(f, F_DUPFD, 10));
    SHOW(fcntl(f, F_DUPFD_CLOEXEC, 10));
    SHOW(fcntl(11, F_GETFD));
    SHOW(fcntl(11, F_SETFD, 0));
    SHOW(fcntl(11, F_GETFD));
    SHOW(fcntl(10, F_GETFD));
    SHOW(fcntl(f, F_DUPFD, -1));                                 /* EINVAL */
    SHOW(fcntl(f, F_DUPFD, 1 << 20));                            /* EINVAL */
    SHOW(fcntl(f, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK));
    SHOW(write(f, "abc", 3));
    SHOW(fcntl(f, F_SETFL, O_APPEND | O_NONBLOCK | O_WRONLY));   /* the mode is kept */
    SHOW(fcntl(f, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK));
    SHOW(fcntl(10, F_GETFL) & O_APPEND);                         /* shared description */
    SHOW(lseek(f, 0, SEEK_SET));
    SHOW(write(f, "def", 3));                                    /* appends */
    SHOW(pread(f, buf, sizeof buf - 1, 0));
    printf("data: %.6s\n", buf);
    SHOW(fcntl(f, F_SETFL, 0));
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    SHOW(fcntl(f, F_GETLK, &lock));
    printf("F_GETLK type is F_UNLCK: %d, start %ld len %ld\n", lock.l_type == F_UNLCK,
           (long)lock.l_start, (long)lock.l_len);
    lock.l_type = F_WRLCK;
    SHOW(fcntl(f, F_SETLK, &lock));
    SHOW(fcntl(f, F_SETLKW, &lock));
    lock.l_type = F_UNLCK;
    SHOW(fcntl(f, F_SETLK, &lock));
    lock.l_type = 7;
    SHOW(fcntl(f, F_SETLK, &lock));                              /* EINVAL */
    int ro = SHOW(open("data", O_RDONLY));
    lock.l_type = F_WRLCK;
    SHOW(fcntl(ro, F_SETLK, &lock));                             /* EBADF: not writable */
    SHOW(fcntl(f, F_GETPIPE_SZ));                                /* EBADF: not a pipe */
    SHOW(fcntl(f, 9999));                                        /* EINVAL */
    SHOW(fcntl(99, F_GETFD));                                    /* EBADF */
    int path_fd = SHOW(open("data", O_PATH));
    SHOW(fcntl(path_fd, F_SETFL, O_APPEND));                     /* EBADF */
    SHOW(fcntl(path_fd, F_GETFL) == O_PATH);
    SHOW(fchmod(path_fd, 0600));                                 /* EBADF */

    /* close_range */
    SHOW(close_range(10, 11, 0));
    SHOW(fcntl(10, F_GETFD));                                    /* EBADF */
    SHOW(fcntl(11, F_GETFD));                                    /* EBADF */
    SHOW(close_range(5, 5, CLOSE_RANGE_CLOEXEC));
    SHOW(fcntl(5, F_GETFD));
    SHOW(close_range(5, 4, 0));                                  /* EINVAL */
    SHOW(close_range(5, 5, 0x80));                               /* EINVAL */
    SHOW(close_range(path_fd, ~0U, 0));
    SHOW(fcntl(path_fd, F_GETFD));                               /* EBADF */

    /* attributes and data through the descriptor */
    SHOW(ftruncate(f, 2));
    SHOW(fstat(f, &st));
    printf("size %ld\n", (long)st.st_size);
    SHOW(ftruncate(f, -1));                                      /* EINVAL */
    SHOW(ftruncate(ro, 0));                                      /* EINVAL: read-only */
    SHOW(ftruncate(99, 0));                                      /* EBADF */
    SHOW(fchmod(f, 0600));
    SHOW(fstat(f, &st));
    printf("mode %o\n", st.st_mode & 07777);
    SHOW(fchmod(99, 0600));                                      /* EBADF */
    SHOW(fsync(f));
    SHOW(fdatasync(f));
    SHOW(syncfs(f));
    SHOW(fsync(99));                                             /* EBADF */
    SHOW(close(ro));
    SHOW(close(f));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_pipes_and_sendfile(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "pipes", r"""
int main(void) {
    char buf[8192] = {0};
    struct stat st;
    signal(SIGPIPE, SIG_IGN);

    int p[2];
    SHOW(pipe(p));
    SHOW(write(p[1], "ping", 4));
    SHOW(read(p[0], buf, sizeof buf));
    printf("round trip: %.4s\n", buf);
    SHOW(fstat(p[0], &st));
    printf("fifo %d\n", S_ISFIFO(st.st_mode));
    SHOW(lseek(p[0], 0, SEEK_CUR));                              /* ESPIPE */
    SHOW(fcntl(p[0], F_GETPIPE_SZ));
    SHOW(fcntl(p[0], F_GETFL));
    SHOW(fcntl(p[1], F_GETFL));
    SHOW(fcntl(p[0], F_GETFD));
    SHOW(read(p[1], buf, 1));                                    /* EBADF */
    SHOW(write(p[0], "x", 1));                                   /* EBADF */
    SHOW(fsync(p[1]));                                           /* EINVAL */
    SHOW(ftruncate(p[1], 0));                                    /* EINVAL */
    SHOW(write(p[1], "last words", 10));
    SHOW(close(p[1]));
    SHOW(read(p[0], buf, 4));
    SHOW(read(p[0], buf, sizeof buf));
    SHOW(read(p[0], buf, sizeof buf));                           /* 0: end of file */
    SHOW(close(p[0]));

    int q[2];
    SHOW(pipe2(q, O_NONBLOCK | O_CLOEXEC));
    SHOW(fcntl(q[0], F_GETFD));
    SHOW(fcntl(q[1], F_GETFL));
    SHOW(read(q[0], buf, sizeof buf));                           /* EAGAIN */
    long total = 0, n;
    memset(buf, 'z', sizeof buf);
    while ((n = write(q[1], buf, 4096)) > 0)
        total += n;
    printf("filled with %ld bytes, then %s\n", total, strerrorname_np(errno));
    SHOW(write(q[1], buf, 1));                                   /* EAGAIN */
    SHOW(read(q[0], buf, 4096));
    SHOW(write(q[1], buf, 8192));                                /* partial: 4096 */
    SHOW(fcntl(q[0], F_SETPIPE_SZ, 4096));                       /* EBUSY: holds more */
    SHOW(fcntl(q[0], F_SETPIPE_SZ, 100000));
    SHOW(fcntl(q[1], F_GETPIPE_SZ));
    SHOW(close(q[0]));
    SHOW(write(q[1], "x", 1));                                   /* EPIPE */
    SHOW(close(q[1]));
    SHOW(pipe2(q, O_DIRECT | 0x40));                             /* EINVAL */

    /* sendfile */
    int src = SHOW(open("src", O_CREAT | O_RDWR | O_TRUNC, 0644));
    static char pattern[10000];
    for (int i = 0; i < 10000; i++)
        pattern[i] = 'a' + i % 26;
    SHOW(write(src, pattern, sizeof pattern));
    int dst = SHOW(open("copy", O_CREAT | O_WRONLY | O_TRUNC, 0644));
    off_t off = 100;
    SHOW(lseek(src, 0, SEEK_SET));
    SHOW(sendfile(dst, src, &off, 5000));
    printf("offset now %ld, file position %ld\n", (long)off, (long)lseek(src, 0, SEEK_CUR));
    SHOW(sendfile(dst, src, NULL, 20000));
    printf("file position %ld\n", (long)lseek(src, 0, SEEK_CUR));
    SHOW(sendfile(dst, src, NULL, 100));                         /* 0: at the end */
    SHOW(fstat(dst, &st));
    printf("copy size %ld\n", (long)st.st_size);
    int check = SHOW(open("copy", O_RDONLY));
    SHOW(pread(check, buf, 3, 0));
    printf("copy starts %.3s\n", buf);
    SHOW(pread(check, buf, 3, 5000));
    printf("then %.3s\n", buf);
    SHOW(sendfile(check, src, NULL, 10));                        /* EBADF: out read-only */
    SHOW(sendfile(dst, 99, NULL, 10));                           /* EBADF */
    int app = SHOW(open("copy", O_WRONLY | O_APPEND));
    SHOW(sendfile(app, src, &off, 10));                          /* EINVAL: O_APPEND */
    off = -1;
    SHOW(sendfile(dst, src, &off, 10));                          /* EINVAL */
    SHOW(pipe(p));
    off = 26;
    SHOW(sendfile(p[1], src, &off, 26));
    SHOW(read(p[0], buf, sizeof buf));
    printf("through a pipe: %.26s\n", buf);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_sigpipe_kills_by_default(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "sigpipe", r"""
int main(void) {
    int p[2];
    SHOW(pipe(p));
    SHOW(close(p[0]));
    SHOW(write(p[1], "x", 1));                                   /* dies of SIGPIPE */
    printf("not reached\n");
    return 0;
}
""")
    run_both(tmp_path, exe, expected_status=128 + 13)
