"""Routing over several memory servers (rpc/memory_routing.py) and vRegion placement
(managers/global_memory.py), with each server a memory manager in this process: write-backs
go to their vRegion's owner, misses to wherever the latest copy is, and the home's unmap,
mremap, madvise, fork, exec and exit reach every server that holds pages of the process."""

from __future__ import annotations

import copy
import shutil
from collections import Counter
from typing import Any

import pytest

from legorun.errors import RpcError
from legorun.managers.global_memory import GlobalMemoryManager
from legorun.managers.memory import STACK_TOP, MemoryManager
from legorun.managers.page_account import PageAccount
from legorun.managers.storage import StorageManager
from legorun.managers.vma import MREMAP_FIXED, MREMAP_MAYMOVE, PAGE_SIZE
from legorun.rpc.memory_routing import MemoryRouter
from legorun.rpc.messages import (
    CapacityReply,
    ExecReply,
    ExecRequest,
    ExitRequest,
    ForkClaimRequest,
    ForkReleaseRequest,
    ForkReply,
    ForkRequest,
    MadviseRequest,
    MmapRequest,
    MmReply,
    MremapRequest,
    MunmapRequest,
    Opcode,
    PageMissRequest,
    PageReply,
    Request,
    WritebackRequest,
)
from legorun.rpc.network import NetworkModel
from legorun.rpc.stats import RpcStats
from legorun.rpc.transport import LocalTransport

GIB = 1 << 30
PID, CHILD = 10, 11
MAP_FIXED_PRIVATE_ANONYMOUS = 0x32
PROT_RW = 3
MADV_DONTNEED = 4


def page(fill: int) -> bytes:
    return bytes([fill]) * PAGE_SIZE


class LocalServer:
    """A memory server in this process: what a RemoteChannel reaches, without the network."""

    def __init__(self, address: str, capacity: int = 0) -> None:
        self.address = address
        self.account = PageAccount(capacity)
        storage = StorageManager(None).handlers()
        manager = MemoryManager(lambda request: storage[request.OPCODE](request),
                                account=self.account)
        self._handlers = manager.handlers()
        self.calls: Counter[Opcode] = Counter()

    def call(self, request: Request) -> Any:
        self.calls[request.OPCODE] += 1
        return self._handlers[request.OPCODE](request)

    def forked(self) -> None:
        pass


class Machine:
    """A processor's transport routed over `servers`, with process PID running true(1)."""

    def __init__(self, servers: list[LocalServer], placement: str = "striped") -> None:
        program = shutil.which("true")
        if program is None:
            pytest.skip("no true(1) to load")
        self.servers = servers
        self.stats = RpcStats()
        self.transport = LocalTransport(NetworkModel(), self.stats)
        self.router = MemoryRouter(servers, placement, self.transport.record, self.stats)
        self.transport.route(self.router)
        reply: ExecReply = self.call(ExecRequest(PID, program, (b"true",), (), b"true"))
        assert reply.status == 0, reply.detail

    def call(self, request: Request) -> Any:
        return self.transport.call(request)

    def map(self, addr: int, pages: int, pid: int = PID) -> None:
        reply: MmReply = self.call(MmapRequest(pid, addr, pages * PAGE_SIZE, PROT_RW,
                                               MAP_FIXED_PRIVATE_ANONYMOUS))
        assert reply.status == 0 and reply.result == addr

    def write(self, addr: int, data: bytes, pid: int = PID) -> None:
        self.call(WritebackRequest(pid, ((addr, data),)))

    def read(self, addr: int, pid: int = PID, evicting: tuple[tuple[int, bytes], ...] = ()
             ) -> bytes:
        reply: PageReply = self.call(PageMissRequest(pid, addr, evicting))
        assert reply.status == 0
        return reply.data

    def forked(self) -> MemoryRouter:
        """The router as a forked child has it: a copy of everything but the servers."""
        shared = [*self.servers, self.transport, self.stats]
        return copy.deepcopy(self.router, {id(thing): thing for thing in shared})

    def held(self) -> list[int]:
        return [server.account.pages for server in self.servers]


