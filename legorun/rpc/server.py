"""A manager served over the network: one ZeroMQ ROUTER socket, one request at a time.

Each connection (a DEALER of a processor, or of a memory server reading files) first says
hello: the server checks the protocol version and lets its service set up what the
connection needs. Every later request goes to the service's handler for its opcode. The
server keeps, per connection, the last request number and its encoded reply, so a request a
client resends after a timeout is answered again without being served twice.

Nothing a peer sends can stop the server: a frame that is not a well-formed request of this
protocol gets an ErrorReply (or is dropped when it cannot even be answered), a frame over
the size limit closes that peer's connection (ZMQ_MAXMSGSIZE), and a failure inside a
handler is reported to the client and on the server's stderr.
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import zmq

from legorun.rpc.codec import MAX_FRAME_BYTES, CodecError, decode, encode
from legorun.rpc.frames import PROTOCOL_VERSION, header, request_number
from legorun.rpc.messages import ErrorReply, HelloReply, HelloRequest, Opcode, Request
from syscalls.errno import SyscallError

# An ErrorReply status that asks the client to say hello again: the server restarted.
NEED_HELLO = errno.ENOTCONN
POLL_MS = 200


class Session(Protocol):
    """What a service keeps for one connection after its hello."""

    def handlers(self) -> dict[Opcode, Callable[[Any], Any]]: ...


class Service(Protocol):
    role: str

    def hello(self, request: HelloRequest) -> Session: ...

    def backup(self) -> str: ...


@dataclass
class _Peer:
    session: Session
    handlers: dict[Opcode, Callable[[Any], Any]]
    last_seq: int = -1
    last_reply: bytes = b""


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    by_opcode: dict[str, int] = field(default_factory=dict)


class RpcServer:
    def __init__(self, service: Service, address: str,
                 configure: Callable[[zmq.Socket], None] | None = None) -> None:
        self._service = service
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES + 64)
        self._socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client takes over
        if configure is not None:
            configure(self._socket)
        self._socket.bind(address)
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._peers: dict[bytes, _Peer] = {}
        self.stats = ServerStats()
        self.stopping = False

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self.stopping:
            if not poller.poll(POLL_MS):
                continue
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                continue
            self.serve_one(frames)

    def serve_one(self, frames: list[bytes]) -> None:
        """Answer one received message: [identity, header, request]."""
        if len(frames) != 3:
            return  # not even a header to answer under: dropped
        identity, head, body = frames
        try:
            seq = request_number(head)
        except CodecError as error:
            # Answered under a header of this protocol, so that a client of another
            # version learns why.
            self._send(identity, header(0), ErrorReply(errno.EPROTO, str(error)))
            return
        peer = self._peers.get(identity)
        if peer is not None and seq == peer.last_seq:
            self._socket.send_multipart([identity, header(seq), peer.last_reply])
            return
        reply = self._reply(identity, peer, body)
        data = encode(reply)
        peer = self._peers.get(identity)
        if peer is not None:
            peer.last_seq, peer.last_reply = seq, data
        self._socket.send_multipart([identity, header(seq), data])

    def _reply(self, identity: bytes, peer: _Peer | None, body: bytes) -> Any:
        self.stats.requests += 1
        try:
            request = decode(body)
        except CodecError as error:
            self.stats.errors += 1
            return ErrorReply(errno.EBADMSG, str(error))
        if not isinstance(request, Request):
            self.stats.errors += 1
            return ErrorReply(errno.EBADMSG, f"{type(request).__name__} is not a request")
        if isinstance(request, HelloRequest):
            return self._hello(identity, request)
        if peer is None:
            return ErrorReply(NEED_HELLO, "say hello first")
        handler = peer.handlers.get(request.OPCODE)
        if handler is None:
            self.stats.errors += 1
            return ErrorReply(errno.EOPNOTSUPP,
                              f"a {self._service.role} server does not serve "
                              f"{request.OPCODE.name}")
        name = request.OPCODE.name
        self.stats.by_opcode[name] = self.stats.by_opcode.get(name, 0) + 1
        try:
            return handler(request)
        except SyscallError as error:
            return ErrorReply(error.errno, str(error))
        except Exception as error:  # a failure of the server: reported, never fatal
            self.stats.errors += 1
            detail = f"{type(error).__name__}: {error}"
            sys.stderr.write(f"legorun {self._service.role}-server: {name}: {detail}\n")
            return ErrorReply(errno.EIO, detail)

    def _hello(self, identity: bytes, request: HelloRequest) -> Any:
        if request.version != PROTOCOL_VERSION:
            return ErrorReply(errno.EPROTO, f"protocol version {request.version}, this "
                                            f"server speaks version {PROTOCOL_VERSION}")
        try:
            session = self._service.hello(request)
        except SyscallError as error:
            return ErrorReply(error.errno, str(error))
        self._peers[identity] = _Peer(session, session.handlers())
        return HelloReply(0, PROTOCOL_VERSION, self._service.role, self._service.backup())

    def _send(self, identity: bytes, head: bytes, reply: Any) -> None:
        self._socket.send_multipart([identity, head, encode(reply)])
