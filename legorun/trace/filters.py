"""-dfilter: the code addresses that -d and --trace-mem are limited to.

Each spec is a comma-separated list of items, as qemu's -dfilter takes them:
`START..END` (END included), `START+LEN`, `START-LEN` (the LEN bytes ending at START), where
numbers are decimal or 0x-prefixed hex; or the name of a function in the program's symbol
table. Syntax is checked when the command line is read; symbols are resolved once the
program is loaded, because a position-independent program's addresses are known only then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from legorun.errors import UsageError
from legorun.trace.symbols import Symbolizer

_NUMBER = r"(0[xX][0-9a-fA-F]+|[0-9]+)"
_RANGE = re.compile(rf"{_NUMBER}(\.\.|\+|-){_NUMBER}")
_SYMBOL = re.compile(r"[A-Za-z_.$][\w.$@]*")
ADDRESS_LIMIT = 1 << 64


@dataclass(frozen=True, slots=True)
class AddressRange:
    start: int
    end: int  # exclusive

    def __contains__(self, address: int) -> bool:
        return self.start <= address < self.end


@dataclass(frozen=True, slots=True)
class AddressFilter:
    """The parsed filter: fixed ranges and the symbols still to be resolved."""

    ranges: tuple[AddressRange, ...]
    symbols: tuple[str, ...]

    @classmethod
    def parse(cls, specs: tuple[str, ...] | list[str]) -> AddressFilter:
        ranges: list[AddressRange] = []
        symbols: list[str] = []
        for spec in specs:
            for item in spec.split(","):
                item = item.strip()
                if not item:
                    raise UsageError(f"-dfilter {spec!r}: empty item")
                if _SYMBOL.fullmatch(item):
                    symbols.append(item)
                else:
                    ranges.append(_parse_range(item))
        return cls(tuple(ranges), tuple(symbols))

    def __bool__(self) -> bool:
        return bool(self.ranges or self.symbols)

    def resolve(self, symbols: Symbolizer) -> tuple[AddressRange, ...]:
        """The filter's address ranges, sorted and merged; an unknown symbol is a usage error."""
        ranges = list(self.ranges)
        for name in self.symbols:
            function = symbols.lookup_function(name)
            if function is None:
                raise UsageError(f"-dfilter: no function named {name!r} in the program")
            ranges.append(AddressRange(function.start, function.end))
        return merge(ranges)


def merge(ranges: list[AddressRange]) -> tuple[AddressRange, ...]:
    """Sorted, disjoint ranges covering the same addresses."""
    merged: list[AddressRange] = []
    for current in sorted(ranges, key=lambda r: r.start):
        if merged and current.start <= merged[-1].end:
            last = merged.pop()
            current = AddressRange(last.start, max(last.end, current.end))
        merged.append(current)
    return tuple(merged)


def contains(ranges: tuple[AddressRange, ...], address: int) -> bool:
    return any(address in r for r in ranges)


def _number(text: str) -> int:
    return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)


def _parse_range(item: str) -> AddressRange:
    match = _RANGE.fullmatch(item)
    if match is None:
        raise UsageError(f"-dfilter: bad range {item!r} (expected START..END, START+LEN, "
                         "START-LEN or a function name)")
    first, operator, second = _number(match[1]), match[2], _number(match[3])
    if operator == "..":
        start, end = first, second + 1
    elif operator == "+":
        start, end = first, first + second
    else:
        start, end = first - second + 1, first + 1
    if start < 0 or end > ADDRESS_LIMIT or start >= end:
        raise UsageError(f"-dfilter: empty or impossible range {item!r}")
    return AddressRange(start, end)
