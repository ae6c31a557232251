"""The worker's garbage-collector thresholds: collections every 50,000 allocations, not 700.

Each batch allocates tens of thousands of short-lived containers (rows, events, states), and
the worker holds hundreds of thousands of long-lived ones (customer states, Faust's tables and
buffers). With CPython's default thresholds (700, 10, 10) a young collection ran every 700
allocations and an old one, which walks everything held, every 70,000: on the bench that was a
third of the worker's CPU (0.247-0.267 -> 0.146-0.153 CPU s per 1,000 events, 100,000 events,
alternating runs). Touchpoint's own data holds no reference cycles, so collecting less often
only lets the few cycles of libraries wait a little longer; peak RSS did not change (468-502 MB
both ways). ``TOUCHPOINT_GC_THRESHOLD=700,10,10`` restores the default.
"""

from __future__ import annotations

import gc


def parse_threshold(raw: str) -> tuple[int, int, int]:
    """``"50000,50,100"`` -> (50000, 50, 100); ValueError unless three positive integers."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"expected three positive integers like 50000,50,100, not {raw!r}")
    first, second, third = (int(part) for part in parts)
    return first, second, third


def apply(raw: str) -> None:
    gc.set_threshold(*parse_threshold(raw))
