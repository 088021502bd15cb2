"""How --strace shows syscall arguments and results, in strace's notation.

Strings are quoted with C escapes and cut at STRING_LIMIT bytes (then `...` follows the
closing quote), null pointers are NULL, addresses hex, flag sets `O_RDONLY|O_CLOEXEC`,
structs `{st_mode=S_IFREG|0644, st_size=123, ...}`, errors `-1 ENOENT (No such file or
directory)`. Guest memory is read through `GuestReader`, which turns a bad pointer into
None: a pointer that cannot be read is shown as its address, and the guest never notices
that it was looked at.
"""

from __future__ import annotations

import stat as stat_module
import struct
from dataclasses import dataclass
from typing import Callable

from legorun.cache.excache import GuestFault
from legorun.processor.uaccess import PATH_MAX, UserMemory
from legorun.trace import strace_names as names
from syscalls.descriptors import DIRENT64_HEADER
from syscalls.errno import Errno, SyscallError, strerror
from syscalls.flags import O_CREAT, O_TMPFILE
from syscalls.fs import STAT_FORMAT
from syscalls.misc import UTS_FIELD
from syscalls.paths import STATFS_FORMAT, STATX_FORMAT, UTIME_NOW, UTIME_OMIT
from syscalls.signals import KERNEL_SIGACTION, STACK_T
from syscalls.signatures import OUTPUTS, Arg, Result

STRING_LIMIT = 32  # bytes of a string or buffer shown (strace's default -s 32)
ARRAY_LIMIT = 32  # elements of an array shown
ENVIRONMENT_LIMIT = 1 << 16  # pointers counted in an envp array before giving up
MAX_ERRNO = 4095  # results in [-4095, -1] are errors (include/linux/err.h)
TIMESPEC = "<qq"
TIMESPEC_PAIR = "<qqqq"
RLIMIT = "<QQ"
SIGSET = "<Q"
FD_PAIR = "<ii"
INT_OUT = "<I"
IOVEC = struct.Struct("<QQ")
UTSNAME_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")
UTSNAME_SHOWN = 2  # strace shows the first two fields, then "..."
FILE_TYPES = {getattr(stat_module, name): name for name in (
    "S_IFSOCK", "S_IFLNK", "S_IFREG", "S_IFBLK", "S_IFDIR", "S_IFCHR", "S_IFIFO")}
SPECIAL_MODE_BITS = ((stat_module.S_ISUID, "S_ISUID"), (stat_module.S_ISGID, "S_ISGID"),
                     (stat_module.S_ISVTX, "S_ISVTX"))
ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\t"): "\\t", ord("\n"): "\\n",
           ord("\v"): "\\v", ord("\f"): "\\f", ord("\r"): "\\r"}
OCTAL_DIGITS = b"01234567"


class GuestReader:
    """Reads the guest's memory for display: every failure is None, never an exception."""

    def __init__(self, memory: UserMemory) -> None:
        self._memory = memory

    def read(self, addr: int, size: int) -> bytes | None:
        try:
            return self._memory.read(addr, size)
        except (GuestFault, SyscallError):
            return None

    def cstring(self, addr: int, limit: int) -> bytes | None:
        """At most `limit` bytes of the NUL-terminated string at addr."""
        try:
            return self._memory.read_cstr(addr, limit)
        except (GuestFault, SyscallError):
            return None

    def unpack(self, fmt: str, addr: int) -> tuple[int, ...] | None:
        data = self.read(addr, struct.calcsize(fmt))
        return None if data is None else struct.unpack(fmt, data)

    def pointers(self, addr: int, limit: int) -> list[int] | None:
        """The pointers of a NULL-terminated array, at most `limit` of them."""
        found: list[int] = []
        while len(found) < limit:
            value = self.unpack("<Q", addr + 8 * len(found))
            if value is None:
                return None
            if value[0] == 0:
                break
            found.append(value[0])
        return found


@dataclass(frozen=True, slots=True)
class CallView:
    """One syscall as a formatter sees it: its raw registers, and its result once known."""

    guest: GuestReader
    args: tuple[int, ...]
    result: int | None = None

    def u64(self, index: int) -> int:
        return self.args[index] & 0xFFFFFFFFFFFFFFFF

    def i64(self, index: int) -> int:
        value = self.u64(index)
        return value - (1 << 64) if value >> 63 else value

    def u32(self, index: int) -> int:
        return self.args[index] & 0xFFFFFFFF

    def i32(self, index: int) -> int:
        value = self.u32(index)
        return value - (1 << 32) if value >> 31 else value


