"""Security of the network services, tested as a hostile peer would attack them: servers
bind off loopback only with a key file, peers without the key are refused, a storage server
never serves outside its export, and no frame a peer sends stops a server."""

from __future__ import annotations

import dataclasses
import os
import random
import stat
import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Callable

import msgpack
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from legorun.errors import RpcError, UsageError
from legorun.rpc import codec
from legorun.rpc.frames import PROTOCOL_VERSION, header, request_number
from legorun.rpc.messages import (
    DataReply,
    ErrorReply,
    ExecReply,
    ExecRequest,
    FileReadRequest,
    HelloRequest,
    LinkRequest,
    OpenReply,
    OpenRequest,
    PageMissRequest,
    PathReply,
    ReaddirRequest,
    ReadlinkRequest,
    ReadRequest,
    RenameRequest,
    Request,
    StatReply,
    StatRequest,
    UnlinkRequest,
    WriteRequest,
)
from legorun.rpc.remote import ChannelOptions, RemoteChannel
from legorun.rpc.security import (
    client_configure,
    is_local_endpoint,
    read_key_file,
    write_key_file,
)
from syscalls.errno import Errno

# Short waits: every server here is on loopback and answers at once unless it refuses.
PATIENT = ChannelOptions(timeout_s=0.25, tries=40)
IMPATIENT = ChannelOptions(timeout_s=0.2, tries=2)
FUZZ_FRAMES = 10_000
FUZZ_SOCKETS = 4
FUZZ_SEED = 20240505
FUZZ_PID = 7  # the process the fuzzed requests to a memory server act on
# Integers that handlers trip over, and the fuzzed process's pid.
FUZZ_INTS = (0, 1, -1, FUZZ_PID, 4096, 0x400000, 2**31 - 1, 2**63 - 1, 2**63, 2**64 - 1,
             -(2**63))


def _channel(address: str, role: str, options: ChannelOptions = PATIENT,
             processor: int = 0) -> RemoteChannel:
    return RemoteChannel(address, role, options, processor=processor)


def _keyed(options: ChannelOptions, key_file: Path) -> ChannelOptions:
    return dataclasses.replace(options, configure=client_configure(key_file))


# ---------------------------------------------------------------- key files and binding


def test_keygen_writes_a_private_key_file_and_never_replaces_one(e2e, tmp_path) -> None:
    key = tmp_path / "machine.key"
    run = e2e.run_legorun(None, raw_argv=["keygen", str(key)], cwd=e2e.fresh_dir())
    assert run.returncode == 0, run.describe()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    keys = read_key_file(key)
    assert zmq.curve_public(keys.secret) == keys.public
    again = e2e.run_legorun(None, raw_argv=["keygen", str(key)], cwd=e2e.fresh_dir())
    assert again.returncode == 2, again.describe()
    assert read_key_file(key) == keys, "keygen replaced an existing key"


@pytest.mark.parametrize("problem", ["missing", "readable by others", "not a key file",
                                     "keys of two pairs", "a directory"])
def test_a_bad_key_file_is_a_usage_error(tmp_path, problem) -> None:
    path = tmp_path / "bad.key"
    if problem != "missing":
        good, other = write_key_file(tmp_path / "a.key"), write_key_file(tmp_path / "b.key")
        text = (tmp_path / "a.key").read_text()
        if problem == "readable by others":
            path.write_text(text)
            path.chmod(0o644)
        elif problem == "not a key file":
            path.write_text("public-key = 'hello'\n")
            path.chmod(0o600)
        elif problem == "keys of two pairs":
            path.write_text(text.replace(good.secret.decode(), other.secret.decode()))
            path.chmod(0o600)
        else:
            path.mkdir()
    with pytest.raises(UsageError, match=r"^--key-file .*bad\.key: "):
        read_key_file(path)


