"""How many bytes a message would occupy on the wire.

The in-process transport passes values without serializing them; this gives the size a
compact binary encoding would have (a fixed header, 8 bytes per integer, raw bytes and
strings with a length prefix), so that the network model charges a 4 KiB line like a 4 KiB
line. It runs on every RPC, ExCache misses included, so each message type's fixed part is
computed once and only its variable fields are measured per call.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import cache
from typing import Any, Callable

HEADER_BYTES = 16
FIXED_FIELD_BYTES = {int: 8, bool: 1, float: 8}


def payload_size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return 4 + len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, (tuple, list)):
        return 4 + sum(payload_size(item) for item in value)
    if dataclasses.is_dataclass(value):
        return _sizer(type(value))(value)
    return 8


@cache
def _sizer(cls: type) -> Callable[[Any], int]:
    hints = typing.get_type_hints(cls)
    fixed = 0
    blobs: list[str] = []  # bytes and str fields: a length prefix and their length
    others: list[str] = []
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if kind in FIXED_FIELD_BYTES:
            fixed += FIXED_FIELD_BYTES[kind]
        elif kind in (bytes, str):
            fixed += 4
            blobs.append(field.name)
        else:
            others.append(field.name)

    def size(value: Any) -> int:
        total = fixed
        for name in blobs:
            total += len(getattr(value, name))
        for name in others:
            total += payload_size(getattr(value, name))
        return total

    return size


def message_size(message: Any) -> int:
    return HEADER_BYTES + _sizer(type(message))(message)
