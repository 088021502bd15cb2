"""A manager served over the network: one ZeroMQ ROUTER socket, one request at a time.

Each connection (a DEALER of a processor, or of a memory server reading files) first says
hello: the server checks the protocol version and lets its service set up what the
connection needs. Every later request goes to the service's handler for its opcode. The
server keeps, per client, the last request number and its encoded reply, so a request a
client resends after a timeout is answered again without being served twice. A client is
known by the nonce of its hello, which outlives its connections: a memory server relays
each request that changes memory to its backup with the client's nonce and request number
(RelayRequest, see managers/replication.py), so that the backup keeps the same copy, and a
client that fails over to the backup and resends the request it got no reply to is answered
from that copy if the request had already been relayed.

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
from legorun.rpc.messages import (
    ErrorReply,
    HelloReply,
    HelloRequest,
    Opcode,
    RelayRequest,
    Request,
)
from syscalls.errno import SyscallError

# An ErrorReply status that asks the client to say hello again: the server restarted.
NEED_HELLO = errno.ENOTCONN
POLL_MS = 200


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent a request: the client's nonce (0 when it gave none) and the request's number,
    which a server passes on with the request when it relays it to its backup."""

    client: int
    seq: int


class Session(Protocol):
    """What a service keeps for one connection after its hello: the requests it serves."""

    def serves(self, opcode: Opcode) -> bool: ...

    def serve(self, request: Request, origin: Origin) -> Any: ...


class Service(Protocol):
    role: str

    def hello(self, request: HelloRequest) -> Session: ...

    def backup(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Peer:
    session: Session
    client: int  # the nonce of its hello


@dataclass(frozen=True, slots=True)
class _LastReply:
    seq: int
    data: bytes


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
        # The last reply to each client, by its nonce (by the connection's identity for a
        # client that gave none).
        self._last: dict[int | bytes, _LastReply] = {}
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
        self._socket.send_multipart([identity, header(seq), self._answer(identity, seq, body)])

    def _answer(self, identity: bytes, seq: int, body: bytes) -> bytes:
        """The encoded reply to request number `seq` on the connection `identity`."""
        self.stats.requests += 1
        request = self._decode(body)
        if isinstance(request, ErrorReply):
            return encode(request)
        if isinstance(request, HelloRequest):
            # Not kept as the client's last reply: that must stay the copy of its last
            # request, which it resends after saying hello to the backup it failed over to.
            return encode(self._hello(identity, request))
        peer = self._peers.get(identity)
        if peer is None:
            return encode(ErrorReply(NEED_HELLO, "say hello first"))
        return self._once(peer, peer.client or identity, Origin(peer.client, seq), request)

    def _once(self, peer: _Peer, key: int | bytes, origin: Origin, request: Request) -> bytes:
        """The encoded reply to `request`, served once: a repeat of the last request of the
        client `key` is answered from the copy of its reply, and an older one refused (a
        client numbers its requests upwards and waits for each reply: an older number is
        a stale copy, such as one relayed late by a primary its client already left)."""
        last = self._last.get(key)
        if last is not None and last.seq == origin.seq:
            return last.data
        if last is not None and origin.seq < last.seq:
            self.stats.errors += 1
            return encode(ErrorReply(errno.ESTALE, f"request {origin.seq} is older than its "
                                                   f"client's last, {last.seq}"))
        if isinstance(request, RelayRequest):
            data = self._relayed(peer, request)
        else:
            data = self._encode_reply(request, self._serve(peer, origin, request))
        self._last[key] = _LastReply(origin.seq, data)
        return data

    def _relayed(self, peer: _Peer, relay: RelayRequest) -> bytes:
        """A request relayed by the server this one backs up: served as if its client had
        sent it here, and remembered as that client's last reply."""
        request = self._decode(relay.body)
        if isinstance(request, ErrorReply):
            return encode(request)
        if isinstance(request, (HelloRequest, RelayRequest)):
            self.stats.errors += 1
            return encode(ErrorReply(errno.EBADMSG,
                                     f"a {type(request).__name__} cannot be relayed"))
        origin = Origin(relay.client, relay.seq)
        if not relay.client:  # a client without a nonce: nothing to remember its reply by
            return self._encode_reply(request, self._serve(peer, origin, request))
        return self._once(peer, relay.client, origin, request)

    def _decode(self, body: bytes) -> Request | ErrorReply:
        try:
            request = decode(body)
        except CodecError as error:
            self.stats.errors += 1
            return ErrorReply(errno.EBADMSG, str(error))
        if not isinstance(request, Request):
            self.stats.errors += 1
            return ErrorReply(errno.EBADMSG, f"{type(request).__name__} is not a request")
        return request

    def _serve(self, peer: _Peer, origin: Origin, request: Request) -> Any:
        if not peer.session.serves(request.OPCODE):
            self.stats.errors += 1
            return ErrorReply(errno.EOPNOTSUPP,
                              f"a {self._service.role} server does not serve "
                              f"{request.OPCODE.name}")
        name = request.OPCODE.name
        self.stats.by_opcode[name] = self.stats.by_opcode.get(name, 0) + 1
        try:
            return peer.session.serve(request, origin)
        except SyscallError as error:
            return ErrorReply(error.errno, str(error))
        except Exception as error:  # a failure of the server: reported, never fatal
            self.stats.errors += 1
            detail = f"{type(error).__name__}: {error}"
            sys.stderr.write(f"legorun {self._service.role}-server: {name}: {detail}\n")
            return ErrorReply(errno.EIO, detail)

    def _encode_reply(self, request: Request, reply: Any) -> bytes:
        """The encoded reply; one the codec cannot carry (a number beyond 64 bits, say) is
        a failure of the server: reported, never fatal."""
        try:
            return encode(reply)
        except (TypeError, ValueError, OverflowError) as error:
            self.stats.errors += 1
            detail = f"{request.OPCODE.name}: a reply that cannot be sent: {error}"
            sys.stderr.write(f"legorun {self._service.role}-server: {detail}\n")
            return encode(ErrorReply(errno.EIO, detail))

    def _hello(self, identity: bytes, request: HelloRequest) -> Any:
        if request.version != PROTOCOL_VERSION:
            return ErrorReply(errno.EPROTO, f"protocol version {request.version}, this "
                                            f"server speaks version {PROTOCOL_VERSION}")
        try:
            session = self._service.hello(request)
        except SyscallError as error:
            return ErrorReply(error.errno, str(error))
        except Exception as error:  # as for a handler: reported, never fatal
            self.stats.errors += 1
            detail = f"{type(error).__name__}: {error}"
            sys.stderr.write(f"legorun {self._service.role}-server: hello: {detail}\n")
            return ErrorReply(errno.EIO, detail)
        self._peers[identity] = _Peer(session, request.client)
        return HelloReply(0, PROTOCOL_VERSION, self._service.role, self._service.backup())

    def _send(self, identity: bytes, head: bytes, reply: Any) -> None:
        self._socket.send_multipart([identity, head, encode(reply)])
