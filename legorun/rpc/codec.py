"""The network encoding of RPC messages: msgpack, with every message value tagged by type.

A message is one of the flat dataclasses of rpc/messages.py (and the values they carry:
Vma, FileStat, DirEntry). Each is encoded as a msgpack extension whose payload is the
array [type number, field values...]; bytes stay bytes, tuples become arrays and come back
as tuples, so a decoded message equals the one encoded. Type numbers are positions in one
fixed list, which the protocol version in the handshake covers: both ends must agree on it.

Decoding trusts nothing: an unknown type, a wrong number of fields, a field of the wrong
kind, a payload that is not msgpack or a frame over the size limit raises CodecError, which
a server answers with an error reply and a client reports as a broken peer.
"""

from __future__ import annotations

import dataclasses
import typing
from types import NoneType, UnionType
from typing import Any, Callable

import msgpack

from legorun.managers.vma import Vma
from legorun.rpc import messages

MESSAGE_EXT = 1
# Large enough for the biggest reply (a whole file chunk, an exec layout), small enough that
# a hostile frame cannot make a server allocate without bound.
MAX_FRAME_BYTES = 64 << 20


class CodecError(Exception):
    """A frame that is not a well-formed message of this protocol version."""


def _message_types() -> list[type]:
    found = [value for value in vars(messages).values()
             if isinstance(value, type) and dataclasses.is_dataclass(value)
             and value.__module__ == messages.__name__]
    return sorted(found, key=lambda cls: cls.__name__) + [Vma]


MESSAGE_TYPES: list[type] = _message_types()
_TYPE_NUMBERS = {cls: number for number, cls in enumerate(MESSAGE_TYPES)}


def _checker(kind: Any) -> Callable[[Any], bool]:
    """A test that a decoded value fits the field type `kind` (after tuples came back)."""
    origin = typing.get_origin(kind)
    if kind is int:
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if kind is bool:
        return lambda value: isinstance(value, bool)
    if kind in (bytes, str, float):
        return lambda value: isinstance(value, kind)
    if kind is NoneType:
        return lambda value: value is None
    if origin in (UnionType, typing.Union):
        options = [_checker(option) for option in typing.get_args(kind)]
        return lambda value: any(check(value) for check in options)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _checker(args[0])
            return lambda value: isinstance(value, tuple) and all(map(item, value))
        items = [_checker(arg) for arg in args]
        return lambda value: (isinstance(value, tuple) and len(value) == len(items)
                              and all(check(v) for check, v in zip(items, value)))
    if dataclasses.is_dataclass(kind):
        return lambda value: isinstance(value, kind)
    raise TypeError(f"no wire form for field type {kind!r}")


def _field_checkers(cls: type) -> list[Callable[[Any], bool]]:
    hints = typing.get_type_hints(cls)
    return [_checker(hints[field.name]) for field in dataclasses.fields(cls)]


_CHECKERS = [_field_checkers(cls) for cls in MESSAGE_TYPES]
_FIELD_NAMES = [tuple(field.name for field in dataclasses.fields(cls)) for cls in MESSAGE_TYPES]


def _default(value: Any) -> Any:
    number = _TYPE_NUMBERS.get(type(value))
    if isinstance(value, int):  # msgpack asks only about integers it cannot hold
        raise OverflowError(f"{value} does not fit in 64 bits")
    if number is None:
        raise TypeError(f"{type(value).__name__} is not a message type")
    fields = [getattr(value, name) for name in _FIELD_NAMES[number]]
    return msgpack.ExtType(MESSAGE_EXT, msgpack.packb([number, *fields], default=_default,
                                                     use_bin_type=True))


def _nesting(kind: Any) -> int:
    """How deep message values nest inside a value of field type `kind`."""
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return 1 + max((_nesting(hints[field.name]) for field in dataclasses.fields(kind)),
                       default=0)
    return max((_nesting(arg) for arg in typing.get_args(kind) if arg is not Ellipsis),
               default=0)


# Each nested message value costs one msgpack unpacker on the C stack (tens of KiB), so a
# hostile frame of a few hundred nested values would overflow it long before Python's
# recursion limit: no frame may nest deeper than a real message does.
MAX_NESTING = max(_nesting(cls) for cls in MESSAGE_TYPES)


def _ext_hook(code: int, payload: bytes, depth: int) -> Any:
    if code != MESSAGE_EXT:
        raise CodecError(f"unknown extension type {code}")
    if depth > MAX_NESTING:
        raise CodecError(f"message values nested over {MAX_NESTING} deep")
    parts = _unpack(payload, depth)
    if not isinstance(parts, tuple) or not parts or not isinstance(parts[0], int):
        raise CodecError("a message value without its type number")
    number, fields = parts[0], parts[1:]
    if not 0 <= number < len(MESSAGE_TYPES):
        raise CodecError(f"unknown message type {number}")
    checkers = _CHECKERS[number]
    cls = MESSAGE_TYPES[number]
    if len(fields) != len(checkers):
        raise CodecError(f"{cls.__name__}: {len(fields)} fields, expected {len(checkers)}")
    for name, check, value in zip(_FIELD_NAMES[number], checkers, fields):
        if not check(value):
            raise CodecError(f"{cls.__name__}.{name}: a {type(value).__name__} does not fit")
    return cls(*fields)


def _unpack(data: bytes, depth: int = 0) -> Any:
    """`data` unpacked, its message values `depth` deep inside another message value."""
    return msgpack.unpackb(data, ext_hook=lambda code, payload: _ext_hook(code, payload,
                                                                          depth + 1),
                           use_list=False, raw=False, strict_map_key=True)


def encode(message: Any) -> bytes:
    return msgpack.packb(message, default=_default, use_bin_type=True)


def decode(data: bytes) -> Any:
    """The message in `data`; CodecError for anything else."""
    if len(data) > MAX_FRAME_BYTES:
        raise CodecError(f"a frame of {len(data)} bytes is over the limit")
    try:
        message = _unpack(data)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as error:
        raise CodecError(f"not a message: {str(error) or type(error).__name__}") from None
    if type(message) not in _TYPE_NUMBERS:
        raise CodecError("the frame holds no message")
    return message
