"""Buffer rows with the acknowledgements they release: insert first, acknowledge after.

This is where Touchpoint's at-least-once guarantee is made. An agent hands over the rows an event
produced together with a callback that acknowledges that event; a flush inserts every buffered
table, and only when all inserts succeeded are the callbacks called. Faust then commits up to the
highest contiguous acknowledged offset, so a crash at any point replays exactly the events whose
rows may be missing, and idempotent rows make the replay harmless.

While a flush runs, new rows go into the next buffer; when that buffer is full too, ``add``
waits for the flush (backpressure: the agent stops pulling events, memory stays bounded).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping, Sequence

import orjson

from sinks.clickhouse import Row, RowWriter, SinkError
from sinks.metrics import Metrics

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[object]]


@dataclass
class _Batch:
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    acks: list[Ack] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    size: int = 0
    started: float = field(default_factory=time.monotonic)


class AckingSink:
    def __init__(
        self,
        writer_factory: Callable[[], RowWriter],
        metrics: Metrics,
        max_rows: int = 20000,
        flush_seconds: float = 0.5,
    ) -> None:
        self.metrics = metrics
        self.max_rows = max_rows
        self.flush_seconds = flush_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._writer_factory = writer_factory
        self._writer: RowWriter | None = None
        self._batch = _Batch()
        self._lock = asyncio.Lock()

    def add(
        self,
        rows: Mapping[str, Sequence[Row]],
        ack: Ack | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Buffer rows; ``ack`` runs once they are stored, ``after`` right after that."""
        batch = self._batch
        for table, table_rows in rows.items():
            if table_rows:
                batch.rows[table].extend(table_rows)
                batch.size += len(table_rows)
        if ack is not None:
            batch.acks.append(ack)
        if after is not None:
            batch.after.append(after)

    @property
    def full(self) -> bool:
        return self._batch.size >= self.max_rows

    @property
    def due(self) -> bool:
        batch = self._batch
        return bool(batch.size or batch.acks) and (
            self.full or time.monotonic() - batch.started >= self.flush_seconds
        )

    async def flush(self) -> None:
        async with self._lock:
            batch, self._batch = self._batch, _Batch()
            if not (batch.size or batch.acks):
                return
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._write, batch)
            for ack in batch.acks:
                await ack()
            for after in batch.after:
                after()

    async def flush_if_due(self) -> None:
        if self.due:
            await self.flush()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _write(self, batch: _Batch) -> None:
        """Runs in the sink thread: a blocking insert must not stall Kafka heartbeats."""
        if self._writer is None:
            self._writer = self._writer_factory()
        for table, rows in batch.rows.items():
            started = time.perf_counter()
            try:
                self._writer.insert(table, rows)
            except SinkError:
                self.metrics.sink_failures.labels(table).inc()
                self._insert_row_by_row(table, rows)
            self.metrics.sink_batch_rows.labels(table).observe(len(rows))
            self.metrics.sink_batch_duration.labels(table).observe(time.perf_counter() - started)

    def _insert_row_by_row(self, table: str, rows: Sequence[Row]) -> None:
        """A batch the server refused for good: keep every good row, dead-letter the bad ones."""
        assert self._writer is not None
        rejected = []
        for row in rows:
            try:
                self._writer.insert(table, [row])
            except SinkError as exc:
                rejected.append(_rejected_row(table, row, exc))
        if rejected:
            log.error("%d row(s) of %s refused by ClickHouse, stored in dead_letters", len(rejected), table)
            self._writer.insert("dead_letters", rejected)


def _rejected_row(table: str, row: Row, exc: Exception) -> Row:
    return {
        "topic": f"clickhouse.{table}",
        "partition": 0,
        "offset": abs(hash(orjson.dumps(row, default=str))) % (2**63),
        "reason": "sink_rejected",
        "step": "sink",
        "detail": str(exc)[:500],
        "key": "",
        "payload": orjson.dumps(row, default=str).decode(),
        "received_at": int(time.time()),
    }
