"""The syscall table lists every x86-64 number with its status, and `--list-syscalls` shows it."""

from __future__ import annotations

import subprocess
import sys

from syscalls.numbers import SYSCALL_NAMES
from syscalls.table import IGNORED, SyscallTable


def test_every_number_is_listed_in_order_with_its_linux_name():
    table = SyscallTable.build()
    assert list(table.entries) == sorted(SYSCALL_NAMES)
    assert table.entries[0].name == "read"
    assert table.entries[59].name == "execve"
    assert table.entries[231].name == "exit_group"
    assert table.entries[334].name == "rseq"


def test_enough_calls_are_implemented_and_named_after_their_syscall():
    table = SyscallTable.build()
    implemented = [e for e in table.entries.values() if e.status == "implemented"]
    assert len(implemented) >= 160
    for entry in implemented:
        assert entry.handler.__name__ == f"sys_{entry.name}", entry
        assert len(entry.converters) <= 6


def test_statuses_are_the_three_kinds():
    table = SyscallTable.build()
    statuses = {e.status for e in table.entries.values()}
    assert statuses == {"implemented", "ignored", "missing"}
    assert all((e.handler is IGNORED) == (e.status == "ignored") for e in table.entries.values())


def test_list_syscalls_prints_the_table():
    out = subprocess.run(
        [sys.executable, "-m", "legorun", "--list-syscalls"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert len(out) == len(SYSCALL_NAMES)
    assert out[0].split() == ["0", "read", "implemented"]
    assert all(line.split()[2] in ("implemented", "ignored", "missing") for line in out)
