"""A checkpoint record survives its encoding whole, and anything else is refused."""

from __future__ import annotations

import msgpack
import pytest

from legorun.processor.checkpoint_record import (
    DEVICE,
    FILE,
    PATH_ERRORS,
    STREAM,
    CheckpointRecord,
    RecordError,
    SavedFile,
    SavedProcess,
    SavedThread,
    decode_record,
    encode_record,
)
from legorun.processor.process import SignalAction
from legorun.processor.sigframe import AltStack, SigInfo


def sample_record() -> CheckpointRecord:
    return CheckpointRecord(
        unicorn="2.1.4",
        registers=bytes(range(256)) * 3,
        interval_s=0.25,
        load_bias=0x555555554000,
        brk=0x4CF000,
        process=SavedProcess(
            pid=4242, exe="/bin/prog", cwd="/tmp/work", argv=(b"prog", b"\xff-arg"),
            envp=(b"A=1",), stack_start=0x7FFFFFFFE000, uid=1000, euid=1000, gid=100,
            egid=100, umask=0o077, uptime_s=12.5,
            rlimits=((3, 8 << 20, (1 << 64) - 1), (7, 1024, 1048576)),
            sigactions=((2, SignalAction(0x401000, 0x04000000, 0x401100, 1 << 13)),
                        (14, SignalAction(1))),
            prctl=((16, b"worker"), (36, 1)),
        ),
        thread=SavedThread(
            sigmask=1 << 9, altstack=AltStack(0x7000, 0, 8192), clear_child_tid=0x4AD650,
            robust_list=(0x4AD660, 24),
            pending=(SigInfo(10, pid=7, uid=1000), SigInfo(34, value=5, raw=b"\1" * 128),
                     SigInfo(11, code=1, addr=0xDEAD, trap=(14, 6))),
        ),
        shared_pending=(SigInfo(17, status=0, pid=99),),
        files=(SavedFile(STREAM, 0o2, host_fd=1),
               SavedFile(FILE, 0o102101, path="/tmp/w\udcffrk/journal", offset=4096,
                         hidden=True),
               SavedFile(DEVICE, 0, path="/dev/null", minor=3)),
        fds=((0, 0, False), (1, 0, False), (3, 1, True), (7, 2, False)),
        timers=((0, 0.04, 0.05),),
    )


def test_a_record_comes_back_equal() -> None:
    record = sample_record()
    assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize("data", [
    b"",
    b"not msgpack at all \xc1",
    msgpack.packb([1, 2, 3]),
    msgpack.packb({"format": 999}),
    msgpack.packb({"format": 1, "unicorn": "2.1.4"}),
])
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_record(data)


def test_a_record_with_a_damaged_part_is_refused() -> None:
    fields = msgpack.unpackb(encode_record(sample_record()), unicode_errors=PATH_ERRORS)
    fields["files"] = [["stream"]]  # a file description without its flags
    with pytest.raises(RecordError):
        decode_record(msgpack.packb(fields, unicode_errors=PATH_ERRORS))
