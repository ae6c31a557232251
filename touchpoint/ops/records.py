"""Event records in the producer contract's shape: read from files, rebuilt from ClickHouse.

Replay and backfill publish what a producer would have published (the JSON form of
``schemas/avro/touchpoint_event.avsc`` or ``identity_link.avsc``), so a re-ingested event takes
the same path through the worker as the original and keeps its ``event_id``, which is what makes
re-ingesting idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro

from pipeline.config import DIMENSION_BY_CHANNEL
from pipeline.model import Event, Feedback, IdentityLink

AVRO_MAGIC = b"Obj\x01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

Record = dict[str, Any]


class RecordFileError(ValueError):
    """A file cannot be read as JSON lines or an Avro object container file; names the line."""


def read_records(path: Path) -> Iterator[Record]:
    """Records from an Avro object container file (by its magic bytes) or a JSON-lines file."""
    with open(path, "rb") as head:
        is_avro = head.read(4) == AVRO_MAGIC
    return _read_avro(path) if is_avro else _read_jsonl(path)


def _read_jsonl(path: Path) -> Iterator[Record]:
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordFileError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise RecordFileError(f"{path}:{number}: not a JSON object")
            yield record


def _read_avro(path: Path) -> Iterator[Record]:
    """Avro records as JSON-ready dicts: a timestamp-millis field becomes epoch milliseconds."""
    with open(path, "rb") as data:
        for record in fastavro.reader(data):
            yield {name: _json_ready(value) for name, value in record.items()}


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def contract_record(item: Event | IdentityLink) -> Record:
    """A decoded event or link as the producer record that yields it again."""
    if isinstance(item, IdentityLink):
        return {"event_id": item.event_id, "occurred_at": item.occurred_at_ms,
                "customer_id": item.customer_id, "identifiers": dict(item.identifiers)}
    return {
        "event_id": item.event_id,
        "occurred_at": item.occurred_at_ms,
        "channel": item.channel,
        "type": item.type,
        "customer_id": item.customer_id,
        "identifiers": dict(item.identifiers) or None,
        "attributes": dict(item.attributes) or None,
        "feedback": {"kind": item.feedback.kind, "score": item.feedback.score} if item.feedback else None,
        "value": item.value,
    }


def event_from_touchpoint_row(row: Mapping[str, Any]) -> Event:
    """Rebuild an event from its ``touchpoints`` row, as faithfully as the row allows.

    Kept: event id, event time (ms), channel, type, feedback, value, the breakdown dimension (as
    the attribute it was derived from) and the key the event was attributed to, which becomes the
    customer id so the event reaches the same customer state (an anonymous key routes to itself).
    Lost, because the table does not store them: the other attributes (wait times, load times,
    transfers... which feed the score, so a re-ingested event that the worker no longer holds as
    recent is re-scored from type, feedback and value alone) and the identifiers, so a replayed
    anonymous event is not re-routed through identity resolution; the BI views still stitch it.
    """
    dimension = row["dimension"]
    attributes: dict[str, str] = {}
    if dimension:
        if row["channel"] == "web":
            attributes["page"] = f"/{dimension}"
        elif row["channel"] in DIMENSION_BY_CHANNEL:
            attributes[DIMENSION_BY_CHANNEL[row["channel"]]] = dimension
    kind, score = row["feedback_kind"], row["feedback_score"]
    return Event(
        event_id=row["event_id"],
        occurred_at_ms=int(row["occurred_at_ms"]),
        channel=row["channel"],
        type=row["type"],
        customer_id=row["customer_key"],
        attributes=attributes,
        feedback=Feedback(kind, int(score)) if kind and score is not None else None,
        value=row["value"],
    )


def parse_time(text: str) -> int:
    """Epoch milliseconds from epoch milliseconds or an ISO-8601 time (``Z`` or an offset)."""
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z for UTC")
    return (parsed - _EPOCH) // _ONE_MS
