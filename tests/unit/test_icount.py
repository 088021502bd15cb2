"""The compiled instruction counter against references: Unicorn's own per-instruction hook,
valgrind's instruction count, capstone on known bytes; its periodic tick; and the modelled
clock built on it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import UC_HOOK_CODE

from legorun.config import MachineConfig
from legorun.machine import Machine
from legorun.processor.icount import count_instructions
from legorun.processor.processor import Exit, Processor
from legorun.stats import RunStats
from guest_programs import compile_c

# A loop, string instructions with a `rep` prefix (QEMU runs each iteration as one
# instruction, as valgrind counts them) and libc output.
GUEST = r"""
static char src[8192], dst[8192];

int main(int argc, char **argv) {
    unsigned long h = 5381;
    (void)argv;
    for (int i = 0; i < ITERATIONS; i++)
        h = h * 33 + (i ^ argc);
    void *d = dst, *s = src;
    unsigned long n = REP_BYTES;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    d = dst;
    n = 100;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(7) : "memory");
    printf("%lu %d\n", h, dst[5]);
    return 0;
}
"""


class PerInstructionCounter:
    """The reference: a Python code hook, called by Unicorn for every instruction."""

    def __init__(self) -> None:
        self.count = 0

    def attach(self, processor: Processor) -> None:
        processor.cpu.uc.hook_add(UC_HOOK_CODE, self._on_instruction)

    def _on_instruction(self, _uc: object, _address: int, _size: int, _user: object) -> None:
        self.count += 1

    def close(self, exit: Exit | None) -> None:
        pass


def run_in_process(exe: Path, instruments: list, config: MachineConfig) -> Processor:
    """Run exe on a fresh machine in this process (its output goes to the test's fd 1)."""
    machine = Machine(config)
    processor = Processor(config, machine.transport, machine.rpc_stats, machine.warn,
                          instruments)
    path = str(exe)
    exit = processor.run(path, [path.encode()], [], path.encode(), os.getcwd())
    assert exit == Exit(status=0)
    return processor


def guest(tmp_path: Path, iterations: int, rep_bytes: int = 8192) -> Path:
    return compile_c(tmp_path, "counted",
                     f"#define ITERATIONS {iterations}\n#define REP_BYTES {rep_bytes}\n" + GUEST)


def test_block_counts_equal_a_per_instruction_hook(tmp_path, capfd):
    reference = PerInstructionCounter()
    processor = run_in_process(guest(tmp_path, 20000), [reference],
                               MachineConfig(count_instructions=True))
    assert capfd.readouterr().out.endswith(" 7\n")
    counted = processor.clock.instructions
    assert counted is not None and counted > 100_000
    assert counted == reference.count
    assert 0 < processor.clock.counter.distinct_blocks < counted / 10


def test_rep_iterations_count_one_instruction_each(tmp_path, capfd):
    # Two guests that differ only in the length of one `rep movsb` (their paths have the same
    # length: start-up work depends on it).
    runs = []
    for name, rep_bytes in (("a", 1000), ("b", 4000)):
        (tmp_path / name).mkdir()
        runs.append(run_in_process(guest(tmp_path / name, 1000, rep_bytes), [],
                                   MachineConfig(count_instructions=True)))
    few, more = runs
    capfd.readouterr()
    assert more.clock.instructions - few.clock.instructions == 3000


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_agree_with_cachegrind(tmp_path, capfd):
    exe = guest(tmp_path, 1_000_000)
    processor = run_in_process(exe, [], MachineConfig(count_instructions=True))
    capfd.readouterr()
    cachegrind = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         str(exe)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    match = re.search(r"I\s+refs:\s+([\d,]+)", cachegrind.stderr)
    assert match, cachegrind.stderr
    reference = int(match.group(1).replace(",", ""))
    # glibc's start-up picks CPU-specific code (valgrind's virtual CPU is not Unicorn's):
    # a few ten thousand instructions of a few million.
    assert abs(processor.clock.instructions - reference) / reference < 0.02


def test_tick_fires_once_per_period(tmp_path, capfd):
    ticks: list[int] = []

    class Ticker:
        def attach(self, processor: Processor) -> None:
            counter = processor.clock.counter
            counter.set_tick(10_000, lambda: ticks.append(counter.instructions))

        def close(self, exit: Exit | None) -> None:
            pass

    processor = run_in_process(guest(tmp_path, 20000), [Ticker()],
                               MachineConfig(count_instructions=True))
    capfd.readouterr()
    total = processor.clock.instructions
    assert len(ticks) in (total // 10_000 - 1, total // 10_000)
    # A tick comes at the first block boundary past each period: never early, never far late.
    for previous, current in zip([0, *ticks], ticks):
        assert 10_000 <= current - previous < 10_000 + 200


def test_clock_and_modelled_statistics(tmp_path, capfd):
    config = MachineConfig(count_instructions=True, clock_hz=1e9, cpi=2.0)
    machine = Machine(config)
    exe = guest(tmp_path, 1000)
    result = machine.run(str(exe), [], {})
    capfd.readouterr()
    modelled = result.stats.modelled
    assert set(modelled) == {"instructions", "clock_hz", "cpi", "compute_s", "remote_s",
                             "total_s"}
    assert modelled["instructions"] > 10_000
    assert modelled["compute_s"] == pytest.approx(modelled["instructions"] * 2.0 / 1e9)
    assert modelled["remote_s"] == pytest.approx(machine.rpc_stats.modelled_s)
    assert modelled["remote_s"] > 0
    assert modelled["total_s"] == pytest.approx(modelled["compute_s"] + modelled["remote_s"])
    assert "modelled" in result.stats.summary()


def test_without_counting_the_compute_time_is_unknown(tmp_path, capfd):
    machine = Machine(MachineConfig())
    result = machine.run(str(guest(tmp_path, 10)), [], {})
    capfd.readouterr()
    modelled = result.stats.modelled
    assert modelled["instructions"] is None and modelled["compute_s"] is None
    assert modelled["total_s"] is None
    assert modelled["remote_s"] == pytest.approx(machine.rpc_stats.modelled_s)
    assert modelled["remote_s"] > 0
    assert isinstance(result.stats, RunStats)
    assert "instructions not counted" in result.stats.summary()


def test_count_instructions_decodes_a_block():
    disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
    nop, mov_rax_1, syscall = b"\x90", b"\x48\xc7\xc0\x01\x00\x00\x00", b"\x0f\x05"
    assert count_instructions(disassembler, nop + mov_rax_1 + syscall, 0x401000) == 3
    assert count_instructions(disassembler, b"", 0x401000) == 0
    # 0xd6 is not an instruction capstone knows in 64-bit mode: it and what follows count as
    # one instruction.
    assert count_instructions(disassembler, nop + b"\xd6" + nop, 0x401000) == 2
