"""-dfilter specs: parsing, resolving symbols, merging."""

from __future__ import annotations

import pytest

from legorun.errors import UsageError
from legorun.trace.filters import AddressFilter, AddressRange, contains, merge
from legorun.trace.symbols import Function, Symbolizer

SYMBOLS = Symbolizer([Function("main", 0x401000, 0x401080), Function("work", 0x401080, 0x4010c0),
                      Function("far", 0x500000, 0x500010)], [])


def ranges(*specs: str) -> tuple[AddressRange, ...]:
    return AddressFilter.parse(specs).resolve(SYMBOLS)


@pytest.mark.parametrize("spec, expected", [
    ("0x1000..0x1fff", (0x1000, 0x2000)),  # END is included, as in qemu
    ("0x1000+0x10", (0x1000, 0x1010)),
    ("0x1000-0x10", (0x0ff1, 0x1001)),  # the LEN bytes ending at START
    ("4096..4100", (4096, 4101)),  # decimal
    ("0X1A+2", (0x1A, 0x1C)),
    (" 0x10..0x20 ", (0x10, 0x21)),
    ("0x10..0x10", (0x10, 0x11)),
])
def test_address_ranges(spec: str, expected: tuple[int, int]) -> None:
    assert ranges(spec) == (AddressRange(*expected),)


def test_symbols_resolve_to_their_function() -> None:
    assert ranges("work") == (AddressRange(0x401080, 0x4010c0),)


def test_items_and_specs_combine_sorted_and_merged() -> None:
    # main and work touch: one range; far stays apart; the two specs add up.
    assert ranges("far,work", "main") == (AddressRange(0x401000, 0x4010c0),
                                          AddressRange(0x500000, 0x500010))


def test_overlapping_ranges_merge() -> None:
    assert merge([AddressRange(10, 20), AddressRange(0, 5), AddressRange(15, 30),
                  AddressRange(5, 6)]) == (AddressRange(0, 6), AddressRange(10, 30))


def test_empty_filter_is_false_and_resolves_to_nothing() -> None:
    address_filter = AddressFilter.parse(())
    assert not address_filter
    assert address_filter.resolve(SYMBOLS) == ()
    assert AddressFilter.parse(["main"])
    assert AddressFilter.parse(["0x1+1"])


def test_contains() -> None:
    found = ranges("0x10..0x1f,0x40+0x10")
    assert contains(found, 0x10) and contains(found, 0x1f) and contains(found, 0x4f)
    assert not contains(found, 0x20) and not contains(found, 0x3f) and not contains(found, 0x50)


def test_symbols_wait_for_resolution() -> None:
    # Parsing never needs the program: a symbol is checked only once it is loaded.
    parsed = AddressFilter.parse(["nosuch,0x10+1"])
    assert parsed.symbols == ("nosuch",)
    with pytest.raises(UsageError, match="no function named 'nosuch'"):
        parsed.resolve(SYMBOLS)


@pytest.mark.parametrize("spec, message", [
    ("", "empty item"),
    ("main,", "empty item"),
    ("0x12zz", "bad range"),
    ("12ab..0x20", "bad range"),
    ("0x10..", "bad range"),
    ("main+4", "bad range"),
    ("0x10...0x20", "bad range"),
    ("0x20..0x10", "empty or impossible"),
    ("0x10+0", "empty or impossible"),
    ("0x10-0x20", "empty or impossible"),
    ("0xffffffffffffffff+2", "empty or impossible"),
])
def test_bad_specs_are_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        AddressFilter.parse([spec])
