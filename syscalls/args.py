"""Argument types of syscall handlers, named as the man pages name them.

A handler's parameter annotations say how its raw 64-bit register is decoded (the dispatcher
computes one converter per parameter once, when the table is built) and, for tracing, how it
is shown. `int` fields the kernel declares as 32-bit are sign-extended from the low half.
"""

from __future__ import annotations

from typing import Callable, NewType

Fd = NewType("Fd", int)  # int: file descriptor (AT_FDCWD is -100)
Int = NewType("Int", int)  # int
UInt = NewType("UInt", int)  # unsigned int, flags and modes
Long = NewType("Long", int)  # long, off_t, loff_t
ULong = NewType("ULong", int)  # unsigned long
Size = NewType("Size", int)  # size_t
Ptr = NewType("Ptr", int)  # a user pointer to a buffer or struct
CStr = NewType("CStr", int)  # a user pointer to a NUL-terminated string (a path, a name)

AT_FDCWD = -100


def _signed(bits: int) -> Callable[[int], int]:
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)

    def convert(raw: int) -> int:
        raw &= mask
        return raw - (1 << bits) if raw & sign else raw

    return convert


def _unsigned(bits: int) -> Callable[[int], int]:
    mask = (1 << bits) - 1
    return lambda raw: raw & mask


CONVERTERS: dict[object, Callable[[int], int]] = {
    Fd: _signed(32),
    Int: _signed(32),
    UInt: _unsigned(32),
    Long: _signed(64),
    ULong: _unsigned(64),
    Size: _unsigned(64),
    Ptr: _unsigned(64),
    CStr: _unsigned(64),
}
