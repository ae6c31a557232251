"""The ceiling: a bare aiokafka consumer that parses every value with orjson and does nothing else.

No framework, no state, no writes: as fast as Python reads this broker. Avro-framed values (a
fifth of the mix) fail orjson's parse at the first byte and are counted like the rest.
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaConsumer

from touchpoint.bench.peers import PeerConfig, Progress


async def consume(config: PeerConfig) -> None:
    consumer = AIOKafkaConsumer(
        *config.topics, bootstrap_servers=config.bootstrap_servers.split(","), group_id=config.group_id,
        auto_offset_reset="earliest", enable_auto_commit=True, max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    progress = Progress(config.total)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for record in records:
                    try:
                        orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        pass
                    progress.add()
    finally:
        await consumer.stop()


def main() -> None:
    asyncio.run(consume(PeerConfig.from_env()))


if __name__ == "__main__":
    main()
