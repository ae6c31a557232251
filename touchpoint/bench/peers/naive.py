"""The naive peer: the job written the obvious way in Faust.

Per event: decode, forward to a topic keyed by customer, read and write a Table entry, and insert
into ClickHouse every ``batch_rows`` rows with a blocking client. The re-keying is the per-event
``event.forward`` that ``Stream.group_by`` does, written out, because ``group_by`` forwards the
raw message and the decoder needs the source topic's channel, which the repartition topic loses.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.types import StreamT

from touchpoint.bench.peers import PeerConfig, Progress, faust_peer_app, run_faust_peer
from touchpoint.bench.peers.job import (
    connect_and_create,
    decode_record,
    insert_rows,
    new_decoder,
    row_of,
    update_state,
)

FLUSH_SECONDS = 0.5


def build_app(config: PeerConfig) -> faust.App:
    app = faust_peer_app(config, "naive", value_serializer="json")
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(*config.topics, **raw)
    by_customer = app.topic(f"{config.group_id}-by-customer", partitions=config.partitions, internal=True, **raw)
    customers = app.Table("customers", default=dict, partitions=config.partitions)
    decoder = new_decoder()
    client = connect_and_create(config.clickhouse_url)
    progress = Progress(config.total)
    rows: list[tuple[Any, ...]] = []

    def flush() -> None:
        if rows:
            insert_rows(client, rows)
            progress.add(len(rows))
            rows.clear()

    @app.agent(source, name="ingest")
    async def ingest(stream: StreamT) -> None:
        async for event in stream.events():
            record = decode_record(decoder, event.message.value, config.topics[event.message.topic])
            if record is None:
                progress.add()
            else:
                await by_customer.send(key=record["customer_key"].encode(), value=orjson.dumps(record))

    @app.agent(by_customer, name="customer")
    async def customer(stream: StreamT) -> None:
        async for key, value in stream.items():
            record = orjson.loads(value)
            state = update_state(customers[key], record)
            customers[key] = state
            rows.append(row_of(record, state))
            if len(rows) >= config.batch_rows:
                flush()

    @app.timer(interval=FLUSH_SECONDS, name="flush")
    async def flush_remainder() -> None:
        flush()

    return app


def main() -> None:
    run_faust_peer(build_app(PeerConfig.from_env()), worker_runtime=False)


if __name__ == "__main__":
    main()
