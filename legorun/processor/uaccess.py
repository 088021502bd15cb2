"""Guest memory as syscalls see it: copy_from_user / copy_to_user through the ExCache.

Handlers never touch Unicorn memory: they go through `UserMemory`, which walks the guest's
virtual pages, loads missing lines through the ExCache exactly as a guest access would, and
raises `GuestFault` (EFAULT to the guest) for addresses the guest may not touch.
"""

from __future__ import annotations

import struct

from legorun.cache.excache import MEM_READ, MEM_WRITE, ExCache, GuestFault
from legorun.managers.vma import PAGE_SIZE

USER_LIMIT = 1 << 47
PATH_MAX = 4096


class UserMemory:
    def __init__(self, excache: ExCache) -> None:
        self._cache = excache

    def _check(self, addr: int, size: int, access: int) -> None:
        if addr < PAGE_SIZE or addr + size > USER_LIMIT:
            raise GuestFault(addr, access)

    def read(self, addr: int, size: int) -> bytes:
        if size <= 0:
            return b""
        self._check(addr, size, MEM_READ)
        parts = []
        while size:
            offset = addr & (PAGE_SIZE - 1)
            chunk = min(size, PAGE_SIZE - offset)
            # Copy now: loading the next page may evict this line and reuse its slot.
            parts.append(bytes(self._cache.page(addr, MEM_READ)[offset : offset + chunk]))
            addr += chunk
            size -= chunk
        return b"".join(parts)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if not size:
            return
        self._check(addr, size, MEM_WRITE)
        view = memoryview(data).cast("B")
        done = 0
        while done < size:
            offset = addr & (PAGE_SIZE - 1)
            chunk = min(size - done, PAGE_SIZE - offset)
            self._cache.page(addr, MEM_WRITE)[offset : offset + chunk] = view[done : done + chunk]
            addr += chunk
            done += chunk

    def read_cstr(self, addr: int, limit: int = PATH_MAX) -> bytes:
        """The NUL-terminated string at addr (without the NUL), at most `limit` bytes."""
        self._check(addr, 1, MEM_READ)
        parts = []
        total = 0
        while total < limit:
            offset = addr & (PAGE_SIZE - 1)
            page = bytes(self._cache.page(addr, MEM_READ)[offset:])
            end = page.find(b"\0")
            if end >= 0:
                parts.append(page[:end])
                return b"".join(parts)[:limit]
            parts.append(page)
            total += len(page)
            addr += len(page)
            self._check(addr, 1, MEM_READ)
        return b"".join(parts)[:limit]

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))

    def read_u32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def read_struct(self, fmt: str, addr: int) -> tuple[int, ...]:
        return struct.unpack(fmt, self.read(addr, struct.calcsize(fmt)))

    def write_struct(self, fmt: str, addr: int, *values: int) -> None:
        self.write(addr, struct.pack(fmt, *values))

    def read_pointer_array(self, addr: int, limit: int = 1 << 16) -> list[int]:
        """A NULL-terminated array of pointers (argv, envp)."""
        pointers = []
        while len(pointers) < limit:
            value = self.read_u64(addr)
            if value == 0:
                return pointers
            pointers.append(value)
            addr += 8
        raise GuestFault(addr, MEM_READ)