# ------------------------------------------------------------------ plain values


def quote(data: bytes, truncated: bool = False) -> str:
    """A C string literal, as strace writes one: octal escapes as short as the next
    character allows, `...` after the quote when the string was cut."""
    out = ['"']
    for index, byte in enumerate(data):
        if byte in ESCAPES:
            out.append(ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        elif index + 1 < len(data) and data[index + 1] in OCTAL_DIGITS:
            out.append(f"\\{byte:03o}")
        else:
            out.append(f"\\{byte:o}")
    out.append('"...' if truncated else '"')
    return "".join(out)


def pointer(value: int) -> str:
    return "NULL" if value == 0 else f"{value:#x}"


def hexadecimal(value: int) -> str:
    return f"{value:#x}" if value else "0"


def octal(value: int) -> str:
    """A mode as C's "%#03o" writes it: 0644, 022, 000."""
    return ("0" + format(value, "o") if value else "0").rjust(3, "0")


def symbol(value: int, table: names.Names) -> str:
    return table.get(value, str(value))


def flag_set(value: int, table: names.FlagNames, zero: str = "0") -> str:
    """`A|B|0x40` for value: the names of its bits in the table's order, then what no name
    covers, in hex. Names of several bits are matched first, so that O_SYNC is not shown as
    O_DSYNC plus a stray bit."""
    found: list[int] = []
    rest = value
    for position, (bits, _name) in sorted(enumerate(table),
                                          key=lambda item: -item[1][0].bit_count()):
        if rest & bits == bits:
            found.append(position)
            rest &= ~bits
    parts = [table[position][1] for position in sorted(found)]
    if rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts) or zero


def open_flags(value: int) -> str:
    access = value & 0o3
    rest = flag_set(value & ~0o3, names.OPEN_FLAGS, zero="")
    mode = names.ACCESS_MODES.get(access, f"{access:#x}")
    return f"{mode}|{rest}" if rest else mode


def signal_name(number: int) -> str:
    if number in names.SIGNALS:
        return names.SIGNALS[number]
    if number == names.SIGRTMIN:
        return "SIGRTMIN"
    if names.SIGRTMIN < number <= names.SIGRTMAX:
        return f"SIGRT_{number - names.SIGRTMIN}"
    return str(number)


def sigset(mask: int) -> str:
    """[INT TERM], or ~[...] naming the signals left out when most are in."""
    bits = names.SIGRTMAX
    mask &= (1 << bits) - 1
    inverted = mask.bit_count() > bits // 2
    if inverted:
        mask ^= (1 << bits) - 1
    members = [signal_name(number).removeprefix("SIG") for number in range(1, bits + 1)
               if mask >> (number - 1) & 1]
    return ("~[" if inverted else "[") + " ".join(members) + "]"


def file_mode(mode: int) -> str:
    """S_IFREG|0644, S_IFDIR|S_ISVTX|0777."""
    parts = []
    kind = stat_module.S_IFMT(mode)
    if kind:
        parts.append(FILE_TYPES.get(kind, octal(kind)))
    parts += [name for bit, name in SPECIAL_MODE_BITS if mode & bit]
    parts.append(octal(mode & 0o777))
    return "|".join(parts)


def device(number: int) -> str:
    """makedev(major, minor) of a Linux dev_t (new_decode_dev)."""
    major = (number >> 8) & 0xFFF | (number >> 32) & ~0xFFF
    minor = number & 0xFF | (number >> 12) & ~0xFF
    return f"makedev({hexadecimal(major)}, {hexadecimal(minor)})"


def rlimit_value(value: int) -> str:
    if value == names.RLIM_INFINITY:
        return "RLIM64_INFINITY"
    if value > 1024 and value % 1024 == 0:
        return f"{value // 1024}*1024"
    return str(value)


def error(errno: int) -> str:
    try:
        name = Errno(errno).name
    except ValueError:
        name = f"ERRNO_{errno}"
    return f"-1 {name} ({strerror(errno)})"


# ------------------------------------------------------------------ memory the call reads


