"""--strace's notation (legorun/trace/strace_format.py), the signature table
(syscalls/signatures.py) and the instrument's enter/leave bookkeeping (legorun/trace/strace.py),
driven with a small fake ExCache behind the real UserMemory."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from legorun.cache.excache import GuestFault
from legorun.managers.vma import (
    MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE,
)
from legorun.processor.processor import Exit
from legorun.processor.threads import Thread
from legorun.processor.uaccess import UserMemory
from legorun.trace.strace import SyscallTrace
from legorun.trace import strace_names as names
from legorun.trace.strace_format import (
    RENDERERS,
    CallView,
    GuestReader,
    error,
    file_mode,
    flag_set,
    format_argument,
    octal,
    open_flags,
    quote,
    rlimit_value,
    sigset,
)
from syscalls.dispatch import Dispatcher
from syscalls.flags import (
    O_CLOEXEC, O_CREAT, O_DIRECTORY, O_DSYNC, O_RDONLY, O_SYNC, O_TMPFILE, O_TRUNC, O_WRONLY,
)
from syscalls.signatures import SIGNATURES, Arg
from syscalls.table import IGNORED, SyscallTable

PAGE = PAGE_SIZE
BASE = 0x10000  # the fake guest's only mapped pages: [BASE, BASE + PAGES * PAGE)
PAGES = 2
TABLE = SyscallTable.build()
ENTRIES = {entry.name: entry for entry in TABLE.entries.values()}


class FakeExCache:
    """Just what UserMemory uses: the guest's pages."""

    def __init__(self) -> None:
        self.memory = memoryview(bytearray(PAGE * PAGES))

    def page(self, vaddr: int, access: int) -> memoryview:
        page = (vaddr - BASE) // PAGE
        if vaddr < BASE or page >= PAGES:
            raise GuestFault(vaddr, access)
        return self.memory[page * PAGE : (page + 1) * PAGE]

    def poke(self, addr: int, data: bytes) -> None:
        self.memory[addr - BASE : addr - BASE + len(data)] = data


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def traced():
    excache = FakeExCache()
    log = Lines()
    trace = SyscallTrace(log)  # type: ignore[arg-type]
    processor = SimpleNamespace(pid=77, excache=excache,
                                threads=SimpleNamespace(current=Thread(77)),
                                dispatcher=Dispatcher(TABLE, None, lambda message: None))
    trace.attach(processor)  # type: ignore[arg-type]
    assert processor.dispatcher.observers == [trace]
    return SimpleNamespace(trace=trace, excache=excache, log=log)


def registers(*values: int) -> tuple[int, ...]:
    return tuple(value & 0xFFFFFFFFFFFFFFFF for value in values) + (0,) * (6 - len(values))


def call(traced, name: str, args: tuple[int, ...], result: int, between=None) -> str:
    entry = ENTRIES[name]
    traced.trace.enter(entry, entry.nr, args)
    if between is not None:
        between()
    traced.trace.leave(entry, entry.nr, args, result)
    return traced.log.lines[-1]


# ------------------------------------------------------------------ notation


def test_strings_are_quoted_with_c_escapes_as_strace_does():
    assert quote(b"hello\n") == r'"hello\n"'
    assert quote(b'tab\t"q" \\') == r'"tab\t\"q\" \\"'
    assert quote(b"\x00\x01A") == r'"\0\1A"'
    # An octal escape takes three digits when a digit follows, so it cannot run on.
    assert quote(b"\x017") == r'"\0017"'
    assert quote(b"\xff\x80") == r'"\377\200"'
    assert quote(b"abc", truncated=True) == '"abc"...'


def test_flag_sets_and_open_flags():
    assert open_flags(O_RDONLY | O_CLOEXEC) == "O_RDONLY|O_CLOEXEC"
    assert open_flags(O_WRONLY | O_CREAT | O_TRUNC) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert open_flags(O_RDONLY) == "O_RDONLY"
    # Several-bit flags win over the single bits they contain.
    assert open_flags(O_WRONLY | O_SYNC) == "O_WRONLY|O_SYNC"
    assert open_flags(O_DSYNC) == "O_RDONLY|O_DSYNC"
    assert open_flags(O_TMPFILE | 2) == "O_RDWR|O_TMPFILE"
    assert open_flags(O_DIRECTORY) == "O_RDONLY|O_DIRECTORY"
    assert flag_set(PROT_READ | PROT_WRITE, names.PROT) == "PROT_READ|PROT_WRITE"
    assert flag_set(0, names.PROT, zero="PROT_NONE") == "PROT_NONE"
    assert flag_set(PROT_READ | 0x40, names.PROT) == "PROT_READ|0x40"
    assert flag_set(6, names.FILE_ACCESS) == "R_OK|W_OK"