@pytest.mark.parametrize("argv", [
    ["memory-server", "--listen", "tcp://*:0"],
    ["memory-server", "--listen", "tcp://0.0.0.0:7700"],
    ["storage-server", "--export", "/", "--listen", "tcp://[::]:7701"],
])
def test_servers_refuse_to_listen_off_loopback_without_a_key(e2e, argv) -> None:
    run = e2e.run_legorun(None, raw_argv=argv, cwd=e2e.fresh_dir())
    assert run.returncode == 2, run.describe()
    (line,) = run.stderr.decode().splitlines()
    assert line.startswith("legorun: --listen ") and "--key-file" in line, line


@pytest.mark.parametrize("address, local", [
    ("tcp://127.0.0.1:7700", True), ("tcp://127.9.8.7:*", True), ("tcp://localhost:1", True),
    ("tcp://[::1]:7700", True), ("tcp://[::ffff:127.0.0.1]:1", True), ("ipc:///tmp/m", True),
    ("inproc://m", True), ("tcp://*:7700", False), ("tcp://0.0.0.0:7700", False),
    ("tcp://[::]:7700", False), ("tcp://10.0.0.1:7700", False), ("tcp://eth0:7700", False),
    ("tcp://myhost:7700", False), ("udp://127.0.0.1:7700", False), ("127.0.0.1:7700", False),
])
def test_which_endpoints_are_local(address, local) -> None:
    assert is_local_endpoint(address) is local


# ---------------------------------------------------------------- authentication


def test_only_holders_of_the_key_file_are_served(e2e, samples_built, servers,
                                                 tmp_path) -> None:
    key, other_key = tmp_path / "machine.key", tmp_path / "other.key"
    keys = write_key_file(key)
    write_key_file(other_key)
    memory = servers.memory("--key-file", str(key))
    storage = servers.storage("/", "--key-file", str(key))
    for server in (memory, storage):
        with pytest.raises(RpcError, match="did not answer"):
            _channel(server.address, server.role, IMPATIENT)  # no key at all
        with pytest.raises(RpcError, match="did not answer"):
            _channel(server.address, server.role, _keyed(IMPATIENT, other_key))

    # A client that knows the server's public key but holds another secret gets through
    # the handshake's encryption; the server's ZAP handler refuses it.
    public, secret = zmq.curve_keypair()

    def impostor(socket: zmq.Socket) -> None:
        socket.curve_secretkey, socket.curve_publickey = secret, public
        socket.curve_serverkey = keys.public

    with pytest.raises(RpcError, match="did not answer"):
        _channel(memory.address, "memory", dataclasses.replace(IMPATIENT, configure=impostor))
    assert "refused a client at 127.0.0.1" in memory.stderr()

    # legorun itself says what went wrong in one line.
    hello = samples_built / "hello"
    for options, reason in (([], "requires authentication"),
                            (["--key-file", str(other_key)], "does not hold this key file")):
        run = e2e.run_legorun(hello, cwd=e2e.fresh_dir(),
                              options=["--rpc-timeout", "200ms", "--memory", memory.address,
                                       *options])
        assert run.returncode == 125, run.describe()
        (line,) = run.stderr.decode().splitlines()
        assert line.startswith(f"legorun: memory server {memory.address} refused this "
                               "client: the server ") and reason in line, line

    # The servers kept serving the holders of the key, the memory server reading the
    # program through the storage server with the key too (connecting there on the
    # processor's hello, which therefore waits longer).
    native = e2e.run_native(hello, cwd=e2e.fresh_dir())
    run = e2e.run_legorun(hello, cwd=e2e.fresh_dir(),
                          options=["--rpc-timeout", "1s", "--key-file", str(key),
                                   "--memory", memory.address, "--storage", storage.address])
    e2e.assert_same(native, run, "hello with authenticated servers")
    assert memory.alive() and storage.alive()


# ---------------------------------------------------------------- storage confinement


def _status(reply: Any) -> int:
    assert not isinstance(reply, ErrorReply), reply
    return reply.status


