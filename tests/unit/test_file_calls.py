"""File calls served by the storage manager or the processor's own state (syscalls/locks.py,
caching.py, utimes.py, copy_range.py, the ioctls of fs.py): a static C program locks,
syncs, sets times, copies ranges and asks how much is readable, natively and under legorun,
each in a fresh empty cwd; both must print the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from guest_programs import compile_c, run_both, run_legorun

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def test_flock_sync_times_copy_and_ioctls(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "files", r"""
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <utime.h>
int main(void) {
    char buf[64];
    struct stat st;
    int a = SHOW(open("data", O_CREAT | O_RDWR, 0644));
    int b = SHOW(open("data", O_RDONLY));
    int a2 = SHOW(dup(a));
    SHOW(flock(a, LOCK_SH));
    SHOW(flock(b, LOCK_SH | LOCK_NB));                           /* shared: both */
    SHOW(flock(b, LOCK_EX | LOCK_NB));                           /* EWOULDBLOCK */
    SHOW(flock(a2, LOCK_EX | LOCK_NB));                          /* a too: EWOULDBLOCK */
    SHOW(flock(b, LOCK_UN));
    SHOW(flock(a2, LOCK_EX | LOCK_NB));                          /* same description */
    SHOW(flock(b, LOCK_SH | LOCK_NB));                           /* EWOULDBLOCK */
    SHOW(close(a));
    SHOW(flock(b, LOCK_SH | LOCK_NB));                           /* a2 still holds it */
    SHOW(close(a2));
    SHOW(flock(b, LOCK_EX | LOCK_NB));                           /* released with it */
    SHOW(flock(b, 3));                                           /* EINVAL */
    SHOW(flock(99, LOCK_SH));                                    /* EBADF */
    int p[2];
    SHOW(pipe(p));
    SHOW(flock(p[0], LOCK_EX));

    a = SHOW(open("data", O_RDWR));
    SHOW(write(a, "0123456789abcdef", 16));
    SHOW(lseek(a, 4, SEEK_SET));
    int avail = -1;
    SHOW(ioctl(a, FIONREAD, &avail));
    printf("readable %d\n", avail);
    SHOW(write(p[1], "xyz", 3));
    SHOW(ioctl(p[0], FIONREAD, &avail));
    printf("in the pipe %d\n", avail);
    int on = 1;
    SHOW(ioctl(p[0], FIONBIO, &on));
    SHOW(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    SHOW(read(p[0], buf, sizeof buf));
    SHOW(read(p[0], buf, sizeof buf));                           /* EAGAIN */
    on = 0;
    SHOW(ioctl(p[0], FIONBIO, &on));
    SHOW(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    SHOW(mkdir("dir", 0755));
    int d = SHOW(open("dir", O_RDONLY | O_DIRECTORY));
    SHOW(ioctl(d, FIONREAD, &avail));                            /* ENOTTY */

    sync();
    printf("synced\n");
    SHOW(readahead(a, 0, 4096));
    SHOW(readahead(p[0], 0, 4096));                              /* EINVAL */
    SHOW(readahead(d, 0, 4096));                                 /* EINVAL */
    int w = SHOW(open("data", O_WRONLY));
    SHOW(readahead(w, 0, 10));                                   /* EBADF */

    struct utimbuf ub = {1000000000, 1100000000};
    SHOW(utime("data", &ub));
    SHOW(stat("data", &st));
    printf("times %ld %ld\n", (long)st.st_atime, (long)st.st_mtime);
    struct timeval tv[2] = {{1200000000, 5}, {1300000000, 999999}};
    SHOW(utimes("data", tv));
    SHOW(stat("data", &st));
    printf("times %ld.%09ld %ld.%09ld\n", (long)st.st_atime, st.st_atim.tv_nsec,
           (long)st.st_mtime, st.st_mtim.tv_nsec);
    tv[1].tv_usec = 1000000;
    SHOW(utimes("data", tv));                                    /* EINVAL */
    tv[1].tv_usec = 0;
    SHOW(futimesat(d, "../data", tv));
    SHOW(syscall(SYS_futimesat, a, NULL, tv));
    SHOW(stat("data", &st));
    printf("mtime %ld\n", (long)st.st_mtime);
    SHOW(utime("missing", NULL));                                /* ENOENT */
    SHOW(utimes("data", NULL));
    SHOW(stat("data", &st));
    printf("now-ish %d\n", st.st_mtime > 1300000000);

    int out = SHOW(open("copy", O_CREAT | O_RDWR | O_TRUNC, 0644));
    loff_t in_off = 2, out_off = 0;
    SHOW(copy_file_range(a, &in_off, out, &out_off, 5, 0));
    printf("offsets %ld %ld\n", (long)in_off, (long)out_off);
    SHOW(lseek(a, 10, SEEK_SET));
    SHOW(copy_file_range(a, NULL, out, NULL, 100, 0));            /* to the end: 6 */
    printf("positions %ld %ld\n", (long)lseek(a, 0, SEEK_CUR), (long)lseek(out, 0, SEEK_CUR));
    SHOW(copy_file_range(a, NULL, out, NULL, 100, 0));            /* 0: at the end */
    SHOW(pread(out, buf, sizeof buf, 0));
    printf("copy %.11s\n", buf);
    SHOW(copy_file_range(a, NULL, out, NULL, 1, 1));             /* EINVAL: flags */
    SHOW(copy_file_range(a, NULL, p[1], NULL, 1, 0));            /* EINVAL: a pipe */
    SHOW(copy_file_range(d, NULL, out, NULL, 1, 0));             /* EISDIR */
    SHOW(copy_file_range(w, NULL, out, NULL, 1, 0));             /* EBADF: not readable */
    int app = SHOW(open("copy", O_WRONLY | O_APPEND));
    SHOW(copy_file_range(a, NULL, app, NULL, 1, 0));             /* EBADF: O_APPEND */
    in_off = 0, out_off = 4;
    SHOW(copy_file_range(a, &in_off, a, &out_off, 8, 0));        /* EINVAL: overlap */
    out_off = 16;
    SHOW(copy_file_range(a, &in_off, a, &out_off, 8, 0));
    in_off = -1;
    SHOW(copy_file_range(a, &in_off, out, NULL, 8, 0));          /* EINVAL */
    SHOW(fstat(a, &st));
    printf("size %ld\n", (long)st.st_size);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_a_flock_only_the_guest_could_release_is_a_deadlock(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "flocked", r"""
#include <sys/file.h>
int main(void) {
    int a = open("data", O_CREAT | O_RDWR, 0644), b = open("data", O_RDONLY);
    flock(a, LOCK_EX);
    printf("waiting\n");
    fflush(stdout);
    flock(b, LOCK_SH);
    return 0;
}
""")
    lego = run_legorun(exe, tmp_path / "run")
    assert lego.stdout == b"waiting\n"
    assert lego.returncode == 1
    assert lego.stderr.decode().startswith(
        "legorun: deadlock: the guest's only thread waits forever for a flock on ")


def test_device_files(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "devices", r"""
#include <poll.h>
#include <sys/sysmacros.h>
int main(void) {
    char buf[4096];
    struct stat st;
    int zero = SHOW(open("/dev/zero", O_RDONLY));
    memset(buf, 'x', sizeof buf);
    SHOW(read(zero, buf, sizeof buf));
    int zeros = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        zeros += buf[i] == 0;
    printf("zeros %d\n", zeros);
    int null = SHOW(open("/dev/null", O_RDWR));
    SHOW(write(null, buf, sizeof buf));
    SHOW(read(null, buf, sizeof buf));                           /* 0: end of file */
    SHOW(fstat(null, &st));
    printf("character device %d rdev %d:%d\n", S_ISCHR(st.st_mode), major(st.st_rdev),
           minor(st.st_rdev));
    int random = SHOW(open("/dev/urandom", O_RDONLY));
    SHOW(read(random, buf, 64));
    struct pollfd fds[3] = {{zero, POLLIN, 0}, {null, POLLOUT, 0}, {random, POLLIN, 0}};
    SHOW(poll(fds, 3, 0));
    printf("revents %#x %#x %#x\n", fds[0].revents, fds[1].revents, fds[2].revents);
    SHOW(lseek(null, 100, SEEK_SET));
    int tty = open("/dev/tty", O_RDWR);
    printf("tty: %s\n", tty >= 0 ? "opened" : strerrorname_np(errno));
    SHOW(open("/dev/no-such-device", O_RDONLY));                 /* ENOENT */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_files_unlinked_or_renamed_while_open(tmp_path: Path) -> None:
    """The storage manager keeps no open files: the processor keeps an unlinked file alive
    until its last close, and a renamed one open under its new name."""
    exe = compile_c(tmp_path, "unlinked", r"""
#include <dirent.h>
static void list(void) {  /* the names a reader of the directory sees, hidden ones aside */
    DIR *d = opendir(".");
    struct dirent *e;
    int visible = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') visible++;
    closedir(d);
    printf("visible entries: %d\n", visible);
}
int main(void) {
    char buf[32] = {0};
    struct stat st;
    int fd = SHOW(open("spill", O_CREAT | O_RDWR, 0600));
    SHOW(unlink("spill"));
    SHOW(access("spill", F_OK));                                  /* ENOENT */
    SHOW(write(fd, "kept after unlink", 17));
    SHOW(lseek(fd, 5, SEEK_SET));
    SHOW(read(fd, buf, sizeof buf - 1));
    printf("read back: %s\n", buf);
    SHOW(fstat(fd, &st) == 0 && st.st_size == 17);
    int again = SHOW(open("spill", O_CREAT | O_RDWR, 0600));     /* a new, empty file */
    SHOW(fstat(again, &st) == 0 && st.st_size == 0);
    list();
    SHOW(close(fd));
    SHOW(close(again));
    SHOW(unlink("spill"));
    list();
    FILE *tmp = tmpfile();
    fputs("through tmpfile", tmp);
    rewind(tmp);
    printf("tmpfile: %s\n", fgets(buf, sizeof buf, tmp));
    fclose(tmp);
    SHOW(mkdir("dir", 0755));
    int moved = SHOW(open("dir/file", O_CREAT | O_WRONLY, 0644));
    SHOW(write(moved, "one ", 4));
    SHOW(rename("dir", "moved"));
    SHOW(write(moved, "two", 3));
    SHOW(close(moved));
    int in = SHOW(open("moved/file", O_RDONLY));
    memset(buf, 0, sizeof buf);
    SHOW(read(in, buf, sizeof buf - 1));
    printf("after rename: %s\n", buf);
    list();
    return 0;
}
""")
    run_both(tmp_path, exe)
    assert sorted(p.name for p in (tmp_path / "legorun").iterdir()) == ["moved"]


def test_a_mapped_page_past_the_end_of_its_file_is_a_bus_error(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "bus", r"""
#include <sys/mman.h>
static void on_bus(int sig, siginfo_t *info, void *ctx) {
    printf("signal %d code %d\n", sig, info->si_code);
    exit(3);
}
int main(void) {
    char page[8192];
    memset(page, 'a', sizeof page);
    int fd = SHOW(open("f", O_CREAT | O_RDWR | O_TRUNC, 0644));
    SHOW(write(fd, page, sizeof page));
    char *p = mmap(0, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("first page %c\n", p[0]);
    SHOW(ftruncate(fd, 100));
    struct sigaction sa = {0};
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, 0);
    printf("second page %c\n", p[4096]);
    return 0;
}
""")
    run_both(tmp_path, exe, expected_status=3)
