"""Per-opcode RPC accounting: count, bytes on the (modelled) wire, modelled time."""

from __future__ import annotations

from dataclasses import dataclass, field

from legorun.rpc.messages import Opcode


@dataclass(slots=True)
class OpcodeStats:
    count: int = 0
    bytes: int = 0
    modelled_s: float = 0.0


@dataclass(slots=True)
class RpcStats:
    by_opcode: dict[Opcode, OpcodeStats] = field(default_factory=dict)
    modelled_s: float = 0.0  # the running total: the modelled clock reads it on every event

    def record(self, opcode: Opcode, nbytes: int, modelled_s: float) -> None:
        entry = self.by_opcode.get(opcode)
        if entry is None:
            entry = self.by_opcode[opcode] = OpcodeStats()
        entry.count += 1
        entry.bytes += nbytes
        entry.modelled_s += modelled_s
        self.modelled_s += modelled_s
