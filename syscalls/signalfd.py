"""signalfd and signalfd4: see processor/signalfd.py."""

from __future__ import annotations

from legorun.processor.files import O_CLOEXEC, O_NONBLOCK
from legorun.processor.signalfd import SignalFile
from legorun.processor.signals import UNBLOCKABLE
from syscalls.args import Fd, Int, Ptr, Size
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

SFD_NONBLOCK, SFD_CLOEXEC = O_NONBLOCK, O_CLOEXEC
SIGSET_SIZE = 8


def sys_signalfd4(ctx: SyscallContext, fd: Fd, mask: Ptr, sizemask: Size, flags: Int) -> int:
    if flags & ~(SFD_NONBLOCK | SFD_CLOEXEC) or sizemask != SIGSET_SIZE:
        raise SyscallError(Errno.EINVAL)
    signals = ctx.mem.read_u64(mask) & ~UNBLOCKABLE
    if fd != -1:
        file = ctx.fds.get(fd)
        if not isinstance(file, SignalFile):
            raise SyscallError(Errno.EINVAL)
        file.set_mask(signals)
        return fd
    created = SignalFile(ctx.signals, ctx.threads, signals, flags & SFD_NONBLOCK)
    return ctx.fds.allocate(created, cloexec=bool(flags & SFD_CLOEXEC))


def sys_signalfd(ctx: SyscallContext, fd: Fd, mask: Ptr, sizemask: Size) -> int:
    return sys_signalfd4(ctx, fd, mask, sizemask, 0)
