"""The one place that turns a syscall into a value for rax.

Handlers return a non-negative int or raise `SyscallError`; a fault on a user pointer is
EFAULT; a number with no handler is ENOSYS with one warning per name. Only here is an error
encoded as -errno.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Protocol

from legorun.cache.excache import GuestFault
from legorun.processor.execve import ExecImage
from syscalls.errno import Errno, SyscallError
from syscalls.table import IGNORED, SyscallEntry, SyscallTable


class SyscallObserver(Protocol):
    """Sees every syscall: `enter` before the handler runs (a call such as exit_group may never
    return), `leave` with the value for rax."""

    def enter(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...]) -> None: ...

    def leave(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...],
              result: int) -> None: ...


class Dispatcher:
    def __init__(self, table: SyscallTable, context: object, warn: Callable[[str], None]) -> None:
        self._entries = table.entries
        self._context = context
        self._warn = warn
        self._warned: set[int] = set()
        self.counts: Counter[str] = Counter()
        self.observers: list[SyscallObserver] = []

    def __call__(self, nr: int, raw: tuple[int, ...]) -> int:
        entry = self._entries.get(nr)
        if not self.observers:
            return self._dispatch(entry, nr, raw)
        for observer in self.observers:
            observer.enter(entry, nr, raw)
        try:
            result = self._dispatch(entry, nr, raw)
        except ExecImage:  # execve succeeded: it returns 0, in the new program
            for observer in self.observers:
                observer.leave(entry, nr, raw, 0)
            raise
        for observer in self.observers:
            observer.leave(entry, nr, raw, result)
        return result

    def _dispatch(self, entry: SyscallEntry | None, nr: int, raw: tuple[int, ...]) -> int:
        if entry is None or entry.handler is None:
            name = entry.name if entry else f"syscall_{nr}"
            self.counts[name] += 1
            if nr not in self._warned:
                self._warned.add(nr)
                self._warn(f"unimplemented syscall {name} ({nr}): returning ENOSYS")
            return -Errno.ENOSYS
        self.counts[entry.name] += 1
        if entry.handler is IGNORED:
            return 0
        args = [convert(value) for convert, value in zip(entry.converters, raw)]
        try:
            return entry.handler(self._context, *args)
        except SyscallError as error:
            return -int(error.errno)
        except GuestFault:
            return -Errno.EFAULT
