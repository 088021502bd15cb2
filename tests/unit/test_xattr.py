"""Extended attributes and ownership (syscalls/xattr.py, syscalls/ownership.py, served by
the storage manager): a static C program sets, reads, lists and removes user attributes,
provokes the errors Linux gives (ENODATA, ERANGE, E2BIG, EOPNOTSUPP, EEXIST, EBADF) and
changes owners to the ones it already has; it must print the same natively and under
legorun, each run in a fresh empty cwd."""

from __future__ import annotations

import shutil
from pathlib import Path

import guest_programs
import pytest
from guest_programs import run_both

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def test_xattrs_and_ownership(tmp_path: Path) -> None:
    exe = guest_programs.compile_c(tmp_path, "xattr", r"""
#include <sys/xattr.h>
#include <sys/socket.h>
int main(void) {
    char buf[256];
    int fd = SHOW(open("file", O_CREAT | O_RDWR, 0644));
    SHOW(symlink("file", "link"));
    long rc = setxattr("file", "user.color", "blue", 4, 0);
    if (rc < 0) {
        printf("no user xattrs here: %s\n", strerrorname_np(errno));
    } else {
        SHOW(rc);
        SHOW(getxattr("file", "user.color", buf, sizeof buf));
        printf("value %.4s\n", buf);
        SHOW(getxattr("file", "user.color", NULL, 0));           /* the size */
        SHOW(getxattr("file", "user.color", buf, 2));            /* ERANGE */
        SHOW(getxattr("link", "user.color", buf, sizeof buf));   /* follows the link */
        SHOW(fgetxattr(fd, "user.color", buf, sizeof buf));
        SHOW(setxattr("file", "user.color", "red", 3, XATTR_CREATE));    /* EEXIST */
        SHOW(setxattr("file", "user.size", "xl", 2, XATTR_REPLACE));     /* ENODATA */
        SHOW(fsetxattr(fd, "user.size", "xl", 2, XATTR_CREATE));
        SHOW(setxattr("file", "user.color", "red", 3, 4));       /* EINVAL: flags */
        SHOW(setxattr("file", "user.big", buf, 70000, 0));       /* E2BIG */
        long n = SHOW(listxattr("file", buf, sizeof buf));
        int names = 0;
        for (long i = 0; i < n; i += strlen(buf + i) + 1)
            names += !strncmp(buf + i, "user.", 5);
        printf("user names %d\n", names);
        SHOW(flistxattr(fd, NULL, 0) == n);
        SHOW(listxattr("file", buf, 1));                         /* ERANGE */
        SHOW(removexattr("file", "user.size"));
        SHOW(fremovexattr(fd, "user.size"));                     /* ENODATA */
        SHOW(lremovexattr("file", "user.color"));
    }
    SHOW(getxattr("file", "user.none", buf, sizeof buf));        /* ENODATA */
    SHOW(getxattr("file", "", buf, sizeof buf));                 /* ERANGE: empty name */
    SHOW(getxattr("file", "nonamespace", buf, sizeof buf));      /* EOPNOTSUPP */
    SHOW(getxattr("missing", "user.x", buf, sizeof buf));        /* ENOENT */
    SHOW(lgetxattr("dangling", "user.x", buf, sizeof buf));      /* ENOENT */
    SHOW(symlink("nowhere", "dangling"));
    SHOW(getxattr("dangling", "user.x", buf, sizeof buf));       /* ENOENT */
    SHOW(lgetxattr("link", "user.color", buf, sizeof buf));      /* ENODATA or EPERM */
    SHOW(llistxattr("link", buf, sizeof buf));
    SHOW(lsetxattr("link", "user.on_link", "x", 1, 0));         /* EPERM: not on a link */
    SHOW(lsetxattr("link", "user.on_link", "x", 1, 9));         /* EINVAL: flags */
    SHOW(fgetxattr(99, "user.x", buf, sizeof buf));              /* EBADF */
    SHOW(getxattr("file", (char *)8, buf, sizeof buf));          /* EFAULT */
    int pfd[2];
    SHOW(pipe(pfd));
    SHOW(fgetxattr(pfd[0], "user.x", buf, sizeof buf));          /* EOPNOTSUPP */
    int o_path = SHOW(open("file", O_PATH));
    SHOW(fgetxattr(o_path, "user.x", buf, sizeof buf));          /* EBADF */

    /* Ownership: give each file the owner it already has, and check the errors. */
    struct stat st;
    SHOW(stat("file", &st));
    SHOW(chown("file", st.st_uid, st.st_gid));
    SHOW(chown("file", -1, -1));
    SHOW(lchown("link", -1, st.st_gid));
    SHOW(fchown(fd, st.st_uid, -1));
    SHOW(fchownat(AT_FDCWD, "link", -1, -1, AT_SYMLINK_NOFOLLOW));
    SHOW(fchownat(AT_FDCWD, "link", -1, -1, 0x8000));            /* EINVAL */
    SHOW(fchownat(fd, "", -1, -1, AT_EMPTY_PATH));
    SHOW(chown("missing", 0, 0));                                /* ENOENT */
    SHOW(fchown(99, 0, 0));                                      /* EBADF */
    SHOW(fchown(o_path, -1, -1));                                /* EBADF */
    SHOW(fchown(pfd[1], -1, -1));
    SHOW(stat("file", &st));
    printf("mode %o\n", st.st_mode & 07777);
    return 0;
}
""")
    run_both(tmp_path, exe)
