"""How the emulated machine is built: every parameter with its default and meaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from legorun.rpc.network import NetworkModel


@dataclass(frozen=True, slots=True)
class MachineConfig:
    excache_size: int = 64 << 20  # bytes of processor-local DRAM used as the ExCache
    excache_assoc: int = 64  # ways per set (LegoOS: 64)
    excache_policy: str = "fifo"  # eviction: fifo | lru (clock approximation) | random
    seed: int = 0  # seeds every random choice (random eviction), for reproducible runs
    network: NetworkModel = field(default_factory=NetworkModel)
    root: Path | None = None  # confine the guest's file system to this host directory
