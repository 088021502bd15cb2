"""The memory manager's side of checkpoints: a named copy-on-write snapshot of a process's
address space with the processor's record, its generations, its output counts, and the
restore that makes a copy of it the process's space again (P2M_CHECKPOINT,
P2M_OUTPUT_COMMIT, P2M_RESTORE)."""

from __future__ import annotations

import shutil

import pytest

from legorun.managers.checkpoints import CheckpointStore
from legorun.managers.memory import STACK_TOP, MemoryManager
from legorun.managers.storage import StorageManager
from legorun.managers.vma import PAGE_SIZE
from legorun.rpc.messages import (
    CheckpointReply,
    CheckpointRequest,
    ExecReply,
    ExecRequest,
    ExitRequest,
    OutputCommitRequest,
    PageMissRequest,
    PageReply,
    RestoreReply,
    RestoreRequest,
    StatusReply,
    WritebackRequest,
)
from legorun.rpc.network import NetworkModel
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import LocalTransport
from syscalls.errno import Errno

PID = 100
PAGE = STACK_TOP - PAGE_SIZE  # the top stack page: mapped and written by exec


def page(fill: int) -> bytes:
    return bytes([fill]) * PAGE_SIZE


def managers(store: CheckpointStore) -> LocalTransport:
    """An embedded machine's managers, its memory manager keeping checkpoints in `store`."""
    transport = LocalTransport(NetworkModel(), RpcStats())
    transport.register(StorageManager(None).handlers())
    transport.register(MemoryManager(transport.call, store).handlers())
    return transport


@pytest.fixture
def store() -> CheckpointStore:
    return CheckpointStore()


@pytest.fixture
def transport(store: CheckpointStore) -> LocalTransport:
    """Process PID running /bin/true."""
    program = shutil.which("true")
    if program is None:
        pytest.skip("no true(1) to load")
    transport = managers(store)
    reply: ExecReply = transport.call(ExecRequest(PID, program, (b"true",), (), b"true"))
    assert reply.status == 0, reply.detail
    return transport


def read(transport: LocalTransport, addr: int = PAGE) -> bytes:
    reply: PageReply = transport.call(PageMissRequest(PID, addr))
    assert reply.status == 0
    return reply.data


def write(transport: LocalTransport, data: bytes, addr: int = PAGE) -> None:
    reply: StatusReply = transport.call(WritebackRequest(PID, ((addr, data),)))
    assert reply.status == 0


def checkpoint(transport: LocalTransport, name: str = "run", previous: int = 0,
               record: bytes = b"state", outputs: tuple = ()) -> CheckpointReply:
    return transport.call(CheckpointRequest(PID, name, record, previous, outputs))


def test_a_restore_brings_back_the_space_as_it_was_at_the_checkpoint(transport) -> None:
    write(transport, page(1))
    assert checkpoint(transport, record=b"registers and files") == CheckpointReply(generation=1)
    write(transport, page(2))  # the running process goes on: the snapshot keeps page(1)
    restored: RestoreReply = transport.call(RestoreRequest("run"))
    assert (restored.status, restored.pid, restored.generation) == (0, PID, 1)
    assert restored.record == b"registers and files"
    assert PAGE in restored.populated
    assert any(vma.start <= PAGE < vma.end for vma in restored.layout)
    assert read(transport) == page(1)


def test_a_restored_space_is_a_copy(transport) -> None:
    """A restored run that writes, is killed and is restored again starts from the same
    snapshot."""
    write(transport, page(1))
    checkpoint(transport)
    transport.call(RestoreRequest("run"))
    write(transport, page(3))
    transport.call(RestoreRequest("run"))
    assert read(transport) == page(1)


def test_a_new_processor_of_the_same_server_finds_the_checkpoint(transport, store) -> None:
    write(transport, page(5))
    checkpoint(transport)
    transport.call(ExitRequest(PID))  # the first processor's space is gone
    other = managers(store)  # the restoring run is a processor of its own
    restored: RestoreReply = other.call(RestoreRequest("run"))
    assert restored.status == 0
    assert read(other) == page(5)


def test_an_unknown_name_and_an_unknown_process(transport) -> None:
    assert transport.call(RestoreRequest("nothing")).status == Errno.ENOENT
    reply = transport.call(CheckpointRequest(PID + 1, "run", b""))
    assert reply.status == Errno.ESRCH


def test_generations_keep_a_processor_that_was_taken_over_out(transport) -> None:
    assert checkpoint(transport).generation == 1
    assert checkpoint(transport, previous=1).generation == 2
    # A run restored from generation 2 takes generation 3 ...
    assert checkpoint(transport, previous=2, record=b"restored run").generation == 3
    # ... and the run it replaced, still going, may no longer change it.
    assert checkpoint(transport, previous=2).status == Errno.ESTALE
    stale = transport.call(OutputCommitRequest("run", 2, 1, 10))
    assert stale.status == Errno.ESTALE
    assert transport.call(RestoreRequest("run")).record == b"restored run"
    # A fresh run of the same name starts over whatever is there.
    assert checkpoint(transport, previous=0, record=b"fresh").generation == 4


def test_output_counts_belong_to_their_checkpoint(transport) -> None:
    assert checkpoint(transport).generation == 1
    assert transport.call(OutputCommitRequest("run", 1, 1, 120)).status == 0
    assert transport.call(OutputCommitRequest("run", 1, 2, 7)).status == 0
    assert transport.call(OutputCommitRequest("run", 1, 1, 150)).status == 0
    assert transport.call(RestoreRequest("run")).outputs == ((1, 150), (2, 7))
    # The next checkpoint starts from what the processor says lies past it.
    checkpoint(transport, previous=1, outputs=((1, 30),))
    assert transport.call(RestoreRequest("run")).outputs == ((1, 30),)
    assert transport.call(OutputCommitRequest("nothing", 1, 1, 1)).status == Errno.ENOENT
