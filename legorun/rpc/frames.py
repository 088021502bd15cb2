"""The frames of the network transport: [header, message] on a ZeroMQ connection.

The header names the protocol (magic and version) and numbers the request: a client that
resends a request after a timeout sends the same number, so a server that already served it
answers from its copy of the reply instead of doing it twice, and a late reply to an earlier
attempt is recognised and dropped.
"""

from __future__ import annotations

import struct

from legorun.rpc.codec import CodecError

MAGIC = b"LGRN"
# Bumped whenever a message type or field changes (codec.py numbers the types).
PROTOCOL_VERSION = 3
_HEADER = struct.Struct("<4sHQ")


def header(seq: int) -> bytes:
    return _HEADER.pack(MAGIC, PROTOCOL_VERSION, seq)


def request_number(data: bytes) -> int:
    """The request number in a header; CodecError for a header of another protocol."""
    if len(data) != _HEADER.size:
        raise CodecError(f"a header of {len(data)} bytes")
    magic, version, seq = _HEADER.unpack(data)
    if magic != MAGIC:
        raise CodecError("not a legorun frame")
    if version != PROTOCOL_VERSION:
        raise CodecError(f"protocol version {version}, this is version {PROTOCOL_VERSION}")
    return seq
