"""The log that --strace and -d share, as qemu's: stderr, or the -D file (%p = pid).

On stderr every line is written at once, so it interleaves correctly with the guest's own
output to the same descriptor; a file is buffered and flushed when the run ends.

A forked child logs to stderr too (each line starts with its pid), or to its own file when
the -D name holds %p; a -D file with a fixed name is the parent's, and the child stays out
of it.
"""

from __future__ import annotations

import os
from typing import TextIO

from legorun.errors import UsageError
from legorun.trace.instrument import expand_pid


class TraceLog:
    def __init__(self, pattern: str | None, pid: int) -> None:
        self._pattern = pattern
        self._file: TextIO | None = None
        self._silent = False  # a forked child's, when the file is the parent's
        if pattern is not None:
            self._file = self._open(pattern, pid)

    @staticmethod
    def _open(pattern: str, pid: int) -> TextIO:
        path = expand_pid(pattern, pid)
        try:
            return open(path, "w", encoding="utf-8", errors="replace")
        except OSError as error:
            raise UsageError(f"-D {path}: {error.strerror}") from None

    def write(self, line: str) -> None:
        """Write one line (without its newline)."""
        if self._silent:
            return
        if self._file is None:
            os.write(2, (line + "\n").encode(errors="replace"))
        else:
            self._file.write(line + "\n")

    def attach(self, processor: object) -> None:
        """Nothing to hook: the log only closes with the run, after its writers."""

    def prepare_fork(self) -> None:
        if self._file is not None:
            self._file.flush()

    def forked(self, pid: int) -> None:
        if self._pattern is None:
            return
        if self._file is not None:
            self._file.close()  # this process's copy of the descriptor; nothing is buffered
            self._file = None
        if "%p" in self._pattern:
            self._file = self._open(self._pattern, pid)
        else:
            self._silent = True

    def close(self, exit: object = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
