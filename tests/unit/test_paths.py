"""Path-based file syscalls (syscalls/paths.py): small static C programs exercise them and
print what they observe; each must print the same and exit the same natively and under
legorun, each run in a fresh empty cwd."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from guest_programs import compile_c, run_both


pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

def test_open_stat_and_errors(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "open_stat", r"""
int main(void) {
    umask(022);
    char buf[64] = {0};
    struct stat st;
    SHOW(mkdir("d", 0755));
    SHOW(mkdir("d", 0755));                                      /* EEXIST */
    int fd = SHOW(open("d/f", O_CREAT | O_WRONLY | O_TRUNC, 0666));
    SHOW(write(fd, "hello", 5));
    SHOW(close(fd));
    SHOW(stat("d/f", &st));
    printf("size %ld mode %o regular %d\n", (long)st.st_size, st.st_mode & 07777,
           S_ISREG(st.st_mode));
    SHOW(open("missing", O_RDONLY));                             /* ENOENT */
    SHOW(open("d/f/x", O_RDONLY));                               /* ENOTDIR */
    SHOW(open("d", O_WRONLY));                                   /* EISDIR */
    SHOW(open("d/f", O_CREAT | O_EXCL | O_WRONLY, 0600));        /* EEXIST */
    SHOW(open("d/f", O_RDONLY | O_DIRECTORY));                   /* ENOTDIR */
    SHOW(rmdir("d"));                                            /* ENOTEMPTY */
    SHOW(unlink("d"));                                           /* EISDIR */
    SHOW(rmdir("d/f"));                                          /* ENOTDIR */
    SHOW(stat("", &st));                                         /* ENOENT */
    SHOW(stat("missing/x", &st));                                /* ENOENT */
    char *longpath = malloc(5000);
    memset(longpath, 'a', 4999);
    longpath[4999] = 0;
    SHOW(open(longpath, O_RDONLY));                              /* ENAMETOOLONG */
    SHOW(syscall(SYS_stat, longpath, &st));                      /* ENAMETOOLONG */

    fd = SHOW(open("d/f", O_RDWR | O_APPEND));
    SHOW(write(fd, " world", 6));
    SHOW(pread(fd, buf, sizeof buf - 1, 0));
    printf("contents '%s'\n", buf);
    SHOW(close(fd));
    fd = SHOW(creat("d/c", 0644));
    SHOW(write(fd, "x", 1));
    SHOW(read(fd, buf, 1));                                      /* EBADF: write-only */
    SHOW(fcntl(fd, F_GETFL) & O_ACCMODE);
    SHOW(close(fd));
    fd = SHOW(open("d/c", O_WRONLY | O_TRUNC | O_CLOEXEC));
    SHOW(fcntl(fd, F_GETFD));
    SHOW(fstat(fd, &st));
    printf("after O_TRUNC size %ld\n", (long)st.st_size);
    SHOW(close(fd));

    int dir = SHOW(open("d", O_RDONLY | O_DIRECTORY));
    SHOW(read(dir, buf, 1));                                     /* EISDIR */
    fd = SHOW(openat(dir, "f", O_RDONLY));
    memset(buf, 0, sizeof buf);
    SHOW(read(fd, buf, sizeof buf - 1));
    printf("openat read '%s'\n", buf);
    SHOW(openat(fd, "f", O_RDONLY));                             /* ENOTDIR: not a dir fd */
    SHOW(openat(12345, "f", O_RDONLY));                          /* EBADF */
    SHOW(openat(12345, "/", O_RDONLY | O_DIRECTORY) >= 0);       /* absolute: dirfd unused */
    SHOW(close(fd));

    int path_fd = SHOW(open("d/f", O_PATH));
    SHOW(read(path_fd, buf, 1));                                 /* EBADF */
    SHOW(fstat(path_fd, &st));
    printf("O_PATH fstat size %ld\n", (long)st.st_size);
    SHOW(fcntl(path_fd, F_GETFL) == O_PATH);
    SHOW(close(path_fd));
    SHOW(close(dir));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_cwd_relative_paths_and_readlink(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "cwd_prog", r"""
int main(int argc, char **argv) {
    char cwd0[PATH_MAX], cwd[PATH_MAX], buf[PATH_MAX];
    SHOW(getcwd(cwd0, sizeof cwd0) != NULL);
    SHOW(mkdir("sub", 0755));
    SHOW(mkdir("sub/inner", 0700));
    int fd = SHOW(open("sub/inner/file", O_CREAT | O_WRONLY, 0644));
    SHOW(write(fd, "relative", 8));
    SHOW(close(fd));
    SHOW(chdir("sub"));
    SHOW(getcwd(cwd, sizeof cwd) != NULL);
    printf("cwd is old cwd + /sub: %d\n",
           strncmp(cwd, cwd0, strlen(cwd0)) == 0 && strcmp(cwd + strlen(cwd0), "/sub") == 0);
    fd = SHOW(open("inner/file", O_RDONLY));
    memset(buf, 0, sizeof buf);
    SHOW(read(fd, buf, 100));
    printf("read '%s'\n", buf);
    SHOW(close(fd));
    SHOW(chdir("inner/../inner/."));
    SHOW(getcwd(cwd, sizeof cwd) != NULL);
    printf("cwd ends with /sub/inner: %d\n",
           strlen(cwd) > 10 && strcmp(cwd + strlen(cwd) - 10, "/sub/inner") == 0);
    SHOW(access("file", R_OK | W_OK));
    SHOW(chdir("file"));                                         /* ENOTDIR */
    SHOW(chdir("nowhere"));                                      /* ENOENT */
    SHOW(chdir(".."));
    SHOW(symlink("inner", "alias"));
    SHOW(chdir("alias"));
    SHOW(getcwd(cwd, sizeof cwd) != NULL);
    printf("cwd through a symlink is physical: %d\n",
           strcmp(cwd + strlen(cwd) - 10, "/sub/inner") == 0);
    int dir = SHOW(open("..", O_RDONLY | O_DIRECTORY));
    SHOW(chdir("/"));
    SHOW(fchdir(dir));
    SHOW(getcwd(cwd, sizeof cwd) != NULL);
    printf("fchdir back to sub: %d\n", strcmp(cwd + strlen(cwd) - 4, "/sub") == 0);
    SHOW(close(dir));
    SHOW(fchdir(1));                                             /* ENOTDIR */
    SHOW(syscall(SYS_getcwd, buf, 2));                           /* ERANGE */
    SHOW(syscall(SYS_getcwd, buf, sizeof buf) == (long)strlen(cwd) + 1);
    SHOW(chdir(cwd0));

    ssize_t n = SHOW(readlink("/proc/self/exe", buf, sizeof buf - 1));
    buf[n > 0 ? n : 0] = 0;
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    printf("exe ends with program name: %d\n",
           strlen(buf) > strlen(name) && strcmp(buf + strlen(buf) - strlen(name), name) == 0
           && buf[strlen(buf) - strlen(name) - 1] == '/');
    SHOW(readlink("sub/alias", buf, sizeof buf));
    SHOW(readlink("sub/alias", buf, 3));                         /* truncated */
    buf[3] = 0;
    printf("truncated '%s'\n", buf);
    SHOW(readlink("sub/inner", buf, sizeof buf));                /* EINVAL: not a link */
    SHOW(readlink("sub/alias", buf, 0));                         /* EINVAL */
    SHOW(readlink("", buf, sizeof buf));                         /* ENOENT */
    SHOW(readlink("missing", buf, sizeof buf));                  /* ENOENT */
    int link_fd = SHOW(open("sub/alias", O_PATH | O_NOFOLLOW));
    n = SHOW(readlinkat(link_fd, "", buf, sizeof buf));
    buf[n > 0 ? n : 0] = 0;
    printf("readlinkat of an O_PATH link fd '%s'\n", buf);
    SHOW(close(link_fd));
    int sub = SHOW(open("sub", O_RDONLY | O_DIRECTORY));
    n = SHOW(readlinkat(sub, "alias", buf, sizeof buf));
    buf[n > 0 ? n : 0] = 0;
    printf("readlinkat '%s'\n", buf);
    SHOW(mkdirat(sub, "made", 0755));
    SHOW(faccessat(sub, "made", X_OK, 0));
    SHOW(unlinkat(sub, "made", 0));                              /* EISDIR */
    SHOW(unlinkat(sub, "made", AT_REMOVEDIR));
    SHOW(unlinkat(sub, "inner", AT_REMOVEDIR));                  /* ENOTEMPTY */
    SHOW(unlinkat(sub, "alias", 0));
    SHOW(unlinkat(sub, "alias", 0x8000));                        /* EINVAL */
    SHOW(close(sub));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_namespace_changes_and_attributes(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "names", r"""
int main(void) {
    umask(022);
    struct stat st;
    int fd = SHOW(open("f", O_CREAT | O_WRONLY, 0644));
    SHOW(write(fd, "0123456789", 10));
    SHOW(close(fd));

    SHOW(link("f", "hard"));
    SHOW(stat("f", &st));
    printf("nlink %ld\n", (long)st.st_nlink);
    SHOW(link("f", "hard"));                                     /* EEXIST */
    SHOW(link("missing", "x"));                                  /* ENOENT */
    SHOW(rename("hard", "moved"));
    SHOW(access("hard", F_OK));                                  /* ENOENT */
    SHOW(access("moved", R_OK));
    SHOW(access("moved", 0100));                                 /* EINVAL */
    SHOW(rename("missing", "x"));                                /* ENOENT */
    SHOW(mkdir("dir", 0755));
    SHOW(mkdir("dir/sub", 0755));
    SHOW(rename("f", "dir"));                                    /* EISDIR */
    SHOW(rename("dir", "f"));                                    /* ENOTDIR */
    SHOW(rename("dir/sub", "dir/sub/deeper"));                   /* EINVAL */
    SHOW(renameat(AT_FDCWD, "moved", AT_FDCWD, "dir/moved"));
    SHOW(renameat2(AT_FDCWD, "dir/moved", AT_FDCWD, "f", RENAME_NOREPLACE));  /* EEXIST */
    SHOW(renameat2(AT_FDCWD, "nothere", AT_FDCWD, "f", RENAME_NOREPLACE));    /* ENOENT */
    SHOW(renameat2(AT_FDCWD, "dir/moved", AT_FDCWD, "fresh", RENAME_NOREPLACE));
    SHOW(renameat2(AT_FDCWD, "fresh", AT_FDCWD, "f", 0));
    SHOW(stat("f", &st));
    printf("nlink after rename over own link %ld\n", (long)st.st_nlink);

    SHOW(symlink("f", "link"));
    SHOW(symlink("f", "link"));                                  /* EEXIST */
    SHOW(symlink("", "empty"));                                  /* ENOENT */
    SHOW(symlink("nowhere", "dangling"));
    SHOW(stat("dangling", &st));                                 /* ENOENT */
    SHOW(lstat("dangling", &st));
    printf("dangling is a link: %d\n", S_ISLNK(st.st_mode));
    SHOW(faccessat(AT_FDCWD, "dangling", F_OK, 0));              /* ENOENT */
    SHOW(syscall(SYS_faccessat2, AT_FDCWD, "dangling", F_OK, AT_SYMLINK_NOFOLLOW));
    SHOW(syscall(SYS_faccessat2, AT_FDCWD, "f", R_OK, 0x4000));  /* EINVAL */
    SHOW(linkat(AT_FDCWD, "link", AT_FDCWD, "link2", 0));
    SHOW(lstat("link2", &st));
    printf("linkat without follow links the symlink: %d\n", S_ISLNK(st.st_mode));
    SHOW(linkat(AT_FDCWD, "link", AT_FDCWD, "hard2", AT_SYMLINK_FOLLOW));
    SHOW(lstat("hard2", &st));
    printf("linkat with follow links the file: %d size %ld\n", S_ISREG(st.st_mode),
           (long)st.st_size);
    SHOW(symlinkat("dir", AT_FDCWD, "dirlink"));
    SHOW(unlinkat(AT_FDCWD, "dirlink", AT_REMOVEDIR));           /* ENOTDIR */
    SHOW(rmdir("dirlink/"));                                     /* ENOTDIR */

    SHOW(truncate("f", 4));
    SHOW(stat("f", &st));
    printf("size after truncate %ld\n", (long)st.st_size);
    SHOW(truncate("dir", 0));                                    /* EISDIR */
    SHOW(truncate("f", -1));                                     /* EINVAL */
    SHOW(chmod("f", 0600));
    SHOW(stat("f", &st));
    printf("mode %o\n", st.st_mode & 07777);
    SHOW(fchmodat(AT_FDCWD, "link", 0640, 0));                   /* follows the link */
    SHOW(stat("f", &st));
    printf("mode via link %o\n", st.st_mode & 07777);
    SHOW(chmod("missing", 0600));                                /* ENOENT */

    struct timespec times[2] = {{1000, 0}, {2000, 500}};
    SHOW(utimensat(AT_FDCWD, "f", times, 0));
    SHOW(stat("f", &st));
    printf("atime %ld.%09ld mtime %ld.%09ld\n", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {3000, 0}};
    SHOW(utimensat(AT_FDCWD, "f", omit, 0));
    SHOW(stat("f", &st));
    printf("atime %ld mtime %ld\n", (long)st.st_atim.tv_sec, (long)st.st_mtim.tv_sec);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    SHOW(utimensat(AT_FDCWD, "f", bad, 0));                      /* EINVAL */
    struct timespec both_omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    SHOW(utimensat(AT_FDCWD, "missing", both_omit, 0));         /* 0: nothing to do */
    time_t before = time(NULL);
    SHOW(utimensat(AT_FDCWD, "f", NULL, 0));
    SHOW(stat("f", &st));
    printf("times NULL means now: %d\n", st.st_mtim.tv_sec >= before
           && st.st_mtim.tv_sec <= time(NULL) && st.st_atim.tv_sec >= before);
    fd = SHOW(open("f", O_RDONLY));
    SHOW(futimens(fd, times));
    SHOW(fstat(fd, &st));
    printf("futimens mtime %ld\n", (long)st.st_mtim.tv_sec);
    SHOW(close(fd));
    SHOW(utimensat(AT_FDCWD, "missing", times, 0));              /* ENOENT */

    struct statfs a, b;
    SHOW(statfs(".", &a));
    fd = SHOW(open(".", O_RDONLY | O_DIRECTORY));
    SHOW(fstatfs(fd, &b));
    printf("statfs agree: %d bsize>0: %d\n", a.f_type == b.f_type && a.f_bsize == b.f_bsize
           && a.f_namelen == b.f_namelen, a.f_bsize > 0);
    SHOW(close(fd));
    SHOW(statfs("missing", &a));                                 /* ENOENT */

    /* The old non-*at calls, which glibc no longer uses itself. */
    char buf[64] = {0};
    SHOW(syscall(SYS_mkdir, "old", 0700));
    SHOW(syscall(SYS_mkdir, "old", 0700));                       /* EEXIST */
    fd = SHOW(syscall(SYS_open, "old/file", O_CREAT | O_WRONLY, 0600));
    SHOW(close(fd));
    SHOW(syscall(SYS_stat, "old/file", &st));
    printf("old stat mode %o\n", st.st_mode & 07777);
    SHOW(syscall(SYS_symlink, "file", "old/sym"));
    SHOW(syscall(SYS_lstat, "old/sym", &st));
    printf("old lstat is a link: %d\n", S_ISLNK(st.st_mode));
    SHOW(syscall(SYS_readlink, "old/sym", buf, sizeof buf));
    SHOW(syscall(SYS_access, "old/sym", W_OK));
    SHOW(syscall(SYS_link, "old/file", "old/link"));
    SHOW(syscall(SYS_rename, "old/link", "old/renamed"));
    SHOW(syscall(SYS_chmod, "old/renamed", 0644));
    SHOW(syscall(SYS_unlink, "old/renamed"));
    SHOW(syscall(SYS_unlink, "old/renamed"));                    /* ENOENT */
    SHOW(syscall(SYS_rmdir, "old"));                             /* ENOTEMPTY */
    SHOW(syscall(SYS_unlink, "old/sym"));
    SHOW(syscall(SYS_unlink, "old/file"));
    SHOW(syscall(SYS_rmdir, "old"));
    SHOW(syscall(SYS_rmdir, "old"));                             /* ENOENT */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_statx_and_fstatat_agree_with_stat(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "statx_prog", r"""
#include <sys/sysmacros.h>
static int same(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_mode == b->st_mode
        && a->st_nlink == b->st_nlink && a->st_uid == b->st_uid && a->st_size == b->st_size
        && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec
        && a->st_blocks == b->st_blocks;
}
static int agrees(const struct statx *x, const struct stat *s) {
    return x->stx_ino == s->st_ino && x->stx_mode == s->st_mode
        && x->stx_nlink == s->st_nlink && x->stx_uid == s->st_uid && x->stx_gid == s->st_gid
        && x->stx_size == (unsigned long long)s->st_size
        && x->stx_blocks == (unsigned long long)s->st_blocks
        && x->stx_blksize == (unsigned)s->st_blksize
        && x->stx_mtime.tv_sec == s->st_mtim.tv_sec && x->stx_mtime.tv_nsec == s->st_mtim.tv_nsec
        && x->stx_atime.tv_sec == s->st_atim.tv_sec && x->stx_ctime.tv_sec == s->st_ctim.tv_sec
        && makedev(x->stx_dev_major, x->stx_dev_minor) == s->st_dev
        && makedev(x->stx_rdev_major, x->stx_rdev_minor) == s->st_rdev;
}
int main(void) {
    struct stat st, at;
    struct statx sx;
    int fd = SHOW(open("file", O_CREAT | O_RDWR, 0644));
    SHOW(write(fd, "some bytes", 10));
    SHOW(symlink("file", "link"));
    SHOW(stat("file", &st));
    SHOW(fstatat(AT_FDCWD, "file", &at, 0));
    printf("fstatat == stat: %d\n", same(&st, &at));
    SHOW(fstatat(AT_FDCWD, "link", &at, 0));
    printf("fstatat follows: %d\n", same(&st, &at));
    SHOW(fstatat(AT_FDCWD, "link", &at, AT_SYMLINK_NOFOLLOW));
    printf("fstatat nofollow is the link: %d size %ld\n", S_ISLNK(at.st_mode), (long)at.st_size);
    SHOW(fstatat(fd, "", &at, AT_EMPTY_PATH));
    printf("AT_EMPTY_PATH == stat: %d\n", same(&st, &at));
    SHOW(fstatat(fd, "", &at, 0));                               /* ENOENT */
    SHOW(fstatat(AT_FDCWD, "file", &at, 0x8000));                /* EINVAL */
    SHOW(fstatat(1, "", &at, AT_EMPTY_PATH));                    /* stdout: not on storage */
    int dir = SHOW(open(".", O_RDONLY | O_DIRECTORY));
    SHOW(fstatat(dir, "file", &at, 0));
    printf("fstatat via dirfd == stat: %d\n", same(&st, &at));

    SHOW(statx(AT_FDCWD, "file", 0, STATX_BASIC_STATS, &sx));
    printf("statx basic mask: %d\n", (sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS);
    printf("statx == stat: %d\n", agrees(&sx, &st));
    SHOW(statx(dir, "link", AT_SYMLINK_NOFOLLOW, STATX_ALL, &sx));
    SHOW(lstat("link", &at));
    printf("statx nofollow == lstat: %d\n", agrees(&sx, &at));
    SHOW(statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx));
    printf("statx empty path size %llu\n", (unsigned long long)sx.stx_size);
    SHOW(statx(AT_FDCWD, "missing", 0, STATX_BASIC_STATS, &sx));  /* ENOENT */
    SHOW(statx(AT_FDCWD, "file", AT_STATX_FORCE_SYNC | AT_STATX_DONT_SYNC, 0, &sx)); /* EINVAL */
    SHOW(statx(AT_FDCWD, "file", 0, 0x80000000u, &sx));          /* EINVAL */
    SHOW(stat(".", &st));
    SHOW(statx(AT_FDCWD, ".", 0, STATX_BASIC_STATS, &sx));
    printf("statx of a directory == stat: %d\n", agrees(&sx, &st));
    return 0;
}
""")
    run_both(tmp_path, exe)
