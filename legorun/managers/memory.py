"""The memory manager (LegoOS mComponent): all virtual-memory state of every process.

It owns each process's VMAs and page contents, serves ExCache misses and write-backs, runs
the address-space syscalls, and sets up the address space for exec (ELF loading and the
initial stack), pulling files from the storage manager. One `handle_p2m_*` per opcode; a
handler never raises for a guest error: the reply's `status` carries the errno.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable

from legorun.errors import LegorunError
from legorun.loader.elf import ET_DYN, LoadedImage, parse_elf
from legorun.loader.script import MAX_NESTING, parse_shebang
from legorun.loader.stack import AuxvInputs, build_stack
from legorun.managers.address_space import AddressSpace
from legorun.managers.checkpoints import CheckpointHandlers, CheckpointStore
from legorun.managers.global_memory import VREGION_SHIFT
from legorun.managers.page_account import PageAccount
from legorun.managers.vma import (
    MAP_ANONYMOUS,
    MAP_GROWSDOWN,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_TYPE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Vma,
    page_down,
    page_up,
)
from legorun.rpc.messages import (
    BrkRequest,
    CapacityReply,
    CapacityRequest,
    DataReply,
    ExecReply,
    ExecRequest,
    ExitRequest,
    FileReadRequest,
    ForkClaimRequest,
    ForkReleaseRequest,
    ForkReply,
    ForkRequest,
    KeepFilePagesRequest,
    MadviseRequest,
    MmapRequest,
    MmReply,
    MprotectRequest,
    MremapRequest,
    MunmapRequest,
    Opcode,
    PageMissRequest,
    PageReply,
    PagesReply,
    Request,
    StatusReply,
    TakePagesRequest,
    VRegionRequest,
    WritebackRequest,
)
from syscalls.errno import Errno, SyscallError, strerror

STACK_TOP = 0x7FFFFFFFF000
STACK_SIZE = 8 << 20  # RLIMIT_STACK's usual 8 MiB, reserved up front (pages are sparse)
FILE_CHUNK = 1 << 20


class _ExecFailure(Exception):
    def __init__(self, errno: Errno, detail: str) -> None:
        super().__init__(detail)
        self.errno = errno
        self.detail = detail


def _map_image(space: AddressSpace, image: LoadedImage, data: bytes, path: str) -> None:
    """Map an ELF image's PT_LOAD segments: file pages, then anonymous zeros for the bss."""
    for segment in image.segments:
        start = page_down(segment.vaddr)
        file_end = page_up(segment.vaddr + segment.filesz)
        mem_end = page_up(segment.vaddr + segment.memsz)
        if file_end > start:
            # Like Linux, map whole file pages: bytes of the file before the segment share
            # its first page; bytes after p_filesz in its last page read as zero.
            file_start = page_down(segment.offset)
            space.map_fixed(
                Vma(start, file_end, segment.prot, MAP_PRIVATE, path, file_start),
                data[file_start : segment.offset + segment.filesz],
            )
        if mem_end > file_end:  # .bss beyond the file's last page: anonymous zeros
            space.map_fixed(
                Vma(max(start, file_end), mem_end, segment.prot, MAP_PRIVATE | MAP_ANONYMOUS)
            )


