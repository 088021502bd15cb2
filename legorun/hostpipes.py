"""Telling the host's anonymous pipes from FIFO nodes: both stat as S_IFIFO, but a pipe
(reached through /proc/PID/fd/N) lives on pipefs, whose device number this finds once."""

from __future__ import annotations

import os
import stat
from functools import cache


@cache
def pipefs_device() -> int:
    read_end, write_end = os.pipe()
    try:
        return os.fstat(read_end).st_dev
    finally:
        os.close(read_end)
        os.close(write_end)


def is_fifo_node(mode: int, dev: int) -> bool:
    """Whether a stat's (mode, dev) is a FIFO in a file system, not an anonymous pipe."""
    return stat.S_ISFIFO(mode) and dev != pipefs_device()
