"""NUMA memory policies: get_mempolicy, set_mempolicy, mbind and set_mempolicy_home_node.
See get_mempolicy(2), set_mempolicy(2), mbind(2) and set_mempolicy_home_node(2).

The processor sees one memory node, node 0: its memory is the memory manager's, however
remote, and every page is on node 0 whatever the policy. So a policy is checked as Linux
checks it on a machine whose only online node is 0 (an unknown mode or flag, a nodemask
that names no online node once the others are left out, a range with an unmapped hole)
and then has nothing to change: none is kept. get_mempolicy reports the default policy
(MPOL_DEFAULT, whose nodemask is empty), node 0 for any mapped address, and node 0 as the
only node allowed; set_mempolicy_home_node finds no area with a policy of its own.
"""

from __future__ import annotations

from legorun.managers.vma import PAGE_SIZE
from syscalls.args import Int, Ptr, UInt, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

# modes
MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL = 0, 1, 2, 3, 4
MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE, MPOL_MAX = 5, 6, 7
# mode flags, ORed into the mode
MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING = 1 << 15, 1 << 14, 1 << 13
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING
# get_mempolicy flags
MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED = 1, 2, 4
# mbind flags
MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL = 1, 2, 4
MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL

ONLINE_NODES = 1 << 0  # node 0 only
NR_NODE_IDS = 1  # the highest online node + 1: the one long of a nodemask holds them
MAX_NUMNODES = 1 << 10  # CONFIG_NODES_SHIFT=10, as x86-64 distribution kernels build
BITS_PER_LONG = 64
PROT_NONE = 0


