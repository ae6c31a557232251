"""The worker's garbage collector: raised thresholds, start-up objects frozen, pauses measured.

Each batch allocates tens of thousands of short-lived containers (rows, events, states), and
the worker holds hundreds of thousands of long-lived ones (customer states, Faust's tables and
buffers). With CPython's default thresholds (700, 10, 10) a young collection ran every 700
allocations and an old one, which walks everything held, every 70,000: on the bench that was a
third of the worker's CPU (0.247-0.267 -> 0.146-0.153 CPU s per 1,000 events, 100,000 events,
alternating runs, with thresholds of 50,000, 50, 100). Touchpoint's own data holds no reference
cycles, so collecting less often only lets the few cycles of libraries wait a little longer;
peak RSS did not change (468-502 MB both ways).

A young collection walks the young objects still alive, whatever the threshold: mostly customer
states between two batches and rows waiting in the sink. At 50,000 that was 27-32 pauses of
about 18 ms per 100,000 bench events (0.50-0.52 s, read from ``cx_gc_pause_seconds``); at the
default of 500,000 net allocations it is one pause of about 0.22 s (0.85 against 0.89 CPU s per
1,000 events, alternating runs), far below the latency target of 2 s.
``TOUCHPOINT_GC_THRESHOLD=700,10,10`` restores CPython's default.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram


def parse_threshold(raw: str) -> tuple[int, int, int]:
    """``"50000,50,100"`` -> (50000, 50, 100); ValueError unless three positive integers."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"expected three positive integers like 50000,50,100, not {raw!r}")
    first, second, third = (int(part) for part in parts)
    return first, second, third


def apply(raw: str) -> None:
    gc.set_threshold(*parse_threshold(raw))


def freeze_start_up() -> None:
    """Leave everything that exists now out of every later collection (``gc.freeze``).

    Called once the worker is built, before it consumes: the modules, Faust's app, the model and
    the metrics live as long as the process, and a full collection walked them all (about
    0.4 s on the bench, measured with :func:`measure_pauses`; 0.04 s frozen)."""
    gc.collect()
    gc.freeze()


def measure_pauses(pauses: Histogram) -> None:
    """Observe every collection's duration into ``pauses`` (labelled by generation): a pause stops
    every thread of the worker, so it shows in event latency."""
    started: list[float] = []

    def observe(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

    gc.callbacks.append(observe)
