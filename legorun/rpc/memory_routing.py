"""Routing a processor's memory requests over its memory servers (`--memory A,B,...`).

The first server is each process's *home*: it keeps the VMAs and page contents as a single
memory manager does, and serves exec, mmap, brk, mprotect and the other address-space
calls. The global memory manager (managers/global_memory.py) places each 1 GiB vRegion of
the process on one server, its *owner*, when the process first writes a page of it back;
from then on every write-back of a page goes to its vRegion's owner (P2M_VREGION first tells
a new owner what it owns). An owner that is not the home holds only the pages written back
to it, under one anonymous area per vRegion.

A miss goes, in one RPC, to wherever the page's latest copy is: the owner for a page the
process wrote back there, the home for any other (a file page, a page exec or the stack set
up, a page of a vRegion placed on the home); an untouched anonymous page is zero-filled by
the processor without any RPC, as always. The router knows which pages are at owners: it
sent them there. A dirty line evicted by the miss rides along when it goes to the same
server, and is written back on its own otherwise.

The home stays the authority on what a range holds:
- when it lets a range go (munmap, brk, an mmap over it), the owners drop their pages there;
- before it may keep, move or drop pages by its own rules (mremap, madvise that frees, a
  checkpoint), the owners' pages of the range come home first (P2M_TAKE_PAGES);
- fork snapshots the process at the home and at every owner (the child claims each, the
  parent releases each), exit and exec let it go at every owner.

With one server it is the home of everything and the traffic is the single manager's. Each
RPC is counted on the modelled network as it is sent, per opcode and per server; when a
process exits, each server also reports what it holds (RunStats: `memory_servers`).

A write-back that a server cannot store because it is full (`legorun memory-server
--capacity`) ends the run: `legorun: memory server ADDR is full (capacity SIZE)`, exit 125,
the place where Linux's OOM killer would end the process. Exec, mmap and brk are refused
earlier, with ENOMEM for the guest, by the home (managers/memory.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from legorun.errors import RpcError
from legorun.managers.address_space import (
    MADV_DONTNEED,
    MADV_DONTNEED_LOCKED,
    MADV_FREE,
    MADV_REMOVE,
)
from legorun.managers.global_memory import HOME, VREGION_SHIFT, GlobalMemoryManager
from legorun.managers.vma import MREMAP_FIXED, PAGE_SHIFT, Vma, page_up
from legorun.rpc.messages import (
    BrkRequest,
    CapacityReply,
    CapacityRequest,
    CheckpointRequest,
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
    PagesReply,
    Request,
    RestoreReply,
    RestoreRequest,
    StatusReply,
    TakePagesRequest,
    VRegionRequest,
    WritebackRequest,
)
from legorun.rpc.stats import RpcStats, ServerLoad
from legorun.rpc.transport import Channel
from legorun.units import format_size
from syscalls.errno import Errno, strerror

# Pages moved or dropped by one P2M_TAKE_PAGES (and written home by one write-back): 8 MiB,
# well under the frame limit.
TAKE_CHUNK = 2048
# madvise advices after which the home may drop pages (it decides which, by its rules).
FREEING_ADVICE = frozenset({MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_DONTNEED_LOCKED})
_VREGION_PAGE_SHIFT = VREGION_SHIFT - PAGE_SHIFT

Lines = tuple[tuple[int, bytes], ...]


class ServerChannel(Channel, Protocol):
    """A connection to one memory server (rpc/remote.py), known by its address."""

    address: str


class MemoryRouter:
    role = "memory"

    def __init__(self, channels: Sequence[ServerChannel], placement: str,
                 record: Callable[[Request, Any], tuple[int, float]], stats: RpcStats) -> None:
        """`channels`: one per memory server, the home first; `placement`: the global memory
        manager's policy; `record(request, reply)` counts an RPC on the modelled network
        (LocalTransport.record); per-server loads go to `stats.servers`."""
        self._channels = list(channels)
        self._record = record
        self._loads = [ServerLoad(home=index == HOME) for index in range(len(channels))]
        for channel, load in zip(self._channels, self._loads):
            stats.servers[channel.address] = load
        self._gmm = GlobalMemoryManager(len(channels), placement, self._ask_capacity)
        self._at_owner: set[int] = set()  # page numbers whose latest copy is at an owner
        self._forks: dict[int, dict[int, int]] = {}  # home's fork token -> server -> token
        self._brk = 0  # the process's break, as the home last reported it
        self._routes: dict[Opcode, Callable[[Any], Any]] = {
            Opcode.P2M_PCACHE_MISS: self._miss,
            Opcode.P2M_WRITEBACK: self._write_back,
            Opcode.P2M_EXECVE: self._exec,
            Opcode.P2M_EXIT: self._exit,
            Opcode.P2M_FORK: self._fork,
            Opcode.P2M_FORK_CLAIM: self._fork_claim,
            Opcode.P2M_FORK_RELEASE: self._fork_release,
            Opcode.P2M_MMAP: self._mmap,
            Opcode.P2M_MUNMAP: self._munmap,
            Opcode.P2M_BRK: self._brk_call,
            Opcode.P2M_MREMAP: self._mremap,
            Opcode.P2M_MADVISE: self._madvise,
            Opcode.P2M_CHECKPOINT: self._checkpoint,
            Opcode.P2M_RESTORE: self._restore,
        }

    # ------------------------------------------------------------ the Channel interface

    def call(self, request: Request) -> Any:
        route = self._routes.get(request.OPCODE)
        return self._send(HOME, request) if route is None else route(request)

    def forked(self) -> None:
        for channel in self._channels:
            channel.forked()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    # ------------------------------------------------------------ sending

    def _send(self, server: int, request: Request) -> Any:
        reply = self._channels[server].call(request)
        nbytes, cost = self._record(request, reply)
        load = self._loads[server]
        load.requests += 1
        load.bytes += nbytes
        load.modelled_s += cost
        return reply

    def _stored(self, server: int, reply: Any) -> Any:
        """The reply to a request that stored pages at `server`; a full server ends the
        run."""
        if reply.status == Errno.ENOMEM:
            channel = self._channels[server]
            report: CapacityReply = channel.call(CapacityRequest())
            raise RpcError(f"memory server {channel.address} is full "
                           f"(capacity {format_size(report.capacity)})")
        return reply

    def _ask_capacity(self, server: int) -> CapacityReply:
        return self._send(server, CapacityRequest())

    # ------------------------------------------------------------ ExCache traffic

    def _miss(self, req: PageMissRequest) -> PageReply:
        page = req.addr >> PAGE_SHIFT
        source = self._owner(req.pid, page) if page in self._at_owner else HOME
        if req.writeback:
            along, _status = self._write_back_lines(req.pid, req.writeback, source)
            if len(along) != len(req.writeback):
                req = replace(req, writeback=along)
        return self._stored(source, self._send(source, req))

    def _write_back(self, req: WritebackRequest) -> StatusReply:
        _along, status = self._write_back_lines(req.pid, req.lines, None)
        return StatusReply(status)

    def _write_back_lines(self, pid: int, lines: Lines, along_to: int | None
                          ) -> tuple[Lines, int]:
        """Write `lines` back to their owners; those whose owner is `along_to` are returned
        instead, to ride on the request that goes there. Also the first failure's errno."""
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for line in lines:
            groups.setdefault(self._owner(pid, line[0] >> PAGE_SHIFT), []).append(line)
        along: Lines = ()
        status = 0
        for owner, group in groups.items():
            if owner == along_to:
                along = tuple(group)
            else:
                reply = self._send(owner, WritebackRequest(pid, tuple(group)))
                status = status or self._stored(owner, reply).status
            if owner != HOME:
                self._at_owner.update(addr >> PAGE_SHIFT for addr, _data in group)
        return along, status

    def _owner(self, pid: int, page: int) -> int:
        """The owner of the page's vRegion, placing the vRegion now if it has none."""
        vregion = page >> _VREGION_PAGE_SHIFT
        owner = self._gmm.owner(vregion)
        if owner is None:
            owner = self._gmm.place(vregion)
            self._loads[owner].vregions.add(vregion)
            if owner != HOME:
                reply: StatusReply = self._send(owner, VRegionRequest(pid, vregion))
                if reply.status:
                    raise RpcError(f"memory server {self._channels[owner].address} cannot own "
                                   f"vRegion {vregion}: {strerror(reply.status)}")
        return owner

    # ------------------------------------------------------------ the owners' pages

    def _owned_in(self, start: int, end: int) -> list[int]:
        """Page numbers in [start, end) whose latest copy is at an owner."""
        first, last = start >> PAGE_SHIFT, page_up(end) >> PAGE_SHIFT
        if last - first <= len(self._at_owner):
            return [page for page in range(first, last) if page in self._at_owner]
        return [page for page in self._at_owner if first <= page < last]

    def _take(self, pid: int, pages: Iterable[int], home: bool) -> None:
        """Take `pages` from their owners: to the home when `home`, else nowhere (the home
        let their range go)."""
        groups: dict[int, list[int]] = {}
        for page in pages:
            owner = self._gmm.owner(page >> _VREGION_PAGE_SHIFT)
            assert owner is not None and owner != HOME
            groups.setdefault(owner, []).append(page)
        for owner, owned in groups.items():
            for at in range(0, len(owned), TAKE_CHUNK):
                chunk = owned[at : at + TAKE_CHUNK]
                taken: PagesReply = self._send(owner, TakePagesRequest(
                    pid, tuple(page << PAGE_SHIFT for page in chunk), home))
                if taken.pages:
                    self._stored(HOME, self._send(HOME, WritebackRequest(pid, taken.pages)))
                self._at_owner.difference_update(chunk)

    def _drop(self, pid: int, start: int, end: int) -> None:
        if self._at_owner:
            self._take(pid, self._owned_in(start, end), home=False)

    def _bring_home(self, pid: int, start: int, end: int) -> None:
        if self._at_owner:
            self._take(pid, self._owned_in(start, end), home=True)

    # ------------------------------------------------------------ address-space calls

    def _mmap(self, req: MmapRequest) -> MmReply:
        reply: MmReply = self._send(HOME, req)
        if not reply.status:  # whatever the range held before is gone
            self._drop(req.pid, reply.result, reply.result + page_up(req.length))
        return reply

    def _munmap(self, req: MunmapRequest) -> MmReply:
        reply: MmReply = self._send(HOME, req)
        if not reply.status:
            self._drop(req.pid, req.addr, req.addr + page_up(req.length))
        return reply

    def _brk_call(self, req: BrkRequest) -> MmReply:
        reply: MmReply = self._send(HOME, req)
        if not reply.status:
            if page_up(reply.result) < page_up(self._brk):
                self._drop(req.pid, page_up(reply.result), page_up(self._brk))
            self._brk = reply.result
        return reply

    def _mremap(self, req: MremapRequest) -> MmReply:
        self._bring_home(req.pid, req.old_addr,
                         req.old_addr + page_up(max(req.old_size, req.new_size)))
        if req.flags & MREMAP_FIXED:  # which replaces what the new range held
            self._bring_home(req.pid, req.new_addr, req.new_addr + page_up(req.new_size))
        return self._send(HOME, req)

    def _madvise(self, req: MadviseRequest) -> MmReply:
        if req.advice in FREEING_ADVICE:
            self._bring_home(req.pid, req.addr, req.addr + page_up(req.length))
        return self._send(HOME, req)

    # ------------------------------------------------------------ processes

    def _exec(self, req: ExecRequest) -> ExecReply:
        reply: ExecReply = self._send(HOME, req)
        if not reply.status:  # a new address space: the old one goes everywhere
            self._leave_owners(req.pid)
            self._brk = reply.brk
        return reply

    def _exit(self, req: ExitRequest) -> StatusReply:
        self._observe_loads()
        self._leave_owners(req.pid)
        return self._send(HOME, req)

    def _leave_owners(self, pid: int) -> None:
        for server in self._gmm.servers_in_use():
            if server != HOME:
                self._send(server, ExitRequest(pid))
        self._gmm.reset()
        self._at_owner.clear()

    def _observe_loads(self) -> None:
        """What each server holds now, for the statistics: asked outside the modelled
        machine (it only observes it)."""
        for channel, load in zip(self._channels, self._loads):
            report: CapacityReply = channel.call(CapacityRequest())
            load.capacity, load.bytes_held, load.pages_held = (
                report.capacity, report.used, report.pages)

    def _fork(self, req: ForkRequest) -> ForkReply:
        tokens: dict[int, int] = {}
        for server in self._gmm.servers_in_use():  # HOME first
            reply: ForkReply = self._send(server, req)
            if reply.status:
                self._release(tokens)
                return reply
            tokens[server] = reply.token
        self._forks[tokens[HOME]] = tokens
        return ForkReply(token=tokens[HOME])

    def _fork_claim(self, req: ForkClaimRequest) -> StatusReply:
        """In the child: its snapshot at every server the parent's process used."""
        tokens = self._forks.get(req.token, {HOME: req.token})
        self._forks = {}  # the parent's other snapshots are the parent's
        reply = StatusReply()
        for server, token in tokens.items():
            reply = self._send(server, ForkClaimRequest(token, req.pid))
            if reply.status:
                break
        return reply

    def _fork_release(self, req: ForkReleaseRequest) -> StatusReply:
        return self._release(self._forks.pop(req.token, {HOME: req.token}))

    def _release(self, tokens: dict[int, int]) -> StatusReply:
        reply = StatusReply()
        for server, token in tokens.items():
            reply = self._send(server, ForkReleaseRequest(token))
        return reply

    # ------------------------------------------------------------ checkpoints

    def _checkpoint(self, req: CheckpointRequest) -> Any:
        """A checkpoint is a snapshot at the home: all of the process goes there first."""
        self._take(req.pid, list(self._at_owner), home=True)
        return self._send(HOME, req)

    def _restore(self, req: RestoreRequest) -> RestoreReply:
        reply: RestoreReply = self._send(HOME, req)
        if not reply.status:  # a whole address space at the home
            self._leave_owners(reply.pid)
            self._brk = _heap_end(reply.layout)
        return reply


def _heap_end(layout: Sequence[Vma]) -> int:
    """The break as far as pages go: the end of the [heap] area (0: none yet)."""
    return max((vma.end for vma in layout if vma.name == "[heap]"), default=0)