def _page_end(start: int, length: int) -> int:
    """The end of [start, start + length) rounded up to a page; EINVAL for a start that is
    not page aligned or a range that wraps."""
    if start % PAGE_SIZE:
        raise SyscallError(Errno.EINVAL)
    end = start + (length + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
    if end >= 1 << 64:
        raise SyscallError(Errno.EINVAL)
    return end


def read_nodemask(ctx: SyscallContext, nmask: int, maxnode: int) -> int:
    """The nodemask a policy names (Linux's get_nodes): `maxnode` - 1 bits at `nmask` (the
    count is one more than the bits read, as Linux has always done); nodes past
    MAX_NUMNODES must be clear."""
    bits = (maxnode - 1) & ((1 << 64) - 1)
    if not bits or not nmask:
        return 0
    if bits > PAGE_SIZE * 8:
        raise SyscallError(Errno.EINVAL)
    words = -(-bits // BITS_PER_LONG)
    nodes = int.from_bytes(ctx.mem.read(nmask, words * 8), "little") & ((1 << bits) - 1)
    if nodes >> MAX_NUMNODES:
        raise SyscallError(Errno.EINVAL)
    return nodes


def write_nodemask(ctx: SyscallContext, nmask: int, maxnode: int, nodes: int) -> None:
    """Linux's copy_nodes_to_user: (maxnode - 1) bits rounded up to longs (at most a page),
    zero past the long that holds every node id."""
    size = -(-(maxnode - 1) // BITS_PER_LONG) * 8
    if size > PAGE_SIZE:
        raise SyscallError(Errno.EINVAL)
    ctx.mem.write(nmask, nodes.to_bytes(8, "little")[:size].ljust(size, b"\0"))


def split_mode(mode: int) -> tuple[int, int]:
    """(mode, mode flags) of a mode argument, checked as Linux's sanitize_mpol_flags."""
    mode &= 0xFFFFFFFF  # an int in the kernel
    flags = mode & MPOL_MODE_FLAGS
    mode &= ~MPOL_MODE_FLAGS
    if mode >= MPOL_MAX:
        raise SyscallError(Errno.EINVAL)
    if flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        raise SyscallError(Errno.EINVAL)
    if flags & MPOL_F_NUMA_BALANCING and mode not in (MPOL_BIND, MPOL_PREFERRED_MANY):
        raise SyscallError(Errno.EINVAL)
    return mode, flags


def check_policy(mode: int, flags: int, nodes: int) -> None:
    """What Linux's mpol_new and mpol_set_nodemask refuse: MPOL_DEFAULT and MPOL_LOCAL
    take no nodes, MPOL_PREFERRED none or some, the others some, and once the nodes that
    are not online are left out (or, with MPOL_F_RELATIVE_NODES, the mask is folded onto
    the online ones) some must remain."""
    explicit = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)
    if mode == MPOL_DEFAULT:
        if nodes:
            raise SyscallError(Errno.EINVAL)
        return
    if mode == MPOL_LOCAL or (mode == MPOL_PREFERRED and not nodes):
        if nodes or explicit:
            raise SyscallError(Errno.EINVAL)
        return
    usable = nodes if flags & MPOL_F_RELATIVE_NODES else nodes & ONLINE_NODES
    if not usable:
        raise SyscallError(Errno.EINVAL)


def _mapped_throughout(ctx: SyscallContext, start: int, end: int) -> bool:
    addr = start
    while addr < end:
        vma = ctx.vm.find(addr)
        if vma is None:
            return False
        addr = vma.end
    return True


def sys_set_mempolicy(ctx: SyscallContext, mode: Int, nmask: Ptr, maxnode: ULong) -> int:
    mode, flags = split_mode(mode)
    check_policy(mode, flags, read_nodemask(ctx, nmask, maxnode))
    return 0


def sys_mbind(ctx: SyscallContext, start: ULong, length: ULong, mode: ULong, nmask: Ptr,
              maxnode: ULong, flags: UInt) -> int:
    mode, mode_flags = split_mode(mode)
    nodes = read_nodemask(ctx, nmask, maxnode)
    if flags & ~MPOL_MF_VALID:
        raise SyscallError(Errno.EINVAL)
    if flags & MPOL_MF_MOVE_ALL and ctx.proc.euid != 0:  # needs CAP_SYS_NICE
        raise SyscallError(Errno.EPERM)
    end = _page_end(start, length)
    if end == start:
        return 0
    check_policy(mode, mode_flags, nodes)
    if not _mapped_throughout(ctx, start, end):
        raise SyscallError(Errno.EFAULT)
    return 0


def sys_get_mempolicy(ctx: SyscallContext, policy: Ptr, nmask: Ptr, maxnode: ULong,
                      addr: ULong, flags: ULong) -> int:
    if nmask and maxnode < NR_NODE_IDS:
        raise SyscallError(Errno.EINVAL)
    if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
        raise SyscallError(Errno.EINVAL)
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            raise SyscallError(Errno.EINVAL)
        value, nodes = 0, ONLINE_NODES
    else:
        vma = None
        if flags & MPOL_F_ADDR:
            vma = ctx.vm.find(addr)
            if vma is None:
                raise SyscallError(Errno.EFAULT)
        elif addr:
            raise SyscallError(Errno.EINVAL)
        if flags & MPOL_F_NODE:
            # The node of the page at addr (which must be accessible); without MPOL_F_ADDR,
            # the next node of an interleave policy, which the default policy is not.
            if vma is None:
                raise SyscallError(Errno.EINVAL)
            if vma.prot == PROT_NONE:
                raise SyscallError(Errno.EFAULT)
            value = 0
        else:
            value = MPOL_DEFAULT
        nodes = 0  # the default policy's nodemask is empty
    if policy:
        ctx.mem.write_u32(policy, value)
    if nmask:
        write_nodemask(ctx, nmask, maxnode, nodes)
    return 0


def sys_set_mempolicy_home_node(ctx: SyscallContext, start: ULong, length: ULong,
                                home_node: ULong, flags: ULong) -> int:
    if start % PAGE_SIZE or flags:
        raise SyscallError(Errno.EINVAL)
    if home_node >= MAX_NUMNODES or not ONLINE_NODES >> home_node & 1:
        raise SyscallError(Errno.EINVAL)
    if _page_end(start, length) == start:
        return 0
    # It sets the home node of the areas in the range that have a policy of their own
    # (MPOL_BIND or MPOL_PREFERRED_MANY), and fails when none has: none keeps one here.
    raise SyscallError(Errno.ENOENT)
