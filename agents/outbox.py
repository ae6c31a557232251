"""The records a stage run forwards to Touchpoint's internal topics, appended to open batches.

Faust's ``Producer.send`` is aiokafka's ``send`` per record: a metadata lookup, the partitioner
(which builds the topic's partition set twice), then the accumulator. On the bench's stream
about every second event is forwarded (links, repartitioned and anonymous events, hand-overs),
and the lookups alone were 3% of a worker's time. The hot path knows each record's partition
already (the key's murmur2, as the default partitioner computes it: the customers and identifiers
topics have the table's partition count by design), so it appends records to an aiokafka
``BatchBuilder`` per topic-partition with the public batch API.

A builder is submitted (``send_batch``) at the end of the run that opened it and is left open, as
aiokafka allows: later runs keep appending to it until the producer's sender drains it after the
linger time, and a closed (drained or full) builder is followed by a new one. So records of many
small runs still travel in one batch per partition, as with ``send``; submitting a closed builder
per run made every run's records a batch of their own, and the broker and every consumer paid
per batch.

The delivery futures of the batches a run appended to go into its acknowledgement: its offsets
are acknowledged only once what it forwarded is on the broker, so a produce that fails for good
makes the run's records come back instead of vanishing.

Order: records of one topic-partition keep the order they were added in (a hand-over after the
anonymous events it follows, as ``agents.hot_path`` needs). A run that fails midway and is
processed again forwards its first records twice; every consumer of these topics already takes
a record it has seen as a replay, as after a crash.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from typing import Any, Awaitable

KEY_PARTITION_CACHE = 1 << 16  # keys: about 15 MB when full
_M = 0x5BD1E995  # murmur2's mixing constant
_MASK = 0xFFFFFFFF
# Little-endian 32-bit word unpackers by word count, for keys of up to 255 bytes (longer ones build their own).
_UNPACK_WORDS = tuple(struct.Struct(f"<{count}I").unpack_from for count in range(64))
Headers = list[tuple[str, bytes]]  # a list: aiokafka's record builder takes no other sequence


@functools.lru_cache(maxsize=KEY_PARTITION_CACHE)
def key_partition(key: bytes, partitions: int) -> int:
    """The partition Faust's producer (aiokafka's default partitioner) gives ``key``.

    Cached: the hot path asks for the same customer and identifier keys again and again."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as aiokafka's
    ``murmur2`` computes it, about three times as fast: the 32-bit words are unpacked at once
    instead of byte by byte. On 200,000 bench events the keys outgrew the cache above, and
    aiokafka's function was 3% of the worker's time."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    unpack = _UNPACK_WORDS[words] if words < len(_UNPACK_WORDS) else struct.Struct(f"<{words}I").unpack_from
    for k in unpack(data):
        k = k * _M & _MASK
        k = (k ^ k >> 24) * _M & _MASK
        h = h * _M & _MASK ^ k
    tail = length & 3
    if tail:
        end = length & ~3
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = (h ^ data[end]) * _M & _MASK
    h = (h ^ h >> 13) * _M & _MASK
    return h ^ h >> 15


class _Batch:
    """A builder, and its delivery future once submitted."""

    __slots__ = ("builder", "delivered")

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.delivered: Awaitable[Any] | None = None


class Outbox:
    def __init__(self, producer: Any, partitions: int) -> None:
        """``producer`` is Faust's producer; its aiokafka producer is looked up when a builder is
        made (it exists only once the app has started)."""
        self._producer = producer
        self.partitions = partitions
        self._open: dict[tuple[str, int], _Batch] = {}  # the builder each topic-partition appends to
        self._unsubmitted: list[tuple[tuple[str, int], _Batch]] = []
        self._touched: dict[int, _Batch] = {}  # by id(): the batches this run appended to
        self._unmarked: set[tuple[str, int]] = set()  # topic-partitions written since mark_ends

    def add(self, topic: str, key: bytes, value: bytes | None, timestamp_ms: int | None,
            headers: Headers | None = None) -> None:
        """Queue a record for the partition its key maps to; it leaves after :meth:`send`."""
        headers = headers or []
        tp = (topic, key_partition(key, self.partitions))
        self._unmarked.add(tp)
        batch = self._open.get(tp)
        if batch is None or batch.builder.append(timestamp=timestamp_ms, key=key, value=value, headers=headers) is None:
            batch = self._open[tp] = _Batch(self._producer._ensure_producer().create_batch())  # Faust's accessor
            batch.builder.append(timestamp=timestamp_ms, key=key, value=value, headers=headers)  # an empty one takes any size
            self._unsubmitted.append((tp, batch))
        self._touched[id(batch)] = batch

    async def send(self) -> list[Awaitable[Any]]:
        """Submit the builders this run opened; returns the delivery futures of every batch it
        appended to (await them before acknowledging the run)."""
        if self._unsubmitted:
            unsubmitted, self._unsubmitted = self._unsubmitted, []
            send_batch = self._producer._ensure_producer().send_batch
            for (topic, partition), batch in unsubmitted:
                batch.delivered = await send_batch(batch.builder, topic, partition=partition)
        touched, self._touched = self._touched, {}
        return [batch.delivered for batch in touched.values() if batch.delivered is not None]

    async def mark_ends(self, key: bytes) -> None:
        """End every topic-partition written since the last call with a batch of its own: one
        tombstone under ``key``, which no consumer holds; returns once all are on the broker.

        Why: Tansu 0.6 answers ListOffsets (latest) with one past the *first* offset of a
        partition's last batch, and Faust's table recovery reads a changelog only up to that
        answer. Called after the producer flush that precedes each commit, this makes every batch
        holding committed state precede a one-record batch, so the broker's answer covers it (a
        record after the marker belongs to offsets not committed yet, which are replayed
        anyway). On a broker that answers correctly it is one small record per partition and
        commit."""
        if not self._unmarked:
            return
        unmarked, self._unmarked = self._unmarked, set()
        producer = self._producer._ensure_producer()
        try:
            delivered = []
            for topic, partition in sorted(unmarked):
                builder = producer.create_batch()
                builder.append(timestamp=None, key=key, value=None, headers=[])
                delivered.append(await producer.send_batch(builder, topic, partition=partition))
            await asyncio.gather(*delivered)
        except BaseException:
            # not marked, whether submitting or delivering failed: the next commit tries again
            self._unmarked |= unmarked
            raise