def test_a_storage_server_never_serves_outside_its_export(servers, tmp_path) -> None:
    export = tmp_path / "export"
    (export / "sub").mkdir(parents=True)
    secret = tmp_path / "secret"  # beside the export, as the host's files are
    secret.write_bytes(b"the host's secret\n")
    (export / "abs").symlink_to("/etc/passwd")
    (export / "up").symlink_to("../..")
    (export / "host").symlink_to(secret)
    (export / "sub" / "out").symlink_to("../../../secret")
    storage = servers.storage(export)
    hostile = _channel(storage.address, "storage")

    # Paths that would reach the host's /etc/passwd or the secret on an unconfined server.
    to_passwd = ["/../../etc/passwd", "/etc/passwd", "/abs", "/up/etc/passwd",
                 "/up/up/../etc/passwd", "/sub/../../../etc/passwd"]
    to_secret = ["/sub/out", "/../secret"]
    host_paths = ["/host", str(secret)]  # host paths mean paths inside the export
    for path in to_passwd + to_secret + host_paths:
        for request in (ReadRequest(path, 0, 4096), FileReadRequest(path, 0, 4096)):
            reply = hostile.call(request)
            assert _status(reply) == Errno.ENOENT and reply.data == b"", (request, reply)
        assert _status(hostile.call(OpenRequest(path, os.O_RDONLY))) == Errno.ENOENT, path
    reply = hostile.call(ReadRequest("../../etc/passwd", 0, 4096))
    assert _status(reply) == Errno.EINVAL and reply.data == b"", reply  # relative: refused

    # The export is the guest's "/": its own /etc/passwd is what those paths name.
    (export / "etc").mkdir()
    (export / "etc" / "passwd").write_bytes(b"root:x:0:0:export:/:/bin/sh\n")
    (export / "secret").write_bytes(b"the export's secret\n")
    for paths, expected in ((to_passwd, b"root:x:0:0:export:/:/bin/sh\n"),
                            (to_secret, b"the export's secret\n")):
        for path in paths:
            reply = hostile.call(ReadRequest(path, 0, 4096))
            assert _status(reply) == 0 and reply.data == expected, (path, reply)
    for path in host_paths:
        assert _status(hostile.call(ReadRequest(path, 0, 4096))) == Errno.ENOENT, path
    root = hostile.call(StatRequest("/up/.."))
    assert isinstance(root, StatReply) and root.stat is not None
    assert root.stat.ino == export.stat().st_ino, "/up/.. is not the export's root"
    link = hostile.call(ReadlinkRequest("/host"))
    assert isinstance(link, PathReply) and link.path == os.fsencode(secret)  # just its text
    names = {entry.name for entry in hostile.call(ReaddirRequest("/up/..")).entries}
    assert b"abs" in names and b"export" not in names

    # Nothing outside can be changed or pulled in either.
    for request in (UnlinkRequest("/../secret"), UnlinkRequest("/host/"),
                    WriteRequest("/host", 0, b"overwritten"),
                    RenameRequest("/up/../../secret", "/stolen"),
                    LinkRequest(str(secret), "/stolen")):
        hostile.call(request)
    assert secret.read_bytes() == b"the host's secret\n"
    inside = [(Path(folder) / name).read_bytes() for folder, _, names in os.walk(export)
              for name in names if not (Path(folder) / name).is_symlink()]
    assert b"the host's secret\n" not in inside
    assert storage.alive()


# ---------------------------------------------------------------- fuzzing


def _random_value(rng: random.Random, kind: Any, paths: tuple[str, ...]) -> Any:
    """A random value of field type `kind`, favouring the values handlers trip over."""
    origin = typing.get_origin(kind)
    if kind is bool:
        return rng.random() < 0.5
    if kind is int:
        return rng.choice(FUZZ_INTS) if rng.random() < 0.7 else rng.randrange(-99, 99999)
    if kind is str:
        return rng.choice(paths)
    if kind is bytes:
        return rng.randbytes(rng.choice((0, 1, 8, 4096)))
    if kind is float:
        return rng.choice((0.0, -1.0, 1e308, float("nan")))
    if kind is NoneType:
        return None
    if origin in (UnionType, typing.Union):
        return _random_value(rng, rng.choice(typing.get_args(kind)), paths)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_random_value(rng, args[0], paths) for _ in range(rng.randrange(4)))
        return tuple(_random_value(rng, arg, paths) for arg in args)
    if dataclasses.is_dataclass(kind):
        return _random_message(rng, kind, paths)
    raise TypeError(f"no random value for {kind!r}")


