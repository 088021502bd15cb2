"""--trace-mem: lackey's trace format, compared with valgrind's own lackey on a function whose
accesses are known, and the -dfilter limits."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from legorun.trace.symbols import Symbolizer

# work() makes each kind of access once per loop iteration or call; inline assembly pins the
# instructions that lackey treats specially.
GUEST = r"""
#include <stdio.h>

long counters[16];
int small[8];
struct pair { long lo, hi; } __attribute__((aligned(16))) vec[3];
long double wide[2];
char src[16] = "abcdefghijklmno", dst[16];

__attribute__((noinline)) long work(long n)
{
    long sum = 0;
    for (long i = 0; i < n; i++) {
        sum += counters[i];                                      /* L 8 */
        counters[i + 4] = sum;                                   /* S 8 */
        __asm__ volatile("addl $1, %0" : "+m"(small[i]));        /* M 4 */
    }
    __asm__ volatile("movdqa %1, %%xmm0\n\tpaddq %2, %%xmm0\n\tmovdqa %%xmm0, %0"
                     : "=m"(vec[1]) : "m"(vec[0]), "m"(vec[2]) : "xmm0");   /* L 16, S 16 */
    __asm__ volatile("lock addq $3, %0" : "+m"(counters[15]));   /* L 8 then M 8 */
    long old = 7;
    __asm__ volatile("xchgq %0, %1" : "+r"(old), "+m"(counters[14]));  /* L 8 then M 8 */
    __asm__ volatile("fldt %1\n\tfstpt %0" : "=m"(wide[1]) : "m"(wide[0]));  /* L 10, S 10 */
    char *to = dst, *from = src;
    long count = 3;
    __asm__ volatile("rep movsb" : "+D"(to), "+S"(from), "+c"(count) : : "memory");
    return sum + old;
}

