"""Which pages are in memory: mincore. See mincore(2).

On this machine a page is in memory when the processor's ExCache holds its line or a
manager holds its data: the memory manager for a page that was ever written back (or loaded
by exec), the storage manager's file for a file-backed page. Only an anonymous page that was
never touched is nowhere: it would be zero-filled on first use. The answer needs no RPC:
the processor knows the layout, which pages went remote, and its own cache tags.
"""

from __future__ import annotations

from legorun.managers.vma import PAGE_SHIFT, PAGE_SIZE
from syscalls.args import Ptr, Size
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

USER_LIMIT = 1 << 47


def _cached(ctx: SyscallContext, page: int) -> bool:
    """Whether the ExCache holds the line of virtual page number `page`: its set's tags."""
    cache = ctx.vm.excache
    if cache is None:
        return False
    first = (page & (cache.sets - 1)) * cache.assoc
    return page in cache.tags[first : first + cache.assoc]


def sys_mincore(ctx: SyscallContext, addr: Ptr, length: Size, vec: Ptr) -> int:
    if addr % PAGE_SIZE:
        raise SyscallError(Errno.EINVAL)
    if addr + length > USER_LIMIT:
        raise SyscallError(Errno.ENOMEM)
    pages = (length + PAGE_SIZE - 1) >> PAGE_SHIFT
    states = bytearray()
    for index in range(pages):
        address = addr + (index << PAGE_SHIFT)
        found = ctx.vm.lookup(address)
        if found is None:
            raise SyscallError(Errno.ENOMEM)  # a hole in the range
        _prot, untouched = found
        states.append(0 if untouched and not _cached(ctx, address >> PAGE_SHIFT) else 1)
    ctx.mem.write(vec, bytes(states))
    return 0