def test_mmap_arguments():
    view = CallView(GuestReader(UserMemory(FakeExCache())),  # type: ignore[arg-type]
                    registers(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0))
    shown = [format_argument(kind, view, index)
             for index, kind in enumerate(SIGNATURES["mmap"].args)]
    assert shown == ["NULL", "8192", "PROT_READ|PROT_WRITE", "MAP_PRIVATE|MAP_ANONYMOUS", "-1",
                     "0"]
    fixed = CallView(view.guest, registers(0x7000, 4096, 0, MAP_PRIVATE | MAP_FIXED, 3, 0x2000))
    assert format_argument(Arg.MAP_FLAGS, fixed, 3) == "MAP_PRIVATE|MAP_FIXED"
    assert format_argument(Arg.PROT, fixed, 2) == "PROT_NONE"
    assert format_argument(Arg.HEX, fixed, 5) == "0x2000"


def test_errors_numbers_and_modes():
    assert error(2) == "-1 ENOENT (No such file or directory)"
    assert error(38) == "-1 ENOSYS (Function not implemented)"
    assert error(999) == "-1 ERRNO_999 (Unknown error 999)"
    assert octal(0o644) == "0644"
    assert octal(0o22) == "022"
    assert octal(0) == "000"
    assert file_mode(0o100644) == "S_IFREG|0644"
    assert file_mode(0o41777) == "S_IFDIR|S_ISVTX|0777"
    assert rlimit_value(8 << 20) == "8192*1024"
    assert rlimit_value(1024) == "1024"
    assert rlimit_value((1 << 64) - 1) == "RLIM64_INFINITY"


def test_signal_sets_name_the_smaller_side():
    assert sigset(0) == "[]"
    assert sigset((1 << 1) | (1 << 14)) == "[INT TERM]"
    everything_but_the_first_two_realtime = ((1 << 64) - 1) & ~(3 << 31)
    assert sigset(everything_but_the_first_two_realtime) == "~[RTMIN RT_1]"
    assert sigset((1 << 64) - 1) == "~[]"


# ------------------------------------------------------------------ the signature table


def test_every_handled_syscall_is_described_with_the_handlers_arity():
    for entry in TABLE.entries.values():
        if entry.handler is None:
            continue
        assert entry.name in SIGNATURES, f"{entry.name} has a handler but no signature"
        if entry.handler is not IGNORED:
            assert len(SIGNATURES[entry.name].args) == len(entry.parameters), entry.name


def test_every_kind_has_a_renderer_and_signatures_name_real_syscalls():
    assert set(RENDERERS) == set(Arg)
    known = {entry.name for entry in TABLE.entries.values()}
    assert set(SIGNATURES) <= known
    assert all(len(signature.args) <= 6 for signature in SIGNATURES.values())


# ------------------------------------------------------------------ the instrument


def test_a_failed_open_shows_path_flags_and_errno(traced):
    path = BASE + 0x100
    traced.excache.poke(path, b"/nonexistent\0")
    line = call(traced, "openat", registers(-100, path, O_RDONLY, 0o777), -2)
    assert line == ('77 openat(AT_FDCWD, "/nonexistent", O_RDONLY) = '
                    '-1 ENOENT (No such file or directory)')
    line = call(traced, "openat", registers(3, path, O_WRONLY | O_CREAT, 0o640), 4)
    assert line == '77 openat(3, "/nonexistent", O_WRONLY|O_CREAT, 0640) = 4'


def test_input_is_captured_before_the_call_and_output_after(traced):
    buf = BASE + 0x200
    traced.excache.poke(buf, b"before")
    line = call(traced, "write", registers(1, buf, 6), 6,
                between=lambda: traced.excache.poke(buf, b"AFTER!"))
    assert line == '77 write(1, "before", 6) = 6'
    line = call(traced, "read", registers(0, buf, 100), 3,
                between=lambda: traced.excache.poke(buf, b"new"))
    assert line == '77 read(0, "new", 100) = 3'
    # A failed read filled nothing: its buffer is only an address.
    assert call(traced, "read", registers(9, buf, 100), -9) == \
        f"77 read(9, {buf:#x}, 100) = -1 EBADF (Bad file descriptor)"


def test_long_buffers_are_cut_after_32_bytes(traced):
    buf = BASE + 0x300
    traced.excache.poke(buf, bytes(range(65, 65 + 40)))
    line = call(traced, "write", registers(1, buf, 40), 40)
    assert line == '77 write(1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`"..., 40) = 40'


def test_bad_pointers_show_as_addresses_and_do_not_raise(traced):
    assert call(traced, "openat", registers(-100, 0x10, 0, 0), -14) == \
        "77 openat(AT_FDCWD, 0x10, O_RDONLY) = -1 EFAULT (Bad address)"
    # A string that runs off the end of the mapping cannot be read whole.
    end = BASE + PAGE * PAGES - 4
    traced.excache.poke(end, b"abcd")
    assert call(traced, "chdir", registers(end), -14) == \
        f"77 chdir({end:#x}) = -1 EFAULT (Bad address)"
    assert call(traced, "write", registers(1, 0, 5), -14) == \
        "77 write(1, NULL, 5) = -1 EFAULT (Bad address)"