def _string_at(call: CallView, addr: int, limit: int) -> str:
    data = call.guest.cstring(addr, limit + 1) if addr else None
    if data is None:
        return pointer(addr)
    return quote(data[:limit], truncated=len(data) > limit)


def _bytes_at(call: CallView, addr: int, count: int) -> str:
    data = call.guest.read(addr, min(count, STRING_LIMIT)) if addr else None
    if data is None:
        return pointer(addr)
    return quote(data, truncated=count > STRING_LIMIT)


def _iovecs(call: CallView, index: int, transferred: int | None) -> str:
    """struct iovec[]: each base shown with what it holds; after a read only the first
    `transferred` bytes in all were filled."""
    addr, count = call.u64(index), call.i32(index + 1)
    shown = max(0, min(count, ARRAY_LIMIT))
    raw = call.guest.read(addr, IOVEC.size * shown) if addr else None
    if raw is None:
        return pointer(addr)
    parts = []
    for base, length in IOVEC.iter_unpack(raw):
        filled = length if transferred is None else min(length, transferred)
        if transferred is not None:
            transferred -= filled
        parts.append(f"{{iov_base={_bytes_at(call, base, filled)}, iov_len={length}}}")
    if count > shown:
        parts.append("...")
    return "[" + ", ".join(parts) + "]"


def _argv(call: CallView, index: int) -> str:
    addr = call.u64(index)
    if not addr:
        return "NULL"
    strings = call.guest.pointers(addr, ARRAY_LIMIT + 1)
    if strings is None:
        return pointer(addr)
    parts = [_string_at(call, each, STRING_LIMIT) for each in strings[:ARRAY_LIMIT]]
    if len(strings) > ARRAY_LIMIT:
        parts.append("...")
    return "[" + ", ".join(parts) + "]"


def _envp(call: CallView, index: int) -> str:
    addr = call.u64(index)
    variables = call.guest.pointers(addr, ENVIRONMENT_LIMIT) if addr else None
    if variables is None:
        return pointer(addr)
    return f"{addr:#x} /* {len(variables)} vars */"


def _struct(fmt: str, show: Callable[..., str]) -> Callable[[CallView, int], str]:
    """A renderer for a struct pointer: `show(*fields)`, or the address if unreadable."""
    def render(call: CallView, index: int) -> str:
        addr = call.u64(index)
        fields = call.guest.unpack(fmt, addr) if addr else None
        return pointer(addr) if fields is None else show(*fields)
    return render


def _timespec(sec: int, nsec: int) -> str:
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def _utime(sec: int, nsec: int) -> str:
    special = {UTIME_NOW: "UTIME_NOW", UTIME_OMIT: "UTIME_OMIT"}.get(nsec)
    return f"{{tv_sec={sec}, tv_nsec={special}}}" if special else _timespec(sec, nsec)


def _sigaction(handler: int, flags: int, restorer: int, mask: int) -> str:
    shown = [f"sa_handler={names.SIG_HANDLERS.get(handler, pointer(handler))}",
             f"sa_mask={sigset(mask)}", f"sa_flags={flag_set(flags, names.SA_FLAGS)}"]
    if flags & names.SA_RESTORER:
        shown.append(f"sa_restorer={pointer(restorer)}")
    return "{" + ", ".join(shown) + "}"


def _stack(sp: int, flags: int, _pad: int, size: int) -> str:
    return f"{{ss_sp={pointer(sp)}, ss_flags={flag_set(flags, names.SS_FLAGS)}, ss_size={size}}}"


def _rlimit(soft: int, hard: int) -> str:
    return f"{{rlim_cur={rlimit_value(soft)}, rlim_max={rlimit_value(hard)}}}"


# ------------------------------------------------------------------ memory the call wrote


def _stat(*fields: int) -> str:
    mode, rdev, size = fields[3], fields[7], fields[8]
    shown = f"st_rdev={device(rdev)}" if stat_module.S_ISCHR(mode) or stat_module.S_ISBLK(mode) \
        else f"st_size={size}"
    return f"{{st_mode={file_mode(mode)}, {shown}, ...}}"


def _statx(*fields: int) -> str:
    mask, attributes, mode, size = fields[0], fields[2], fields[6], fields[8]
    return (f"{{stx_mask={hexadecimal(mask)}, stx_attributes={hexadecimal(attributes)}, "
            f"stx_mode={file_mode(mode)}, stx_size={size}, ...}}")


