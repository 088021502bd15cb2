"""NUMA memory policies on a machine with one node: what get_mempolicy reports, which
policies set_mempolicy, mbind and set_mempolicy_home_node accept, and the errors. The
native run is the reference only where the host has one node too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guest_programs import TIMEOUT, compile_c, guest_env, run_both

ONLINE_NODES = Path("/sys/devices/system/node/online")


def _host_has_one_node() -> bool:
    try:
        return ONLINE_NODES.read_text().strip() == "0"
    except OSError:
        return True  # a kernel without NUMA: one node


pytestmark = pytest.mark.skipif(not _host_has_one_node(),
                                reason="the host has several NUMA nodes")


def test_policies_on_one_node(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "mempolicy", r"""
#include <sys/mman.h>
enum { MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL,
       MPOL_PREFERRED_MANY };
#define MPOL_F_STATIC_NODES (1 << 15)
#define MPOL_F_RELATIVE_NODES (1 << 14)
#define MPOL_F_NUMA_BALANCING (1 << 13)
#define MPOL_F_NODE 1
#define MPOL_F_ADDR 2
#define MPOL_F_MEMS_ALLOWED 4
#define MPOL_MF_STRICT 1
#define MPOL_MF_MOVE 2
#define SENTINEL 0x5a5a5a5a5a5a5a5aUL

static int mode;
static unsigned long mask[2];

static void reset(void) { mode = -1; mask[0] = mask[1] = SENTINEL; }
static void report(void) {
    printf("  mode %d mask %#lx %#lx\n", mode, mask[0], mask[1]);
    fflush(stdout);
}
#define GET(maxnode, addr, flags) \
    (reset(), SHOW(syscall(SYS_get_mempolicy, &mode, mask, maxnode, addr, flags)), report())
#define SET(policy, nodes) \
    (mask[0] = (nodes), SHOW(syscall(SYS_set_mempolicy, policy, mask, 65)))

int main(void) {
    char *guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *page = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    munmap(page + 4096, 4096);  /* a hole between two pages, for good */
    page[0] = 1;

    puts("get_mempolicy");
    SHOW(syscall(SYS_get_mempolicy, NULL, NULL, 0, NULL, 0));
    GET(128, NULL, 0);                              /* MPOL_DEFAULT, empty mask */
    GET(64, NULL, 0);                               /* one long */
    GET(1, NULL, 0);                                /* no bits: the mask is not written */
    GET(0, NULL, 0);                                /* EINVAL */
    GET(100000, NULL, 0);                           /* more than a page: EINVAL */
    GET(128, NULL, MPOL_F_MEMS_ALLOWED);            /* node 0 */
    GET(128, page, MPOL_F_NODE | MPOL_F_ADDR);      /* the page is on node 0 */
    GET(128, page, MPOL_F_ADDR);                    /* its area's policy: the default */
    GET(128, page + 4096, MPOL_F_NODE | MPOL_F_ADDR);  /* unmapped: EFAULT */
    GET(128, guard, MPOL_F_NODE | MPOL_F_ADDR);     /* inaccessible: EFAULT */
    GET(128, NULL, MPOL_F_NODE);                    /* not an interleave policy: EINVAL */
    GET(128, page, 0);                              /* an address without MPOL_F_ADDR */
    GET(128, NULL, MPOL_F_MEMS_ALLOWED | MPOL_F_NODE);
    GET(128, NULL, 8);

    puts("set_mempolicy");
    SET(MPOL_BIND, 1);
    SET(MPOL_BIND, 3);                              /* node 1 is not online: left out */
    SET(MPOL_BIND, 2);                              /* nothing left: EINVAL */
    SET(MPOL_BIND | MPOL_F_RELATIVE_NODES, 2);      /* folded onto node 0 */
    SET(MPOL_BIND | MPOL_F_STATIC_NODES, 2);
    SET(MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, 1);
    SET(MPOL_BIND | MPOL_F_NUMA_BALANCING, 1);
    SET(MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING, 1);
    SET(MPOL_INTERLEAVE, 0);
    SET(MPOL_PREFERRED, 0);                         /* local allocation */
    SET(MPOL_PREFERRED | MPOL_F_STATIC_NODES, 0);
    SET(MPOL_PREFERRED_MANY, 1);
    SET(MPOL_LOCAL, 1);
    SET(MPOL_LOCAL, 0);
    SET(99, 1);
    SET(MPOL_DEFAULT, 1);
    SET(MPOL_DEFAULT, 0);
    SHOW(syscall(SYS_set_mempolicy, MPOL_BIND, (void *)8, 65));
    SHOW(syscall(SYS_set_mempolicy, MPOL_BIND, mask, 40000));

    puts("mbind");
    mask[0] = 1;
    SHOW(syscall(SYS_mbind, page, 4096, MPOL_BIND, mask, 65, MPOL_MF_STRICT | MPOL_MF_MOVE));
    SHOW(syscall(SYS_mbind, page, 3 * 4096, MPOL_BIND, mask, 65, 0));  /* the hole: EFAULT */
    SHOW(syscall(SYS_mbind, page + 1, 4096, MPOL_BIND, mask, 65, 0));
    SHOW(syscall(SYS_mbind, page, 0, MPOL_BIND, mask, 65, 0));
    SHOW(syscall(SYS_mbind, page, 4096, MPOL_BIND, mask, 65, 8));
    SHOW(syscall(SYS_mbind, page, 4096, MPOL_DEFAULT, NULL, 0, 0));
    mask[0] = 2;
    SHOW(syscall(SYS_mbind, page, 4096, MPOL_INTERLEAVE, mask, 65, 0));

    puts("set_mempolicy_home_node");
    SHOW(syscall(SYS_set_mempolicy_home_node, page, 4096, 0, 0));  /* no area with a policy */
    SHOW(syscall(SYS_set_mempolicy_home_node, page, 0, 0, 0));
    SHOW(syscall(SYS_set_mempolicy_home_node, page, 4096, 1, 0));
    SHOW(syscall(SYS_set_mempolicy_home_node, page, 4096, 0, 1));
    SHOW(syscall(SYS_set_mempolicy_home_node, page + 8, 4096, 0, 0));
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_ps_asks_for_the_memory_policy_without_a_warning(tmp_path: Path) -> None:
    """procps checks for NUMA support with get_mempolicy."""
    ps = shutil.which("ps")
    if ps is None:
        pytest.skip("ps is not installed")
    argv = [ps, "-o", "comm=", "-p", "1"]
    native = subprocess.run(argv, capture_output=True, timeout=TIMEOUT)
    lego = subprocess.run([sys.executable, "-m", "legorun", *argv], cwd=tmp_path,
                          env=guest_env(), capture_output=True, timeout=TIMEOUT)
    assert lego.returncode == native.returncode, lego.stderr.decode(errors="replace")
    assert lego.stdout == native.stdout
    assert b"get_mempolicy" not in lego.stderr, lego.stderr.decode(errors="replace")