@pytest.fixture
def two() -> Machine:
    return Machine([LocalServer("home"), LocalServer("other")])


def test_write_backs_go_to_the_owner_and_misses_follow_them(two: Machine) -> None:
    home, other = two.servers
    two.map(5 * GIB, 4)  # vRegion 5: server 1 of 2 when striped
    before = two.held()
    two.write(5 * GIB, page(1))
    assert other.calls[Opcode.P2M_VREGION] == 1
    assert two.held() == [before[0], before[1] + 1]
    assert two.read(5 * GIB) == page(1)
    assert other.calls[Opcode.P2M_PCACHE_MISS] == 1
    # A page never written back comes from the home: here, exec's stack.
    stack = two.read(STACK_TOP - PAGE_SIZE)
    assert home.calls[Opcode.P2M_PCACHE_MISS] == 1 and len(stack) == PAGE_SIZE
    # Every RPC is counted once, per opcode and per server.
    assert two.stats.by_opcode[Opcode.P2M_VREGION].count == 1
    assert two.stats.servers["other"].requests == sum(other.calls.values())
    assert two.stats.servers["other"].vregions == {5}


def test_an_evicted_line_rides_on_the_miss_only_to_its_own_owner(two: Machine) -> None:
    home, other = two.servers
    two.map(4 * GIB, 2)  # vRegion 4: the home
    two.map(5 * GIB, 2)
    two.write(5 * GIB, page(1))
    misses, writebacks = other.calls[Opcode.P2M_PCACHE_MISS], other.calls[Opcode.P2M_WRITEBACK]
    # Same owner: one RPC carries both.
    assert two.read(5 * GIB, evicting=((5 * GIB + PAGE_SIZE, page(2)),)) == page(1)
    assert other.calls[Opcode.P2M_PCACHE_MISS] == misses + 1
    assert other.calls[Opcode.P2M_WRITEBACK] == writebacks
    # Another owner: the line is written back on its own.
    assert two.read(4 * GIB, evicting=((5 * GIB, page(3)),)) == bytes(PAGE_SIZE)
    assert other.calls[Opcode.P2M_WRITEBACK] == writebacks + 1
    assert two.read(5 * GIB) == page(3)
    assert two.read(5 * GIB + PAGE_SIZE) == page(2)


def test_unmapped_and_remapped_ranges_lose_the_owners_pages(two: Machine) -> None:
    two.map(5 * GIB, 2)
    two.write(5 * GIB, page(1))
    held = two.held()[1]
    assert two.call(MunmapRequest(PID, 5 * GIB, 2 * PAGE_SIZE)).status == 0
    assert two.held()[1] == held - 1
    two.map(5 * GIB, 2)
    assert two.read(5 * GIB) == bytes(PAGE_SIZE)


def test_mremap_and_madvise_bring_the_owners_pages_home_first(two: Machine) -> None:
    two.map(5 * GIB, 2)
    two.write(5 * GIB, page(1))
    two.write(5 * GIB + PAGE_SIZE, page(2))
    moved: MmReply = two.call(MremapRequest(PID, 5 * GIB, 2 * PAGE_SIZE, 2 * PAGE_SIZE,
                                            MREMAP_MAYMOVE | MREMAP_FIXED, 7 * GIB))
    assert moved.status == 0 and moved.result == 7 * GIB
    assert two.read(7 * GIB) == page(1) and two.read(7 * GIB + PAGE_SIZE) == page(2)
    two.write(7 * GIB, page(3))  # vRegion 7 is the other server's
    assert two.call(MadviseRequest(PID, 7 * GIB, PAGE_SIZE, MADV_DONTNEED)).status == 0
    assert two.read(7 * GIB) == bytes(PAGE_SIZE)
    assert two.read(7 * GIB + PAGE_SIZE) == page(2)


