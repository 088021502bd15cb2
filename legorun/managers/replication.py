"""Memory replication: a memory server logs every change to a processor's memory to its
backup memory server before making the change itself and acknowledging it.

`legorun memory-server --backup B` wraps each processor's session in a ReplicatedSession,
which holds a connection of its own to B, under the processor's id (so B keeps that
processor's address spaces apart from others, and reads its files from the same storage).
A request that may change memory (exec, the address-space calls, fork, fork-claim,
fork-release, exit, write-backs, and a miss that carries write-back lines) is first relayed
to B and served there, then served here: after every acknowledged request B holds the same
address spaces as this server, and the same fork tokens (a memory manager hands them out in
order, and B sees the same order). A miss without write-backs only reads, and is served here
only. A first read of a file-backed page does store the page here; B reads the same page of
the same file when it is first asked for it, so that needs no relaying either (the two would
differ only if the file changed in between).

Exactly once across a failover: the relayed request carries the nonce and the number of the
client that sent it, and B keeps its reply as that client's last (rpc/server.py). When this
server dies, the request in flight may or may not have reached B; the client resends it to
B under the same nonce and number, and B answers it from that copy if it was relayed, or
serves it if it was not. Either way it is done once.

Nothing is acknowledged that B has not logged: when B stops answering, the request fails.
"""

from __future__ import annotations

import sys
from typing import Any

from legorun.rpc.codec import encode
from legorun.rpc.messages import (
    CapacityRequest,
    HelloRequest,
    Opcode,
    PageMissRequest,
    RelayRequest,
    Request,
)
from legorun.rpc.remote import ChannelOptions, RemoteChannel
from legorun.rpc.server import Origin, Session


def changes_memory(request: Request) -> bool:
    """Whether `request` must be logged to the backup: all but a miss without write-backs
    and a capacity query, so that a request added to the protocol later is replicated
    unless it is known to only read."""
    if isinstance(request, CapacityRequest):
        return False  # the server's own load, which the backup's need not equal
    return not (isinstance(request, PageMissRequest) and not request.writeback)


class ReplicatedSession:
    """One processor's session at a primary memory server, logging to the backup."""

    def __init__(self, session: Session, backup: RemoteChannel, processor: int) -> None:
        self._session = session
        self._backup = backup
        self._processor = processor
        self._diverged = False

    @classmethod
    def connect(cls, session: Session, backup_address: str, options: ChannelOptions,
                hello: HelloRequest) -> ReplicatedSession:
        """Wrap `session`, the one the processor of `hello` reaches, connecting to the backup
        as that processor (RpcError when the backup does not answer)."""
        channel = RemoteChannel(backup_address, "memory", options, processor=hello.processor,
                                storage=hello.storage)
        return cls(session, channel, hello.processor)

    def serves(self, opcode: Opcode) -> bool:
        return self._session.serves(opcode)

    def serve(self, request: Request, origin: Origin) -> Any:
        if not changes_memory(request):
            return self._session.serve(request, origin)
        logged = self._backup.call(RelayRequest(origin.client, origin.seq, encode(request)))
        reply = self._session.serve(request, origin)
        if reply != logged:
            self._report_divergence(request)
        return reply

    def _report_divergence(self, request: Request) -> None:
        """The two memory managers answered one request differently: the backup no longer
        holds what this server holds, and a failover would lose that difference."""
        if self._diverged:
            return
        self._diverged = True
        sys.stderr.write(f"legorun memory-server: processor {self._processor}: the backup "
                         f"{self._backup.address} answered {request.OPCODE.name} otherwise "
                         "than this server: its copy of the memory has diverged\n")
        sys.stderr.flush()
