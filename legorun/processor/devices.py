"""The memory devices of mem(4) and random(4), served by the processor.

/dev/null, /dev/zero, /dev/full, /dev/random and /dev/urandom hold no data: what they
answer depends only on the device, so the processor answers it itself once the storage
manager has opened the file (which checks that it exists and may be opened, under --root
too). Their behaviour is that of drivers/char/mem.c and drivers/char/random.c, including
seeks that always land at 0 (or stay there), and their I/O costs no RPC.
"""

from __future__ import annotations

import os
import stat as stat_module

from legorun.processor.files import StorageFile
from legorun.rpc.messages import FileStat
from legorun.rpc.transport import Transport
from syscalls.errno import Errno, SyscallError

MEM_MAJOR = 1
NULL, ZERO, FULL, RANDOM, URANDOM = 3, 5, 7, 8, 9
READ_MAX = 16 << 20  # bounds one read's buffer; a short read from a device is valid


class MemoryDevice(StorageFile):
    """An open memory device: `minor` says which."""

    def __init__(self, transport: Transport, path: str, flags: int, minor: int) -> None:
        super().__init__(transport, path, flags)
        self.minor = minor

    def pread(self, size: int, offset: int) -> bytes:
        size = min(size, READ_MAX)
        if self.minor == NULL:
            return b""
        if self.minor in (RANDOM, URANDOM):
            return os.urandom(size)
        return bytes(size)  # zero and full read as zeros

    def pwrite(self, data: bytes, offset: int) -> int:
        if self.minor == FULL:
            raise SyscallError(Errno.ENOSPC)
        return len(data)  # discarded; written to random(4), it would be mixed in

    def read(self, size: int) -> bytes:
        return self.pread(size, self.offset)

    def write(self, data: bytes) -> int:
        return self.pwrite(data, self.offset)

    def seek(self, offset: int, whence: int) -> int:
        # null, zero and full move to 0 whatever is asked; random(4) does not move at all.
        return 0


def open_device(transport: Transport, path: str, flags: int,
                opened: FileStat | None) -> MemoryDevice | None:
    """The processor's own memory device for a file the storage manager opened as `opened`,
    or None when it is no such device."""
    if opened is None or not stat_module.S_ISCHR(opened.mode):
        return None
    major, minor = os.major(opened.rdev), os.minor(opened.rdev)
    if major != MEM_MAJOR or minor not in (NULL, ZERO, FULL, RANDOM, URANDOM):
        return None
    return MemoryDevice(transport, path, flags, minor)
