"""The seam between Faust's consumer and Touchpoint's batched hot path.

Faust hands every fetched record to its conductor one by one, and its drain loop wraps each
delivery in ``Service.wait_first`` (four asyncio tasks per record) before a stream even sees it:
on this machine that caps a bare agent at 6,000-7,500 events/s, whatever the agent does. This
module keeps everything else of Faust (the group, the assignor, rebalancing, tables and their
changelogs and recovery, commits, timers, the producer) and replaces only that inner loop, for
the topics a :class:`BatchHandler` claims:

* :class:`BatchingConsumer` fetches as Faust does (same ``_wait_next_records``, same paused and
  active partitions, Faust's gap bookkeeping for compacted or transactional offsets, minus two
  of its errors, see :func:`absent_offsets`), holds what it fetched until no partition that is
  still behind can bring anything earlier (:mod:`agents.release_order`: a backlog read in
  fetches keeps its time order across topics), interleaves the released topic-partitions by
  record timestamp and passes the handler runs of consecutive records that one stage processes
  (by the handler's ``run_keys``). Records of every other topic
  (table changelogs during recovery, anything an ordinary agent reads) take Faust's own path.
* Each run handed to the handler comes with a :class:`RunAck`, outstanding until called, so
  ``wait_empty`` on rebalance and shutdown waits for it as Faust waits for a stream's messages;
  the handler calls it once the run's results are stored, and it records the run's offsets as
  acknowledged exactly as ``Consumer.ack`` records a message's. Faust's committer then commits
  the highest contiguous acknowledged offset. Nothing is committed past an unprocessed record.
  A run's acknowledgement holds its offsets, not its records: held until the sink flushed, the
  records (and a weak reference each in Faust's unacknowledged set) outlived many young garbage
  collections and were promoted, which cost more than the bookkeeping itself.
* The handler gets aiokafka's records as fetched, not Faust messages made of them: it reads
  their topic, partition, offset, timestamp (milliseconds), key, value and headers, all of
  which the record has (Faust's ``_to_message`` was 1.3% of the worker's profile, and one more
  object per record for the collector).
* Before Faust waits for unacknowledged messages (partitions revoked, worker stopping), the
  handler is asked to flush, bounded by a grace period; what it could not store stays
  unacknowledged and is read again by whoever owns the partition next.

What this bypasses, and why it is safe: the conductor's per-message callback (routing by
topic-partition, which the handler does by topic), the channel queue and the stream iterator
(which Touchpoint used only to call its own code with raw bytes), and the per-message
``wait_first`` race against ``suspend_flow`` (a handler that is mid-batch when a rebalance starts
finishes its batch; the rebalance waits for it in ``wait_empty`` as it would for an agent). A
Faust release whose drain loop delivered a batch per topic-partition would make this unnecessary.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar

import faust
from aiokafka.structs import ConsumerRecord
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from agents.release_order import MAX_HELD_RECORDS, MAX_HOLD_SECONDS, release_bound, take_until
from sinks.clickhouse import SinkUnavailable

log = logging.getLogger(__name__)

M = TypeVar("M")


class BatchHandler(Protocol):
    """What the consumer needs from the hot path."""

    topics: frozenset[str]
    # topic -> the stage that processes it: consecutive records of one stage are handed over
    # together, whatever their topic-partitions
    run_keys: Mapping[str, Hashable]
    # stages whose results depend on the order of their own partitions only, not on other
    # topics': their records of a release are handed over first, one run per stage
    unordered_stages: frozenset[Hashable]

    async def handle(self, stage: Hashable, records: Sequence[ConsumerRecord], ack: RunAck) -> None:
        """Process a run of records of this stage's topics (each topic-partition's in offset
        order, timestamps in milliseconds, as aiokafka gives them); call ``ack`` once they are
        stored."""

    async def flush(self, deadline: float | None = None) -> None:
        """Store everything buffered and acknowledge it (called before partitions are let go).

        ``deadline`` (``time.monotonic()``) bounds the wait for an unavailable sink: past it,
        :class:`sinks.clickhouse.SinkUnavailable` is raised with nothing acknowledged."""

    async def mark_changelog_ends(self) -> None:
        """Make the tables' changelogs end in a one-record batch (called before each commit, see
        :meth:`agents.outbox.Outbox.mark_ends`); raises if the markers were not delivered."""


class RunAck:
    """The acknowledgement of one run handed to the handler: its offsets per topic-partition."""

    __slots__ = ("consumer", "offsets", "size")

    def __init__(self, consumer: BatchingConsumer, records: Sequence[ConsumerRecord]) -> None:
        offsets: dict[tuple[str, int], list[int]] = {}
        for record in records:
            tp = (record.topic, record.partition)
            if tp in offsets:
                offsets[tp].append(record.offset)
            else:
                offsets[tp] = [record.offset]
        self.consumer, self.offsets, self.size = consumer, offsets, len(records)

    def __call__(self) -> None:
        self.consumer.acknowledge_run(self)


class BatchingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with a batch drain loop for the topics a handler claims."""

    batch_handler: BatchHandler | None = None
    flush_grace_seconds: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.outstanding_runs: set[RunAck] = set()
        self._accepted_up_to: dict[TP, int] = {}
        # fetched records of the handler's topics not handed over yet (agents.release_order)
        self._held: dict[TP, list[ConsumerRecord]] = {}
        self._last_timestamp: dict[TP, float] = {}
        self._held_since: float | None = None

    def _new_consumer_thread(self) -> Any:
        return _FetchingThread(self, loop=self.loop, beacon=self.beacon)

    def acknowledge_run(self, run: RunAck) -> None:
        """``Consumer.ack`` for every offset of the run, in one step (same checks, same records)."""
        acks_enabled = self.app.topics.acks_enabled_for
        with ack_lock:
            self.outstanding_runs.discard(run)
            try:
                for (topic, partition), offsets in run.offsets.items():
                    if not acks_enabled(topic):
                        continue
                    tp = TP(topic, partition)
                    committed = self._committed_offset[tp]
                    acked_index, acked = self._acked_index[tp], self._acked[tp]
                    for offset in offsets:
                        if (committed is None or offset >= committed) and offset not in acked_index:
                            acked_index.add(offset)
                            acked.append(offset)
                            self._n_acked += 1
            finally:
                notify(self._waiting_for_ack)

    async def wait_empty(self) -> None:
        await self.flush_batches()
        while self.outstanding_runs and not self.should_stop:
            await self._wait_for_ack(timeout=1)
        await super().wait_empty()

    async def flush_batches(self) -> None:
        handler = self.batch_handler
        if handler is None:
            return
        try:
            await handler.flush(deadline=time.monotonic() + self.flush_grace_seconds)
        except SinkUnavailable:
            log.warning(
                "could not store %d buffered event(s) within %.0f s; they stay uncommitted and "
                "will be processed again", sum(run.size for run in self.outstanding_runs), self.flush_grace_seconds,
            )
            self.outstanding_runs.clear()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        handler = self.batch_handler
        if handler is None:
            await super()._drain_messages(fetcher)
            return
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(timeout=0.1 if self._held_since else 1.0)
                await self.sleep(0)
                if (records or self._held_since) and not self.should_stop:
                    if self.flow_active:
                        await self._deliver(handler, records or {}, active)
                    elif records:
                        await self.perform_seek()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, handler: BatchHandler, records: Any, active: set[TP] | None) -> None:
        generation = self.app.consumer_generation_id
        for tp, tp_records in records.items():
            if not (active is None or tp in active or tp in self._buffered_partitions):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            accepted = await self._accept(tp, tp_records)
            if not accepted:
                continue
            if tp.topic in handler.topics:
                held = self._held.get(tp)
                if held is None:
                    self._held[tp] = accepted
                else:
                    held.extend(accepted)
                self._last_timestamp[tp] = accepted[-1].timestamp or 0.0
            else:
                for record in accepted:
                    await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
        claimed = self._releasable(handler, active)
        outstanding = self.outstanding_runs
        run_keys = handler.run_keys
        for stage, run in in_stage_order(claimed, lambda record: run_keys[record.topic], handler.unordered_stages):
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return  # a rebalance started: Faust seeks back to the committed offsets
            ack = RunAck(self, run)
            outstanding.add(ack)
            await handler.handle(stage, run, ack)
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def _accept(self, tp: TP, tp_records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
        """The records not read before; offsets proven absent are recorded as a gap, as Faust does,
        but never ones this assignment has already accepted (see :func:`absent_offsets`)."""
        read = self._read_offset[tp]
        accepted_up_to = self._accepted_up_to.get(tp)
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        accepted = []
        for record in tp_records:
            offset = record.offset
            if read is not None and offset < read:
                continue
            if read and offset - read > 1 and acks_enabled:
                absent = absent_offsets(read, accepted_up_to, offset)
                if absent is not None:
                    await self._add_gap(tp, *absent)
            accepted.append(record)
            read = offset
        self._read_offset[tp] = read
        if read is not None and (accepted_up_to is None or read > accepted_up_to):
            self._accepted_up_to[tp] = read
        return accepted

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Faust's commit, after its producer flush, once the changelogs end in a marker batch: a
        worker that recovers after this commit reads all the state it covers, even from a broker
        that reports the first offset of a partition's last batch as its end. No marker, no
        commit: the offsets stay for the next commit, and nothing is lost meanwhile."""
        handler = self.batch_handler
        if handler is not None:
            try:
                await handler.mark_changelog_ends()
            except Exception as exc:  # noqa: BLE001 - any produce error: skip this commit
                log.warning("changelog end markers not delivered (%r); commit postponed", exc)
                return False
        return await super()._commit(offsets)

    def _releasable(self, handler: BatchHandler, active: set[TP] | None) -> list[list[ConsumerRecord]]:
        """The held records that may be handed over now, per topic-partition (see
        :mod:`agents.release_order`): up to the last record fetched from every partition of the
        handler's topics that is behind, or all of them once the oldest has waited long enough."""
        if not any(self._held.values()):
            self._held_since = None
            return []
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        if now - self._held_since >= MAX_HOLD_SECONDS or sum(map(len, self._held.values())) > MAX_HELD_RECORDS:
            bound = math.inf
        else:
            last_timestamp, accepted_up_to = self._last_timestamp, self._accepted_up_to
            bound = release_bound(
                (_is_behind(self._highwater_or_none(tp), accepted_up_to.get(tp)), last_timestamp.get(tp))
                for tp in self.assignment()
                if tp.topic in handler.topics and (active is None or tp in active)
            )
        taken = take_until(self._held, bound, _timestamp)
        if not any(self._held.values()):
            self._held_since = None  # else the oldest held record's wait goes on
        return taken

    def _highwater_or_none(self, tp: TP) -> int | None:
        try:
            return self.highwater(tp)
        except Exception:  # noqa: BLE001 - not assigned any more (a rebalance): not behind
            return None

    def _drop_held(self, tps: Iterable[TP] | None = None) -> None:
        """Forget held records (read again after the seek or by the partition's next owner)."""
        for tp in list(self._held) if tps is None else tps:
            self._held.pop(tp, None)
            self._last_timestamp.pop(tp, None)
        if not any(self._held.values()):
            self._held_since = None

    async def perform_seek(self) -> None:
        self._drop_held()
        await super().perform_seek()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._accepted_up_to.pop(tp, None)
        self._drop_held(revoked)
        await super().on_partitions_revoked(revoked)


def _is_behind(highwater: int | None, accepted_up_to: int | None) -> bool:
    """The broker has records after the last one fetched (unknown ends count as caught up: a
    partition never fetched yet must not hold the others back)."""
    if highwater is None:
        return False
    return highwater > (-1 if accepted_up_to is None else accepted_up_to) + 1


def _timestamp(record: ConsumerRecord) -> float:
    return record.timestamp or 0.0


def absent_offsets(read: int, accepted_up_to: int | None, offset: int) -> tuple[int, int] | None:
    """The offsets (first, last) that a record at ``offset`` proves absent from the log
    (compacted away, transaction markers, deleted by retention), given ``read``, the last offset
    read, and ``accepted_up_to``, the highest offset accepted in this assignment; None if none.

    Faust records ``read + 1`` to ``offset`` as a gap, and its commit counts a gap's offsets as
    acknowledged. Two things go wrong with that. Faust's recovery resumes the partitions before
    it seeks them back to their committed offsets, and a fetch made before the seek still arrives
    after it: ``read`` is then the committed offset, and the "gap" covers records already handed
    over and still in flight in the sink. They were counted as acknowledged before their rows
    were stored (committable: lost if the worker died then), and again when their acknowledgement
    came (Faust's commit takes the first run of consecutive offsets, so with every offset listed
    twice it advanced one offset per commit: the fault suite's restarted worker left hundreds of
    records uncommitted). And the record at ``offset`` itself is not absent: it is being handed
    over now. Every accepted record is handed over, or, if a rebalance starts first, its
    partition is revoked (aiokafka rebalances eagerly) and ``accepted_up_to`` forgotten with it.
    """
    first = read + 1 if accepted_up_to is None else max(read, accepted_up_to) + 1
    return (first, offset - 1) if first <= offset - 1 else None


def in_stage_order(
    batches: Sequence[Sequence[M]], run_of: Callable[[M], Hashable], unordered: frozenset[Hashable],
) -> Iterator[tuple[Hashable, list[M]]]:
    """The runs of a release: the records of each ``unordered`` stage first, one run per stage
    (each topic-partition in offset order), then the others by :func:`in_timestamp_order`.

    ``batches`` are per topic-partition, and a topic belongs to one stage. A stage whose state is
    keyed within its own topic (the resolve stage: the identity of each identifier, in its
    partition's order) loses nothing by being taken out of the interleaving, and interleaved it
    cut the other stages' runs: reading the internal topics' backlog, runs averaged 11 records.
    """
    interleaved: list[Sequence[M]] = []
    alone: dict[Hashable, list[M]] = {}
    for batch in batches:
        stage = run_of(batch[0])
        if stage in unordered:
            alone.setdefault(stage, []).extend(batch)
        else:
            interleaved.append(batch)
    yield from alone.items()
    if interleaved:
        yield from in_timestamp_order(interleaved, run_of)


def in_timestamp_order(
    batches: Sequence[Sequence[M]], run_of: Callable[[M], Hashable],
) -> Iterator[tuple[Hashable, list[M]]]:
    """Interleave topic-partitions by record timestamp, each kept in offset order, as runs.

    After a restart the backlog of every topic arrives at once; taken topic by topic, a customer's
    calls could all be applied before their web visits of the same hour, and the customer's event
    time would run past the allowed lateness. Producers (and Touchpoint's own forwarding, which
    keeps the source timestamp) write in event-time order, so timestamp order restores it, as
    Kafka Streams does across a task's partitions. Consecutive records with the same
    ``run_of`` (the consumer passes the stage of their topic) stay one run: cut per
    topic-partition, an interleaved backlog fell into runs of four or five records, and the
    per-batch costs of the hot path became per-record costs again.
    """
    if len(batches) == 1:
        yield run_of(batches[0][0]), list(batches[0])
        return
    tagged = (((m.timestamp or 0.0, index, m) for m in batch) for index, batch in enumerate(batches))
    run: list[M] = []
    key: Hashable = None
    for _, _, message in heapq.merge(*tagged, key=lambda item: (item[0], item[1])):
        message_key = run_of(message)
        if run and message_key != key:
            yield key, run
            run = []
        key = message_key
        run.append(message)
    if run:
        yield key, run


class _FetchingThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread with the app's fetch wait instead of Faust's fixed 1500 ms.

    On the local broker every hop through an internal topic waited up to the whole fetch wait
    (Tansu holds an empty fetch that long even when records arrive): at 1,800 events/s the
    bench's p99 event-to-ClickHouse latency was 4.2 s with 1500 ms and 1.3 s with 100 ms.
    aiokafka reads the value when the consumer starts, after this."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class BatchingTransport(aiokafka_driver.Transport):
    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A Faust app whose consumer drains the handler's topics in batches."""

    fetch_max_wait_ms: int = 1500  # Faust's own; build_app sets the worker's setting

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    def attach_batch_handler(self, handler: BatchHandler, partitions: int, flush_grace_seconds: float) -> None:
        """Claim the handler's topics: subscribe them (raw bytes, the app's serializers) and route
        their records to it."""
        for name in handler.topics:
            self.topics.add(self.topic(name, partitions=partitions))
        consumer = self.consumer
        assert isinstance(consumer, BatchingConsumer), "the app must use BatchingTransport"
        consumer.batch_handler = handler
        consumer.flush_grace_seconds = flush_grace_seconds
