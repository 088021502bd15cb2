"""Socket calls: socket, socketpair, bind, listen, accept, accept4, connect, getsockname,
getpeername, sendto, recvfrom, sendmsg, recvmsg, sendmmsg, recvmmsg, shutdown, setsockopt
and getsockopt. See socket(2), socketpair(2), bind(2), listen(2), accept(2), connect(2),
getsockname(2), getpeername(2), send(2), recv(2), sendmmsg(2), recvmmsg(2), shutdown(2),
getsockopt(2) and socket(7).

Sockets are host sockets owned by the processor (processor/sockets.py). Handlers copy
addresses, options and messages between guest memory and the host as raw bytes, in the
order and with the checks of net/socket.c. A path in an AF_UNIX address names a file on the
processor's host: a relative one is made absolute against the guest's cwd, which the host
process does not share.
"""

from __future__ import annotations

import os
import struct

from legorun.processor.sockets import (
    MSG_DONTWAIT,
    SOCK_CLOEXEC,
    SOCK_NONBLOCK,
    SOCKADDR_MAX,
    CONTROL_MAX,
    Received,
    Socket,
)
from syscalls.args import AT_FDCWD, Fd, Int, Ptr, Size, UInt
from syscalls.context import SyscallContext
from syscalls.descriptors import install_pair
from syscalls.errno import Errno, SyscallError
from syscalls.fs import IOV_MAX, MAX_RW, SIGPIPE, gather, iovecs, scatter
from syscalls.paths import fd_file, resolve
from syscalls.process import signal_self
from syscalls.time import clock_ns, read_timespec

AF_UNIX = 1
CLOCK_MONOTONIC = 1
UNIX_PATH_MAX = 108
MSG_NOSIGNAL = 0x4000
MSG_WAITFORONE = 0x10000
SOL_SOCKET = 1
IPPROTO_IP, IPPROTO_IPV6 = 0, 41
# Options whose value holds pointers into the caller's memory (socket filters, netfilter
# tables): the host would read legorun's memory at the guest's addresses.
POINTER_OPTIONS = {
    (SOL_SOCKET, 26), (SOL_SOCKET, 50), (SOL_SOCKET, 51), (SOL_SOCKET, 52),  # *_FILTER, *_BPF
    *((level, name) for level in (IPPROTO_IP, IPPROTO_IPV6) for name in range(64, 68)),
}
OPTION_MAX = 1 << 16  # bounds the option value copied in or out
# struct msghdr: name, namelen, iov, iovlen, control, controllen, flags (56 bytes); an
# mmsghdr adds the unsigned msg_len and pads to 64.
MSGHDR = struct.Struct("<QI4xQQQQi4x")
MSG_NAMELEN_OFFSET, MSG_CONTROLLEN_OFFSET, MSG_FLAGS_OFFSET = 8, 40, 48
MMSGHDR_SIZE = 64


def _socket(ctx: SyscallContext, fd: int) -> Socket:
    file = fd_file(ctx, fd)
    if not isinstance(file, Socket):
        raise SyscallError(Errno.ENOTSOCK)
    return file


# ---------------------------------------------------------------- addresses


def read_sockaddr(ctx: SyscallContext, addr: int, addrlen: int) -> bytes:
    """The address the guest passed (move_addr_to_kernel), with a relative AF_UNIX path made
    absolute against the guest's cwd."""
    if not 0 <= addrlen <= SOCKADDR_MAX:
        raise SyscallError(Errno.EINVAL)
    address = ctx.mem.read(addr, addrlen)
    family = int.from_bytes(address[:2], "little") if len(address) >= 2 else -1
    path = address[2:].split(b"\0", 1)[0]
    if family != AF_UNIX or not path or path.startswith(b"/"):
        return address  # abstract (leading NUL), unnamed, absolute or another family
    absolute = os.fsencode(resolve(ctx, AT_FDCWD, os.fsdecode(path)))
    if len(absolute) >= UNIX_PATH_MAX:
        raise SyscallError(Errno.ENAMETOOLONG)
    return address[:2] + absolute + b"\0"


def write_sockaddr(ctx: SyscallContext, addr: int, addrlen: int, name: bytes,
                   size: int) -> None:
    """Copy an address out (move_addr_to_user): as much as the guest's *addrlen allows,
    then the address's full size into *addrlen."""
    if not addr:
        return
    room = struct.unpack("<i", ctx.mem.read(addrlen, 4))[0]
    if room < 0:
        raise SyscallError(Errno.EINVAL)
    ctx.mem.write(addr, name[:room])
    ctx.mem.write_u32(addrlen, size)


# ---------------------------------------------------------------- creation and setup


def sys_socket(ctx: SyscallContext, domain: Int, type: Int, protocol: Int) -> int:
    return ctx.fds.allocate_new(Socket.create(domain, type, protocol), bool(type & SOCK_CLOEXEC))


