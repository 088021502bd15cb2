"""The compiled hot-path helpers, loaded with ctypes (they are called by Unicorn, not Python)."""

from __future__ import annotations

import ctypes
import importlib.machinery
from functools import cache
from pathlib import Path

from legorun.errors import LegorunError


@cache
def native_library() -> ctypes.CDLL:
    """The shared object built from native/*.c by `pip install` (see setup.py)."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_native{suffix}"
        if candidate.exists():
            return ctypes.CDLL(str(candidate))
    raise LegorunError(
        f"the compiled hooks are missing from {here}; reinstall legorun (make demo)"
    )


def function_pointer(name: str) -> ctypes.c_void_p:
    """The address of a compiled hook, as uc_hook_add takes it."""
    return ctypes.cast(getattr(native_library(), name), ctypes.c_void_p)
