"""Per-slot line flags shared with the compiled hook (legorun/native/excache.c).

The low three bits of a slot's flag byte are its protection (PROT_READ/WRITE/EXEC);
the bits below say whether the line is dirty and whether it was used since the clock hand
last passed.
"""

from __future__ import annotations

LINE_PROT_MASK = 0x7
LINE_DIRTY = 1 << 3
LINE_REFERENCED = 1 << 4

EMPTY_TAG = (1 << 64) - 1
