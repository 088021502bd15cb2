"""Memory syscalls: validated here, carried out by the memory manager (P2M_* RPCs).

As in LegoOS's processor-side mmap/syscall.c: cheap argument checks stay local, the
address-space change happens at the memory manager, and the ExCache is kept coherent by the
memory client.
"""

from __future__ import annotations

from legorun.managers.vma import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_PRIVATE,
    MAP_TYPE,
    PAGE_SIZE,
    PROT_WRITE,
)
from legorun.processor.files import StorageFile
from syscalls.args import Fd, Int, Long, Ptr, Size, ULong
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4


def sys_brk(ctx: SyscallContext, brk: Ptr) -> int:
    return ctx.vm.brk(brk)


def sys_mmap(
    ctx: SyscallContext, addr: Ptr, length: Size, prot: Int, flags: Int, fd: Fd, offset: Long
) -> int:
    if length == 0 or offset % PAGE_SIZE:
        raise SyscallError(Errno.EINVAL)
    if flags & MAP_TYPE not in (MAP_SHARED, 2, MAP_SHARED_VALIDATE):
        raise SyscallError(Errno.EINVAL)
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) and addr % PAGE_SIZE:
        raise SyscallError(Errno.EINVAL)
    path = None
    writable = False
    if not flags & MAP_ANONYMOUS:
        file = ctx.fds.get(fd)
        if not isinstance(file, StorageFile) or file.path is None or not file.readable:
            raise SyscallError(Errno.EACCES if isinstance(file, StorageFile) else Errno.ENODEV)
        path, writable = file.path, file.writable
        if flags & MAP_TYPE != MAP_PRIVATE and prot & PROT_WRITE and not writable:
            raise SyscallError(Errno.EACCES)  # a shared writable mapping writes the file
    return ctx.vm.mmap(addr, length, prot, flags, path, offset if path else 0, writable)


def sys_munmap(ctx: SyscallContext, addr: Ptr, length: Size) -> int:
    ctx.vm.munmap(addr, length)
    return 0


def sys_mprotect(ctx: SyscallContext, addr: Ptr, length: Size, prot: ULong) -> int:
    ctx.vm.mprotect(addr, length, prot)
    return 0


def sys_msync(ctx: SyscallContext, addr: Ptr, length: Size, flags: Int) -> int:
    if addr % PAGE_SIZE or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or (
            flags & MS_ASYNC and flags & MS_SYNC):
        raise SyscallError(Errno.EINVAL)
    if not ctx.vm.covered(addr, addr + length):
        raise SyscallError(Errno.ENOMEM)
    ctx.vm.msync(addr, length)
    return 0


def sys_mremap(
    ctx: SyscallContext, old_address: Ptr, old_size: Size, new_size: Size, flags: ULong,
    new_address: Ptr,
) -> int:
    return ctx.vm.mremap(old_address, old_size, new_size, flags, new_address)


def sys_madvise(ctx: SyscallContext, addr: Ptr, length: Size, advice: Int) -> int:
    ctx.vm.madvise(addr, length, advice)
    return 0
