"""The memory manager (LegoOS mComponent): all virtual-memory state of every process.

It owns each process's VMAs and page contents, serves ExCache misses and write-backs, runs
the address-space syscalls, and sets up the address space for exec (ELF loading and the
initial stack), pulling files from the storage manager. One `handle_p2m_*` per opcode; a
handler never raises for a guest error: the reply's `status` carries the errno.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from legorun.errors import LegorunError
from legorun.loader.elf import ET_DYN, LoadedImage, parse_elf
from legorun.loader.script import MAX_NESTING, parse_shebang
from legorun.loader.stack import AuxvInputs, build_stack
from legorun.managers.address_space import AddressSpace
from legorun.managers.vma import (
    MAP_ANONYMOUS,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
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
    DataReply,
    ExecReply,
    ExecRequest,
    ExitRequest,
    FileReadRequest,
    ForkClaimRequest,
    ForkReleaseRequest,
    ForkReply,
    ForkRequest,
    MadviseRequest,
    MmapRequest,
    MmReply,
    MprotectRequest,
    MremapRequest,
    MunmapRequest,
    Opcode,
    PageMissRequest,
    PageReply,
    Request,
    StatusReply,
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
    def __init__(self, storage: Callable[[Request], Any]) -> None:
        """`storage` sends an M2S request to the storage manager and returns its reply."""
        self._storage = storage
        self._spaces: dict[int, AddressSpace] = {}
        # Fork snapshots not yet claimed by their child, by token.
        self._snapshots: dict[int, AddressSpace] = {}
        self._next_token = 1
        # Address spaces of processes that exited or exec'ed, freed when the next process
        # is made (fork, exec) instead of on the way out. An embedded memory manager is
        # copied by the host fork of its processor, and freeing a space whose pages the
        # host still shares copy-on-write with another process costs a host page fault per
        # page (CPython writes each object's reference count): a forked child that execs
        # or exits must not pay that for the snapshot it got.
        self._retired: list[AddressSpace] = []

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
        self._spaces[req.pid] = snapshot
        return StatusReply()

    def handle_p2m_fork_release(self, req: ForkReleaseRequest) -> StatusReply:
        self._snapshots.pop(req.token, None)
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

    def handle_p2m_brk(self, req: BrkRequest) -> MmReply:
        return self._mm(req.pid, lambda space: space.brk(req.brk))

    def handle_p2m_mmap(self, req: MmapRequest) -> MmReply:
        return self._mm(
            req.pid,
            lambda space: space.mmap(
                req.addr, req.length, req.prot, req.flags, req.path, req.offset
            ),
        )

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
