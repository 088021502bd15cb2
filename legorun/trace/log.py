"""The log that --strace and -d share, as qemu's: stderr, or the -D file (%p = pid).

On stderr every line is written at once, so it interleaves correctly with the guest's own
output to the same descriptor; a file is buffered and flushed when the run ends.
"""

from __future__ import annotations

import os
from typing import TextIO

from legorun.errors import UsageError
from legorun.trace.instrument import expand_pid


class TraceLog:
    def __init__(self, pattern: str | None, pid: int) -> None:
        self._file: TextIO | None = None
        if pattern is not None:
            path = expand_pid(pattern, pid)
            try:
                self._file = open(path, "w", encoding="utf-8", errors="replace")
            except OSError as error:
                raise UsageError(f"-D {path}: {error.strerror}") from None

    def write(self, line: str) -> None:
        """Write one line (without its newline)."""
        if self._file is None:
            os.write(2, (line + "\n").encode(errors="replace"))
        else:
            self._file.write(line + "\n")

    def attach(self, processor: object) -> None:
        """Nothing to hook: the log only closes with the run, after its writers."""

    def close(self, exit: object = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
