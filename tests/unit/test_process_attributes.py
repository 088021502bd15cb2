"""Scheduling, priority, resource usage, persona and capabilities (syscalls/sched.py,
rusage.py, personality.py, capabilities.py): a static C program reads them, changes what an
unprivileged process may change (of itself only: PRIO_USER or a process group would reach
other processes natively), provokes Linux's errors and prints what it sees, natively and
under legorun; both must print the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from guest_programs import compile_c, run_both

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def test_scheduling_priority_usage_persona_capabilities(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "attributes", r"""
#include <sched.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <linux/capability.h>
int main(void) {
    struct sched_param param = {0};
    SHOW(sched_getscheduler(0));
    SHOW(sched_getscheduler(getpid()));
    SHOW(sched_getscheduler(-1));                                /* EINVAL */
    SHOW(sched_getscheduler(999999999));                         /* ESRCH */
    SHOW(sched_getparam(0, &param));
    printf("priority %d\n", param.sched_priority);
    SHOW(syscall(SYS_sched_getparam, 0, NULL));                  /* EINVAL */
    SHOW(sched_getparam(0, (struct sched_param *)8));            /* EFAULT */
    SHOW(sched_setscheduler(0, SCHED_OTHER, &param));
    SHOW(sched_setparam(0, &param));
    param.sched_priority = 5;
    SHOW(sched_setscheduler(0, SCHED_OTHER, &param));            /* EINVAL: not 0 */
    SHOW(sched_setscheduler(0, 77, &param));                     /* EINVAL: policy */
    SHOW(sched_setscheduler(999999999, SCHED_OTHER, &param));    /* ESRCH */
    SHOW(syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, NULL)); /* EINVAL */
    SHOW(sched_get_priority_max(SCHED_FIFO));
    SHOW(sched_get_priority_min(SCHED_RR));
    SHOW(sched_get_priority_max(SCHED_OTHER));
    SHOW(sched_get_priority_max(42));                            /* EINVAL */
    struct timespec ts;
    SHOW(sched_rr_get_interval(0, &ts));
    SHOW(sched_rr_get_interval(-5, &ts));                        /* EINVAL */

    SHOW(syscall(SYS_getpriority, PRIO_PROCESS, 0));             /* 20 - nice */
    errno = 0;
    SHOW(getpriority(PRIO_PROCESS, getpid()));
    SHOW(getpriority(7, 0));                                     /* EINVAL */
    SHOW(getpriority(PRIO_PROCESS, 999999999));                  /* ESRCH */
    SHOW(setpriority(PRIO_PROCESS, 0, 3));
    SHOW(getpriority(PRIO_PROCESS, 0));
    SHOW(setpriority(PRIO_PROCESS, 0, 50));                      /* clamped to 19 */
    SHOW(getpriority(PRIO_PROCESS, 0));
    SHOW(nice(0));

    struct rusage ru;
    SHOW(getrusage(RUSAGE_SELF, &ru));
    printf("sane %d\n", ru.ru_utime.tv_usec < 1000000 && ru.ru_stime.tv_usec < 1000000
           && ru.ru_maxrss > 0 && ru.ru_minflt > 0);
    SHOW(getrusage(RUSAGE_CHILDREN, &ru));
    printf("children %ld %ld\n", (long)ru.ru_utime.tv_sec, ru.ru_maxrss);
    SHOW(getrusage(RUSAGE_THREAD, &ru));
    SHOW(getrusage(5, &ru));                                     /* EINVAL */
    SHOW(getrusage(RUSAGE_SELF, (struct rusage *)8));            /* EFAULT */

    SHOW(personality(0xffffffff));
    SHOW(personality(ADDR_NO_RANDOMIZE));
    SHOW(personality(0xffffffff));
    SHOW(personality(PER_LINUX));

    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    SHOW(syscall(SYS_capget, &header, data));
    struct __user_cap_data_struct mine[2];
    header.pid = getpid();
    SHOW(syscall(SYS_capget, &header, mine));
    printf("same sets %d\n", !memcmp(data, mine, sizeof data));
    header.pid = 999999999;
    SHOW(syscall(SYS_capget, &header, mine));                    /* ESRCH */
    header.pid = -3;
    SHOW(syscall(SYS_capget, &header, mine));                    /* EINVAL */
    header.version = 0x1234;
    header.pid = 0;
    SHOW(syscall(SYS_capget, &header, NULL));                    /* asks the version */
    printf("version %#x\n", header.version);
    header.version = 0x1234;
    SHOW(syscall(SYS_capget, &header, data));                    /* EINVAL */
    printf("version %#x\n", header.version);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_mincore_and_membarrier(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "residency", r"""
#include <sys/mman.h>
#include <linux/membarrier.h>
int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *area = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char vec[8];
    SHOW(mincore(area, 8 * page, vec));
    printf("untouched:");
    for (int i = 0; i < 8; i++) printf(" %d", vec[i] & 1);
    printf("\n");
    area[0] = 1;
    area[3 * page + 5] = 2;
    SHOW(mincore(area, 8 * page, vec));
    printf("touched 0 and 3:");
    for (int i = 0; i < 8; i++) printf(" %d", vec[i] & 1);
    printf("\n");
    SHOW(mincore(area, 3 * page - 100, vec));                    /* a partial last page */
    SHOW(mincore(area + 1, page, vec));                          /* EINVAL: unaligned */
    SHOW(munmap(area + 4 * page, page));
    SHOW(mincore(area, 8 * page, vec));                          /* ENOMEM: a hole */
    SHOW(mincore(area, 0, vec));
    SHOW(mincore(area, page, (unsigned char *)8));               /* EFAULT */
    SHOW(mincore((void *)main, page, vec));                      /* EINVAL: unaligned */

    long supported = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    printf("query works %d, global %ld\n", supported > 0, supported & MEMBARRIER_CMD_GLOBAL);
    SHOW(syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0));
    SHOW(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));  /* EPERM */
    SHOW(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0));
    SHOW(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
    SHOW(syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 1, 0));            /* EINVAL */
    SHOW(syscall(SYS_membarrier, 1 << 20, 0, 0));                         /* EINVAL */
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_sched_attr_and_io_priority(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "sched_attr", r"""
#include <sys/resource.h>
int main(void) {
    unsigned char attr[64];
    memset(attr, 0xaa, sizeof attr);
    SHOW(syscall(SYS_sched_getattr, 0, attr, sizeof attr, 0));
    printf("size %u policy %u nice %d, zeroed past the kernel's size: %d\n",
           *(unsigned *)attr, *(unsigned *)(attr + 4), *(int *)(attr + 16), attr[60]);
    SHOW(syscall(SYS_sched_getattr, 0, attr, 40, 0));
    SHOW(syscall(SYS_sched_getattr, 0, attr, 48, 1));
    memset(attr, 0, sizeof attr);
    *(unsigned *)attr = 48;
    *(int *)(attr + 16) = 3;  /* nice 3 */
    SHOW(syscall(SYS_sched_setattr, 0, attr, 0));
    SHOW(getpriority(PRIO_PROCESS, 0));
    *(unsigned *)attr = 64;
    attr[60] = 1;  /* a field this kernel does not know */
    SHOW(syscall(SYS_sched_setattr, 0, attr, 0));
    printf("size written back: %u\n", *(unsigned *)attr);
    long before = syscall(SYS_ioprio_get, 1, 0);
    SHOW(before >= 0);
    SHOW(syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 4));  /* best effort, level 4 */
    SHOW(syscall(SYS_ioprio_get, 1, 0));
    SHOW(syscall(SYS_ioprio_get, 9, 0));
    return 0;
}
""")
    run_both(tmp_path, exe)