def _statfs(*fields: int) -> str:
    kind, bsize, blocks, bfree, bavail, files, ffree, _fsid, namelen, frsize, flags = fields
    return (f"{{f_type={hexadecimal(kind)}, f_bsize={bsize}, f_blocks={blocks}, "
            f"f_bfree={bfree}, f_bavail={bavail}, f_files={files}, f_ffree={ffree}, "
            f"f_namelen={namelen}, f_frsize={frsize}, f_flags={hexadecimal(flags)}}}")


def _utsname(call: CallView, index: int) -> str:
    addr = call.u64(index)
    raw = call.guest.read(addr, UTS_FIELD * len(UTSNAME_FIELDS)) if addr else None
    if raw is None:
        return pointer(addr)
    fields = []
    for number, name in enumerate(UTSNAME_FIELDS[:UTSNAME_SHOWN]):
        value = raw[number * UTS_FIELD : (number + 1) * UTS_FIELD].split(b"\0", 1)[0]
        fields.append(f"{name}={quote(value)}")
    return "{" + ", ".join(fields) + ", ...}"


def _dirents(call: CallView, index: int) -> str:
    """The records' count: the entries themselves are what the program prints."""
    addr, size = call.u64(index), call.result or 0
    raw = call.guest.read(addr, size)
    if raw is None:
        return pointer(addr)
    offset = count = 0
    while offset + DIRENT64_HEADER.size <= size:
        reclen = DIRENT64_HEADER.unpack_from(raw, offset)[2]
        if reclen == 0:
            break
        offset += reclen
        count += 1
    return f"{addr:#x} /* {count} entries */"


# ------------------------------------------------------------------ symbolic values


def _open_mode(call: CallView, index: int) -> str | None:
    """The mode matters only when the flags before it create a file."""
    flags = call.u32(index - 1)
    if flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE:
        return octal(call.u32(index))
    return None


def _mremap_address(call: CallView, index: int) -> str | None:
    """The new address matters only when the flags before it fix it."""
    return pointer(call.u64(index)) if call.u64(index - 1) & names.MREMAP_FIXED else None


def _fcntl_arg(call: CallView, index: int) -> str | None:
    command, value = call.i32(index - 1), call.u64(index)
    if command in names.FCNTL_GETTERS:
        return None
    if command == names.F_SETFD:
        return flag_set(value, names.FD_FLAGS)
    if command == names.F_SETFL:
        return open_flags(value & 0xFFFFFFFF)
    if command in (names.F_DUPFD, names.F_DUPFD_CLOEXEC, names.F_SETPIPE_SZ):
        return str(call.i32(index))
    return pointer(value)


def _map_flags(value: int) -> str:
    kind = value & names.MAP_TYPE_MASK
    rest = flag_set(value & ~names.MAP_TYPE_MASK, names.MAP_FLAGS, zero="")
    shown = names.MAP_TYPES.get(kind, f"{kind:#x}")
    return f"{shown}|{rest}" if rest else shown


def _futex_op(value: int) -> str:
    command = value & names.FUTEX_CMD_MASK
    shown = names.FUTEX_COMMANDS.get(command, str(command))
    if value & names.FUTEX_PRIVATE_FLAG:
        shown += "_PRIVATE"
    if value & names.FUTEX_CLOCK_REALTIME:
        shown += "|FUTEX_CLOCK_REALTIME"
    rest = value & ~(names.FUTEX_CMD_MASK | names.FUTEX_PRIVATE_FLAG | names.FUTEX_CLOCK_REALTIME)
    return shown + (f"|{rest:#x}" if rest else "")


def _futex_command(call: CallView) -> int:
    return call.u32(1) & names.FUTEX_CMD_MASK


def _futex_timeout(call: CallView, index: int) -> str | None:
    command = _futex_command(call)
    if command in names.FUTEX_WITH_TIMEOUT:
        return RENDERERS[Arg.TIMESPEC_IN](call, index)
    if command in names.FUTEX_WITH_VAL2:
        return str(call.u32(index))
    return None


