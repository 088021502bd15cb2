"""cachegrind's output, for --cache-sim: the cachegrind.out.<pid> file that cg_annotate reads,
and the end-of-run summary cachegrind prints on stderr.

The file (valgrind 3.19's format):

    desc: I1 cache:         32768 B, 64 B, 8-way associative
    desc: D1 cache:         ...
    desc: LL cache:         ...
    desc: ExMiss: ExCache misses (...)          legorun's two extra events, explained
    desc: RPC: ...
    cmd: ./prog arg
    events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw ExMiss RPC
    fl=/path/to/file.c                          costs by source file,
    fn=main                                     then by function,
    12 4 0 0 1 0 0 0 0 0 0 0                    then by line: the line, then one count per event
    summary: ...                                the totals

Instruction addresses are attributed to a function by the program's symbol table and to a
source line by its DWARF line table; what neither knows is `???` (line 0), as in cachegrind.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Iterable, Sequence, TextIO

from legorun.trace.symbols import UNKNOWN, Symbolizer

if TYPE_CHECKING:
    from legorun.cache.vcache import Hierarchy
    from legorun.config import CacheGeometry

# cachegrind's nine events, then legorun's: ExCache misses and RPCs charged to the instruction
# that was running when they happened.
EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw", "ExMiss", "RPC")
(IR, I1MR, ILMR, DR, D1MR, DLMR, DW, D1MW, DLMW, EXMISS, RPC) = range(len(EVENTS))
EXTRA_EVENT_DESCRIPTIONS = (
    "ExMiss: ExCache misses (4 KiB lines not resident in the processor's DRAM cache)",
    "RPC: RPCs to the memory and storage managers",
)

# (source file, function, line) -> counts in EVENTS order
LineCosts = dict[tuple[str, str, int], list[int]]


def describe(cache: CacheGeometry) -> str:
    """cachegrind's wording of a cache (cg_sim.c)."""
    if cache.assoc == 1:
        return f"{cache.size} B, {cache.line_size} B, direct-mapped"
    return f"{cache.size} B, {cache.line_size} B, {cache.assoc}-way associative"


def line_costs(records: Iterable[tuple[int, Sequence[int]]], symbols: Symbolizer) -> LineCosts:
    """Sum the per-instruction counts by source file, function and line."""
    costs: LineCosts = defaultdict(lambda: [0] * len(EVENTS))
    for address, counts in records:
        where = symbols.source_line(address)
        key = (where.file, symbols.function_name(address), where.line) if where is not None \
            else (UNKNOWN, symbols.function_name(address), 0)
        total = costs[key]
        for i, count in enumerate(counts):
            total[i] += count
    return dict(costs)


def totals(costs: LineCosts) -> list[int]:
    total = [0] * len(EVENTS)
    for counts in costs.values():
        for i, count in enumerate(counts):
            total[i] += count
    return total


def write(stream: TextIO, caches: Hierarchy, argv: Sequence[str], costs: LineCosts) -> None:
    """The cachegrind.out file: entries sorted by file, function and line, as cachegrind's."""
    stream.write(f"desc: I1 cache:         {describe(caches.i1)}\n"
                 f"desc: D1 cache:         {describe(caches.d1)}\n"
                 f"desc: LL cache:         {describe(caches.ll)}\n")
    for description in EXTRA_EVENT_DESCRIPTIONS:
        stream.write(f"desc: {description}\n")
    stream.write(f"cmd: {' '.join(argv)}\n")
    stream.write(f"events: {' '.join(EVENTS)}\n")
    current_file = current_function = None
    for (file, function, line), counts in sorted(costs.items()):
        if file != current_file:
            stream.write(f"fl={file}\n")
            current_file, current_function = file, None
        if function != current_function:
            stream.write(f"fn={function}\n")
            current_function = function
        stream.write(f"{line} {' '.join(map(str, counts))}\n")
    stream.write(f"summary: {' '.join(map(str, totals(costs)))}\n")


def summary(total: Sequence[int], pid: int) -> str:
    """What cachegrind (3.19, --cache-sim=yes) prints on stderr at exit, with legorun's two
    events after it."""
    ir, i1mr, ilmr, dr, d1mr, dlmr, dw, d1mw, dlmw, exmiss, rpc = total
    l1, l2, l3 = _width(ir), _width(dr), _width(dw)
    lines = [""]

    def counts(label: str, value: int) -> None:
        lines.append(f"{label:<14} {value:>{l1},}")

    def split(label: str, value: int, read: int, write: int) -> None:
        lines.append(f"{label:<14} {value:>{l1},}  ({read:>{l2},} rd   + {write:>{l3},} wr)")

    def rates(label: str, value: float, read: float, write: float) -> None:
        lines.append(f"{label:<14} {value:>{l1}.1f}% ({read:>{l2}.1f}%     + {write:>{l3}.1f}%  )")

    counts("I   refs:", ir)
    counts("I1  misses:", i1mr)
    counts("LLi misses:", ilmr)
    refs = max(ir, 1)
    lines.append(f"I1  miss rate: {i1mr * 100.0 / refs:>{l1}.2f}%")
    lines.append(f"LLi miss rate: {ilmr * 100.0 / refs:>{l1}.2f}%")
    lines.append("")
    d, d1m, dlm = dr + dw, d1mr + d1mw, dlmr + dlmw
    split("D   refs:", d, dr, dw)
    split("D1  misses:", d1m, d1mr, d1mw)
    split("LLd misses:", dlm, dlmr, dlmw)
    rates("D1  miss rate:", d1m * 100.0 / max(d, 1), d1mr * 100.0 / max(dr, 1),
          d1mw * 100.0 / max(dw, 1))
    rates("LLd miss rate:", dlm * 100.0 / max(d, 1), dlmr * 100.0 / max(dr, 1),
          dlmw * 100.0 / max(dw, 1))
    lines.append("")
    split("LL refs:", d1m + i1mr, d1mr + i1mr, d1mw)
    split("LL misses:", dlm + ilmr, dlmr + ilmr, dlmw)
    rates("LL miss rate:", (dlm + ilmr) * 100.0 / (refs + max(d, 1)),
          (dlmr + ilmr) * 100.0 / (refs + max(dr, 1)), dlmw * 100.0 / max(dw, 1))
    lines.append("")
    counts("ExCache misses:", exmiss)
    counts("RPCs:", rpc)
    return "".join(f"=={pid}== {line}\n" for line in lines)


def _width(value: int) -> int:
    """Characters of value printed with thousands separators (cachegrind's ULong_width)."""
    return len(f"{value:,}")
