"""The job the naive Faust peer and the Quix Streams peer both do, so they differ only in framework.

Decode with Touchpoint's own decoder (the same bytes cost the same to parse everywhere), re-key by
customer, keep a small state per customer, and write one row per event to ClickHouse in batches.
It is deliberately less than Touchpoint does (no identity stitching, journeys or scores): a peer
that is cheaper per event can only make Touchpoint's ratios look worse, never better.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from clickhouse_driver import Client

from pipeline.decode import Decoder
from pipeline.identifiers import primary_identifier
from pipeline.model import Event
from pipeline.schema_registry import BundledSchemas
from sinks.clickhouse import connect
from touchpoint.settings import ClickHouseTarget

TABLE = "bench_touchpoints"
COLUMNS = ("event_id", "customer_key", "channel", "type", "occurred_at_ms", "touches")
DDL = f"""CREATE TABLE IF NOT EXISTS {{database}}.{TABLE}
(
    event_id String,
    customer_key String,
    channel String,
    type String,
    occurred_at_ms UInt64,
    touches UInt32
)
ENGINE = MergeTree ORDER BY event_id"""

Record = dict[str, Any]


def new_decoder() -> Decoder:
    return Decoder(BundledSchemas())


def decode_record(decoder: Decoder, raw: bytes | None, channel: str | None) -> Record | None:
    """The fields the job needs from one message, or None when it is not a touchpoint event."""
    result = decoder.decode(raw, channel, int(time.time() * 1000))
    if not isinstance(result, Event):
        return None
    if result.customer_id:
        customer_key = result.customer_id
    else:
        id_type, value = primary_identifier(result.identifiers)  # the decoder guarantees one
        customer_key = f"{id_type}:{value}"
    return {"event_id": result.event_id, "customer_key": customer_key, "channel": result.channel,
            "type": result.type, "occurred_at_ms": result.occurred_at_ms}


def update_state(state: dict[str, Any] | None, record: Record) -> dict[str, Any]:
    """A customer's state after one more event: touches, last event time and last channel."""
    state = dict(state or {})
    state["touches"] = state.get("touches", 0) + 1
    state["last_ms"] = max(state.get("last_ms", 0), record["occurred_at_ms"])
    state["last_channel"] = record["channel"]
    return state


def row_of(record: Record, state: dict[str, Any]) -> tuple[Any, ...]:
    return (record["event_id"], record["customer_key"], record["channel"], record["type"],
            record["occurred_at_ms"], state["touches"])


def connect_and_create(clickhouse_url: str) -> Client:
    """A client on the peer's own database, with the table created there."""
    target = ClickHouseTarget.from_url(clickhouse_url)
    client = connect(target, database="default")
    client.execute(f"CREATE DATABASE IF NOT EXISTS {target.database}")
    client.execute(DDL.format(database=target.database))
    return connect(target)


def insert_rows(client: Client, rows: Sequence[tuple[Any, ...]]) -> None:
    client.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES", list(rows))
