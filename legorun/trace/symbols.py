"""Addresses to names: the function (ELF symbol table) and the source file and line (DWARF
line table) of a code address, and the address range of a named function.

Built once per run from the program's file with pyelftools; lookups are bisections over
sorted tables. `bias` is the load bias of a position-independent program: every address the
guest sees is the file's address plus the bias.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

UNKNOWN = "???"


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    start: int  # guest address
    end: int  # exclusive


@dataclass(frozen=True, slots=True)
class SourceLine:
    file: str
    line: int


class Symbolizer:
    def __init__(self, functions: list[Function], rows: list[tuple[int, SourceLine | None]]) -> None:
        self._functions = sorted(functions, key=lambda f: f.start)
        self._starts = [f.start for f in self._functions]
        self._rows = rows  # (address, line or None for an end of sequence), sorted
        self._row_addrs = [address for address, _ in rows]
        self._by_name = {f.name: f for f in reversed(self._functions)}

    @classmethod
    def load(cls, path: Path, bias: int = 0) -> Symbolizer:
        """Read symbols and line tables; a file without them (or not ELF) gives none."""
        try:
            with open(path, "rb") as stream:
                elf = ELFFile(stream)
                return cls(_functions(elf, bias), _line_rows(elf, bias))
        except (OSError, ELFError, ValueError, KeyError, IndexError, AttributeError):
            return cls([], [])

    def function(self, address: int) -> Function | None:
        """The function containing address (sized symbols; else the nearest one below)."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        found = self._functions[i]
        return found if address < found.end else None

    def function_name(self, address: int) -> str:
        found = self.function(address)
        return found.name if found else UNKNOWN

    def source_line(self, address: int) -> SourceLine | None:
        i = bisect.bisect_right(self._row_addrs, address) - 1
        return self._rows[i][1] if i >= 0 else None

    def lookup_function(self, name: str) -> Function | None:
        return self._by_name.get(name)


def _functions(elf: ELFFile, bias: int) -> list[Function]:
    found: dict[int, Function] = {}
    for section in elf.iter_sections():
        if not isinstance(section, SymbolTableSection):
            continue
        for symbol in section.iter_symbols():
            if symbol["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC") or not symbol.name:
                continue
            start = symbol["st_value"] + bias
            size = max(symbol["st_size"], 1)
            # Aliases share an address: keep the first, globals before locals as they come.
            if start not in found or found[start].end - found[start].start < size:
                found[start] = Function(symbol.name, start, start + size)
    return list(found.values())


def _line_rows(elf: ELFFile, bias: int) -> list[tuple[int, SourceLine | None]]:
    if not elf.has_dwarf_info():
        return []
    dwarf = elf.get_dwarf_info()
    rows: list[tuple[int, SourceLine | None]] = []
    for unit in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(unit)
        if program is None:
            continue
        names = _file_names(program, unit)
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if state.end_sequence:
                rows.append((state.address + bias, None))
            else:
                rows.append((state.address + bias,
                             SourceLine(names.get(state.file, UNKNOWN), state.line)))
    rows.sort(key=lambda row: (row[0], row[1] is not None))
    return rows


def _file_names(program, unit) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """File index -> path as cachegrind shows it (directory joined to the name)."""
    header = program.header
    directories = [_text(d) for d in header["include_directory"]]
    comp_dir = _text(unit.get_top_DIE().attributes.get("DW_AT_comp_dir").value) \
        if "DW_AT_comp_dir" in unit.get_top_DIE().attributes else ""
    version = header["version"]
    names: dict[int, str] = {}
    for index, entry in enumerate(header["file_entry"]):
        name = _text(entry.name)
        dir_index = entry.dir_index
        if version >= 5:
            directory = directories[dir_index] if dir_index < len(directories) else ""
            key = index
        else:
            directory = directories[dir_index - 1] if 0 < dir_index <= len(directories) else comp_dir
            key = index + 1
        if directory and not os.path.isabs(directory) and comp_dir:
            directory = os.path.join(comp_dir, directory)
        names[key] = os.path.join(directory, name) if directory else name
    return names


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