def _random_message(rng: random.Random, cls: type, paths: tuple[str, ...]) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(*(_random_value(rng, hints[field.name], paths)
                 for field in dataclasses.fields(cls)))


def _wrong_value(rng: random.Random) -> Any:
    return rng.choice([None, True, "text", b"bytes", 1.5, [1, 2], {"a": 1}, -(2**63),
                       2**64 - 1, msgpack.ExtType(1, b"\x91\x00"), msgpack.ExtType(7, b"")])


class _Fuzzer:
    """Frames a hostile or broken peer might send: well-typed random requests three times
    as often as each other kind."""

    def __init__(self, rng: random.Random, role: str, valid: list[Request],
                 paths: tuple[str, ...]) -> None:
        self.rng = rng
        self.valid = [codec.encode(request) for request in valid]
        self.paths = paths
        self.requests = [cls for cls in codec.MESSAGE_TYPES
                         if issubclass(cls, Request) and cls is not HelloRequest]
        prefixes = ("P2M_", "RELAY") if role == "memory" else ("P2S_", "M2S_")
        self.served = [cls for cls in self.requests if cls.OPCODE.name.startswith(prefixes)]
        self.seq = 0
        self.kinds: list[Callable[[], list[bytes]]] = [
            self.random_parts, self.bad_header, self.garbage_body, self.truncated,
            self.wrong_types, self.wrong_field_count, self.bad_type_number,
            self.huge_lengths, self.deep_nesting, self.random_request, self.random_request,
            self.random_request, self.odd_part_count,
        ]

    def frame(self) -> list[bytes]:
        return self.rng.choice(self.kinds)()

    def next_header(self) -> bytes:
        self.seq += 1
        return header(self.seq)

    def head(self) -> bytes:
        """A header, now and then repeating the last number as a resend does."""
        return self.next_header() if self.rng.random() < 0.9 else header(self.seq)

    def random_parts(self) -> list[bytes]:
        return [self.rng.randbytes(self.rng.randrange(0, 40)),
                self.rng.randbytes(self.rng.randrange(0, 300))]

    def bad_header(self) -> list[bytes]:
        head = bytearray(self.head())
        head[self.rng.randrange(len(head) - 8)] ^= 1 << self.rng.randrange(8)  # magic, version
        return [bytes(head) if self.rng.random() < 0.7 else bytes(head[:-1]),
                self.rng.choice(self.valid)]

    def garbage_body(self) -> list[bytes]:
        return [self.head(), self.rng.randbytes(self.rng.randrange(0, 500))]

    def truncated(self) -> list[bytes]:
        body = self.rng.choice(self.valid)
        return [self.head(), body[:self.rng.randrange(len(body))]]

    @staticmethod
    def _message(number: Any, fields: list[bytes]) -> bytes:
        """A message value as codec.py frames one, from its number and encoded fields."""
        array = msgpack.Packer().pack_array_header(len(fields) + 1)
        payload = array + msgpack.packb(number) + b"".join(fields)
        return msgpack.packb(msgpack.ExtType(codec.MESSAGE_EXT, payload))

    def _request_fields(self) -> tuple[int, list[bytes]]:
        cls = self.rng.choice(self.requests)
        message = _random_message(self.rng, cls, self.paths)
        fields = [codec.encode(getattr(message, field.name))
                  for field in dataclasses.fields(cls)]
        return codec.MESSAGE_TYPES.index(cls), fields

    def wrong_types(self) -> list[bytes]:
        number, fields = self._request_fields()
        if fields:
            wrong = msgpack.packb(_wrong_value(self.rng), use_bin_type=True)
            fields[self.rng.randrange(len(fields))] = wrong
        return [self.head(), self._message(number, fields)]

    def wrong_field_count(self) -> list[bytes]:
        number, fields = self._request_fields()
        fields = fields[:-1] if fields and self.rng.random() < 0.5 else [*fields, b"\x00"]
        return [self.head(), self._message(number, fields)]

    def bad_type_number(self) -> list[bytes]:
        number = self.rng.choice([-1, len(codec.MESSAGE_TYPES), 2**40, "HelloRequest", None])
        return [self.head(), self._message(number, [msgpack.packb(PROTOCOL_VERSION)])]

    def huge_lengths(self) -> list[bytes]:
        # str32, bin32, array32, map32 and ext32 headers that promise ~4 GiB, bare or
        # inside a message value.
        prefix = self.rng.choice([b"\xdb", b"\xc6", b"\xdd", b"\xdf", b"\xc9"]) + \
            self.rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x10\x00\x00"])
        if prefix[0] == 0xC9:
            prefix += b"\x01"
        body = prefix + self.rng.randbytes(self.rng.randrange(16))
        if self.rng.random() < 0.5:
            body = b"\xc7" + bytes([len(body) + 1]) + b"\x01\x92\x00" + body[:250]
        return [self.head(), body]

    def deep_nesting(self) -> list[bytes]:
        body = b"\xc0"
        for _ in range(self.rng.choice([3, 50, 400, 2000])):
            body = msgpack.packb(msgpack.ExtType(1, b"\x92\x00" + body))
        if self.rng.random() < 0.5:
            body = b"\x91" * 5000 + b"\xc0"  # arrays nested past msgpack's stack
        return [self.head(), body]

    def random_request(self) -> list[bytes]:
        """Mostly requests the server serves, so that they reach its handlers."""
        cls = self.rng.choice(self.served if self.rng.random() < 0.9 else self.requests)
        return [self.head(), codec.encode(_random_message(self.rng, cls, self.paths))]

    def odd_part_count(self) -> list[bytes]:
        """One or five parts: not [header, message], so dropped without a reply."""
        parts = [self.head(), self.rng.choice(self.valid)]
        return parts[:1] if self.rng.random() < 0.5 else [*parts, b"", b"x", header(1)]


