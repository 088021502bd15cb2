"""The host C library, for the few host calls that Python's os and socket modules do not
offer with raw arguments (socket addresses and messages as bytes, timerfd, personality,
capget)."""

from __future__ import annotations

import ctypes
import os
from functools import cache


@cache
def libc() -> ctypes.CDLL:
    library = ctypes.CDLL(None, use_errno=True)
    for function in ("sendmsg", "recvmsg"):
        getattr(library, function).restype = ctypes.c_ssize_t
    library.personality.argtypes = [ctypes.c_ulong]
    return library


def checked(result: int) -> int:
    """A libc call's result; -1 becomes the OSError the host reported in errno."""
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result
