"""The client end of a connection to a manager served over the network.

A channel is one ZeroMQ DEALER socket to one server. It says hello first (protocol version,
the processor it works for), then sends one request at a time and waits for its reply with
a timeout. A request that gets no reply in time is sent again under the same number (the
server answers a repeat from its copy of the reply, so nothing is done twice); after the
last try the call fails with RpcError, or, when the server named a backup in its hello,
the channel fails over to the backup and goes on there.

A request keeps its number through every resend, a new hello and a failover, and the
channel names itself in each hello with the same random nonce (a forked child's channel
draws its own): the server keeps its copy of a client's last reply under that nonce, and a
memory server passes both on to its backup with every change it logs there, so the request
that was in flight when a memory server died is done once, whether or not it had reached
the backup (see managers/replication.py).

A server that restarted has forgotten the connection: it asks for a new hello, after which
the request is sent again, so a stateless storage server can be restarted mid-run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable

import zmq

from legorun.config import DEFAULT_RPC_TIMEOUT_S, DEFAULT_RPC_TRIES
from legorun.errors import RpcError
from legorun.rpc.codec import CodecError, decode, encode
from legorun.rpc.frames import PROTOCOL_VERSION, header, request_number
from legorun.rpc.messages import ErrorReply, HelloReply, HelloRequest, Request
from legorun.rpc.server import NEED_HELLO


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    timeout_s: float = DEFAULT_RPC_TIMEOUT_S
    tries: int = DEFAULT_RPC_TRIES
    # Sets up a new socket before it connects (authentication keys, see security.py).
    configure: Callable[[zmq.Socket], None] | None = None


class RemoteChannel:
    def __init__(self, address: str, role: str, options: ChannelOptions = ChannelOptions(),
                 processor: int = 0, storage: str = "") -> None:
        self.address = address
        self.role = role
        self._hello = HelloRequest(PROTOCOL_VERSION, processor, storage, _client_nonce())
        self._options = options
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._seq = 0
        self._owner = os.getpid()
        self.backup = ""
        self.failovers = 0
        self._connect()

    # ------------------------------------------------------------ connection

    def _connect(self) -> None:
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer not yet connected
        socket.setsockopt(zmq.RECONNECT_IVL, 20)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        if self._options.configure is not None:
            self._options.configure(socket)
        socket.connect(self.address)
        self._socket = socket
        self._owner = os.getpid()
        self._say_hello()

    def _say_hello(self) -> None:
        reply = self._exchange(self._hello, self._next_seq())
        if isinstance(reply, ErrorReply):
            raise RpcError(f"{self.role} server {self.address} refused: {reply.detail}")
        if not isinstance(reply, HelloReply) or reply.version != PROTOCOL_VERSION:
            raise RpcError(f"{self.address} is not a legorun {self.role} server")
        if reply.role != self.role:
            raise RpcError(f"{self.address} is a {reply.role} server, not a {self.role} server")
        self.backup = reply.backup

    def forked(self) -> None:
        """In a child process: the parent's sockets and their I/O thread are not ours, nor
        is the parent's nonce (the servers keep the last reply of each client)."""
        self._hello = replace(self._hello, client=_client_nonce())
        self._context = zmq.Context()
        self._socket = None
        self._connect()

    def close(self) -> None:
        """Close the socket and end its context: a context left to the interpreter's exit
        would wait there for sockets nobody closes."""
        if self._owner == os.getpid():
            self._context.destroy(linger=0)
        self._socket = None

    # ------------------------------------------------------------ calls

    def call(self, request: Request) -> Any:
        seq = self._next_seq()
        reply = self._exchange(request, seq)
        if isinstance(reply, ErrorReply) and reply.status == NEED_HELLO:
            self._say_hello()  # the server restarted and forgot this connection
            reply = self._exchange(request, seq)
        if isinstance(reply, ErrorReply):
            raise RpcError(f"{self.role} server {self.address}: {reply.detail}")
        return reply

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _exchange(self, request: Request, seq: int) -> Any:
        """Send `request` as number `seq` until its reply comes, failing over to the backup
        if any (under the same number: the backup may have its reply already)."""
        while True:
            try:
                return self._exchange_here(request, seq)
            except RpcError:
                if not self.backup:
                    raise
                self._fail_over()

    def _fail_over(self) -> None:
        dead, self.address, self.backup = self.address, self.backup, ""
        assert self._socket is not None
        self._socket.close(0)
        self.failovers += 1
        try:
            self._connect()
        except RpcError as error:
            raise RpcError(f"{self.role} server {dead} is gone and its backup failed: "
                           f"{error}") from None

    def _exchange_here(self, request: Request, seq: int) -> Any:
        assert self._socket is not None
        data = encode(request)
        timeout_ms = int(self._options.timeout_s * 1000)
        for _ in range(self._options.tries):
            # With IMMEDIATE a message leaves only over a finished connection: wait for
            # one (a new socket has none yet) rather than for the reply to a message that
            # was never sent. No connection within the timeout counts as a try.
            if not self._socket.poll(timeout_ms, zmq.POLLOUT):
                continue
            try:
                self._socket.send_multipart([header(seq), data], zmq.NOBLOCK)
            except zmq.Again:  # the connection went away meanwhile: wait as for a reply
                pass
            while self._socket.poll(timeout_ms, zmq.POLLIN):
                frames = self._socket.recv_multipart()
                if len(frames) != 2:
                    continue
                try:
                    if request_number(frames[0]) != seq:
                        continue  # the late reply to an earlier request: dropped
                    return decode(frames[1])
                except CodecError as error:
                    raise RpcError(f"{self.role} server {self.address} sent garbage: "
                                   f"{error}") from None
        raise RpcError(f"{self.role} server {self.address} did not answer "
                       f"(tried {self._options.tries} times, {self._options.timeout_s:g} s each)")


def _client_nonce() -> int:
    """A random name for one client: 63 bits (a msgpack integer), never 0 (no name)."""
    return int.from_bytes(os.urandom(8), "little") >> 1 or 1
