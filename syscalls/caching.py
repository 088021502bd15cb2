"""Page-cache calls: sync and readahead. See sync(2) and readahead(2).

Every write already went to the storage manager when it was made (the processor caches no
file data), so there is nothing to flush and nothing worth reading ahead: both only check
what Linux checks.
"""

from __future__ import annotations

import stat as stat_module

from legorun.processor.files import Directory, StorageFile
from syscalls.args import Fd, Long, Size
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError
from syscalls.fs import readable_file


def sys_sync(ctx: SyscallContext) -> int:
    return 0


def sys_readahead(ctx: SyscallContext, fd: Fd, offset: Long, count: Size) -> int:
    file = readable_file(ctx, fd)
    if not isinstance(file, StorageFile) or isinstance(file, Directory):
        raise SyscallError(Errno.EINVAL)
    if not stat_module.S_ISREG(file.stat().mode) or offset < 0:
        raise SyscallError(Errno.EINVAL)
    return 0