def _dealer(context: zmq.Context) -> zmq.Socket:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    # Unbounded queues: nothing is dropped or blocks while replies are read after sending.
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    return socket


def _oversized_frame_drops_the_connection(context: zmq.Context, address: str) -> bool:
    socket = _dealer(context)
    monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)  # watching from the start
    socket.connect(address)
    try:
        socket.send_multipart([header(1), bytes(codec.MAX_FRAME_BYTES + 65)])
        return bool(monitor.poll(30_000)) and \
            recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    finally:
        socket.disable_monitor()
        monitor.close(0)
        socket.close(0)


def _fuzz(server: Any, greetings: list[Request], fuzzer: _Fuzzer) -> list[list[bytes]]:
    """Send FUZZ_FRAMES frames from FUZZ_SOCKETS connections, half of them after a proper
    hello (so that requests reach the handlers), in bulk, to `server` (a servers.Server);
    the replies, once all came."""
    address = server.address
    context = zmq.Context()
    try:
        sockets = [_dealer(context) for _ in range(FUZZ_SOCKETS)]
        for socket in sockets:
            socket.connect(address)
        expected = 0
        for index, socket in enumerate(sockets):
            if index % 2 == 0:
                for request in greetings:
                    socket.send_multipart([fuzzer.next_header(), codec.encode(request)])
                    expected += 1
        for _ in range(FUZZ_FRAMES):
            frame = fuzzer.frame()
            fuzzer.rng.choice(sockets).send_multipart(frame)
            expected += len(frame) == 2
        replies: list[list[bytes]] = []
        poller = zmq.Poller()
        for socket in sockets:
            poller.register(socket, zmq.POLLIN)
        idle = 0
        while len(replies) < expected:
            ready = poller.poll(1000)
            assert server.alive(), f"the server died:\n{server.stderr()[-3000:]}"
            idle = 0 if ready else idle + 1
            assert idle < 30, f"the server stopped answering: {len(replies)} of {expected}"
            for socket, _ in ready:
                while socket.poll(0):
                    replies.append(socket.recv_multipart())
        assert not any(socket.poll(200) for socket in sockets), "a dropped frame was answered"
        assert _oversized_frame_drops_the_connection(context, address)
        return replies
    finally:
        context.destroy(0)


