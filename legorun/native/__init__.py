"""The compiled hot-path helpers, loaded with ctypes (they are called by Unicorn, not Python)."""

from __future__ import annotations

import ctypes
import importlib.machinery
from functools import cache
from pathlib import Path

from legorun.errors import LegorunError


@cache
def excache_library() -> ctypes.CDLL:
    """The shared object built from excache.c by `pip install` (see setup.py)."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_excache{suffix}"
        if candidate.exists():
            return ctypes.CDLL(str(candidate))
    raise LegorunError(
        f"the compiled ExCache hook is missing from {here}; reinstall legorun (make demo)"
    )
