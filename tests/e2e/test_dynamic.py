"""Dynamically linked programs: the memory manager maps the program and its interpreter
(PT_INTERP, looked up under -L/--sysroot), and ld.so maps the libraries itself through
file-backed mmap. Host binaries from the distribution must behave as natively."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

INTERP = Path("/lib64/ld-linux-x86-64.so.2")

pytestmark = pytest.mark.skipif(not INTERP.exists(), reason="no x86-64 glibc dynamic loader")


def _host(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.mark.parametrize("argv, stdin", [
    (["echo", "hello", "dynamic world"], b""),
    (["true"], b""),
    (["false"], b""),
    (["sha256sum"], b"abc\n" * 1000),
    (["sort", "-r"], b"pear\napple\nfig\n"),
    (["cat", "-n"], b"one\ntwo\n"),
    (["tr", "a-z", "A-Z"], b"shout\n"),
], ids=lambda value: value[0] if isinstance(value, list) else None)
def test_host_program_matches_native(e2e, argv, stdin):
    program = _host(argv[0])
    native = e2e.run_native(program, argv[1:], cwd=e2e.fresh_dir(), stdin=stdin)
    lego = e2e.run_legorun(program, argv[1:], cwd=e2e.fresh_dir(), stdin=stdin)
    e2e.assert_same(native, lego, " ".join(argv))


def test_compiled_dynamic_program_with_small_excache(e2e, tmp_path):
    binary = e2e.compile_c(tmp_path, "dyn", (
        '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n'
        'int main(int argc, char **argv) {\n'
        '    char *copy = strdup(argv[0]); size_t n = 0;\n'
        '    for (int i = 0; i < 20000; i++) { char *p = malloc(64 + i % 512); n += strlen(copy);'
        ' free(p); }\n'
        '    printf("%zu %s\\n", n, getenv("LEGORUN_SAMPLE_A"));\n'
        '    return argc;\n}\n'), flags=("-O2",))
    native = e2e.run_native(binary, ["x", "y"], cwd=tmp_path)
    lego = e2e.run_legorun(binary, ["x", "y"], cwd=tmp_path, options=["--excache", "256K", "--assoc", "4"])
    e2e.assert_same(native, lego, "dynamic program with a 256K ExCache")


def test_missing_interpreter_under_sysroot(e2e, tmp_path):
    lego = e2e.run_legorun(_host("true"), cwd=tmp_path, options=["-L", str(tmp_path)])
    assert lego.status == 127
    lines = lego.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("legorun: ") and "interpreter" in lines[0]
    assert "No such file or directory" in lines[0]


def test_sysroot_supplies_the_interpreter(e2e, tmp_path):
    target = tmp_path / INTERP.relative_to("/")
    target.parent.mkdir(parents=True)
    shutil.copy(INTERP, target)
    native = e2e.run_native(_host("echo"), ["via", "sysroot"], cwd=tmp_path)
    lego = e2e.run_legorun(_host("echo"), ["via", "sysroot"], cwd=tmp_path, options=["-L", str(tmp_path)])
    e2e.assert_same(native, lego, "echo with -L")


@pytest.mark.parametrize("first_line", [
    "#!/bin/echo one-argument",
    "#! /bin/echo   spaced  words  ",
    "#!/bin/echo",
    "#!\t/bin/echo\ttabbed",
])
def test_script_runs_under_its_interpreter(e2e, tmp_path, first_line):
    _host("echo")
    script = tmp_path / "script"
    script.write_text(first_line + "\nignored body\n")
    script.chmod(0o755)
    native = e2e.run_native("./script", ["a", "b c"], cwd=tmp_path)
    lego = e2e.run_legorun("./script", ["a", "b c"], cwd=tmp_path)
    e2e.assert_same(native, lego, first_line)


def test_script_whose_interpreter_is_a_script(e2e, tmp_path):
    _host("echo")
    inner = tmp_path / "inner"
    inner.write_text("#!/bin/echo inner\n")
    outer = tmp_path / "outer"
    outer.write_text(f"#!{inner} outer\n")
    for path in (inner, outer):
        path.chmod(0o755)
    native = e2e.run_native("./outer", ["x"], cwd=tmp_path)
    lego = e2e.run_legorun("./outer", ["x"], cwd=tmp_path)
    e2e.assert_same(native, lego, "nested #!")


def test_script_with_missing_interpreter(e2e, tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    lego = e2e.run_legorun("./script", cwd=tmp_path)
    assert lego.status == 127
    (line,) = lego.stderr.decode().splitlines()
    assert line.startswith("legorun: ") and "/nonexistent/interpreter" in line


def test_sqlite3_matches_native(e2e, tmp_path):
    sqlite3 = _host("sqlite3")
    script = (b"create table t(k integer primary key, v text);\n"
              b"with recursive n(i) as (select 1 union all select i + 1 from n where i < 2000)\n"
              b"insert into t select i, hex(i * 7919) from n;\n"
              b"select count(*), sum(k), min(v), max(v) from t;\n"
              b"select v from t where k % 250 = 0 order by v desc;\n")
    native = e2e.run_native(sqlite3, [str(tmp_path / "native.db")], cwd=tmp_path, stdin=script)
    lego = e2e.run_legorun(sqlite3, [str(tmp_path / "lego.db")], cwd=tmp_path, stdin=script,
                           options=["--excache", "1M", "--assoc", "4"])
    e2e.assert_same(native, lego, "sqlite3 with a 1M ExCache")


LUA_SCRIPT = r"""
local words = {}
for word in io.read("a"):gmatch("%a+") do words[#words + 1] = word:lower() end
table.sort(words)
local counts = {}
for _, w in ipairs(words) do counts[w] = (counts[w] or 0) + 1 end
local producer = coroutine.wrap(function()
  for i = 1, 5 do coroutine.yield(i * i) end
end)
local squares = {}
for _ = 1, 5 do squares[#squares + 1] = producer() end
print(#words, counts["the"], table.concat(squares, ","), string.format("%.6f", math.pi))
local t = {}
for i = 1, 50000 do t[i] = tostring(i):rep(3) end
print(#table.concat(t), collectgarbage("count") > 0)
os.exit(7)
"""


@pytest.mark.parametrize("options", [(), ("--excache", "512K", "--assoc", "4")],
                         ids=["default", "excache-512K"])
def test_lua_matches_native(e2e, tmp_path, options):
    lua = _host("lua5.4")
    text = b"The quick brown fox jumps over the lazy dog; the end.\n" * 200
    native = e2e.run_native(lua, ["-e", LUA_SCRIPT], cwd=tmp_path, stdin=text)
    lego = e2e.run_legorun(lua, ["-e", LUA_SCRIPT], cwd=tmp_path, stdin=text, options=options)
    e2e.assert_same(native, lego, f"lua5.4 {' '.join(options)}")
    assert native.status == 7


PYTHON_SCRIPT = """
import sys, os, zlib, struct
data = sys.stdin.buffer.read()
print(len(data), zlib.crc32(data), struct.pack("<I", 258).hex(), sys.argv[1:])
print(sorted(os.listdir("."))[:3], os.getcwd() == os.environ.get("PWD", os.getcwd()))
print({k: v for k, v in sorted({"b": 2, "a": 1}.items())}, 2 ** 100, 7 / 3)
sys.stderr.write("to stderr\\n")
sys.exit(3)
"""


def test_python_matches_native(e2e, tmp_path):
    python = _host("python3")
    for name in ("one", "two", "three"):
        (tmp_path / name).write_text(name)
    args = ["-S", "-c", PYTHON_SCRIPT, "first", "second arg"]
    text = bytes(range(256)) * 64
    native = e2e.run_native(python, args, cwd=tmp_path, stdin=text)
    lego = e2e.run_legorun(python, args, cwd=tmp_path, stdin=text)
    e2e.assert_same(native, lego, "python3 -S -c")
    assert native.status == 3


# Worker processes that share memory with their parent: a Pool, a Queue (a pipe and a
# semaphore in MAP_SHARED memory), and a counter in shared memory under a contended Lock.
MULTIPROCESSING_SCRIPT = """
import multiprocessing as mp

def square(x):
    return x * x

def count(lock, total, n):
    for _ in range(n):
        with lock:
            total.value += 1

if __name__ == "__main__":
    with mp.Pool(2) as pool:
        print(pool.map(square, range(10)))
    queue = mp.Queue()
    worker = mp.Process(target=queue.put, args=("through a queue",))
    worker.start()
    print(queue.get())
    worker.join()
    lock, total = mp.Lock(), mp.Value("i", 0, lock=False)
    workers = [mp.Process(target=count, args=(lock, total, 300)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("total", total.value, [w.exitcode for w in workers])
"""


def test_python_multiprocessing_matches_native(e2e, tmp_path):
    python = _host("python3")
    script = tmp_path / "workers.py"
    script.write_text(MULTIPROCESSING_SCRIPT)
    native = e2e.run_native(python, ["-S", str(script)], cwd=e2e.fresh_dir())
    lego = e2e.run_legorun(python, ["-S", str(script)], cwd=e2e.fresh_dir())
    e2e.assert_same(native, lego, "python3 -S workers.py")
    assert b"total 900" in native.stdout
