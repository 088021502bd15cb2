"""The modelled clock: how long the run would take on the modelled machine.

    modelled time = instructions x CPI / clock  +  the network model's cost of every RPC so far

The first term is the processor computing (every instruction costs CPI cycles of the
modelled clock); the second is the time spent waiting for remote memory and storage. It is
independent of how long emulating the machine takes, and it only moves forward, so it is the
time base of `--trace` and what `legorun sweep` compares across ExCache sizes.

Without an instruction counter (counting costs a compiled block hook, so it is on only when
asked for) the compute term is unknown: `instructions`, `compute_s` and `total_s` are None
and `now_s` counts remote time only.
"""

from __future__ import annotations

from legorun.processor.icount import InstructionCounter
from legorun.rpc.stats import RpcStats


class ModelledClock:
    def __init__(self, clock_hz: float, cpi: float, rpc: RpcStats,
                 counter: InstructionCounter | None = None) -> None:
        self.clock_hz = clock_hz
        self.cpi = cpi
        self.counter = counter
        self._rpc = rpc

    @property
    def instructions(self) -> int | None:
        return self.counter.instructions if self.counter is not None else None

    @property
    def compute_s(self) -> float | None:
        instructions = self.instructions
        return None if instructions is None else instructions * self.cpi / self.clock_hz

    @property
    def remote_s(self) -> float:
        return self._rpc.modelled_s

    @property
    def total_s(self) -> float | None:
        compute = self.compute_s
        return None if compute is None else compute + self.remote_s

    def now_s(self) -> float:
        """Modelled seconds since the machine started (remote time only when not counting)."""
        return (self.compute_s or 0.0) + self.remote_s
