"""Who may talk to a legorun server: CURVE authentication with one shared key file.

The model is a cluster secret. `legorun keygen FILE` writes a key file (mode 0600) holding
one CURVE keypair, in the ZeroMQ certificate format. Every component of one machine is given
`--key-file FILE`:

- a server (memory-server, storage-server) becomes a CURVE server with the file's secret
  key and admits only clients that prove they hold the file's secret key too; a ZAP handler
  refuses every other peer before any of its frames reach the server;
- a client (legorun itself, and a memory server reading from a storage server) becomes a
  CURVE client with the file's keypair and trusts only a server proving the same.

So holding the file is what admits a host, and the traffic between holders is encrypted.
Servers bind to loopback unless told otherwise; binding any other address needs a key file
(`is_local_endpoint` tells the two apart).

A peer without the key, or with another key, fails the handshake and never sees a reply.
`HandshakeWatch` lets a client tell such a refusal from a server that is simply not there.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import zmq
from zmq.utils import z85

from legorun.cli import _Parser
from legorun.errors import RpcError, UsageError

Configure = Callable[[zmq.Socket], None]

# Where libzmq sends a context's authentication requests (ZMQ RFC 27, ZAP).
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"
ZAP_DOMAIN = b"legorun"
CURVE_KEY_BYTES = 32
_Z85_KEY_CHARS = 40

_KEY_FILE_TEMPLATE = """\
#   legorun key file: one CURVE keypair (ZeroMQ certificate format).
#   Every legorun server and client given --key-file with this file admits and trusts
#   only the holders of this file. Keep it secret (mode 0600); copy it only to the hosts
#   of one machine.
metadata
curve
    public-key = "{public}"
    secret-key = "{secret}"