def _futex_val3(call: CallView, index: int) -> str | None:
    command, value = _futex_command(call), call.u32(index)
    if command not in names.FUTEX_WITH_VAL3:
        return None
    if command in names.FUTEX_WITH_BITSET and value == names.FUTEX_BITSET_MATCH_ANY:
        return "FUTEX_BITSET_MATCH_ANY"
    return str(value)


def _socket_type(value: int) -> str:
    kind = value & names.SOCKET_TYPE_MASK
    rest = flag_set(value & ~names.SOCKET_TYPE_MASK, names.SOCKET_FLAGS, zero="")
    shown = names.SOCKET_TYPES.get(kind, str(kind))
    return f"{shown}|{rest}" if rest else shown


Renderer = Callable[[CallView, int], "str | None"]


def _flags_of(table: names.FlagNames) -> Renderer:
    return lambda call, index: flag_set(call.u32(index), table)


def _symbol_of(table: names.Names) -> Renderer:
    return lambda call, index: symbol(call.i32(index), table)


RENDERERS: dict[Arg, Renderer] = {
    Arg.INT: lambda call, index: str(call.i32(index)),
    Arg.UINT: lambda call, index: str(call.u32(index)),
    Arg.LONG: lambda call, index: str(call.i64(index)),
    Arg.ULONG: lambda call, index: str(call.u64(index)),
    Arg.HEX: lambda call, index: hexadecimal(call.u64(index)),
    Arg.PTR: lambda call, index: pointer(call.u64(index)),
    Arg.MODE: lambda call, index: octal(call.u32(index)),
    Arg.FD: lambda call, index: str(call.i32(index)),
    Arg.DIRFD: lambda call, index: ("AT_FDCWD" if call.i32(index) == names.AT_FDCWD
                                    else str(call.i32(index))),
    Arg.PATH: lambda call, index: _string_at(call, call.u64(index), PATH_MAX),
    Arg.STRING: lambda call, index: _string_at(call, call.u64(index), STRING_LIMIT),
    Arg.BUF_IN: lambda call, index: _bytes_at(call, call.u64(index), call.u64(index + 1)),
    Arg.IOV_IN: lambda call, index: _iovecs(call, index, None),
    Arg.ARGV: _argv,
    Arg.ENVP: _envp,
    Arg.TIMESPEC_IN: _struct(TIMESPEC, _timespec),
    Arg.TIMESPEC_PAIR_IN: _struct(TIMESPEC_PAIR, lambda s1, n1, s2, n2:
                                  f"[{_utime(s1, n1)}, {_utime(s2, n2)}]"),
    Arg.RLIMIT_IN: _struct(RLIMIT, _rlimit),
    Arg.SIGSET_IN: _struct(SIGSET, sigset),
    Arg.SIGACTION_IN: _struct(KERNEL_SIGACTION, _sigaction),
    Arg.STACK_IN: _struct(STACK_T, _stack),
    Arg.BUF_OUT: lambda call, index: _bytes_at(call, call.u64(index), call.result or 0),
    Arg.STR_OUT: lambda call, index: _string_at(call, call.u64(index), PATH_MAX),
    Arg.IOV_OUT: lambda call, index: _iovecs(call, index, call.result or 0),
    Arg.STAT_OUT: _struct(STAT_FORMAT, _stat),
    Arg.STATX_OUT: _struct(STATX_FORMAT, _statx),
    Arg.STATFS_OUT: _struct(STATFS_FORMAT, _statfs),
    Arg.TIMESPEC_OUT: _struct(TIMESPEC, _timespec),
    Arg.TIMEVAL_OUT: _struct(TIMESPEC, lambda sec, usec: f"{{tv_sec={sec}, tv_usec={usec}}}"),
    Arg.RLIMIT_OUT: _struct(RLIMIT, _rlimit),
    Arg.UTSNAME_OUT: _utsname,
    Arg.SIGSET_OUT: _struct(SIGSET, sigset),
    Arg.SIGACTION_OUT: _struct(KERNEL_SIGACTION, _sigaction),
    Arg.STACK_OUT: _struct(STACK_T, _stack),
    Arg.FD_PAIR_OUT: _struct(FD_PAIR, lambda read_fd, write_fd: f"[{read_fd}, {write_fd}]"),
    Arg.INT_OUT: _struct(INT_OUT, lambda value: f"[{value}]"),
    Arg.DIRENTS_OUT: _dirents,
    Arg.OPEN_FLAGS: lambda call, index: open_flags(call.u32(index)),
    Arg.OPEN_MODE: _open_mode,
    Arg.FD_FLAGS: _flags_of(names.OPEN_FLAGS),
    Arg.ACCESS_MODE: lambda call, index: flag_set(call.u32(index), names.FILE_ACCESS,
                                                  zero="F_OK"),
    Arg.AT_FLAGS: _flags_of(names.AT_FLAGS),
    Arg.UNLINKAT_FLAGS: _flags_of(names.UNLINKAT_FLAGS),
    Arg.FACCESSAT_FLAGS: _flags_of(names.FACCESSAT_FLAGS),
    Arg.RENAME_FLAGS: _flags_of(names.RENAME_FLAGS),
    Arg.PROT: lambda call, index: flag_set(call.u32(index), names.PROT, zero="PROT_NONE"),
    Arg.MAP_FLAGS: lambda call, index: _map_flags(call.u32(index)),
    Arg.MREMAP_FLAGS: _flags_of(names.MREMAP_FLAGS),
    Arg.MREMAP_ADDRESS: _mremap_address,
    Arg.MSYNC_FLAGS: _flags_of(names.MSYNC_FLAGS),
    Arg.MADVICE: _symbol_of(names.MADVICE),
    Arg.WHENCE: _symbol_of(names.WHENCE),
    Arg.SIGNAL: lambda call, index: signal_name(call.i32(index)),
    Arg.SIGMASK_HOW: _symbol_of(names.SIGMASK_HOW),
    Arg.CLOCK: _symbol_of(names.CLOCKS),
    Arg.TIMER_FLAGS: _flags_of(names.TIMER_FLAGS),
    Arg.IOCTL_REQUEST: lambda call, index: names.IOCTL_REQUESTS.get(
        call.u32(index), hexadecimal(call.u32(index))),
    Arg.FCNTL_CMD: _symbol_of(names.FCNTL_COMMANDS),
    Arg.FCNTL_ARG: _fcntl_arg,
    Arg.ARCH_PRCTL_CODE: _symbol_of(names.ARCH_PRCTL_CODES),
    Arg.PRCTL_OPTION: _symbol_of(names.PRCTL_OPTIONS),
    Arg.RLIMIT_RESOURCE: _symbol_of(names.RLIMIT_RESOURCES),
    Arg.GRND_FLAGS: _flags_of(names.GRND_FLAGS),
    Arg.CLOSE_RANGE_FLAGS: _flags_of(names.CLOSE_RANGE_FLAGS),
    Arg.FUTEX_OP: lambda call, index: _futex_op(call.u32(index)),
    Arg.FUTEX_TIMEOUT: _futex_timeout,
    Arg.FUTEX_UADDR2: lambda call, index: (pointer(call.u64(index)) if _futex_command(call)
                                           in names.FUTEX_WITH_UADDR2 else None),
    Arg.FUTEX_VAL3: _futex_val3,
    Arg.SOCKET_DOMAIN: _symbol_of(names.SOCKET_DOMAINS),
    Arg.SOCKET_TYPE: lambda call, index: _socket_type(call.u32(index)),
    Arg.WAIT_OPTIONS: _flags_of(names.WAIT_OPTIONS),
}


def format_argument(kind: Arg, call: CallView, index: int) -> str | None:
    """The argument as strace shows it, or None when strace leaves it out (an open mode
    without O_CREAT). An output of a failed call is shown as its address."""
    if kind in OUTPUTS and (call.result is None or call.result < 0):
        return pointer(call.u64(index))
    return RENDERERS[kind](call, index)


def format_result(kind: Result, call: CallView) -> str:
    result = call.result
    assert result is not None
    if -MAX_ERRNO <= result < 0:
        return error(-result)
    if kind is Result.ADDRESS:
        return f"{result:#x}"
    if kind is Result.MODE:
        return octal(result)
    if kind is Result.FCNTL:
        command = call.i32(1)
        if command == names.F_GETFL:
            return f"{hexadecimal(result)} (flags {open_flags(result)})"
        if command == names.F_GETFD:
            return f"{hexadecimal(result)} (flags {flag_set(result, names.FD_FLAGS)})"
    return str(result)
