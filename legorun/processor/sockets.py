"""Sockets (socket(7), unix(7), ip(7), ipv6(7)) as host sockets owned by the processor.

A socket is processor-local I/O, not storage: the guest's socket is a host socket of the
machine the processor runs on, so a loopback connection or a socketpair between the guest's
own descriptors behaves exactly as on Linux. Addresses, options and control messages cross
as the raw bytes the guest passed (struct sockaddr, option values, cmsgs), so the host
kernel validates them and answers with Linux's own errors; the syscall layer only copies them
in and out of guest memory.

Passing descriptors (SCM_RIGHTS) is not supported: the host descriptors are the processor's,
not the guest's. Such messages are refused when sent and dropped (MSG_CTRUNC) when received.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass

from legorun.processor.files import O_NONBLOCK, O_RDWR, host_call, host_errno
from legorun.processor.hostfile import READ_MAX, HostFile
from legorun.processor.hostlib import checked, libc
from legorun.processor.wait import POLLIN, POLLOUT, wait_until_ready
from syscalls.errno import Errno, SyscallError

SOCK_NONBLOCK = 0o4000
SOCK_CLOEXEC = 0o2000000
SOL_SOCKET = 1
SO_ERROR = 4
SO_PEERCRED = 17
SO_ACCEPTCONN = 30
SCM_RIGHTS = 1
MSG_PEEK = 0x2
MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40
MSG_WAITALL = 0x100
MSG_CTRUNC = 0x8
SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
CONTROL_MAX = 1 << 16  # bounds the control buffer a recvmsg asks the host for
CMSG_HEADER = struct.Struct("<Qii")  # struct cmsghdr: cmsg_len, cmsg_level, cmsg_type


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)), ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


def _buffer(data: bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data, len(data)) if data else ctypes.create_string_buffer(1)


@dataclass(frozen=True, slots=True)
class Received:
    """What one recvmsg brought: the data, the sender's address (as long as the host said,
    `name_size`), control messages and the MSG_* flags of the reply."""

    data: bytes
    length: int  # the datagram's full length when MSG_TRUNC asked for it
    name: bytes
    name_size: int
    control: bytes
    flags: int


def cmsgs(control: bytes) -> list[tuple[int, int, bytes]]:
    """The (level, type, data) control messages packed in `control` (cmsg(3) layout)."""
    found = []
    offset = 0
    while offset + CMSG_HEADER.size <= len(control):
        length, level, kind = CMSG_HEADER.unpack_from(control, offset)
        if length < CMSG_HEADER.size or offset + length > len(control):
            break
        found.append((level, kind, control[offset + CMSG_HEADER.size : offset + length]))
        offset += (length + 7) & ~7
    return found


def _without_rights(control: bytes) -> tuple[bytes, bool]:
    """`control` without SCM_RIGHTS messages, whose host descriptors are closed; and
    whether any was dropped."""
    kept = bytearray()
    dropped = False
    for level, kind, data in cmsgs(control):
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            for (fd,) in struct.iter_unpack("<i", data[: len(data) // 4 * 4]):
                os.close(fd)
            dropped = True
            continue
        record = CMSG_HEADER.pack(CMSG_HEADER.size + len(data), level, kind) + data
        kept += record.ljust((len(record) + 7) & ~7, b"\0")
    return bytes(kept), dropped


class Socket(HostFile):
    """An open socket."""

    def __init__(self, fd: int, nonblocking: bool) -> None:
        super().__init__(fd, O_RDWR | (O_NONBLOCK if nonblocking else 0))

    @classmethod
    def create(cls, domain: int, kind: int, protocol: int) -> Socket:
        """socket(2): `kind` may carry SOCK_NONBLOCK (SOCK_CLOEXEC is the fd table's)."""
        host_kind = kind & ~(SOCK_NONBLOCK | SOCK_CLOEXEC) | SOCK_NONBLOCK | SOCK_CLOEXEC
        fd = host_call(lambda: checked(libc().socket(domain, host_kind, protocol)))
        return cls(fd, bool(kind & SOCK_NONBLOCK))

    @classmethod
    def pair(cls, domain: int, kind: int, protocol: int) -> tuple[Socket, Socket]:
        host_kind = kind & ~(SOCK_NONBLOCK | SOCK_CLOEXEC) | SOCK_NONBLOCK | SOCK_CLOEXEC
        fds = (ctypes.c_int * 2)()
        host_call(lambda: checked(libc().socketpair(domain, host_kind, protocol, fds)))
        nonblocking = bool(kind & SOCK_NONBLOCK)
        return cls(fds[0], nonblocking), cls(fds[1], nonblocking)

    def wakeable_by_others(self) -> bool:
        """A listener can always be reached; a Unix connection whose peer this very process
        made (a socketpair, or a connect to its own listener) cannot be woken by anyone
        else. Other peers (a TCP connection's) cannot be told apart: they may be outside."""
        try:
            if struct.unpack("<i", self.getsockopt(SOL_SOCKET, SO_ACCEPTCONN, 4))[0]:
                return True
            peer_pid = struct.unpack("<i", self.getsockopt(SOL_SOCKET, SO_PEERCRED, 12)[:4])[0]
        except SyscallError:
            return True
        return peer_pid != os.getpid() or self.shared_by_fork

    def fd_link(self) -> str:
        return f"socket:[{os.fstat(self.fd).st_ino}]"

    def _call(self, function: str, *args: object) -> int:
        return host_call(lambda: self._host_call(function, *args))

    # ------------------------------------------------------------ addresses and setup

    def bind(self, address: bytes) -> None:
        self._call("bind", _buffer(address), len(address))

    def listen(self, backlog: int) -> None:
        self._call("listen", backlog)

    def connect(self, address: bytes) -> None:
        """A blocking connect waits for the handshake, then reports its outcome.

        A Unix listener whose backlog is full makes even a blocking connect fail with
        EAGAIN here: nothing signals when the listener accepts, so there is no readiness to
        wait for (Linux would sleep until it does)."""
        try:
            self._host_call("connect", _buffer(address), len(address))
            return
        except OSError as error:
            if error.errno != errno.EINPROGRESS or self.nonblocking:
                raise host_errno(error) from None
        wait_until_ready([(self, POLLOUT)], None)
        outcome = struct.unpack("<i", self.getsockopt(SOL_SOCKET, SO_ERROR, 4))[0]
        if outcome:
            raise SyscallError(Errno(outcome))

    def accept(self, nonblocking: bool) -> tuple[Socket, bytes, int]:
        """The connection and its peer's address (with the address's full size)."""
        name = ctypes.create_string_buffer(SOCKADDR_MAX)
        size = ctypes.c_uint32(SOCKADDR_MAX)

        def attempt() -> int:
            return checked(libc().accept4(self.fd, name, ctypes.byref(size),
                                         SOCK_NONBLOCK | SOCK_CLOEXEC))

        fd = self.retry(attempt, POLLIN)
        return Socket(fd, nonblocking), name.raw[: min(size.value, SOCKADDR_MAX)], size.value

    def _name(self, function: str) -> tuple[bytes, int]:
        name = ctypes.create_string_buffer(SOCKADDR_MAX)
        size = ctypes.c_uint32(SOCKADDR_MAX)
        self._call(function, name, ctypes.byref(size))
        return name.raw[: min(size.value, SOCKADDR_MAX)], size.value

    def local_name(self) -> tuple[bytes, int]:
        """getsockname(2): the address and its full size."""
        return self._name("getsockname")

    def peer_name(self) -> tuple[bytes, int]:
        """getpeername(2): the address and its full size."""
        return self._name("getpeername")

    def shutdown(self, how: int) -> None:
        self._call("shutdown", how)

    def getsockopt(self, level: int, name: int, size: int) -> bytes:
        value = ctypes.create_string_buffer(max(size, 1))
        length = ctypes.c_uint32(size)
        self._call("getsockopt", level, name, value, ctypes.byref(length))
        return value.raw[: min(length.value, size)]

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        self._call("setsockopt", level, name, _buffer(value), len(value))

    # ------------------------------------------------------------ data

    def sendmsg(self, data: bytes, name: bytes, control: bytes, flags: int) -> int:
        """Send as sendmsg(2) does; a blocking send on a stream goes out whole."""
        if any(level == SOL_SOCKET and kind == SCM_RIGHTS for level, kind, _d in cmsgs(control)):
            raise SyscallError(Errno.EOPNOTSUPP)
        name_buffer = _buffer(name) if name else None
        pending_control = [control]

        def send(chunk: memoryview) -> int:
            payload = _buffer(bytes(chunk))
            vector = _IoVec(ctypes.cast(payload, ctypes.c_void_p), len(chunk))
            extra = pending_control[0]
            extra_buffer = _buffer(extra) if extra else None
            header = _MsgHdr(
                ctypes.cast(name_buffer, ctypes.c_void_p) if name_buffer else None,
                len(name), ctypes.pointer(vector), 1,
                ctypes.cast(extra_buffer, ctypes.c_void_p) if extra_buffer else None,
                len(extra), 0,
            )
            sent = self._host_call("sendmsg", ctypes.byref(header), flags | MSG_DONTWAIT)
            pending_control[0] = b""  # control data travels with the first bytes only
            return sent

        nonblocking = self.nonblocking or bool(flags & MSG_DONTWAIT)
        if not data:
            return self.retry(lambda: send(memoryview(b"")), POLLOUT, nonblocking)
        return self.send_all(send, data, nonblocking)

    def _host_call(self, function: str, *args: object) -> int:
        return checked(getattr(libc(), function)(self.fd, *args))

    def recvmsg(self, size: int, name_size: int, control_size: int, flags: int) -> Received:
        """Receive as recvmsg(2) does; MSG_WAITALL on a blocking stream waits for `size`
        bytes (or end of file, or an error after some data)."""
        nonblocking = self.nonblocking or bool(flags & MSG_DONTWAIT)
        first = self.retry(lambda: self._recv_once(size, name_size, control_size, flags),
                           POLLIN, nonblocking)
        if not flags & MSG_WAITALL or flags & MSG_PEEK or nonblocking or not first.data:
            return first
        data = bytearray(first.data)
        while len(data) < size:
            try:
                more = self.retry(lambda: self._recv_once(size - len(data), 0, 0, flags),
                                  POLLIN, False)
            except SyscallError:
                break
            if not more.data:
                break
            data += more.data
        return Received(bytes(data), len(data), first.name, first.name_size, first.control,
                        first.flags)

    def _recv_once(self, size: int, name_size: int, control_size: int, flags: int) -> Received:
        size = min(size, READ_MAX)
        control_size = min(control_size, CONTROL_MAX)
        payload = ctypes.create_string_buffer(max(size, 1))
        vector = _IoVec(ctypes.cast(payload, ctypes.c_void_p), size)
        name = ctypes.create_string_buffer(max(name_size, 1))
        control = ctypes.create_string_buffer(max(control_size, 1))
        header = _MsgHdr(
            ctypes.cast(name, ctypes.c_void_p), name_size, ctypes.pointer(vector), 1,
            ctypes.cast(control, ctypes.c_void_p) if control_size else None, control_size, 0,
        )
        got = self._host_call("recvmsg", ctypes.byref(header), flags | MSG_DONTWAIT)
        received_control, dropped = _without_rights(control.raw[: header.msg_controllen])
        result_flags = header.msg_flags | (MSG_CTRUNC if dropped else 0)
        # With MSG_TRUNC a datagram's full length comes back, more than the buffer holds.
        return Received(payload.raw[: min(got, size)], got,
                        name.raw[: min(header.msg_namelen, name_size)], header.msg_namelen,
                        received_control, result_flags)