def test_fork_snapshots_the_process_at_every_server(two: Machine) -> None:
    home, other = two.servers
    two.map(5 * GIB, 1)
    two.write(5 * GIB, page(1))
    fork: ForkReply = two.call(ForkRequest(PID))
    assert fork.status == 0
    assert home.calls[Opcode.P2M_FORK] == other.calls[Opcode.P2M_FORK] == 1
    child = two.forked()
    assert child.call(ForkClaimRequest(fork.token, CHILD)).status == 0
    assert other.calls[Opcode.P2M_FORK_CLAIM] == 1
    assert child.call(PageMissRequest(CHILD, 5 * GIB)).data == page(1)
    child.call(WritebackRequest(CHILD, ((5 * GIB, page(2)),)))
    assert two.read(5 * GIB) == page(1)
    assert child.call(PageMissRequest(CHILD, 5 * GIB)).data == page(2)
    child.call(ExitRequest(CHILD))
    two.call(ForkReleaseRequest(fork.token))
    assert other.calls[Opcode.P2M_FORK_RELEASE] == 1
    assert other.account.pages == 1  # the parent's page only


def test_exec_and_exit_let_the_process_go_everywhere(two: Machine) -> None:
    two.map(5 * GIB, 1)
    two.write(5 * GIB, page(1))
    assert two.held()[1] == 1
    program = shutil.which("true")
    reply: ExecReply = two.call(ExecRequest(PID, str(program), (b"true",), (), b"true"))
    assert reply.status == 0
    assert two.held()[1] == 0
    two.call(ExitRequest(PID))
    assert two.held() == [0, 0]
    assert two.stats.servers["home"].pages_held > 0  # observed before the exit


def test_a_full_owner_ends_the_run_with_one_clear_message() -> None:
    machine = Machine([LocalServer("home"), LocalServer("small", capacity=PAGE_SIZE)])
    machine.map(5 * GIB, 2)
    machine.write(5 * GIB, page(1))
    with pytest.raises(RpcError, match=r"^memory server small is full \(capacity 4K\)$"):
        machine.write(5 * GIB + PAGE_SIZE, page(2))


def test_capacity_placement_picks_the_server_with_most_room() -> None:
    servers = [LocalServer("home", capacity=64 << 20), LocalServer("small", capacity=8 << 20),
               LocalServer("big", capacity=128 << 20)]
    machine = Machine(servers, placement="capacity")
    machine.map(5 * GIB, 1)
    machine.write(5 * GIB, page(1))
    assert machine.stats.servers["big"].vregions == {5}
    assert servers[2].account.pages == 1


def test_placement_policies() -> None:
    def reports(*free: tuple[int, int]) -> Any:
        return lambda server: CapacityReply(capacity=free[server][0], used=free[server][1])

    striped = GlobalMemoryManager(3, "striped", reports())
    assert [striped.place(v) for v in (0, 1, 2, 3, 7)] == [0, 1, 2, 0, 1]
    by_room = GlobalMemoryManager(3, "capacity", reports((100, 90), (50, 10), (100, 50)))
    assert by_room.place(4) == 2 and by_room.owner(4) == 2 and by_room.owner(5) is None
    # No limit is the most room; among those, the one holding least.
    unlimited = GlobalMemoryManager(3, "capacity", reports((100, 0), (0, 70), (0, 60)))
    assert unlimited.place(0) == 2
    assert unlimited.servers_in_use() == [0, 2]
    unlimited.reset()
    assert unlimited.owner(0) is None and unlimited.servers_in_use() == [0]
    with pytest.raises(ValueError):
        GlobalMemoryManager(2, "random", reports())


def test_one_server_sends_what_a_single_memory_manager_gets() -> None:
    (home,) = servers = [LocalServer("home")]
    machine = Machine(servers)
    machine.map(5 * GIB, 2)
    machine.write(5 * GIB, page(1))
    assert machine.read(5 * GIB, evicting=((5 * GIB + PAGE_SIZE, page(2)),)) == page(1)
    assert home.calls[Opcode.P2M_VREGION] == home.calls[Opcode.P2M_CAPACITY] == 0
    assert sum(home.calls.values()) == sum(e.count for e in machine.stats.by_opcode.values())
    assert home.account.pages > 0  # the home keeps everything