def sys_socketpair(ctx: SyscallContext, domain: Int, type: Int, protocol: Int, sv: Ptr) -> int:
    first, second = Socket.pair(domain, type, protocol)
    install_pair(ctx, first, second, bool(type & SOCK_CLOEXEC), sv)
    return 0


def sys_bind(ctx: SyscallContext, sockfd: Fd, addr: Ptr, addrlen: Int) -> int:
    sock = _socket(ctx, sockfd)
    address = read_sockaddr(ctx, addr, addrlen)
    # A Unix socket file is created with the guest's umask, not legorun's.
    saved = os.umask(ctx.proc.umask)
    try:
        sock.bind(address)
    finally:
        os.umask(saved)
    return 0


def sys_listen(ctx: SyscallContext, sockfd: Fd, backlog: Int) -> int:
    _socket(ctx, sockfd).listen(backlog)
    return 0


def sys_connect(ctx: SyscallContext, sockfd: Fd, addr: Ptr, addrlen: Int) -> int:
    sock = _socket(ctx, sockfd)
    sock.connect(read_sockaddr(ctx, addr, addrlen))
    return 0


def sys_accept4(ctx: SyscallContext, sockfd: Fd, addr: Ptr, addrlen: Ptr, flags: Int) -> int:
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(Errno.EINVAL)
    connection, name, size = _socket(ctx, sockfd).accept(bool(flags & SOCK_NONBLOCK))
    try:
        write_sockaddr(ctx, addr, addrlen, name, size)
    except BaseException:
        connection.close()  # as Linux: the connection is dropped with the failed copy
        raise
    return ctx.fds.allocate_new(connection, cloexec=bool(flags & SOCK_CLOEXEC))


def sys_accept(ctx: SyscallContext, sockfd: Fd, addr: Ptr, addrlen: Ptr) -> int:
    return sys_accept4(ctx, sockfd, addr, addrlen, 0)


def sys_getsockname(ctx: SyscallContext, sockfd: Fd, addr: Ptr, addrlen: Ptr) -> int:
    name, size = _socket(ctx, sockfd).local_name()
    write_sockaddr(ctx, addr, addrlen, name, size)
    return 0


def sys_getpeername(ctx: SyscallContext, sockfd: Fd, addr: Ptr, addrlen: Ptr) -> int:
    name, size = _socket(ctx, sockfd).peer_name()
    write_sockaddr(ctx, addr, addrlen, name, size)
    return 0


def sys_shutdown(ctx: SyscallContext, sockfd: Fd, how: Int) -> int:
    _socket(ctx, sockfd).shutdown(how)
    return 0


def sys_setsockopt(ctx: SyscallContext, sockfd: Fd, level: Int, optname: Int, optval: Ptr,
                   optlen: Int) -> int:
    sock = _socket(ctx, sockfd)
    if optlen < 0:
        raise SyscallError(Errno.EINVAL)
    if (level, optname) in POINTER_OPTIONS:
        raise SyscallError(Errno.ENOPROTOOPT)
    sock.setsockopt(level, optname, ctx.mem.read(optval, min(optlen, OPTION_MAX)))
    return 0


def sys_getsockopt(ctx: SyscallContext, sockfd: Fd, level: Int, optname: Int, optval: Ptr,
                   optlen: Ptr) -> int:
    sock = _socket(ctx, sockfd)
    room = struct.unpack("<i", ctx.mem.read(optlen, 4))[0]
    if room < 0:
        raise SyscallError(Errno.EINVAL)
    value = sock.getsockopt(level, optname, min(room, OPTION_MAX))
    ctx.mem.write(optval, value)
    ctx.mem.write_u32(optlen, len(value))
    return 0


# ---------------------------------------------------------------- data


def _sent(ctx: SyscallContext, sock: Socket, flags: int, data: bytes, name: bytes,
          control: bytes) -> int:
    """sendmsg on the host; EPIPE raises SIGPIPE first unless MSG_NOSIGNAL."""
    try:
        return sock.sendmsg(data, name, control, flags & ~MSG_NOSIGNAL)
    except SyscallError as error:
        if error.errno == Errno.EPIPE and not flags & MSG_NOSIGNAL:
            signal_self(ctx, SIGPIPE)
        raise


def sys_sendto(ctx: SyscallContext, sockfd: Fd, buf: Ptr, len: Size, flags: Int,
               dest_addr: Ptr, addrlen: Int) -> int:
    sock = _socket(ctx, sockfd)
    data = ctx.mem.read(buf, min(len, MAX_RW))
    name = read_sockaddr(ctx, dest_addr, addrlen) if dest_addr else b""
    return _sent(ctx, sock, flags, data, name, b"")


