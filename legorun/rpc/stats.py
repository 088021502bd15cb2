"""Per-opcode RPC accounting: count, bytes on the (modelled) wire, modelled time; and the
load of each remote memory server."""

from __future__ import annotations

from dataclasses import dataclass, field

from legorun.rpc.messages import Opcode


@dataclass(slots=True)
class OpcodeStats:
    count: int = 0
    bytes: int = 0
    modelled_s: float = 0.0


@dataclass(slots=True)
class ServerLoad:
    """One memory server's share of a run (rpc/memory_routing.py): the RPCs sent to it, the
    vRegions placed on it, and what it held (for all its processors) when the process
    exited, before letting the process go."""

    home: bool = False
    requests: int = 0
    bytes: int = 0
    modelled_s: float = 0.0
    vregions: set[int] = field(default_factory=set)
    capacity: int = 0  # 0: no limit
    bytes_held: int = 0
    pages_held: int = 0


@dataclass(slots=True)
class RpcStats:
    by_opcode: dict[Opcode, OpcodeStats] = field(default_factory=dict)
    servers: dict[str, ServerLoad] = field(default_factory=dict)  # memory servers by address
    modelled_s: float = 0.0  # the running total: the modelled clock reads it on every event

    def record(self, opcode: Opcode, nbytes: int, modelled_s: float) -> None:
        entry = self.by_opcode.get(opcode)
        if entry is None:
            entry = self.by_opcode[opcode] = OpcodeStats()
        entry.count += 1
        entry.bytes += nbytes
        entry.modelled_s += modelled_s
        self.modelled_s += modelled_s
