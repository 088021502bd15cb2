"""ExCache eviction policies: which way of a full set gives up its line.

One policy object serves the whole cache; it keeps per-set state indexed by set number.
`inserted` and `invalidated` keep it informed; `victim` is asked only when a set has no free
way. LegoOS's pcache evicts FIFO by default (managers/processor/pcache/evict_fifo.c in intent).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Protocol

from legorun.cache.lines import LINE_REFERENCED


class EvictionPolicy(Protocol):
    name: str

    def inserted(self, set_index: int, way: int) -> None: ...

    def invalidated(self, set_index: int, way: int) -> None: ...

    def victim(self, set_index: int, flags: memoryview, first_slot: int) -> int: ...


class FifoPolicy:
    """Evict the line that entered its set first."""

    name = "fifo"

    def __init__(self, sets: int, assoc: int) -> None:
        self._order: list[deque[int]] = [deque() for _ in range(sets)]

    def inserted(self, set_index: int, way: int) -> None:
        self._order[set_index].append(way)

    def invalidated(self, set_index: int, way: int) -> None:
        self._order[set_index].remove(way)

    def victim(self, set_index: int, flags: memoryview, first_slot: int) -> int:
        return self._order[set_index].popleft()


class ClockPolicy:
    """Approximate LRU: the clock algorithm over reference bits.

    The compiled TLB-fill hook sets a line's reference bit whenever QEMU's TLB misses on it,
    which happens on first use after every TLB flush (each eviction flushes, and a periodic
    tick flushes too). So a set bit means "used since the hand last passed"; the hand clears
    bits as it sweeps and evicts the first line whose bit is clear.
    """

    name = "lru"

    def __init__(self, sets: int, assoc: int) -> None:
        self._assoc = assoc
        self._hand = [0] * sets

    def inserted(self, set_index: int, way: int) -> None:
        pass

    def invalidated(self, set_index: int, way: int) -> None:
        pass

    def victim(self, set_index: int, flags: memoryview, first_slot: int) -> int:
        hand = self._hand[set_index]
        assoc = self._assoc
        # Two sweeps always find a victim: the first clears every bit it passes.
        for _ in range(2 * assoc):
            slot = first_slot + hand
            if flags[slot] & LINE_REFERENCED:
                flags[slot] &= ~LINE_REFERENCED
                hand = (hand + 1) % assoc
            else:
                self._hand[set_index] = (hand + 1) % assoc
                return hand
        self._hand[set_index] = (hand + 1) % assoc
        return hand


class RandomPolicy:
    """Evict a uniformly chosen way; seeded, so runs are reproducible."""

    name = "random"

    def __init__(self, sets: int, assoc: int, seed: int = 0) -> None:
        self._assoc = assoc
        self._rng = random.Random(seed)

    def inserted(self, set_index: int, way: int) -> None:
        pass

    def invalidated(self, set_index: int, way: int) -> None:
        pass

    def victim(self, set_index: int, flags: memoryview, first_slot: int) -> int:
        return self._rng.randrange(self._assoc)


POLICIES = {"fifo": FifoPolicy, "lru": ClockPolicy, "random": RandomPolicy}


def make_policy(name: str, sets: int, assoc: int, seed: int = 0) -> EvictionPolicy:
    if name == "random":
        return RandomPolicy(sets, assoc, seed)
    return POLICIES[name](sets, assoc)
