"""Touchpoint's domain code alone: a bare aiokafka consumer feeding the pure pipeline.

Decode, the customer step (journeys, scores, customer alert rules, every row it emits) and the
channel windows and rules, with each customer's state decoded from and encoded to bytes once per
fetched batch, as the worker does. No framework, no Kafka writes (no forwarding, no changelog),
no ClickHouse, no identity resolution: an anonymous event is keyed by its primary identifier.
It measures what the domain work costs on its own, on the same data in the same run, so the gap
between it and the worker is what Faust, Kafka and ClickHouse add (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline.channel_health import ChannelHealth
from pipeline.config import load_model_config
from pipeline.customer import CustomerStep
from pipeline.identifiers import identifier_key, primary_identifier
from pipeline.identity import anonymous_key
from pipeline.model import Event
from pipeline.state_codec import state_from_json, state_to_json
from touchpoint.bench.peers import PeerConfig, Progress, use_worker_runtime
from touchpoint.bench.peers.job import new_decoder
from touchpoint.gc_tuning import freeze_start_up


async def consume(config: PeerConfig) -> None:
    consumer = AIOKafkaConsumer(
        *config.topics, bootstrap_servers=config.bootstrap_servers.split(","), group_id=config.group_id,
        auto_offset_reset="earliest", enable_auto_commit=True, max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    model = load_model_config(None)
    step, health, decode = CustomerStep(model), ChannelHealth(model), new_decoder().decode
    table: dict[bytes, bytes] = {}
    progress = Progress(config.total)
    freeze_start_up()  # as the worker does once it is built
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            now_ms = int(time.time() * 1000)
            states: dict[bytes, Any] = {}
            for records in batches.values():
                channel = config.topics[records[0].topic] if records else None
                for record in records:
                    result = decode(record.value, channel, now_ms)
                    if isinstance(result, Event):
                        key = (result.customer_id or anonymous_key(identifier_key(
                            *primary_identifier(result.identifiers)))).encode()
                        state = states[key] if key in states else state_from_json(table.get(key))
                        new_state, emitted = step.apply_event(state, key.decode(), result)
                        states[key] = new_state
                        if not emitted.duplicate:
                            health.observe(result, emitted.touchpoint_score)
                    progress.add()
            for key, state in states.items():
                table[key] = state_to_json(state)
            health.take_figures()
    finally:
        await consumer.stop()


def main() -> None:
    use_worker_runtime()
    asyncio.run(consume(PeerConfig.from_env()))


if __name__ == "__main__":
    main()
