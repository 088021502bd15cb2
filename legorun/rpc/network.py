"""The modelled network between components: what an RPC would cost on the wire.

cost(bytes) = latency + bytes / bandwidth. The defaults fit the two LegoOS measurements on
40 Gbps InfiniBand (4.63 us for a small RPC, 6.52 us for a 4 KiB one): latency 4.63 us and an
effective bandwidth of 4096 B / 1.89 us ~= 2.17 GB/s. This is the cost of the *modelled*
machine, independent of what emulating it costs.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LATENCY_S = 4.63e-6
DEFAULT_BANDWIDTH_BPS = 4096 / (6.52e-6 - 4.63e-6)


@dataclass(frozen=True, slots=True)
class NetworkModel:
    latency_s: float = DEFAULT_LATENCY_S
    bandwidth_bps: float = DEFAULT_BANDWIDTH_BPS

    def cost(self, nbytes: int) -> float:
        return self.latency_s + nbytes / self.bandwidth_bps
