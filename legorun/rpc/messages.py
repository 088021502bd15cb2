"""The wire format between components: opcodes and flat request/reply values.

As in LegoOS (include/lego/rpc/opcode.h, struct_p2m.h, struct_p2s.h, struct_m2s.h), an opcode
names its direction: P2M_ processor to memory, P2S_ processor to storage, M2S_ memory to
storage. Syscall-backed opcodes reuse the x86-64 syscall number. Every request is complete in
itself (stateless, NFS-style): it names the process (`pid`) or the file (`path`) it is about.

Replies carry `status`: 0 for success or a Linux errno, never overloaded into a result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from legorun.managers.vma import Vma


class Opcode(IntEnum):
    # processor -> memory; syscall-backed ones carry the syscall number
    P2M_MMAP = 9
    P2M_MPROTECT = 10
    P2M_MUNMAP = 11
    P2M_BRK = 12
    P2M_MREMAP = 25
    P2M_MADVISE = 28
    P2M_FORK = 57
    P2M_EXECVE = 59
    P2M_PCACHE_MISS = 0x1000
    P2M_WRITEBACK = 0x1001
    P2M_EXIT = 0x1002
    P2M_FORK_CLAIM = 0x1003
    P2M_FORK_RELEASE = 0x1004
    P2M_CHECKPOINT = 0x1010  # checkpoints and restore: processor/checkpoint.py
    P2M_OUTPUT_COMMIT = 0x1011
    P2M_RESTORE = 0x1012
    P2M_CAPACITY = 0x1020  # the global memory manager: managers/global_memory.py
    P2M_VREGION = 0x1021
    P2M_TAKE_PAGES = 0x1022
    P2M_KEEP_FILE_PAGES = 0x1030  # a mapped file is going away: unlink, rename
    # processor -> storage
    P2S_OPEN = 0x2000
    P2S_READ = 0x2001
    P2S_WRITE = 0x2002
    P2S_STAT = 0x2003
    P2S_ACCESS = 0x2004
    P2S_READDIR = 0x2005
    P2S_READLINK = 0x2006
    P2S_MKDIR = 0x2007
    P2S_RMDIR = 0x2008
    P2S_UNLINK = 0x2009
    P2S_RENAME = 0x200A
    P2S_TRUNCATE = 0x200B
    P2S_SYMLINK = 0x200C
    P2S_LINK = 0x200D
    P2S_CHMOD = 0x200E
    P2S_UTIMENS = 0x200F
    P2S_STATFS = 0x2010
    P2S_GETXATTR = 0x2011
    P2S_LISTXATTR = 0x2012
    P2S_SETXATTR = 0x2013
    P2S_REMOVEXATTR = 0x2014
    P2S_CHOWN = 0x2015
    P2S_MKNOD = 0x2016
    # memory -> storage
    M2S_READ = 0x3000
    # any component -> a manager served over the network
    HELLO = 0x4000
    # a memory server -> its backup
    RELAY = 0x4001


class Request:
    """Base of every request; `OPCODE` names its handler on the receiving manager."""

    __slots__ = ()
    OPCODE: ClassVar[Opcode]


@dataclass(frozen=True, slots=True)
class StatusReply:
    status: int = 0


# ---------------------------------------------------------------- processor -> memory


@dataclass(frozen=True, slots=True)
class ExecRequest(Request):
    """Replace pid's address space with the ELF at `path` and build its initial stack.

    `execfn` is the path as the user gave it (AT_EXECFN); the auxv values that are facts of
    the processor (identity, hwcap, platform, AT_RANDOM bytes) travel with the request.
    """

    OPCODE = Opcode.P2M_EXECVE
    pid: int
    path: str
    argv: tuple[bytes, ...]
    envp: tuple[bytes, ...]
    execfn: bytes
    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0
    hwcap: int = 0
    platform: bytes = b"x86_64"
    random: bytes = bytes(16)
    clktck: int = 100
    sysroot: str = "/"  # where the program's interpreter (PT_INTERP) is looked up (-L)
    cwd: str = "/"  # for a #! interpreter given as a relative path


@dataclass(frozen=True, slots=True)
class ExecReply:
    """`layout` is the whole new VMA list; `populated` the page addresses that hold data at
    the memory manager (so they must be fetched, not zero-filled)."""

    status: int = 0
    detail: str = ""
    program: str = ""  # the file whose image was loaded: a #! script's interpreter
    entry: int = 0
    load_bias: int = 0  # what was added to the program's ELF addresses (ET_DYN)
    sp: int = 0
    brk: int = 0
    layout: tuple[Vma, ...] = ()
    populated: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PageMissRequest(Request):
    """ExCache miss on the page at `addr`; `writeback` carries the evicted dirty line, if any,
    as (page address, 4096 bytes): the write-back piggybacks on the miss."""

    OPCODE = Opcode.P2M_PCACHE_MISS
    pid: int
    addr: int
    writeback: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class PageReply:
    status: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class WritebackRequest(Request):
    """Dirty lines flushed without a miss to carry them (eviction before a local zero-fill,
    flush before munmap/mremap, exit)."""

    OPCODE = Opcode.P2M_WRITEBACK
    pid: int
    lines: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class ExitRequest(Request):
    OPCODE = Opcode.P2M_EXIT
    pid: int


@dataclass(frozen=True, slots=True)
class ForkRequest(Request):
    """Take a copy-on-write snapshot of pid's address space for a child about to be made.

    The child does not exist yet (its pid is not known), so the snapshot waits under a token
    until the child claims it."""

    OPCODE = Opcode.P2M_FORK
    pid: int


@dataclass(frozen=True, slots=True)
class ForkReply:
    status: int = 0
    token: int = 0


@dataclass(frozen=True, slots=True)
class ForkClaimRequest(Request):
    """The new child takes the snapshot `token` as its own address space, under `pid`."""

    OPCODE = Opcode.P2M_FORK_CLAIM
    token: int
    pid: int


@dataclass(frozen=True, slots=True)
class ForkReleaseRequest(Request):
    """The parent is done with snapshot `token`: drop it if nobody claimed it (the fork
    failed, or this memory manager is the parent's own copy in an embedded machine), or if
    the child that claimed it was reaped with it still as its space (killed before it could
    say P2M_EXIT)."""

    OPCODE = Opcode.P2M_FORK_RELEASE
    token: int


@dataclass(frozen=True, slots=True)
class MmReply:
    """Result of an address-space call: `result` as the syscall returns it, and the new VMA
    `layout` (whole list) for the processor's copy."""

    status: int = 0
    result: int = 0
    layout: tuple[Vma, ...] = ()


@dataclass(frozen=True, slots=True)
class BrkRequest(Request):
    OPCODE = Opcode.P2M_BRK
    pid: int
    brk: int


@dataclass(frozen=True, slots=True)
class MmapRequest(Request):
    """`path` is the guest path of the file for a file-backed mapping (the processor resolves
    the fd), None for an anonymous one."""

    OPCODE = Opcode.P2M_MMAP
    pid: int
    addr: int
    length: int
    prot: int
    flags: int
    path: str | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class MunmapRequest(Request):
    OPCODE = Opcode.P2M_MUNMAP
    pid: int
    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class MprotectRequest(Request):
    OPCODE = Opcode.P2M_MPROTECT
    pid: int
    addr: int
    length: int
    prot: int


@dataclass(frozen=True, slots=True)
class MremapRequest(Request):
    OPCODE = Opcode.P2M_MREMAP
    pid: int
    old_addr: int
    old_size: int
    new_size: int
    flags: int
    new_addr: int = 0


@dataclass(frozen=True, slots=True)
class MadviseRequest(Request):
    OPCODE = Opcode.P2M_MADVISE
    pid: int
    addr: int
    length: int
    advice: int


@dataclass(frozen=True, slots=True)
class KeepFilePagesRequest(Request):
    """Read in the pages `pid` maps of the file at `path` (or below the directory `path`)
    before the file goes away (AddressSpace.keep_file_pages)."""

    OPCODE = Opcode.P2M_KEEP_FILE_PAGES
    pid: int
    path: str


# ---------------------------------------------------------------- processor -> storage


@dataclass(frozen=True, slots=True)
class FileStat:
    """struct stat, as the storage manager reports it."""

    dev: int
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def from_host(cls, st: os.stat_result) -> FileStat:
        return cls(
            dev=st.st_dev, ino=st.st_ino, mode=st.st_mode, nlink=st.st_nlink, uid=st.st_uid,
            gid=st.st_gid, rdev=st.st_rdev, size=st.st_size, blksize=st.st_blksize,
            blocks=st.st_blocks, atime_ns=st.st_atime_ns, mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
        )


@dataclass(frozen=True, slots=True)
class OpenRequest(Request):
    """Check that `path` may be opened with `flags` (O_*), creating or truncating it as the
    flags say. Nothing stays open at the storage manager."""

    OPCODE = Opcode.P2S_OPEN
    path: str
    flags: int
    mode: int = 0o666


@dataclass(frozen=True, slots=True)
class OpenReply:
    status: int = 0
    stat: FileStat | None = None


@dataclass(frozen=True, slots=True)
class ReadRequest(Request):
    OPCODE = Opcode.P2S_READ
    path: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class DataReply:
    status: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class WriteRequest(Request):
    """Write `data` at `offset`, or at the end of the file when `append` is set."""

    OPCODE = Opcode.P2S_WRITE
    path: str
    offset: int
    data: bytes
    append: bool = False


@dataclass(frozen=True, slots=True)
class WriteReply:
    """`end` is the file offset just after the written bytes."""

    status: int = 0
    written: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class StatRequest(Request):
    """stat (follow=True) or lstat (follow=False) of `path`."""

    OPCODE = Opcode.P2S_STAT
    path: str
    follow: bool = True


@dataclass(frozen=True, slots=True)
class StatReply:
    status: int = 0
    stat: FileStat | None = None


@dataclass(frozen=True, slots=True)
class AccessRequest(Request):
    OPCODE = Opcode.P2S_ACCESS
    path: str
    mode: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: bytes
    ino: int
    type: int  # DT_* as getdents64 reports it


@dataclass(frozen=True, slots=True)
class ReaddirRequest(Request):
    """Entries of the directory `path` from index `start` on ("." and ".." included), at most
    `count` of them."""

    OPCODE = Opcode.P2S_READDIR
    path: str
    start: int = 0
    count: int = 1024


@dataclass(frozen=True, slots=True)
class ReaddirReply:
    status: int = 0
    entries: tuple[DirEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadlinkRequest(Request):
    OPCODE = Opcode.P2S_READLINK
    path: str


@dataclass(frozen=True, slots=True)
class PathReply:
    status: int = 0
    path: bytes = b""


@dataclass(frozen=True, slots=True)
class MkdirRequest(Request):
    OPCODE = Opcode.P2S_MKDIR
    path: str
    mode: int


@dataclass(frozen=True, slots=True)
class MknodRequest(Request):
    """Make a regular file or a FIFO at `path` (`mode`: S_IFREG or S_IFIFO, and the
    permission bits)."""

    OPCODE = Opcode.P2S_MKNOD
    path: str
    mode: int


@dataclass(frozen=True, slots=True)
class RmdirRequest(Request):
    OPCODE = Opcode.P2S_RMDIR
    path: str


@dataclass(frozen=True, slots=True)
class UnlinkRequest(Request):
    OPCODE = Opcode.P2S_UNLINK
    path: str


@dataclass(frozen=True, slots=True)
class RenameRequest(Request):
    OPCODE = Opcode.P2S_RENAME
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TruncateRequest(Request):
    OPCODE = Opcode.P2S_TRUNCATE
    path: str
    length: int


@dataclass(frozen=True, slots=True)
class SymlinkRequest(Request):
    OPCODE = Opcode.P2S_SYMLINK
    target: bytes
    path: str


@dataclass(frozen=True, slots=True)
class LinkRequest(Request):
    OPCODE = Opcode.P2S_LINK
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ChmodRequest(Request):
    OPCODE = Opcode.P2S_CHMOD
    path: str
    mode: int


@dataclass(frozen=True, slots=True)
class UtimensRequest(Request):
    """Set access and modification times (ns since the epoch; None leaves one unchanged)."""

    OPCODE = Opcode.P2S_UTIMENS
    path: str
    atime_ns: int | None
    mtime_ns: int | None
    follow: bool = True


@dataclass(frozen=True, slots=True)
class StatfsRequest(Request):
    OPCODE = Opcode.P2S_STATFS
    path: str


@dataclass(frozen=True, slots=True)
class StatfsReply:
    status: int = 0
    fields: tuple[int, ...] = field(default=())  # struct statfs: type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags


@dataclass(frozen=True, slots=True)
class ChownRequest(Request):
    """Change the owner and group of `path` (of a final symbolic link itself unless
    `follow`); -1 leaves one unchanged."""

    OPCODE = Opcode.P2S_CHOWN
    path: str
    uid: int
    gid: int
    follow: bool = True


@dataclass(frozen=True, slots=True)
class GetxattrRequest(Request):
    """The value of the extended attribute `name` of `path` (of a final symbolic link
    itself unless `follow`), whole: the caller applies the size it was given."""

    OPCODE = Opcode.P2S_GETXATTR
    path: str
    name: bytes
    follow: bool = True


@dataclass(frozen=True, slots=True)
class ListxattrRequest(Request):
    """The names of the extended attributes of `path`; the reply's data holds each name
    followed by a NUL, as listxattr(2) returns them."""

    OPCODE = Opcode.P2S_LISTXATTR
    path: str
    follow: bool = True


@dataclass(frozen=True, slots=True)
class SetxattrRequest(Request):
    """Set the extended attribute `name` of `path`; `flags` is XATTR_CREATE or
    XATTR_REPLACE (or 0)."""

    OPCODE = Opcode.P2S_SETXATTR
    path: str
    name: bytes
    value: bytes
    flags: int = 0
    follow: bool = True


@dataclass(frozen=True, slots=True)
class RemovexattrRequest(Request):
    OPCODE = Opcode.P2S_REMOVEXATTR
    path: str
    name: bytes
    follow: bool = True


# ---------------------------------------------------------------- memory -> storage


@dataclass(frozen=True, slots=True)
class FileReadRequest(Request):
    """The memory manager pulls ELF images and file-backed pages from storage."""

    OPCODE = Opcode.M2S_READ
    path: str
    offset: int
    length: int


# ---------------------------------------------------------------- the network handshake


@dataclass(frozen=True, slots=True)
class HelloRequest(Request):
    """The first request on a connection to a manager served over the network.

    `version` is the client's protocol version (codec.py's message list included); the
    server refuses any other. `processor` names the legorun run the connection belongs to
    (its forked children share it): a memory server keeps each processor's address spaces
    apart, as their pids may coincide. `storage` is the storage server that a memory server
    must read the processor's files from ("": its own host's files). `client` is a random
    number naming the client itself (one RemoteChannel; a forked child makes its own): it
    stays the same when the client reconnects, to a restarted server or to the backup it
    fails over to, and the server keeps its copy of the client's last reply under it
    (0: a client without one, whose copy is kept per connection)."""

    OPCODE = Opcode.HELLO
    version: int
    processor: int = 0
    storage: str = ""
    client: int = 0


@dataclass(frozen=True, slots=True)
class HelloReply:
    status: int = 0
    version: int = 0
    role: str = ""  # "memory" or "storage"
    backup: str = ""  # a memory server's backup, which the processor fails over to


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What a server answers to a request it could not serve at all: a malformed frame, an
    unknown opcode, a connection that has not said hello, a failure of the server."""

    status: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RelayRequest(Request):
    """A request a memory server passes on to its backup before serving it itself (see
    managers/replication.py): `body` is the encoded request, `client` and `seq` the nonce
    and request number of the client that sent it. The backup serves it as if that client
    had sent it, and keeps the reply where a resend of the client's request, after a
    failover, finds it. The reply is the backup's reply to the request in `body`."""

    OPCODE = Opcode.RELAY
    client: int
    seq: int
    body: bytes


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True, slots=True)
class CheckpointRequest(Request):
    """Keep pid's address space as it is now under `name`: a copy-on-write snapshot, as for
    fork, with `record`, the processor's own state (registers, files, signals), which the
    memory manager keeps without reading it. The processor flushed its dirty lines first.

    It replaces the checkpoint of that name only if that is still generation `previous`,
    the one this processor last took or restored (0: whatever is there), so that a processor
    taken over by a restored run cannot overwrite the newer run's checkpoints. `outputs`
    starts the output counts of the new checkpoint: (stream, bytes) already written past
    this point, by a run that had got further before it was killed."""

    OPCODE = Opcode.P2M_CHECKPOINT
    pid: int
    name: str
    record: bytes
    previous: int = 0
    outputs: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class CheckpointReply:
    status: int = 0  # ESTALE: the checkpoint is no longer generation `previous`
    generation: int = 0


@dataclass(frozen=True, slots=True)
class OutputCommitRequest(Request):
    """Output stream `stream` (a host descriptor number of the processor) has received
    `written` bytes since generation `generation` of checkpoint `name`; sent before the bytes
    are written, so that a run restored from the checkpoint does not write them again."""

    OPCODE = Opcode.P2M_OUTPUT_COMMIT
    name: str
    generation: int
    stream: int
    written: int


@dataclass(frozen=True, slots=True)
class RestoreRequest(Request):
    """Make the address space of checkpoint `name` the space of its process (under the pid
    it had) and hand back what the processor needs to go on."""

    OPCODE = Opcode.P2M_RESTORE
    name: str


@dataclass(frozen=True, slots=True)
class RestoreReply:
    """`layout` and `populated` as ExecReply gives them; `outputs`: (stream, bytes) already
    written since the checkpoint."""

    status: int = 0
    pid: int = 0
    generation: int = 0
    record: bytes = b""
    outputs: tuple[tuple[int, int], ...] = ()
    layout: tuple[Vma, ...] = ()
    populated: tuple[int, ...] = ()


# ---------------------------------------------------------------- global memory management


@dataclass(frozen=True, slots=True)
class CapacityRequest(Request):
    """How much page memory a memory server may hold and holds now, over all the processors
    it serves: the global memory manager places vRegions by it."""

    OPCODE = Opcode.P2M_CAPACITY


@dataclass(frozen=True, slots=True)
class CapacityReply:
    status: int = 0
    capacity: int = 0  # bytes; 0: no limit
    used: int = 0  # bytes of page contents held
    pages: int = 0  # distinct pages held (fork snapshots share theirs)


@dataclass(frozen=True, slots=True)
class VRegionRequest(Request):
    """The global memory manager made this server the owner of vRegion `index` (the 1 GiB
    of addresses from index << 30) of process pid, whose home is another server: keep the
    write-backs to it and serve the misses on them."""

    OPCODE = Opcode.P2M_VREGION
    pid: int
    index: int


@dataclass(frozen=True, slots=True)
class TakePagesRequest(Request):
    """Remove pid's stored pages at `addrs` (those stored), returning them when `keep`: an
    owner's pages go back to the home before the home changes their range, or are dropped
    where the home unmapped it."""

    OPCODE = Opcode.P2M_TAKE_PAGES
    pid: int
    addrs: tuple[int, ...]
    keep: bool


@dataclass(frozen=True, slots=True)
class PagesReply:
    status: int = 0
    pages: tuple[tuple[int, bytes], ...] = ()  # (page address, 4096 bytes)
