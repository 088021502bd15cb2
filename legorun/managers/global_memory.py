"""The global memory manager (LegoOS GMM): which memory server owns each vRegion of a process.

A process's virtual address space is cut into 1 GiB vRegions (address >> 30). With several
memory servers, the first one named is the process's *home*: it keeps the VMAs and runs exec,
mmap, brk and the other address-space calls. Each vRegion is placed on one server, the
home included, when it is first needed (the first write-back to it), by one of two policies:

- `capacity`: on the server with the most free capacity, as the servers report it
  (P2M_CAPACITY: capacity and bytes held, over all the processors each one serves); among
  servers with the same room, the one holding least, then the one named first;
- `striped`: round robin by vRegion index, vRegion i on server i mod N, with no RPC.

LegoOS runs the GMM as a service of its own. Here each processor runs one for each of its
processes, in the processor, and it asks the servers themselves what they hold: placement is
rare (once per vRegion a process writes), so it costs an RPC per server then, and the
servers stay the only ones to know their load. A process's placement lasts until it execs;
a forked child starts with its parent's, as its pages were snapshotted where they lay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from legorun.rpc.messages import CapacityReply

VREGION_SHIFT = 30  # 1 GiB vRegions, as in LegoOS
HOME = 0  # the index of the process's home server
PLACEMENT_POLICIES = ("capacity", "striped")


class GlobalMemoryManager:
    """The vRegion placement of one process over `servers` memory servers (indices, HOME
    first); `capacity(i)` asks server i how much it may hold and holds."""

    def __init__(self, servers: int, policy: str,
                 capacity: Callable[[int], CapacityReply]) -> None:
        if policy not in PLACEMENT_POLICIES:
            raise ValueError(f"unknown placement policy {policy!r}")
        self.servers = servers
        self.policy = policy
        self._capacity = capacity
        self._owners: dict[int, int] = {}  # vRegion -> server index

    def owner(self, vregion: int) -> int | None:
        """The server that owns `vregion`, None while it is not placed."""
        return self._owners.get(vregion)

    def place(self, vregion: int) -> int:
        """Place `vregion` (not yet placed) and return its owner."""
        if self.servers == 1:
            owner = HOME
        elif self.policy == "striped":
            owner = vregion % self.servers
        else:
            owner = self._roomiest()
        self._owners[vregion] = owner
        return owner

    def _roomiest(self) -> int:
        reports = [self._capacity(server) for server in range(self.servers)]
        return min(range(self.servers), key=lambda server: _fullness(reports[server], server))

    def servers_in_use(self) -> Sequence[int]:
        """HOME and every other server that owns a vRegion: those that hold the process."""
        return sorted({HOME, *self._owners.values()})

    def reset(self) -> None:
        """The process exec'ed: a new address space, nothing placed yet."""
        self._owners.clear()


def _fullness(report: CapacityReply, server: int) -> tuple[float, int, int]:
    """The order of preference: most free bytes (no limit is endless room), then fewest
    held, then the server named first."""
    free = report.capacity - report.used if report.capacity else float("inf")
    return (-free, report.used, server)
