"""How many bytes a message would occupy on the wire.

The in-process transport passes values without serializing them; this gives the size a
compact binary encoding would have (a fixed header, 8 bytes per integer, raw bytes and
strings), so that the network model charges a 4 KiB line like a 4 KiB line.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

HEADER_BYTES = 16


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def payload_size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 4 + len(value)
    if isinstance(value, str):
        return 4 + len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return 8
    if isinstance(value, (tuple, list)):
        return 4 + sum(payload_size(item) for item in value)
    if dataclasses.is_dataclass(value):
        return sum(payload_size(getattr(value, name)) for name in _field_names(type(value)))
    return 8


def message_size(message: Any) -> int:
    return HEADER_BYTES + payload_size(message)
