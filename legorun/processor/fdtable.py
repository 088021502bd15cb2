"""The processor's file descriptor table: fd -> (open file description, close-on-exec)."""

from __future__ import annotations

from dataclasses import dataclass

from legorun.processor.files import OpenFile
from syscalls.errno import Errno, SyscallError

RLIMIT_NOFILE_DEFAULT = 1024


@dataclass(slots=True)
class FdEntry:
    file: OpenFile
    cloexec: bool = False


class FdTable:
    def __init__(self, limit: int = RLIMIT_NOFILE_DEFAULT) -> None:
        self._entries: dict[int, FdEntry] = {}
        self.limit = limit

    def get(self, fd: int) -> OpenFile:
        entry = self._entries.get(fd)
        if entry is None:
            raise SyscallError(Errno.EBADF)
        return entry.file

    def entry(self, fd: int) -> FdEntry:
        entry = self._entries.get(fd)
        if entry is None:
            raise SyscallError(Errno.EBADF)
        return entry

    def allocate(self, file: OpenFile, cloexec: bool = False, lowest: int = 0) -> int:
        fd = lowest
        while fd in self._entries:
            fd += 1
        if fd >= self.limit:
            raise SyscallError(Errno.EMFILE)
        self._entries[fd] = FdEntry(file, cloexec)
        return fd

    def allocate_new(self, file: OpenFile, cloexec: bool = False) -> int:
        """allocate() for a file just made: if no descriptor is left, the file is closed."""
        try:
            return self.allocate(file, cloexec)
        except SyscallError:
            file.close()
            raise

    def install(self, fd: int, file: OpenFile, cloexec: bool = False) -> None:
        """Put file at exactly fd (dup2), closing what was there."""
        if not 0 <= fd < self.limit:
            raise SyscallError(Errno.EBADF)
        old = self._entries.get(fd)
        self._entries[fd] = FdEntry(file, cloexec)
        if old is not None:
            self._release(old.file)

    def close(self, fd: int) -> None:
        entry = self._entries.pop(fd, None)
        if entry is None:
            raise SyscallError(Errno.EBADF)
        self._release(entry.file)

    def _release(self, file: OpenFile) -> None:
        if not any(entry.file is file for entry in self._entries.values()):
            file.close()

    def open_files(self) -> list[OpenFile]:
        """Each open file description once."""
        return list({id(entry.file): entry.file for entry in self._entries.values()}.values())

    def fds(self) -> list[int]:
        return sorted(self._entries)

    def close_all(self) -> None:
        for fd in list(self._entries):
            self.close(fd)
