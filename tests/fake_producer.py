"""Faust's producer as Touchpoint's outboxes see it, for unit tests without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatch

Record = tuple[bytes, bytes | None, int, list[Any]]


class FakeFaustProducer:
    """Faust's producer as the outbox sees it: an accessor of a (here unstarted) aiokafka producer
    whose submitted batches are kept, and drained as the sender would when ``drain`` is called."""

    def __init__(self, max_batch_size: int = 16384) -> None:
        self.aiokafka = AIOKafkaProducer(max_batch_size=max_batch_size)
        self.aiokafka.send_batch = self._send_batch  # type: ignore[method-assign]
        self.submitted: list[tuple[str, int, Any, asyncio.Future[None]]] = []
        self.sent: list[tuple[str, int, list[Record]]] = []

    def _ensure_producer(self) -> AIOKafkaProducer:
        return self.aiokafka

    async def _send_batch(self, builder: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submitted.append((topic, partition, builder, future))
        return future

    def drain(self) -> None:
        for topic, partition, builder, future in self.submitted:
            batch = DefaultRecordBatch(bytearray(builder._build()))  # closes it, as the sender's drain does
            self.sent.append((topic, partition, [(r.key, r.value, r.timestamp, list(r.headers)) for r in batch]))
            future.set_result(None)
        self.submitted = []
