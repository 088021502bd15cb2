"""Transports carry requests to the manager that owns their opcode and bring back replies.

`LocalTransport` is the embedded default: all managers live in this process and a call is a
function call (no serialization on the hot path), yet every call is counted by opcode with
its wire size and modelled network cost, exactly as a remote call would be.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from legorun.errors import RpcError
from legorun.rpc.messages import Opcode, Request
from legorun.rpc.network import NetworkModel
from legorun.rpc.stats import RpcStats
from legorun.rpc.wire import message_size

Handler = Callable[[Any], Any]


class RpcObserver(Protocol):
    """Sees every completed RPC with its wire size and modelled network cost."""

    def __call__(self, request: Request, reply: Any, nbytes: int, modelled_s: float) -> None: ...


class Transport(Protocol):
    def call(self, request: Request) -> Any: ...

    def forked(self) -> None: ...


class Channel(Protocol):
    """A connection to a manager served over the network (rpc/remote.py)."""

    role: str

    def call(self, request: Request) -> Any: ...

    def forked(self) -> None: ...

    def close(self) -> None: ...


class LocalTransport:
    def __init__(self, network: NetworkModel, stats: RpcStats) -> None:
        self._network = network
        self._stats = stats
        self._handlers: dict[Opcode, Handler] = {}
        self._channels: list[Channel] = []
        self._routed: set[Opcode] = set()  # their router counts the RPCs it sends itself
        self.observers: list[RpcObserver] = []

    def register(self, handlers: dict[Opcode, Handler]) -> None:
        self._handlers.update(handlers)

    def connect(self, channel: Channel) -> None:
        """Send the opcodes of the channel's manager over it: P2M_ to a memory server,
        P2S_ and M2S_ to a storage server."""
        prefixes = ("P2M_",) if channel.role == "memory" else ("P2S_", "M2S_")
        self.register({op: channel.call for op in Opcode if op.name.startswith(prefixes)})
        self._channels.append(channel)

    def route(self, router: Channel) -> None:
        """Send every P2M_ request through `router`, which spreads them over several memory
        servers (rpc/memory_routing.py) and counts each RPC it sends with `record`: one
        request of the processor may take several RPCs, or none."""
        opcodes = [op for op in Opcode if op.name.startswith("P2M_")]
        self.register({op: router.call for op in opcodes})
        self._routed.update(opcodes)
        self._channels.append(router)

    def forked(self) -> None:
        """In a forked child process: connections of its own to the same servers."""
        for channel in self._channels:
            channel.forked()

    def close(self) -> None:
        """Close the connections to the servers (at the end of the run)."""
        for channel in self._channels:
            channel.close()

    def call(self, request: Request) -> Any:
        opcode = request.OPCODE
        handler = self._handlers.get(opcode)
        if handler is None:
            raise RpcError(f"no manager serves {opcode.name}")
        reply = handler(request)
        if opcode not in self._routed:
            self.record(request, reply)
        return reply

    def record(self, request: Request, reply: Any) -> tuple[int, float]:
        """Count one RPC on the modelled network; its wire size and modelled cost."""
        nbytes = message_size(request) + message_size(reply)
        cost = self._network.cost(nbytes)
        self._stats.record(request.OPCODE, nbytes, cost)
        for observer in self.observers:
            observer(request, reply, nbytes, cost)
        return nbytes, cost