def sys_recvfrom(ctx: SyscallContext, sockfd: Fd, buf: Ptr, len: Size, flags: Int,
                 src_addr: Ptr, addrlen: Ptr) -> int:
    sock = _socket(ctx, sockfd)
    got = sock.recvmsg(min(len, MAX_RW), SOCKADDR_MAX if src_addr else 0, 0, flags)
    ctx.mem.write(buf, got.data)
    if got.name_size:
        write_sockaddr(ctx, src_addr, addrlen, got.name, got.name_size)
    elif src_addr:
        ctx.mem.write_u32(addrlen, 0)  # no address (a connected stream): length 0
    return got.length


def _read_msghdr(ctx: SyscallContext, msg: int) -> tuple[int, ...]:
    name, namelen, iov, iovlen, control, controllen, _flags = ctx.mem.read_struct(
        MSGHDR.format, msg)
    if iovlen > IOV_MAX:
        raise SyscallError(Errno.EMSGSIZE)
    return name, namelen, iov, iovlen, control, controllen


def _sendmsg(ctx: SyscallContext, sock: Socket, msg: int, flags: int) -> int:
    name_ptr, namelen, iov, iovlen, control_ptr, controllen = _read_msghdr(ctx, msg)
    if controllen > CONTROL_MAX:
        raise SyscallError(Errno.ENOBUFS)
    name = read_sockaddr(ctx, name_ptr, namelen) if name_ptr else b""
    control = ctx.mem.read(control_ptr, controllen) if controllen else b""
    data = gather(ctx, iov, iovlen)[:MAX_RW]
    return _sent(ctx, sock, flags, data, name, control)


def _recvmsg(ctx: SyscallContext, sock: Socket, msg: int, flags: int) -> int:
    name_ptr, namelen, iov, iovlen, control_ptr, controllen = _read_msghdr(ctx, msg)
    if namelen > 0x7FFFFFFF:
        raise SyscallError(Errno.EINVAL)
    vectors = iovecs(ctx, iov, iovlen)
    size = min(sum(length for _base, length in vectors), MAX_RW)
    got: Received = sock.recvmsg(size, min(namelen, SOCKADDR_MAX) if name_ptr else 0,
                                 controllen if control_ptr else 0, flags)
    scatter(ctx, vectors, got.data)
    if name_ptr:
        ctx.mem.write(name_ptr, got.name)
    ctx.mem.write_u32(msg + MSG_NAMELEN_OFFSET, got.name_size if name_ptr else 0)
    if control_ptr:
        ctx.mem.write(control_ptr, got.control)
    ctx.mem.write_u64(msg + MSG_CONTROLLEN_OFFSET, len(got.control))
    ctx.mem.write_u32(msg + MSG_FLAGS_OFFSET, got.flags)
    return got.length


def sys_sendmsg(ctx: SyscallContext, sockfd: Fd, msg: Ptr, flags: Int) -> int:
    return _sendmsg(ctx, _socket(ctx, sockfd), msg, flags)


def sys_recvmsg(ctx: SyscallContext, sockfd: Fd, msg: Ptr, flags: Int) -> int:
    return _recvmsg(ctx, _socket(ctx, sockfd), msg, flags)


def sys_sendmmsg(ctx: SyscallContext, sockfd: Fd, msgvec: Ptr, vlen: UInt, flags: Int) -> int:
    sock = _socket(ctx, sockfd)
    done = 0
    for index in range(min(vlen, IOV_MAX)):
        entry = msgvec + index * MMSGHDR_SIZE
        try:
            sent = _sendmsg(ctx, sock, entry, flags)
        except SyscallError:
            if done:
                break  # as Linux: the error waits for the next call
            raise
        ctx.mem.write_u32(entry + MSGHDR.size, sent)
        done += 1
    return done


def sys_recvmmsg(ctx: SyscallContext, sockfd: Fd, msgvec: Ptr, vlen: UInt, flags: Int,
                 timeout: Ptr) -> int:
    sock = _socket(ctx, sockfd)
    # As Linux, the timeout is only looked at after each message, never while one waits.
    deadline = clock_ns(CLOCK_MONOTONIC) + read_timespec(ctx, timeout) if timeout else None
    done = 0
    for index in range(min(vlen, IOV_MAX)):
        if done and deadline is not None and clock_ns(CLOCK_MONOTONIC) >= deadline:
            break
        entry = msgvec + index * MMSGHDR_SIZE
        call_flags = flags & ~MSG_WAITFORONE
        if done and flags & MSG_WAITFORONE:
            call_flags |= MSG_DONTWAIT  # once one message has arrived
        try:
            got = _recvmsg(ctx, sock, entry, call_flags)
        except SyscallError:
            if done:
                break
            raise
        ctx.mem.write_u32(entry + MSGHDR.size, got)
        done += 1
    return done