class MemoryManager:
    def __init__(self, storage: Callable[[Request], Any],
                 checkpoints: CheckpointStore | None = None,
                 account: PageAccount | None = None) -> None:
        """`storage` sends an M2S request to the storage manager and returns its reply;
        `checkpoints` is where named checkpoints are kept (a memory server shares one store
        among its processors' managers, so that a restored run finds them); `account`
        counts the pages held against the server's capacity (shared the same way; None:
        nothing is counted, as in the embedded machine)."""
        self._storage = storage
        self._account = account
        self._spaces: dict[int, AddressSpace] = {}
        # Fork snapshots not yet claimed by their child, by token.
        self._snapshots: dict[int, AddressSpace] = {}
        # Claimed snapshots, by token: the child's pid, and its space while it lives.
        self._claims: dict[int, tuple[int, weakref.ref[AddressSpace]]] = {}
        self._next_token = 1
        # Address spaces of processes that exited or exec'ed, freed when the next process
        # is made (fork, exec) instead of on the way out. An embedded memory manager is
        # copied by the host fork of its processor, and freeing a space whose pages the
        # host still shares copy-on-write with another process costs a host page fault per
        # page (CPython writes each object's reference count): a forked child that execs
        # or exits must not pay that for the snapshot it got.
        self._retired: list[AddressSpace] = []
        self._checkpoints = CheckpointHandlers(checkpoints or CheckpointStore(), self._spaces,
                                               self._retire)

    def handlers(self) -> dict[Opcode, Callable[[Any], Any]]:
        return {
            Opcode.P2M_EXECVE: self.handle_p2m_execve,
            Opcode.P2M_PCACHE_MISS: self.handle_p2m_pcache_miss,
            Opcode.P2M_WRITEBACK: self.handle_p2m_writeback,
            Opcode.P2M_EXIT: self.handle_p2m_exit,
            Opcode.P2M_FORK: self.handle_p2m_fork,
            Opcode.P2M_FORK_CLAIM: self.handle_p2m_fork_claim,
            Opcode.P2M_FORK_RELEASE: self.handle_p2m_fork_release,
            Opcode.P2M_BRK: self.handle_p2m_brk,
            Opcode.P2M_MMAP: self.handle_p2m_mmap,
            Opcode.P2M_MUNMAP: self.handle_p2m_munmap,
            Opcode.P2M_MPROTECT: self.handle_p2m_mprotect,
            Opcode.P2M_MREMAP: self.handle_p2m_mremap,
            Opcode.P2M_MADVISE: self.handle_p2m_madvise,
            Opcode.P2M_KEEP_FILE_PAGES: self.handle_p2m_keep_file_pages,
            Opcode.P2M_CAPACITY: self.handle_p2m_capacity,
            Opcode.P2M_VREGION: self.handle_p2m_vregion,
            Opcode.P2M_TAKE_PAGES: self.handle_p2m_take_pages,
            **self._checkpoints.handlers(),
        }

    # ------------------------------------------------------------ storage access

    def _read_file(self, path: str, offset: int, length: int) -> bytes:
        reply: DataReply = self._storage(FileReadRequest(path, offset, length))
        if reply.status:
            raise SyscallError(Errno(reply.status), path)
        return reply.data

    def _read_whole_file(self, path: str) -> bytes:
        chunks = []
        offset = 0
        while True:
            chunk = self._read_file(path, offset, FILE_CHUNK)
            chunks.append(chunk)
            offset += len(chunk)
            if len(chunk) < FILE_CHUNK:
                return b"".join(chunks)

    # ------------------------------------------------------------ exec

    def handle_p2m_execve(self, req: ExecRequest) -> ExecReply:
        self._retired.clear()
        path, argv, shown = req.path, req.argv, req.execfn
        for _ in range(MAX_NESTING + 1):
            try:
                data = self._read_whole_file(path)
            except SyscallError as error:
                detail = path if path == req.path else \
                    f"{req.path}: interpreter {path}: {strerror(error.errno)}"
                return ExecReply(status=error.errno, detail=detail)
            try:
                shebang = parse_shebang(data, path)
            except LegorunError as error:
                return ExecReply(status=Errno.ENOEXEC, detail=str(error))
            if shebang is None:
                break
            argv = shebang.argv(shown, argv)
            shown = shebang.interpreter
            interpreter = os.fsdecode(shebang.interpreter)
            path = os.path.join(req.sysroot, interpreter.lstrip("/")) \
                if interpreter.startswith("/") else os.path.normpath(os.path.join(req.cwd, interpreter))
        else:
            return ExecReply(status=Errno.ELOOP, detail=f"{req.path}: too many nested #! "
                             "interpreters")
        try:
            image = parse_elf(data, path)
        except LegorunError as error:
            return ExecReply(status=Errno.ENOEXEC, detail=str(error))
        space = AddressSpace(self._read_file)
        _map_image(space, image, data, path)
        base, entry = 0, image.entry
        if image.interp is not None:
            try:
                interp = self._load_interpreter(space, image.interp, req.sysroot, path)
            except _ExecFailure as failure:
                return ExecReply(status=failure.errno, detail=failure.detail)
            base, entry = interp.load_bias, interp.entry
        stack_prot = PROT_READ | PROT_WRITE | (PROT_EXEC if image.stack_executable else 0)
        aux = AuxvInputs(
            uid=req.uid, euid=req.euid, gid=req.gid, egid=req.egid, hwcap=req.hwcap,
            platform=req.platform, random=req.random, clktck=req.clktck, base=base,
        )
        stack = build_stack(image, list(argv), req.envp, req.execfn, aux, STACK_TOP)
        space.map_fixed(
            Vma(STACK_TOP - STACK_SIZE, STACK_TOP, stack_prot,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, name="[stack]"),
            stack.data,
            stack.sp - (STACK_TOP - STACK_SIZE),
        )
        space.set_brk_base(image.end)
        if self._account is not None:
            try:
                space.charge(self._account)
            except SyscallError as error:  # a full server: exec fails as Linux's does
                return ExecReply(status=Errno.ENOMEM, detail=f"{req.path}: {error.detail}")
        self._retire(req.pid)
        self._spaces[req.pid] = space
        return ExecReply(
            program=path,
            entry=entry,
            load_bias=image.load_bias,
            sp=stack.sp,
            brk=image.end,
            layout=space.layout(),
            populated=tuple(space.populated()),
        )

    def _load_interpreter(self, space: AddressSpace, interp: str, sysroot: str,
                          program: str) -> LoadedImage:
        """Map the program's interpreter (ld.so) where mmap would put it, as Linux does."""
        path = os.path.join(sysroot, interp.lstrip("/"))
        try:
            data = self._read_whole_file(path)
        except SyscallError as error:
            raise _ExecFailure(error.errno if error.errno != Errno.ENOENT else Errno.ENOENT,
                               f"{program}: interpreter {path}: {strerror(error.errno)}") from None
        try:
            unplaced = parse_elf(data, path, bias=0)
            if unplaced.interp is not None:
                raise LegorunError(f"{path}: an interpreter must not have an interpreter")
            low = page_down(min(segment.vaddr for segment in unplaced.segments))
            span = unplaced.end - low
            where = space.mmap(0, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, None, 0)
            space.munmap(where, span)
            image = parse_elf(data, path, bias=where - low) if unplaced.e_type == ET_DYN \
                else unplaced
        except (LegorunError, SyscallError) as error:
            raise _ExecFailure(Errno.ENOEXEC, f"{program}: interpreter: {error}") from None
        _map_image(space, image, data, path)
        return image

    def handle_p2m_exit(self, req: ExitRequest) -> StatusReply:
        self._retire(req.pid)
        return StatusReply()

    def _retire(self, pid: int) -> None:
        space = self._spaces.pop(pid, None)
        if space is not None:
            space.release()
            self._retired.append(space)

    # ------------------------------------------------------------ fork

    def handle_p2m_fork(self, req: ForkRequest) -> ForkReply:
        """Snapshot the parent's address space copy-on-write (pages are shared until either
        side writes) and keep it until the child claims it."""
        self._retired.clear()
        space = self._spaces.get(req.pid)
        if space is None:
            return ForkReply(status=Errno.ESRCH)
        token = self._next_token
        self._next_token += 1
        self._snapshots[token] = space.copy()
        return ForkReply(token=token)

    def handle_p2m_fork_claim(self, req: ForkClaimRequest) -> StatusReply:
        snapshot = self._snapshots.pop(req.token, None)
        if snapshot is None:
            return StatusReply(status=Errno.ESRCH)
        self._retire(req.pid)
        self._spaces[req.pid] = snapshot
        self._claims[req.token] = (req.pid, weakref.ref(snapshot))
        return StatusReply()

    def handle_p2m_fork_release(self, req: ForkReleaseRequest) -> StatusReply:
        """The parent reaped the child: an unclaimed snapshot goes, and so does the claimed
        one if it is still the child's space (the child was killed before it could exit:
        nothing else would let that space go)."""
        snapshot = self._snapshots.pop(req.token, None)
        if snapshot is not None:
            snapshot.release()
        pid, claimed = self._claims.pop(req.token, (0, None))
        if claimed is not None and self._spaces.get(pid) is claimed():
            self._retire(pid)
        return StatusReply()

    # ------------------------------------------------------------ ExCache traffic

    def handle_p2m_pcache_miss(self, req: PageMissRequest) -> PageReply:
        space = self._spaces.get(req.pid)
        if space is None:
            return PageReply(status=Errno.ESRCH)
        try:
            for addr, line in req.writeback:
                space.write_page(addr, line)
            return PageReply(data=space.read_page(req.addr))
        except SyscallError as error:
            return PageReply(status=error.errno)

    def handle_p2m_writeback(self, req: WritebackRequest) -> StatusReply:
        space = self._spaces.get(req.pid)
        if space is None:
            return StatusReply(status=Errno.ESRCH)
        try:
            for addr, line in req.lines:
                space.write_page(addr, line)
        except SyscallError as error:
            return StatusReply(status=error.errno)
        return StatusReply()

    # ------------------------------------------------------------ address-space calls

    def _mm(self, pid: int, operation: Callable[[AddressSpace], int | None]) -> MmReply:
        space = self._spaces.get(pid)
        if space is None:
            return MmReply(status=Errno.ESRCH)
        try:
            result = operation(space)
        except SyscallError as error:
            return MmReply(status=error.errno, layout=space.layout())
        return MmReply(result=result or 0, layout=space.layout())

    def _promises(self, nbytes: int) -> bool:
        """Whether a request for `nbytes` of new writable private memory may be made: on a
        server with a capacity, the check of Linux's heuristic overcommit (see
        page_account.py); the pages themselves are refused only when they are stored."""
        return self._account is None or self._account.admits(nbytes)

    def handle_p2m_brk(self, req: BrkRequest) -> MmReply:
        def brk(space: AddressSpace) -> int:
            current = space.brk(0)  # a break below the heap's base changes nothing
            if not self._promises(page_up(req.brk) - page_up(current)):
                return current  # brk fails by leaving the break where it was
            return space.brk(req.brk)

        return self._mm(req.pid, brk)

    def handle_p2m_mmap(self, req: MmapRequest) -> MmReply:
        # Linux's accountable_mapping(): writable, private or anonymous, not MAP_NORESERVE.
        accountable = (req.prot & PROT_WRITE and not req.flags & MAP_NORESERVE
                       and (req.flags & MAP_ANONYMOUS or req.flags & MAP_TYPE == MAP_PRIVATE))

        def mmap(space: AddressSpace) -> int:
            if accountable and not self._promises(page_up(req.length)):
                raise SyscallError(Errno.ENOMEM, "more than the memory server's capacity")
            return space.mmap(req.addr, req.length, req.prot, req.flags, req.path, req.offset)

        return self._mm(req.pid, mmap)

    def handle_p2m_munmap(self, req: MunmapRequest) -> MmReply:
        return self._mm(req.pid, lambda space: space.munmap(req.addr, req.length))

    def handle_p2m_mprotect(self, req: MprotectRequest) -> MmReply:
        return self._mm(req.pid, lambda space: space.mprotect(req.addr, req.length, req.prot))

    def handle_p2m_mremap(self, req: MremapRequest) -> MmReply:
        return self._mm(
            req.pid,
            lambda space: space.mremap(
                req.old_addr, req.old_size, req.new_size, req.flags, req.new_addr
            ),
        )

    def handle_p2m_madvise(self, req: MadviseRequest) -> MmReply:
        return self._mm(req.pid, lambda space: space.madvise(req.addr, req.length, req.advice))

    def handle_p2m_keep_file_pages(self, req: KeepFilePagesRequest) -> MmReply:
        return self._mm(req.pid, lambda space: space.keep_file_pages(req.path))

    # ------------------------------------------------------------ global memory management

    def handle_p2m_capacity(self, req: CapacityRequest) -> CapacityReply:
        if self._account is None:
            return CapacityReply()
        account = self._account
        return CapacityReply(capacity=account.capacity, used=account.used,
                             pages=account.pages)

    def handle_p2m_vregion(self, req: VRegionRequest) -> StatusReply:
        """Own vRegion `index` of pid (managers/global_memory.py): its home keeps the VMAs,
        this server only its written pages, under one private anonymous area covering the
        whole vRegion."""
        space = self._spaces.get(req.pid)
        if space is None:
            space = AddressSpace(self._read_file)
            if self._account is not None:
                space.charge(self._account)
            self._spaces[req.pid] = space
        start = req.index << VREGION_SHIFT
        if space.find(start) is None:
            end = min(start + (1 << VREGION_SHIFT), STACK_TOP)
            try:
                space.map_fixed(Vma(start, end, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, name="[vregion]"))
            except SyscallError as error:
                return StatusReply(status=error.errno)
        return StatusReply()

    def handle_p2m_take_pages(self, req: TakePagesRequest) -> PagesReply:
        space = self._spaces.get(req.pid)
        if space is None:
            return PagesReply(status=Errno.ESRCH)
        return PagesReply(pages=tuple(space.take_pages(req.addrs, req.keep)))

