"""Dead letters in one place: how a refusal travels on ``touchpoints.dlq`` and lands in ClickHouse.

The DLQ message keeps the original key and bytes untouched as its key and value; what went wrong
travels in headers (reason, step, detail, source topic, partition, offset, time), after PostHog's
ingestion pipeline. The dead-letter agent turns those headers back into a ``dead_letters`` row.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from pipeline.model import DeadLetter

HEADER_PREFIX = "tp-"


def dead_letter_headers(
    letter: DeadLetter, topic: str, partition: int, offset: int, at: float | None = None
) -> list[tuple[str, bytes]]:
    fields = {
        "reason": letter.reason.value,
        "step": letter.step,
        "detail": letter.detail,
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
        "time": f"{time.time() if at is None else at:.3f}",
    }
    return [(HEADER_PREFIX + name, value.encode()) for name, value in fields.items()]


def dead_letter_row(
    headers: Iterable[tuple[str, Any]] | None, key: bytes | None, value: bytes | None
) -> dict[str, Any]:
    """The ``dead_letters`` row for one DLQ message; the original bytes are stored as they came."""
    found = {
        name[len(HEADER_PREFIX):]: (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
        for name, raw in (headers or ())
        if name.startswith(HEADER_PREFIX)
    }
    return {
        "topic": found.get("topic", ""),
        "partition": int(found.get("partition") or 0),
        "offset": int(found.get("offset") or 0),
        "reason": found.get("reason", "unknown"),
        "step": found.get("step", ""),
        "detail": found.get("detail", ""),
        "key": key or b"",
        "payload": value or b"",
        "received_at": int(float(found.get("time") or time.time())),
    }

