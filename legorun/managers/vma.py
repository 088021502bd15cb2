"""A virtual memory area: a value that crosses the RPC boundary.

The memory manager owns the authoritative list; the processor keeps the copy it was last
sent (in mm replies) so that an ExCache miss can be checked and an untouched anonymous page
zero-filled without asking the memory manager.
"""

from __future__ import annotations

from dataclasses import dataclass

PAGE_SIZE = 4096
PAGE_SHIFT = 12

PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_FIXED_NOREPLACE = 0x100000

MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4


def page_down(addr: int) -> int:
    return addr & ~(PAGE_SIZE - 1)


def page_up(addr: int) -> int:
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def file_at(path: str, target: str) -> bool:
    """Whether `path` is the file `target` or lies below the directory `target`."""
    return path == target or path.startswith(target.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class Vma:
    """[start, end) with protection `prot` (PROT_*) and mapping flags (MAP_*).

    A file-backed area has `path` (the guest path, as the storage manager knows it) and the file
    `offset` that corresponds to `start`; an anonymous one has `path=None`. `name` is what
    /proc/self/maps shows for areas without a path: "[heap]", "[stack]" or "".
    """

    start: int
    end: int
    prot: int
    flags: int
    path: str | None = None
    offset: int = 0
    name: str = ""

    @property
    def anonymous(self) -> bool:
        return self.path is None

    @property
    def length(self) -> int:
        return self.end - self.start

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def maps_file_at(self, path: str) -> bool:
        """Whether this area maps the file at `path`, or a file below the directory `path`."""
        return self.path is not None and file_at(self.path, path)
