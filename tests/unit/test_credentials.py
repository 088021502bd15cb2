"""The process's credentials (syscalls/credentials.py): a static C program changes its user
and group ids as root, then as an unprivileged user, natively and under legorun; both must
print the same. Run as root (CI is), as the rules differ only for the privileged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from guest_programs import compile_c, run_both

pytestmark = [
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the test starts as root"),
]


def test_set_and_get_ids_as_root_then_as_a_user(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "credentials", r"""
#include <grp.h>
#include <sys/fsuid.h>
static void ids(const char *when) {
    uid_t r, e, s; gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    gid_t groups[8];
    int n = getgroups(8, groups);
    printf("%s: uid %u %u %u gid %u %u %u groups %d", when, r, e, s, gr, ge, gs, n);
    for (int i = 0; i < n && i < 8; i++) printf(" %u", groups[i]);
    printf(" fsuid %d\n", setfsuid(-1));
    fflush(stdout);
}
int main(void) {
    gid_t two[2] = {100, 200};
    ids("start");
    SHOW(setgroups(2, two));
    SHOW(getgroups(1, two));                        /* EINVAL: too small */
    SHOW(setresgid(1000, 1001, 1002));
    SHOW(setregid(-1, 1000));
    ids("groups set");
    SHOW(setresuid(1000, 0, 1002));                 /* keeps euid 0 */
    ids("resuid");
    SHOW(setreuid(-1, 1002));                       /* saved follows: 1002 */
    ids("reuid");
    SHOW(setuid(0));                                /* EPERM: 0 is none of r/e/s now */
    SHOW(setuid(1000));                             /* unprivileged: only euid */
    ids("setuid");
    SHOW(setresuid(-1, 1002, -1));
    SHOW(setresuid(7, -1, -1));                     /* EPERM */
    SHOW(setgroups(0, 0));                          /* EPERM: not root */
    SHOW(setgid(1001));
    SHOW(setfsuid(1000));
    ids("end");
    return 0;
}
""")
    run_both(tmp_path, exe)