int main(void)
{
    for (int i = 0; i < 16; i++)
        counters[i] = i;
    wide[0] = 1.5L;
    long total = 0;
    for (int round = 0; round < 3; round++)
        total += work(4);
    printf("total %ld counters[15] %ld small[2] %d dst %s\n", total, counters[15], small[2],
           dst);
    return 3;
}
"""
CALLS = 3  # of work()
LINE = re.compile(r"(I  | L | S | M )([0-9a-f]{8,16}),([1-9][0-9]*)")


@pytest.fixture(scope="module")
def guest(e2e, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e2e.compile_c(tmp_path_factory.mktemp("memtrace"), "guest", GUEST)


def symbol(exe: Path, name: str) -> tuple[int, int]:
    function = Symbolizer.load(exe).lookup_function(name)
    assert function is not None
    return function.start, function.end


def data_address(exe: Path, name: str) -> int:
    with open(exe, "rb") as stream:
        table = ELFFile(stream).get_section_by_name(".symtab")
        return table.get_symbol_by_name(name)[0]["st_value"]


def trace(e2e, exe: Path, *options: str) -> list[str]:
    cwd = e2e.fresh_dir("memtrace")
    run = e2e.run_legorun(exe, cwd=cwd, options=["--trace-mem", "trace.out", *options])
    assert run.status == 3, run.describe()
    assert run.stdout.startswith(b"total 46 "), run.describe()
    return (cwd / "trace.out").read_text().splitlines()


def restrict(lines: list[str], ranges: list[tuple[int, int]]) -> list[str]:
    """The instructions inside ranges (end exclusive) and their data accesses."""
    kept, inside = [], False
    for line in lines:
        if line.startswith("I"):
            address = int(line[3:].split(",")[0], 16)
            inside = any(start <= address < end for start, end in ranges)
        if inside:
            kept.append(line)
    return kept


def test_format_and_status(e2e, guest: Path) -> None:
    native = e2e.run_native(guest, cwd=e2e.fresh_dir("native"))
    cwd = e2e.fresh_dir("memtrace")
    lego = e2e.run_legorun(guest, cwd=cwd, options=["--trace-mem", "trace.%p"])
    e2e.assert_same(native, lego, "--trace-mem")
    [written] = cwd.glob("trace.*")  # %p became the pid
    assert re.fullmatch(r"trace\.[0-9]+", written.name)
    lines = written.read_text().splitlines()
    assert lines[0].startswith("I  ")
    for line in lines:
        assert LINE.fullmatch(line), line
    start, _ = symbol(guest, "work")
    assert sum(1 for line in lines if line.startswith(f"I  {start:08x},")) == CALLS


def test_lackey_rules_on_known_accesses(e2e, guest: Path) -> None:
    lines = trace(e2e, guest, "-dfilter", "work")
    counters, small = data_address(guest, "counters"), data_address(guest, "small")
    vec, wide = data_address(guest, "vec"), data_address(guest, "wide")
    src, dst = data_address(guest, "src"), data_address(guest, "dst")

    def count(*sequence: str) -> int:
        n = len(sequence)
        return sum(1 for i in range(len(lines)) if tuple(lines[i:i + n]) == sequence)

    for i in range(4):
        assert count(f" L {counters + 8 * i:08x},8") == CALLS
        assert count(f" S {counters + 8 * (i + 4):08x},8") == CALLS
        assert count(f" M {small + 4 * i:08x},4") == CALLS  # a load and store merged
    # 16-byte operands come as one access, though QEMU makes two of them
    assert count(f" L {vec:08x},16") == count(f" L {vec + 32:08x},16") == CALLS
    assert count(f" S {vec + 16:08x},16") == CALLS
    # locked updates: lackey sees a load, then a compare-and-swap (a modify)
    assert count(f" L {counters + 120:08x},8", f" M {counters + 120:08x},8") == CALLS
    assert count(f" L {counters + 112:08x},8", f" M {counters + 112:08x},8") == CALLS
    # an 80-bit x87 value is one 10-byte access
    assert count(f" L {wide:08x},10") == count(f" S {wide + 16:08x},10") == CALLS
    # rep movsb: one instruction line and one load and store per byte copied
    for i in range(3):
        assert count(f" L {src + i:08x},1", f" S {dst + i:08x},1") == CALLS
    start, end = symbol(guest, "work")
    assert restrict(lines, [(start, end)]) == lines  # nothing from outside work


def test_matches_valgrind_lackey(e2e, guest: Path, tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    log = tmp_path / "lackey.log"
    subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}",
                    str(guest)], capture_output=True, check=False, timeout=300)
    lackey = [line for line in log.read_text().splitlines() if not line.startswith("==")]
    start, end = symbol(guest, "work")
    expected = restrict(lackey, [(start, end)])
    assert len(expected) > 50
    ours = trace(e2e, guest, "-dfilter", "work")
    # The stack lies elsewhere under valgrind: compare addresses inside the program's image.
    assert normalise(guest, ours) == normalise(guest, expected)


def normalise(exe: Path, lines: list[str]) -> list[str]:
    with open(exe, "rb") as stream:
        segments = [(s["p_vaddr"], s["p_vaddr"] + s["p_memsz"])
                    for s in ELFFile(stream).iter_segments() if s["p_type"] == "PT_LOAD"]
    result = []
    for line in lines:
        match = LINE.fullmatch(line)
        assert match, line
        address = int(match[2], 16)
        if not any(low <= address < high for low, high in segments):
            line = f"{match[1]}<outside the image>,{match[3]}"
        result.append(line)
    return result


def test_filters_select_from_the_full_trace(e2e, guest: Path) -> None:
    full = trace(e2e, guest)
    work, main = symbol(guest, "work"), symbol(guest, "main")
    # A range ending inside work's blocks, and several ranges (checked in C, not by Unicorn).
    middle = (work[0] + 6, work[0] + 0x30)
    cases = {
        ("-dfilter", "work"): [work],
        ("-dfilter", f"{work[0]:#x}..{work[1] - 1:#x}"): [work],
        ("-dfilter", f"{middle[0]:#x}+{middle[1] - middle[0]:#x}"): [middle],
        ("-dfilter", f"main,{middle[0]:#x}..{middle[1] - 1:#x}"): [main, middle],
    }
    for options, ranges in cases.items():
        expected = restrict(full, ranges)
        assert expected, options
        assert trace(e2e, guest, *options) == expected, options


@pytest.mark.parametrize("options, message", [
    (["--trace-mem", "/nonexistent/dir/trace"], "legorun: --trace-mem /nonexistent/dir/trace: "
                                                "No such file or directory"),
    (["--trace-mem", "trace", "-dfilter", "nosuch"], "legorun: -dfilter: no function named "
                                                     "'nosuch' in the program"),
    (["--trace-mem", "trace", "-dfilter", "0x20..0x10"], "legorun: -dfilter: empty or "
                                                         "impossible range '0x20..0x10'"),
    (["-dfilter", "main"], "legorun: -dfilter limits -d and --trace-mem"),
])
def test_bad_options(e2e, guest: Path, options: list[str], message: str) -> None:
    run = e2e.run_legorun(guest, cwd=e2e.fresh_dir("bad"), options=options)
    assert run.returncode == 2, run.describe()
    assert run.stdout == b""  # the guest never ran
    err = run.stderr.decode()
    assert err.startswith(message) and err.count("\n") == 1, run.describe()
