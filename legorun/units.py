"""Parsing of sizes (64K, 1G), durations (4.63us), bandwidths (2GB/s, 40Gbit/s) and
frequencies (2.4GHz)."""

from __future__ import annotations

import re

SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
TIME_SUFFIXES = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
RATE_UNITS = {"B/s": 1.0, "bit/s": 0.125, "b/s": 0.125, "bps": 0.125}
RATE_PREFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_size(text: str) -> int:
    """'64K' -> 65536 (binary multiples; an optional trailing 'B' or 'iB' is accepted)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 64K, 256M, 1G)")
    return int(match.group(1)) * SIZE_SUFFIXES[match.group(2).upper()]


def parse_duration(text: str) -> float:
    """'4.63us' -> 4.63e-6 seconds."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e-?\d+)?)\s*(s|ms|us|µs|ns)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 4.63us, 1ms, 0s)")
    return float(match.group(1)) * TIME_SUFFIXES[match.group(2)]


def parse_bandwidth(text: str) -> float:
    """'40Gbit/s' -> 5e9 bytes per second; '2.17GB/s' -> 2.17e9 (decimal prefixes)."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e\d+)?)\s*([KMGT]?)(B/s|bit/s|b/s|bps)\s*", text)
    if not match:
        raise ValueError(f"not a bandwidth: {text!r} (examples: 2.17GB/s, 40Gbit/s)")
    value = float(match.group(1)) * RATE_PREFIXES[match.group(2)] * RATE_UNITS[match.group(3)]
    if value <= 0:
        raise ValueError(f"bandwidth must be positive: {text!r}")
    return value


def parse_frequency(text: str) -> float:
    """'2.4GHz' -> 2.4e9 cycles per second (a bare number is Hz)."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e\d+)?)\s*([KMGT]?)(?:Hz)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a frequency: {text!r} (examples: 2.4GHz, 800MHz)")
    try:
        value = float(match.group(1)) * RATE_PREFIXES[match.group(2).upper()]
    except ValueError:
        raise ValueError(f"not a frequency: {text!r} (examples: 2.4GHz, 800MHz)") from None
    if value <= 0:
        raise ValueError(f"frequency must be positive: {text!r}")
    return value


def format_size(nbytes: int) -> str:
    for suffix, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale}{suffix}"
    return str(nbytes)