def test_structs_written_by_the_call(traced):
    statbuf = BASE + 0x400
    stat = struct.pack("<QQQIIIiQqqqQQQQQQ24x", 1, 2, 1, 0o100644, 0, 0, 0, 0, 123, 4096, 8,
                       0, 0, 0, 0, 0, 0)
    line = call(traced, "fstat", registers(3, statbuf), 0,
                between=lambda: traced.excache.poke(statbuf, stat))
    assert line == "77 fstat(3, {st_mode=S_IFREG|0644, st_size=123, ...}) = 0"
    pipefd = BASE + 0x600
    line = call(traced, "pipe2", registers(pipefd, O_CLOEXEC), 0,
                between=lambda: traced.excache.poke(pipefd, struct.pack("<ii", 3, 4)))
    assert line == "77 pipe2([3, 4], O_CLOEXEC) = 0"


def test_results_in_hex_octal_and_fcntl_flags(traced):
    assert call(traced, "brk", registers(0), 0x4C6000) == "77 brk(NULL) = 0x4c6000"
    assert call(traced, "umask", registers(0o77), 0o22) == "77 umask(077) = 022"
    assert call(traced, "fcntl", registers(3, 3, 0), O_WRONLY | O_CLOEXEC) == \
        "77 fcntl(3, F_GETFL) = 0x80001 (flags O_WRONLY|O_CLOEXEC)"
    assert call(traced, "fcntl", registers(3, 2, 1), 0) == "77 fcntl(3, F_SETFD, FD_CLOEXEC) = 0"


def test_exit_group_is_written_on_entry_and_the_end_closes_the_log(traced):
    entry = ENTRIES["exit_group"]
    traced.trace.enter(entry, entry.nr, registers(3))
    assert traced.log.lines == ["77 exit_group(3) = ?"]
    traced.trace.close(Exit(status=3))
    assert traced.log.lines[-1] == "77 +++ exited with 3 +++"


def test_a_call_that_kills_the_process_is_finished_on_close(traced):
    entry = ENTRIES["tgkill"]
    traced.trace.enter(entry, entry.nr, registers(77, 77, 6))
    traced.trace.close(Exit(signal=6))
    assert traced.log.lines == ["77 tgkill(77, 77, SIGABRT) = ?", "77 +++ killed by SIGABRT +++"]


def test_unknown_and_undescribed_syscalls_show_raw_registers(traced):
    traced.trace.enter(None, 1000, registers(1, 2, 0xFF))
    traced.trace.leave(None, 1000, registers(1, 2, 0xFF), -38)
    assert traced.log.lines[-1] == \
        "77 syscall_1000(0x1, 0x2, 0xff, 0, 0, 0) = -1 ENOSYS (Function not implemented)"
    undescribed = next(entry for entry in TABLE.entries.values()
                       if entry.name not in SIGNATURES)
    traced.trace.enter(undescribed, undescribed.nr, registers(5))
    traced.trace.leave(undescribed, undescribed.nr, registers(5), -38)
    assert traced.log.lines[-1] == (f"77 {undescribed.name}(0x5, 0, 0, 0, 0, 0) = "
                                    "-1 ENOSYS (Function not implemented)")


def test_arguments_the_call_does_not_use_are_left_out(traced):
    spec = BASE + 0x700
    traced.excache.poke(spec, struct.pack("<qq", 0, 1000))
    assert call(traced, "futex", registers(BASE, 0x81, 1, spec, 0x44, 0x55), 0) == \
        f"77 futex({BASE:#x}, FUTEX_WAKE_PRIVATE, 1) = 0"
    assert call(traced, "futex", registers(BASE, 0, 7, spec, 0x44, 0x55), -110) == \
        f"77 futex({BASE:#x}, FUTEX_WAIT, 7, {{tv_sec=0, tv_nsec=1000}}) = " \
        "-1 ETIMEDOUT (Connection timed out)"
    assert call(traced, "futex", registers(BASE, 9, 8, 0, 0, 0xFFFFFFFF), -11).startswith(
        f"77 futex({BASE:#x}, FUTEX_WAIT_BITSET, 8, NULL, FUTEX_BITSET_MATCH_ANY) = ")
    assert call(traced, "mremap", registers(0x7000, 4096, 8192, 1, 0x9000), 0xA000) == \
        "77 mremap(0x7000, 4096, 8192, MREMAP_MAYMOVE) = 0xa000"
    assert call(traced, "mremap", registers(0x7000, 4096, 8192, 3, 0x9000), 0x9000) == \
        "77 mremap(0x7000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x9000) = 0x9000"
