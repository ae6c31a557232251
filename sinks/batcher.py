"""Buffer rows with the acknowledgements they release: insert first, acknowledge after.

This is where Touchpoint's at-least-once guarantee is made. An agent hands over the rows an event
produced together with a callback that acknowledges that event; a flush inserts every buffered
table, and only when all inserts succeeded are the callbacks called. Faust then commits up to the
highest contiguous acknowledged offset, so a crash at any point replays exactly the events whose
rows may be missing, and idempotent rows make the replay harmless.

While a flush runs, new rows go into the next buffer; when that buffer is full too, the agent
awaits ``flush`` (backpressure: it stops pulling events, memory stays bounded). A ClickHouse
outage is the same wait, made longer: the flush retries without limit and acknowledges nothing
until the rows are stored, so an outage of minutes loses nothing and the worker catches up after.
Only rows the server refuses for their data are taken out, one by one, into ``dead_letters``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping, Sequence

import orjson

from sinks.clickhouse import Row, RowWriter, SinkError, SinkUnavailable, backoff_seconds
from sinks.metrics import Metrics

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[object]]


@dataclass
class _Batch:
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    acks: list[Ack] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    size: int = 0
    started: float = 0.0  # monotonic time of its first rows or acknowledgement
    stored: set[str] = field(default_factory=set)  # tables already inserted, skipped on a retry

    @property
    def empty(self) -> bool:
        """Nothing to store and nobody waiting for an acknowledgement."""
        return not (self.size or self.acks)


class AckingSink:
    """Rows in, acknowledgements out once the rows are stored.

    ``settle``, when set, is awaited once the acknowledgements of a flush have run, before its
    ``after`` callbacks: the caller finishes them together there (the hot path makes the flush's
    state durable once per key, then acknowledges its offsets).

    ``ack_before_write`` is UNSAFE and exists for the fault-injection suite's negative control
    only: it acknowledges events when their rows are buffered, so a crash loses them.
    """

    settle: Callable[[], Awaitable[object]] | None = None

    def __init__(
        self,
        writer_factory: Callable[[], RowWriter],
        metrics: Metrics,
        max_rows: int = 20000,
        flush_seconds: float = 0.5,
        *,
        ack_before_write: bool = False,
        retry_base_seconds: float = 0.5,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self.max_rows = max_rows
        self.flush_seconds = flush_seconds
        self.ack_before_write = ack_before_write
        self.retry_base_seconds = retry_base_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._writer_factory = writer_factory
        self._writer: RowWriter | None = None
        self._batch = _Batch()
        self.blocked = False  # ClickHouse unavailable: a flush is holding rows and retrying
        self._in_flight = 0
        self._lock = asyncio.Lock()
        self._early_acks: set[asyncio.Future[object]] = set()
        self._filling = asyncio.Event()  # set when an empty buffer gets its first rows
        if ack_before_write:
            log.warning("UNSAFE: ack_before_write is on; events are acknowledged before they are "
                        "stored and a crash loses them (fault-suite negative control only)")

    def add(
        self,
        rows: Mapping[str, Sequence[Row]],
        ack: Ack | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Buffer rows; ``ack`` runs once they are stored, ``after`` right after that."""
        batch = self._batch
        if batch.empty:
            batch.started = time.monotonic()
            self._filling.set()
        for table, table_rows in rows.items():
            if table_rows:
                batch.rows[table].extend(table_rows)
                batch.size += len(table_rows)
        if ack is not None:
            if self.ack_before_write:
                task = asyncio.ensure_future(self._acknowledge(ack))
                self._early_acks.add(task)
                task.add_done_callback(self._early_acks.discard)
            else:
                batch.acks.append(ack)
        if after is not None:
            batch.after.append(after)

    @property
    def pending_rows(self) -> int:
        """Rows not yet stored: buffered, and in the batch being written."""
        return self._batch.size + self._in_flight

    @property
    def full(self) -> bool:
        return self._batch.size >= self.max_rows

    @property
    def due(self) -> bool:
        batch = self._batch
        return not batch.empty and (
            self.full or time.monotonic() - batch.started >= self.flush_seconds
        )

    async def flush(self, deadline: float | None = None) -> None:
        """Store everything buffered, then acknowledge it.

        While ClickHouse is unavailable this waits and retries without limit (backpressure: the
        agents awaiting it stop pulling events, nothing is acknowledged). ``deadline`` (a
        ``time.monotonic()`` value, for shutdown) bounds that wait: past it, :class:`SinkUnavailable`
        is raised with nothing acknowledged, so the events are replayed after the restart.
        """
        async with self._lock:
            batch, self._batch = self._batch, _Batch()
            if batch.empty:
                return
            self._in_flight = batch.size
            try:
                await self._store(batch, deadline)
            finally:
                self._in_flight = 0
            for ack in batch.acks:
                await ack()
            if batch.acks and self.settle is not None:
                await self.settle()
            for after in batch.after:
                after()

    async def flush_when_due(self) -> None:
        """Flush every buffer ``flush_seconds`` after its first rows arrived, for as long as it runs.

        The oldest row of a buffer waits ``flush_seconds``, not up to a timer period more, and an
        idle sink does not wake up at all."""
        while True:
            await self._filling.wait()
            self._filling.clear()
            while not self._batch.empty:
                await asyncio.sleep(max(self._batch.started + self.flush_seconds - time.monotonic(), 0.0))
                if self.due:
                    # shielded: a worker stopping cancels this task, and a flush cut off after
                    # taking the buffer would leave its rows to the replay after the restart
                    await asyncio.shield(self.flush())

    async def _acknowledge(self, ack: Ack) -> None:
        await ack()
        if self.settle is not None:
            await self.settle()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _store(self, batch: _Batch, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                await loop.run_in_executor(self._executor, self._write, batch)
            except SinkUnavailable as exc:
                attempt += 1
                self.metrics.sink_blocked.set(1)
                self.blocked = True
                delay = backoff_seconds(attempt, self.retry_base_seconds, self.max_backoff_seconds)
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("ClickHouse unavailable, holding %d rows and %d acknowledgements "
                                "(attempt %d, next in %.1f s): %s",
                                batch.size, len(batch.acks), attempt, delay, exc)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                continue
            if attempt:
                log.warning("ClickHouse available again after %d attempts; batch of %d rows stored",
                            attempt + 1, batch.size)
                self.metrics.sink_blocked.set(0)
                self.blocked = False
            return

    def _write(self, batch: _Batch) -> None:
        """Runs in the sink thread: a blocking insert must not stall Kafka heartbeats."""
        if self._writer is None:
            self._writer = self._writer_factory()
        for table, rows in batch.rows.items():
            if table in batch.stored:
                continue
            started = time.perf_counter()
            try:
                self._writer.insert(table, rows)
            except SinkUnavailable:
                self.metrics.sink_failures.labels(table).inc()
                raise
            except SinkError as exc:
                self.metrics.sink_failures.labels(table).inc()
                self._insert_isolating_rejects(table, rows, exc)
            batch.stored.add(table)
            self.metrics.sink_batch_rows.labels(table).observe(len(rows))
            self.metrics.sink_batch_duration.labels(table).observe(time.perf_counter() - started)

    def _insert_isolating_rejects(self, table: str, rows: Sequence[Row], exc: SinkError) -> None:
        """A batch the server refused for its data: keep every good row, dead-letter the bad ones."""
        assert self._writer is not None
        rejected = self._bisect(table, rows, exc)
        if rejected:
            log.error("%d row(s) of %s refused by ClickHouse, stored in dead_letters", len(rejected), table)
            self._writer.insert("dead_letters", rejected)
            self.metrics.sink_rows_rejected.labels(table).inc(len(rejected))

    def _bisect(self, table: str, rows: Sequence[Row], exc: SinkError) -> list[Row]:
        """Halve a refused batch until the refused rows stand alone: O(k log n) inserts for k bad rows.

        :class:`SinkUnavailable` propagates: an outage in the middle retries the whole batch later,
        and the halves already inserted are written again with the same ids and versions.
        """
        assert self._writer is not None
        if len(rows) == 1:
            return [_rejected_row(table, rows[0], exc)]
        middle = len(rows) // 2
        rejected: list[Row] = []
        for half in (rows[:middle], rows[middle:]):
            try:
                self._writer.insert(table, half)
            except SinkError as half_exc:
                rejected += self._bisect(table, half, half_exc)
        return rejected


def _rejected_row(table: str, row: Row, exc: Exception) -> Row:
    payload = orjson.dumps(row, default=str, option=orjson.OPT_SORT_KEYS)
    return {
        "topic": f"clickhouse.{table}",
        "partition": 0,
        # stable across processes, so a replayed rejection replaces its earlier row
        "offset": int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big") >> 1,
        "reason": "sink_rejected",
        "step": "sink",
        "detail": str(exc)[:500],
        "key": "",
        "payload": payload.decode(),
        "received_at": int(time.time()),
    }
