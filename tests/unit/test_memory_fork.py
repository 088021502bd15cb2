"""The memory manager's side of fork: a copy-on-write snapshot of a process's address space,
held under a token until the child claims it under its own pid (P2M_FORK, P2M_FORK_CLAIM,
P2M_FORK_RELEASE)."""

from __future__ import annotations

import shutil

import pytest

from legorun.managers.address_space import AddressSpace
from legorun.managers.memory import STACK_TOP, MemoryManager
from legorun.managers.storage import StorageManager
from legorun.managers.vma import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE
from legorun.rpc.messages import (
    ExecReply,
    ExecRequest,
    ForkClaimRequest,
    ForkReleaseRequest,
    ForkReply,
    ForkRequest,
    PageMissRequest,
    PageReply,
    StatusReply,
    WritebackRequest,
)
from legorun.rpc.network import NetworkModel
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import LocalTransport
from syscalls.errno import Errno

PARENT, CHILD = 100, 200
PAGE = STACK_TOP - PAGE_SIZE  # the top stack page: mapped and written by exec


def page(fill: int) -> bytes:
    return bytes([fill]) * PAGE_SIZE


@pytest.fixture
def transport() -> LocalTransport:
    """An embedded machine's managers with process PARENT running /bin/true."""
    program = shutil.which("true")
    if program is None:
        pytest.skip("no true(1) to load")
    transport = LocalTransport(NetworkModel(), RpcStats())
    transport.register(StorageManager(None).handlers())
    transport.register(MemoryManager(transport.call).handlers())
    reply: ExecReply = transport.call(ExecRequest(PARENT, program, (b"true",), (), b"true"))
    assert reply.status == 0, reply.detail
    return transport


def read(transport: LocalTransport, pid: int, addr: int = PAGE) -> bytes:
    reply: PageReply = transport.call(PageMissRequest(pid, addr))
    assert reply.status == 0
    return reply.data


def write(transport: LocalTransport, pid: int, data: bytes, addr: int = PAGE) -> None:
    reply: StatusReply = transport.call(WritebackRequest(pid, ((addr, data),)))
    assert reply.status == 0


def fork(transport: LocalTransport, pid: int = PARENT) -> int:
    reply: ForkReply = transport.call(ForkRequest(pid))
    assert reply.status == 0
    return reply.token


def test_claimed_snapshot_is_the_parents_memory_then_diverges(transport) -> None:
    write(transport, PARENT, page(1))
    token = fork(transport)
    assert transport.call(ForkClaimRequest(token, CHILD)) == StatusReply()
    assert read(transport, CHILD) == page(1)
    write(transport, CHILD, page(2))
    write(transport, PARENT, page(3))
    assert read(transport, CHILD) == page(2)
    assert read(transport, PARENT) == page(3)


def test_a_snapshot_is_taken_when_forking_not_when_claimed(transport) -> None:
    write(transport, PARENT, page(1))
    token = fork(transport)
    write(transport, PARENT, page(9))
    transport.call(ForkClaimRequest(token, CHILD))
    assert read(transport, CHILD) == page(1)


def test_a_token_is_claimed_once_and_release_drops_an_unclaimed_one(transport) -> None:
    token = fork(transport)
    transport.call(ForkClaimRequest(token, CHILD))
    assert transport.call(ForkClaimRequest(token, CHILD + 1)).status == Errno.ESRCH
    assert transport.call(ForkReleaseRequest(token)) == StatusReply()  # already claimed
    unclaimed = fork(transport)
    transport.call(ForkReleaseRequest(unclaimed))
    assert transport.call(ForkClaimRequest(unclaimed, CHILD + 2)).status == Errno.ESRCH


def test_fork_of_an_unknown_process_fails(transport) -> None:
    reply: ForkReply = transport.call(ForkRequest(PARENT + 1))
    assert reply.status == Errno.ESRCH


def test_copy_shares_pages_until_one_side_writes() -> None:
    space = AddressSpace(lambda path, offset, length: b"")
    addr = space.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for index in range(4):
        space.write_page(addr + index * PAGE_SIZE, page(index + 1))
    child = space.copy()
    assert all(child.read_page(addr + i * PAGE_SIZE) is space.read_page(addr + i * PAGE_SIZE)
               for i in range(4))
    child.write_page(addr, page(7))
    assert space.read_page(addr) == page(1)
    assert child.read_page(addr + PAGE_SIZE) is space.read_page(addr + PAGE_SIZE)