"""

# Endpoint schemes that cannot be reached from another host.
_LOCAL_SCHEMES = ("ipc", "inproc")


@dataclass(frozen=True, slots=True)
class KeyPair:
    public: bytes  # Z85, 40 characters
    secret: bytes


def write_key_file(path: Path) -> KeyPair:
    """A new keypair in a new file readable by its owner only; never overwrites a file,
    since replacing a key locks out every host holding the old one."""
    public, secret = zmq.curve_keypair()
    text = _KEY_FILE_TEMPLATE.format(public=public.decode(), secret=secret.decode())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path}: already exists (remove it first to make a new key)") from None
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(text)
    return KeyPair(public, secret)


def read_key_file(path: Path) -> KeyPair:
    """The keypair in `path`; UsageError naming the problem for anything else."""
    where = f"--key-file {path}"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{where}: not a regular file")
        if info.st_mode & 0o077:
            # As ssh does: a secret others can read is no longer a secret.
            raise UsageError(f"{where}: readable by others (mode {info.st_mode & 0o777:o}); "
                             "chmod 600 it")
        with open(path, "rb") as file:
            text = file.read(64 * 1024)
    except OSError as error:
        raise UsageError(f"{where}: {error.strerror}") from None
    fields = _certificate_fields(text)
    public, secret = fields.get(b"public-key"), fields.get(b"secret-key")
    if public is None or secret is None:
        raise UsageError(f"{where}: not a legorun key file (make one with 'legorun keygen')")
    for name, key in ((b"public-key", public), (b"secret-key", secret)):
        if not _is_z85_key(key):
            raise UsageError(f"{where}: {name.decode()} is not a Z85 CURVE key")
    if zmq.curve_public(secret) != public:
        raise UsageError(f"{where}: the public key does not belong to the secret key")
    return KeyPair(public, secret)


def _certificate_fields(text: bytes) -> dict[bytes, bytes]:
    """`name = "value"` lines of a ZeroMQ certificate (ZPL), comments and sections skipped."""
    fields: dict[bytes, bytes] = {}
    for line in text.splitlines():
        name, equals, value = line.strip().partition(b"=")
        if equals and not name.startswith(b"#"):
            fields[name.strip()] = value.strip().strip(b"\"'")
    return fields


def _is_z85_key(key: bytes) -> bool:
    if len(key) != _Z85_KEY_CHARS:
        return False
    try:
        return len(z85.decode(key)) == CURVE_KEY_BYTES
    except (ValueError, KeyError, IndexError):
        return False


# ---------------------------------------------------------------- servers


def server_configure(key_file: Path) -> Configure:
    """Sets up a server socket (before it binds) as a CURVE server of the key file that
    admits only the file's holders. Reads the file now, so that a bad one stops the server
    before it listens."""
    keys = read_key_file(key_file)
    admitted = frozenset({z85.decode(keys.public)})

    def configure(socket: zmq.Socket) -> None:
        _start_zap_handler(socket.context, admitted)
        socket.curve_secretkey = keys.secret
        socket.curve_publickey = keys.public
        socket.curve_server = True
        socket.zap_domain = ZAP_DOMAIN

    return configure


def _start_zap_handler(context: zmq.Context, admitted: frozenset[bytes]) -> None:
    """Answers the context's ZAP requests in a thread of its own until the context ends.

    libzmq asks the handler bound at ZAP_ENDPOINT about every peer completing a CURVE
    handshake; without one it would admit any CURVE client that knows the server's public
    key. The handler is bound before the server socket binds, so no peer comes first."""
    socket = context.socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(ZAP_ENDPOINT)
    threading.Thread(target=_serve_zap, args=(socket, admitted), name="legorun-zap",
                     daemon=True).start()


def _serve_zap(socket: zmq.Socket, admitted: frozenset[bytes]) -> None:
    try:
        while True:
            socket.send_multipart(_zap_reply(socket.recv_multipart(), admitted))
    except zmq.ContextTerminated:
        pass  # the server closed: term() waits for this socket
    finally:
        socket.close(0)


def _zap_reply(request: list[bytes], admitted: frozenset[bytes]) -> list[bytes]:
    """ZAP (RFC 27): version, request id, domain, address, identity, mechanism, credentials.
    The reply: version, request id, status code, status text, user id, metadata."""
    request_id = request[1] if len(request) > 1 else b""
    if len(request) < 6 or request[0] != ZAP_VERSION:
        return [ZAP_VERSION, request_id, b"400", b"malformed ZAP request", b"", b""]
    address, mechanism, credentials = request[3], request[5], request[6:]
    if mechanism == b"CURVE" and len(credentials) == 1 and credentials[0] in admitted:
        return [ZAP_VERSION, request_id, b"200", b"OK", z85.encode(credentials[0]), b""]
    sys.stderr.write(f"legorun: refused a client at {address.decode(errors='replace')}: "
                     f"its {mechanism.decode(errors='replace')} key is not the key file's\n")
    return [ZAP_VERSION, request_id, b"400", b"unknown key", b"", b""]


def is_local_endpoint(address: str) -> bool:
    """Whether a ZeroMQ endpoint to bind can be reached only from this host: tcp on a
    loopback address (127.0.0.0/8, ::1, localhost), or ipc/inproc. A wildcard (`*`,
    0.0.0.0, ::), an interface name or any other host name counts as reachable."""
    scheme, separator, rest = address.partition("://")
    if not separator:
        return False
    if scheme in _LOCAL_SCHEMES:
        return True
    if scheme != "tcp":
        return False
    host = rest.rpartition(":")[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


# ---------------------------------------------------------------- clients


def client_configure(key_file: Path) -> Configure:
    """Sets up a client socket (before it connects) as a CURVE client of the key file's
    holders. Reads the file now, so that a bad one fails before any connection."""
    keys = read_key_file(key_file)

    def configure(socket: zmq.Socket) -> None:
        socket.curve_secretkey = keys.secret
        socket.curve_publickey = keys.public
        socket.curve_serverkey = keys.public

    return configure


class HandshakeWatch:
    """Watches a client's first socket for failed security handshakes, so that a server
    that refused this client (no key, or another key) is reported as such rather than as
    a server that did not answer.

    `configure` goes into ChannelOptions; after the channel said hello (or failed to),
    `explain` turns its RpcError into the reason and `close` stops watching. Sockets the
    channel makes later (failover, forked children) get only the keys."""

    _FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                 | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

    def __init__(self, keys: Configure | None) -> None:
        self._keys = keys
        self._authenticated = keys is not None
        self._watched: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._closed = False

    def configure(self, socket: zmq.Socket) -> None:
        if self._keys is not None:
            self._keys(socket)
        if self._monitor is None and not self._closed:
            self._watched = socket
            self._monitor = socket.get_monitor_socket(self._FAILURES)

    def refused(self) -> bool:
        """Whether a handshake with the server has failed so far."""
        return self._monitor is not None and bool(self._monitor.poll(0))

    def explain(self, error: RpcError, role: str, address: str) -> RpcError:
        if not self.refused():
            return error
        if self._authenticated:
            reason = "the server does not hold this key file"
        else:
            reason = "the server requires authentication (give its key file with --key-file)"
        return RpcError(f"{role} server {address} refused this client: {reason}")

    def close(self) -> None:
        self._closed = True
        if self._monitor is not None:
            assert self._watched is not None
            if not self._watched.closed:
                self._watched.disable_monitor()
            self._monitor.close(0)
        self._monitor = self._watched = None


# ---------------------------------------------------------------- legorun keygen


def keygen_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="legorun keygen",
                     description="Write a new key file (mode 0600) for --key-file: give the "
                     "same file to every server and client of one machine.")
    parser.add_argument("file", metavar="FILE", type=Path, help="the key file to create")
    options: argparse.Namespace = parser.parse_args(argv)
    keys = write_key_file(options.file)
    sys.stdout.write(f"legorun keygen: wrote {options.file} (public key {keys.public.decode()})\n")
    return 0