def _check_replies(replies: list[list[bytes]]) -> None:
    """Every reply is a well-formed frame; bad frames got an ErrorReply."""
    errors = 0
    for head, body in replies:
        request_number(head)
        reply = codec.decode(body)
        errors += isinstance(reply, ErrorReply)
    assert errors > len(replies) // 2, f"only {errors} error replies of {len(replies)}"


def _server_stderr_is_clean(server: Any) -> None:
    text = server.stderr()
    assert "Traceback" not in text and "Fatal" not in text, text[-3000:]


def test_fuzzed_memory_server_keeps_serving(e2e, samples_built, servers) -> None:
    memory = servers.memory()
    hello = samples_built / "hello"
    # A process for the fuzzed requests to act on, and paths a memory server may read.
    exec_hello = ExecRequest(FUZZ_PID, str(hello), (b"hello",), (), b"hello")
    greetings = [HelloRequest(PROTOCOL_VERSION, processor=11), exec_hello]
    fuzzer = _Fuzzer(random.Random(FUZZ_SEED), "memory",
                     [exec_hello, PageMissRequest(FUZZ_PID, 0x400000), *greetings],
                     (str(hello), "/", "", "/nonexistent", "relative", "/proc/self/mem"))
    _check_replies(_fuzz(memory, greetings, fuzzer))

    assert memory.alive()
    _server_stderr_is_clean(memory)
    # A well-behaved client is still served correctly: a fresh process runs to the end.
    channel = _channel(memory.address, "memory", processor=12)
    reply = channel.call(dataclasses.replace(exec_hello, pid=1))
    assert isinstance(reply, ExecReply) and reply.status == 0, reply
    native = e2e.run_native(hello, cwd=e2e.fresh_dir())
    run = e2e.run_legorun(hello, cwd=e2e.fresh_dir(),
                          options=["--rpc-timeout", "200ms", "--memory", memory.address])
    e2e.assert_same(native, run, "hello against a fuzzed memory server")


def test_fuzzed_storage_server_keeps_serving(servers, tmp_path) -> None:
    export = tmp_path / "export"
    (export / "dir").mkdir(parents=True)
    (export / "file").write_bytes(b"content\n" * 100)
    (export / "link").symlink_to("file")
    storage = servers.storage(export)
    greetings = [HelloRequest(PROTOCOL_VERSION)]
    fuzzer = _Fuzzer(random.Random(FUZZ_SEED + 1), "storage",
                     [ReadRequest("/file", 0, 100), StatRequest("/link"),
                      OpenRequest("/dir/new", os.O_CREAT | os.O_WRONLY), *greetings],
                     ("/file", "/dir", "/dir/new", "/link", "/", "/..", "relative", "",
                      "/dir/../../..", "/a\x00b", "/" + "x" * 300, "/dir/" + "y/" * 3000))
    _check_replies(_fuzz(storage, greetings, fuzzer))

    assert storage.alive()
    _server_stderr_is_clean(storage)
    (export / "check").write_bytes(b"still served\n")
    channel = _channel(storage.address, "storage")
    reply = channel.call(ReadRequest("/check", 0, 4096))
    assert isinstance(reply, DataReply) and reply.data == b"still served\n", reply
    opened = channel.call(OpenRequest("/check", os.O_RDONLY))
    assert isinstance(opened, OpenReply) and opened.stat is not None
    assert opened.stat.size == len(b"still served\n")


def test_a_hello_naming_a_broken_storage_server_fails_only_that_hello(servers) -> None:
    memory = servers.memory()
    for storage in ("nonsense", "tcp://"):
        with pytest.raises(RpcError, match="refused: .*storage server"):
            RemoteChannel(memory.address, "memory", PATIENT, processor=5, storage=storage)
    assert memory.alive()
    _channel(memory.address, "memory", processor=6)  # others are served
    _server_stderr_is_clean(memory)
