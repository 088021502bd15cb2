"""-d in_asm,exec: qemu's layout, the code of the program as its file holds it, and blocks that
agree with the instructions --trace-mem sees executed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, CS_OPT_SYNTAX_ATT, Cs
from elftools.elf.elffile import ELFFile

from legorun.trace.disasm import format_instruction
from legorun.trace.symbols import Function, Symbolizer

SEPARATOR = "-" * 16
# address, up to 8 code bytes, padding, mnemonic and operands; longer code continues below
INSTRUCTION = re.compile(r"0x([0-9a-f]{8,}): (?: [0-9a-f]{2}){1,8} {2,}\S.*")
CONTINUATION = re.compile(r"0x[0-9a-f]{8,}: (?: [0-9a-f]{2}){1,8}")
EXEC = re.compile(r"Trace 0: 0x([0-9a-f]+) \[([0-9a-f]{16})\] (\S*)")


def function(exe: Path, name: str) -> Function:
    found = Symbolizer.load(exe).lookup_function(name)
    assert found is not None
    return found


def parse_in_asm(log: list[str]) -> list[tuple[str, list[int]]]:
    """(symbol, instruction addresses) of each logged block, in order."""
    blocks: list[tuple[str, list[int]]] = []
    lines = iter(log)
    for line in lines:
        if line != SEPARATOR:
            continue
        header = next(lines)
        assert header.startswith("IN: "), header
        addresses: list[int] = []
        for line in lines:
            if not line:
                break
            match = INSTRUCTION.fullmatch(line)
            if match:
                addresses.append(int(match[1], 16))
            else:
                assert CONTINUATION.fullmatch(line), line
        blocks.append((header[4:], addresses))
    return blocks


def test_qemu_layout() -> None:
    # As qemu-x86_64 -d in_asm prints these two instructions.
    assert format_instruction(0x4014f0, b"\x53", "pushq", "%rbx") == [
        "0x004014f0:  53                       pushq    %rbx"]
    assert format_instruction(0x4014f8, bytes.fromhex("48b848656c6c6f2c2077"), "movabsq",
                              "$0x77202c6f6c6c6548, %rax") == [
        "0x004014f8:  48 b8 48 65 6c 6c 6f 2c  movabsq  $0x77202c6f6c6c6548, %rax",
        "0x00401500:  20 77"]


def test_in_asm_shows_main_as_the_file_holds_it(e2e, samples_built: Path) -> None:
    hello = samples_built / "hello"
    native = e2e.run_native(hello, cwd=e2e.fresh_dir("native"))
    run = e2e.run_legorun(hello, cwd=e2e.fresh_dir("in_asm"), options=["-d", "in_asm",
                                                                       "-dfilter", "main"])
    assert (run.status, run.stdout) == (native.status, native.stdout), run.describe()
    log = run.stderr.decode().splitlines()
    main = function(hello, "main")
    assert log[:2] == [SEPARATOR, "IN: main"]
    assert log[2].startswith(f"0x{main.start:08x}:  ")

    with open(hello, "rb") as stream:
        text = ELFFile(stream).get_section_by_name(".text")
        code = text.data()[main.start - text["sh_addr"]:main.end - text["sh_addr"]]
    disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
    disassembler.syntax = CS_OPT_SYNTAX_ATT
    expected = {insn.address: format_instruction(insn.address, bytes(insn.bytes), insn.mnemonic,
                                                 insn.op_str)
                for insn in disassembler.disasm(code, main.start)}
    blocks = parse_in_asm(log)
    assert blocks and all(name == "main" for name, _ in blocks)
    shown = [address for _, addresses in blocks for address in addresses]
    assert len(shown) == len(set(shown))  # each block once, however often it ran
    for address in shown:
        start = log.index(expected[address][0])  # the line exists, bytes and all
        assert log[start:start + len(expected[address])] == expected[address]


def test_exec_blocks_are_the_instructions_executed(e2e, samples_built: Path) -> None:
    cpu_loop = samples_built / "cpu_loop"
    native = e2e.run_native(cpu_loop, ["10"], cwd=e2e.fresh_dir("native"))
    cwd = e2e.fresh_dir("exec")
    run = e2e.run_legorun(cpu_loop, ["10"], cwd=cwd, options=[
        "-d", "in_asm,exec", "-dfilter", "main", "-D", "log.%p", "--trace-mem", "trace"])
    e2e.assert_same(native, run, "-d in_asm,exec -D")  # the log went to the file only
    [log_file] = cwd.glob("log.*")
    log = log_file.read_text().splitlines()

    blocks = {addresses[0]: addresses for _, addresses in parse_in_asm(log)}
    executed: list[int] = []
    for line in log:
        match = EXEC.fullmatch(line)
        if line.startswith("Trace"):
            assert match, line
            host, pc, name = int(match[1], 16), int(match[2], 16), match[3]
            assert name == "main"
            assert host & 0xFFF == pc & 0xFFF  # where the ExCache holds that code
            executed.extend(blocks[pc])  # its disassembly was logged before it ran
    instructions = [int(line[3:].split(",")[0], 16)
                    for line in (cwd / "trace").read_text().splitlines() if line[0] == "I"]
    assert executed == instructions
    exec_count = sum(1 for line in log if line.startswith("Trace"))
    assert exec_count > len(blocks)  # the loop's blocks ran again without a new IN:


def test_several_ranges(e2e, samples_built: Path) -> None:
    hello = samples_built / "hello"
    start = function(hello, "_start")
    run = e2e.run_legorun(hello, cwd=e2e.fresh_dir("ranges"), options=[
        "-d", "exec", "-dfilter", f"main,{start.start:#x}+1"])
    names = [EXEC.fullmatch(line)[3] for line in run.stderr.decode().splitlines()]
    assert names[0] == "_start" and set(names) == {"_start", "main"}, run.describe()


@pytest.mark.parametrize("options, message", [
    (["-d", "in_asm", "-dfilter", "main+1"], "legorun: -dfilter: bad range 'main+1'"),
    (["-d", "exec", "-dfilter", "main,nosuch"], "legorun: -dfilter: no function named 'nosuch'"),
    (["-d", "exec", "-D", "/nonexistent/dir/log"], "legorun: -D /nonexistent/dir/log: "),
])
def test_bad_options(e2e, samples_built: Path, options: list[str], message: str) -> None:
    run = e2e.run_legorun(samples_built / "hello", cwd=e2e.fresh_dir("bad"), options=options)
    assert run.returncode == 2, run.describe()
    assert run.stdout == b""
    err = run.stderr.decode()
    assert err.startswith(message) and err.count("\n") == 1, run.describe()
