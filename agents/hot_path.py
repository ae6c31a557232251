"""Touchpoint's three stages, each applied to a run of records of its topics.

:class:`HotPath` is the :class:`agents.batching.BatchHandler` of the worker. Per batch it decodes
raw bytes once, calls the pure ``pipeline`` code per event, stages each customer's new state
(:mod:`agents.staged_table`: encoded and written to the Faust table once per sink flush), produces
what it forwards to internal topics as one batch per topic-partition (:mod:`agents.outbox`), and
hands the batch's rows to :class:`sinks.batcher.AckingSink` with one acknowledgement for the
whole batch, called after the insert and the forwarded records' delivery; the flush's state is
made durable before any of its offsets is acknowledged (:meth:`HotPath.settle`). Metrics are
updated per batch.

Stages, by topic (see docs/design.md, Topology):

* source topics (ingest): decode; dead letters go to the DLQ topic; identifiers go to the
  identifiers topic as links (each identifier-customer pair once per worker, remembered in a
  bounded cache); an event that names its customer is processed right here when the record
  already sits on the partition its customer key maps to, else it is repartitioned; anonymous
  events go to the identifiers topic, keyed by their primary identifier.
* identifiers (resolve): links update the identity table and write ``identity_links``;
  anonymous events are forwarded to the customers topic under the linked or anonymous key.
* customers (customer): journeys, scores and alert rules per customer.
* DLQ: dead letters become ``dead_letters`` rows.

Everything forwarded keeps its source record's timestamp, as Kafka Streams does, so the consumer
can interleave source and internal topics in the order the events were produced (see
``agents.batching``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

import orjson
from aiokafka.structs import ConsumerRecord

from agents.changelog import END_MARKER_KEY, TableWriter
from agents.outbox import Outbox, key_partition
from agents.staged_table import StagedTable
from pipeline.alerting import AlertEvent
from pipeline.channel_health import ChannelHealth
from pipeline.customer import CustomerStep, Emitted, alert_row
from pipeline.dead_letters import dead_letter_headers, dead_letter_row
from pipeline.decode import Decoder
from pipeline.identifiers import identifier_key, primary_identifier
from pipeline.identity import CONFIRMED, IdentityRules, IdentityState, is_anonymous_key
from pipeline.model import DeadLetter, Event, IdentityLink, from_wire, to_wire
from pipeline.schema_registry import SchemaLookupUnavailable
from pipeline.state_codec import state_from_json, state_to_json
from pipeline.suppression import SuppressionList
from sinks.alertmanager import AlertmanagerPusher
from sinks.batcher import AckingSink
from sinks.clickhouse import Row
from sinks.metrics import Metrics, observe_ages
from touchpoint.settings import Topics

log = logging.getLogger(__name__)

LINK_CACHE_SIZE = 100_000
# Added to the row versions of customer keys (ClickHouse UInt64; clock microseconds stay below
# 2**53 for centuries), see HotPath._stamp_versions.
CUSTOMER_VERSIONS = 2**62
REGISTRY_RETRY_MAX_SECONDS = 30.0
OP_HEADER = "tp-op"
FROM_HEADER = "tp-from"
MERGE = b"merge"  # to an anonymous key: hand your state over to the customer named in the value
ABSORB = b"absorb"  # to a customer: take over this state of the anonymous key named in tp-from


@dataclass(frozen=True, slots=True)
class Handover:
    """A back-stitching message on the customers topic (see docs/design.md, Back-stitching)."""

    op: bytes
    peer: str  # MERGE: the customer to hand over to; ABSORB: the anonymous key handed over
    state: bytes | None = None


@dataclass
class StageResult:
    """What a stage made of a batch: rows to store, then (from the acknowledgement) state to make
    durable, then ``after`` (latency metrics)."""

    rows: dict[str, list[Row]]
    durable: Callable[[], None] | None = None
    after: Callable[[], None] | None = None


NOTHING = StageResult({})


def handover_of(message: ConsumerRecord) -> Handover | None:
    headers = dict(message.headers or ())
    op = headers.get(OP_HEADER)
    if op == MERGE:
        return Handover(MERGE, message.value.decode())
    if op == ABSORB:
        return Handover(ABSORB, headers[FROM_HEADER].decode(), message.value)
    return None


def acknowledgement(ack: Callable[[], Any], result: StageResult, forwarded: Sequence[Awaitable[Any]],
                    settling: list[Callable[[], Any]]) -> Callable[[], Awaitable[None]]:
    """The run's acknowledgement, which the sink calls once the run's rows are stored: what the run
    forwarded delivered, then its staged state marked stored, and ``ack`` (its offsets) left in
    ``settling`` for :meth:`HotPath.settle`, which makes the state of every run of the sink's
    flush durable (its changelog records submitted, so the producer flush before a commit covers
    them) before it lets the committer move past any of their offsets. A failed delivery raises
    before anything is marked: a back-stitching hand-over carries the state of an anonymous key
    that ``durable`` replaces by a marker."""
    durable = result.durable

    async def acknowledge() -> None:
        for delivery in forwarded:
            await delivery
        if durable is not None:
            durable()
        settling.append(ack)
    return acknowledge


class HotPath:
    def __init__(
        self,
        *,
        topics: Topics,
        channel_topics: dict[str, str],
        partitions: int,
        decoder: Decoder,
        step: CustomerStep,
        identity: IdentityRules,
        health: ChannelHealth,
        sink: AckingSink,
        metrics: Metrics,
        consumer: Any,
        producer: Any,
        identity_table: Any,
        customer_table: Any,
        topic_partitions: Callable[[str], int | None],
        at_risk_threshold: float,
        pusher: AlertmanagerPusher | None = None,
    ) -> None:
        self.names = topics
        self.channel_topics = channel_topics
        self.partitions = partitions
        self.decoder = decoder
        self.step = step
        self.identity = identity
        self.suppression = SuppressionList()  # replaced by the worker's refresh timer
        self.health = health
        self.sink = sink
        self.metrics = metrics
        self.consumer = consumer
        self.producer = producer
        self.outbox = Outbox(producer, partitions)
        # the tables' changelog records: an outbox of their own, submitted when a flush settles
        # and from timers, while a stage run's forwarded records are in flight in ``outbox``
        self.changelog = Outbox(producer, partitions)
        self.identities: StagedTable[IdentityState] = StagedTable(
            TableWriter(identity_table, self.changelog), IdentityState.to_bytes, IdentityState.from_bytes)
        self.customers: StagedTable[Any] = StagedTable(
            TableWriter(customer_table, self.changelog), state_to_json, state_from_json)
        self._settling: list[Callable[[], Any]] = []  # offsets of acknowledged runs, see settle
        self._topic_partitions = topic_partitions
        self._aligned: dict[str, bool] = {}
        self._links_sent: OrderedDict[str, str] = OrderedDict()
        self.at_risk_threshold = at_risk_threshold
        self.pusher = pusher
        self._version = 0
        self.last_processed: float | None = None  # monotonic time of the last touchpoint applied
        self._at_risk: set[bytes] = set()
        self.watermark_ms = 0
        # Customers whose journeys the idle timer must look at, with the wall-clock time of their
        # last write: a replay compresses hours of event time into seconds, and the timer must
        # not close a journey that is still being fed.
        self.touched: dict[bytes, float] = {}
        # Touched customers the timer looked at and found nothing due, with the watermark up to
        # which that holds (CustomerStep.quiet_until_ms); a write makes them due for a look again.
        self._quiet_until: dict[bytes, int] = {}
        self._stages = {"ingest": self._ingest, "resolve": self._resolve,
                        "customers": self._customers, "dead_letters": self._dead_letters}
        run_keys = {topic: "ingest" for topic in (*channel_topics, topics.identity)}
        run_keys[topics.identifiers] = "resolve"
        run_keys[topics.customers] = "customers"
        run_keys[topics.dlq] = "dead_letters"
        self.run_keys = run_keys
        # resolve keeps its state per identifier, in the identifiers partition's order, and the
        # dead letters have none: neither depends on where other topics' records fall in time
        self.unordered_stages = frozenset({"resolve", "dead_letters"})
        self.topics = frozenset(run_keys)

    async def handle(self, stage: str, messages: Sequence[ConsumerRecord], ack: Callable[[], Any]) -> None:
        attempt = 0
        while True:
            try:
                result = await self._stages[stage](messages)
                break
            except SchemaLookupUnavailable as exc:
                # Nobody's fault and no message's: hold the batch (backpressure), never dead-letter.
                attempt += 1
                delay = min(REGISTRY_RETRY_MAX_SECONDS, 0.5 * 2 ** attempt)
                log.warning("schema registry unavailable (%s); retrying %s in %.0f s", exc, stage, delay)
                await asyncio.sleep(delay)
        forwarded = await self.outbox.send()
        self.sink.add(result.rows, ack=acknowledgement(ack, result, forwarded, self._settling),
                      after=result.after)
        if self.sink.full:
            await self.sink.flush()

    async def flush(self, deadline: float | None = None) -> None:
        await self.sink.flush(deadline)

    async def settle(self) -> None:
        """Once the runs of a sink flush are acknowledged (the sink calls it): their state durable,
        each key written once, then their offsets acknowledged."""
        await self._write_stored()
        settled = list(self._settling)
        self._settling.clear()  # the same list: every acknowledgement made so far appends to it
        for ack in settled:
            ack()

    async def _write_stored(self) -> None:
        """The tables' stored writes (their rows are in ClickHouse) to the tables, each key once,
        and their changelog records submitted."""
        self.identities.settle()
        self.customers.settle()
        await self.changelog.send()

    async def mark_changelog_ends(self) -> None:
        await self.changelog.mark_ends(END_MARKER_KEY)

    # -- stages ---------------------------------------------------------------------------

    async def _ingest(self, messages: Sequence[ConsumerRecord]) -> StageResult:
        channels = self.channel_topics
        now_ms = int(time.time() * 1000)
        decode = self.decoder.decode
        forward = self.outbox.add
        names = self.names
        partitions = self.partitions
        local: list[tuple[bytes, Event]] = []
        invalid: Counter[tuple[str, str]] = Counter()
        suppression = self.suppression
        suppressed: Counter[str] = Counter()
        for message in messages:
            channel = channels.get(message.topic)
            result = decode(message.value, channel, now_ms)
            if not isinstance(result, DeadLetter) and suppression.suppresses(result):
                suppressed[channel or "identity"] += 1  # an erased customer: nothing of it may come back
                continue
            if isinstance(result, DeadLetter):
                invalid[channel or "identity", result.reason.value] += 1
                headers = dead_letter_headers(result, message.topic, message.partition, message.offset)
                timestamp = None if message.timestamp is None else message.timestamp / 1000  # Faust's send: seconds
                await self.producer.send(names.dlq, message.key, message.value or b"", None, timestamp, headers)
            elif isinstance(result, IdentityLink):
                self._send_links(result.customer_id, result.event_id, result.occurred_at_ms,
                                       result.identifiers, message.timestamp)
            elif result.customer_id:
                key = result.customer_id.encode()
                if (message.key == key and key_partition(key, partitions) == message.partition
                        and self._is_aligned(message.topic)):
                    local.append((key, result))
                else:
                    forward(names.customers, key, to_wire(result), message.timestamp)
                self._send_links(result.customer_id, result.event_id, result.occurred_at_ms,
                                       result.identifiers, message.timestamp)
            else:
                id_type, value = primary_identifier(result.identifiers)  # decode guarantees one
                forward(names.identifiers, identifier_key(id_type, value).encode(),
                        anonymous_event_message(to_wire(result)), message.timestamp)
        for (channel, reason), count in invalid.items():
            self.metrics.events_invalid.labels(channel, reason).inc(count)
        for channel, count in suppressed.items():
            self.metrics.events_suppressed.labels(channel).inc(count)
        if not local:
            return NOTHING
        return await self._apply_customer_events(local)

    async def _resolve(self, messages: Sequence[ConsumerRecord]) -> StageResult:
        forward = self.outbox.add
        table = self.identities
        states: dict[bytes, IdentityState] = {}
        writes: dict[bytes, IdentityState] = {}
        links: list[Row] = []
        decisions: Counter[tuple[str, str]] = Counter()
        for message in messages:
            key = message.key
            state = states[key] if key in states else table.get(key)
            event = unwrap_anonymous_event(message.value)
            if event is not None:
                # By the event's place in the identifier's order, not by the state alone: a replay
                # reads events from before the link with the link already in the state.
                customer_key, new_state = state.attribute_event(key.decode(), message.offset)
                states[key] = new_state
                if new_state is not state:
                    writes[key] = new_state
                forward(self.names.customers, customer_key.encode(), event, message.timestamp)
                continue
            body = orjson.loads(message.value)
            new_state, decision = self.identity.decide(state, body, message.offset)
            states[key] = new_state
            if decision.store:
                writes[key] = new_state
            decisions[decision.labels] += 1
            if decision.decision != CONFIRMED:
                links.append(decision.row)
            if decision.absorb:
                # After every anonymous event of this identifier (same partition, sent before).
                forward(self.names.customers, decision.absorb.encode(), decision.customer_key.encode(),
                        message.timestamp, [(OP_HEADER, MERGE)])
        for (decision_name, reason), count in decisions.items():
            self.metrics.identity_links.labels(decision_name, reason).inc(count)
        return StageResult({"identity_links": links}, table.stage(writes) if writes else None)

    async def _customers(self, messages: Sequence[ConsumerRecord]) -> StageResult:
        return await self._apply_customer_events(
            [(m.key, handover_of(m) or from_wire(m.value)) if m.headers else (m.key, from_wire(m.value))
             for m in messages])

    async def _dead_letters(self, messages: Sequence[ConsumerRecord]) -> StageResult:
        rows = [dead_letter_row(m.headers, m.key, m.value) for m in messages]
        return StageResult({"dead_letters": rows})

    # -- shared by ingest (aligned events) and the customer stage --------------------------

    async def _apply_customer_events(
        self, items: Iterable[tuple[bytes, Event | Handover]]
    ) -> StageResult:
        step, health, table = self.step, self.health, self.customers
        states: dict[bytes, Any] = {}
        changed: set[bytes] = set()
        emitted = Emitted()
        processed: Counter[str] = Counter()
        late: Counter[str] = Counter()
        occurred: list[int] = []
        watermark = self.watermark_ms
        for key, item in items:
            state = states[key] if key in states else table.get(key)
            if isinstance(item, Handover):
                states[key] = self._hand_over(key, state, item, emitted)
                changed.add(key)
                continue
            event = item
            new_state, result = step.apply_event(state, key.decode(), event)
            if result.duplicate:
                states[key] = state
            else:
                states[key] = new_state
                changed.add(key)
                channel_alerts = health.observe(event, result.touchpoint_score)
                if channel_alerts:
                    result.add_alerts(channel_alerts)
                processed[event.channel] += 1
                if result.late:
                    late[event.channel] += 1
            occurred.append(event.occurred_at_ms)
            watermark = max(watermark, event.occurred_at_ms)
            emitted.extend(result)
        self.watermark_ms = watermark
        now = time.monotonic()
        writes: dict[bytes, Any] = {}
        for key in changed:
            writes[key] = state = states[key]
            if state is None:
                self._forget_touched(key)
                self._at_risk.discard(key)
                continue
            self.touched[key] = now
            self._quiet_until.pop(key, None)
            self._note_risk(key, state)
        await publish_alerts(self.producer, self.names.alerts, emitted.alerts, self.pusher)
        self._record(processed, late, occurred, emitted)
        rows = emitted.rows  # a journey's last row of the batch only (see Emitted)
        self._stamp_versions(rows)
        return StageResult(rows, table.stage(writes), self._written(occurred))

    def _hand_over(self, key: bytes, state: Any, handover: Handover, emitted: Emitted) -> Any:
        """Back-stitching: an anonymous key's state moves to its customer (returns the new state).

        The anonymous key's state is replaced durably only once the customer's partition has the
        hand-over: it leaves with the run's forwarded records, whose delivery the batch's
        acknowledgement awaits before it writes the marker (a crash in between must not lose the
        state). The anonymous key keeps only a marker (``CustomerStep.hand_over``), so its replayed
        events and a replayed request change nothing there; a replayed hand-over is absorbed once:
        the absorbed key is remembered in the customer's state.
        """
        if handover.op == MERGE:
            if state is None or self.step.handed_over(state):
                return state
            self.outbox.add(self.names.customers, handover.peer.encode(), state_to_json(state), None,
                            [(OP_HEADER, ABSORB), (FROM_HEADER, key)])
            return self.step.hand_over(state, handover.peer)
        absorbed = state_from_json(handover.state)
        new_state, result = self.step.absorb(state, key.decode(), absorbed, handover.peer)
        emitted.extend(result)
        return new_state

    # -- erasure -----------------------------------------------------------------------------

    async def evict_suppressed(self, suppression: SuppressionList) -> int:
        """Apply a refreshed suppression list: erased customers' and identifiers' state leaves this
        worker too (returns how many keys were evicted)."""
        self.suppression = suppression
        if not len(suppression):
            return 0
        erased = {key: None for key in self.customers.keys()
                  if suppression.suppresses_customer_key(key.decode())}
        if erased:
            self.customers.stage(erased)()
            for key in erased:
                self._forget_touched(key)
                self._at_risk.discard(key)
        identifiers = {key: None for key in self.identities.keys()
                       if suppression.suppresses_identifier_key(key.decode())}
        if identifiers:
            self.identities.stage(identifiers)()
        await self._write_stored()
        return len(erased) + len(identifiers)

    # -- journeys that event time left behind -------------------------------------------------

    async def close_idle_journeys(self, settle_seconds: float) -> None:
        """Close journeys of customers that went quiet (see docs/design.md, Journeys).

        Only customers written since their journeys were last looked at are visited (``touched``),
        only on partitions this worker owns (the memory store keeps keys of revoked partitions
        until it recovers them again), and only once they have been quiet for ``settle_seconds``
        of wall-clock time: a replay compresses hours of event time into seconds. A customer
        found with nothing due is skipped until the watermark reaches its next closing time.
        """
        owned = self._owned_partitions()
        settled = time.monotonic() - settle_seconds
        watermark = self.watermark_ms
        quiet_until = self._quiet_until
        closing: list[tuple[bytes, Any, Any]] = []
        emitted = Emitted()
        for key, touched_at in list(self.touched.items()):
            if touched_at > settled or watermark <= quiet_until.get(key, -1):
                continue
            state = self.customers.get(key)
            if state is None or key_partition(key, self.partitions) not in owned:
                self._forget_touched(key)
                continue
            result = self.step.close_if_idle(state, key.decode(), watermark)
            if result is None:
                due = self.step.quiet_until_ms(state)
                if due is None:
                    self._forget_touched(key)  # nothing open: no need to look again until written
                else:
                    quiet_until[key] = due
                continue
            new_state, closed = result
            emitted.extend(closed)
            closing.append((key, state, new_state))
        if not closing:
            return
        rows = emitted.rows
        self._stamp_versions(rows)
        self.sink.add(rows)
        await self.sink.flush()  # stored first, then dropped from state: a crash re-closes, never loses
        owned = self._owned_partitions()  # a rebalance may have happened during the flush
        for key, state, new_state in closing:
            if key_partition(key, self.partitions) not in owned:
                continue  # the new owner closes it from the changelog; its rows are stored
            if self.customers.get(key) == state:  # else an event came meanwhile; it closes it later
                self.customers.stage({key: new_state})()
                self._note_risk(key, new_state)
        await self._write_stored()
        for outcome, count in Counter(emitted.closed_outcomes).items():
            self.metrics.journeys_closed.labels(outcome).inc(count)

    def _forget_touched(self, key: bytes) -> None:
        self.touched.pop(key, None)
        self._quiet_until.pop(key, None)

    def on_partitions_revoked(self) -> None:
        """Forget what describes partitions another worker may own now."""
        self._links_sent.clear()
        self._aligned.clear()
        self.touched.clear()
        self._quiet_until.clear()
        self._at_risk.clear()
        self.customers.abandon()
        self.identities.abandon()

    async def on_recovered(self) -> None:
        """After a rebalance and table recovery: every owned customer is looked at again once."""
        owned = self._owned_partitions()
        for key in self.customers.keys():
            if key_partition(key, self.partitions) in owned:
                state = self.customers.get(key)
                if state is not None:
                    self.touched.setdefault(key, 0.0)
                    self._note_risk(key, state)

    @property
    def customers_at_risk(self) -> int:
        return len(self._at_risk)

    def _note_risk(self, key: bytes, state: Any) -> None:
        if state.rolling_score is not None and state.rolling_score < self.at_risk_threshold:
            self._at_risk.add(key)
        else:
            self._at_risk.discard(key)

    def _owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment() if tp.topic == self.names.customers}

    # -- helpers ----------------------------------------------------------------------------

    def _stamp_versions(self, rows: dict[str, list[Row]]) -> None:
        """Row versions from the worker's clock (microseconds), rising in emission order, and
        rows of customer keys above every row of an anonymous key (``CUSTOMER_VERSIONS``).

        The state's sequence number cannot be the version: after a crash the durable state may be
        older than rows already stored, and a replay that meets the events in another order (they
        come from several topics) would give the same numbers to different content, so a stale
        row could win. A later computation of a key always starts from at least as much knowledge,
        so its latest written row is the truth; a replay rewrites rows with newer versions,
        harmlessly. Across keys that does not hold: an anonymous key whose batch is recomputed
        after a crash may write its journeys after the customer absorbed its earlier hand-over
        (another partition, no order between them), and its partial journeys would win over the
        customer's merged ones. Only the customer writes the anonymous key's journeys once they
        are stitched, so a customer's row is the truth whenever both wrote one.
        """
        version = max(self._version + 1, time.time_ns() // 1000)
        for table_rows in rows.values():
            for row in table_rows:
                if row.get("version") == 0:
                    continue  # written never to replace a row (a replayed touchpoint, a replay taken for a late event)
                row["version"] = version if is_anonymous_key(row.get("customer_key")) else version + CUSTOMER_VERSIONS
                version += 1
        self._version = version

    def _send_links(self, customer_id: str, event_id: str, occurred_at_ms: int,
                    identifiers: dict[str, str], timestamp_ms: int | None) -> None:
        """Each identifier-customer pair once: the resolve stage only needs to learn it once."""
        sent = self._links_sent
        for id_type, value in identifiers.items():
            id_key = identifier_key(id_type, value)
            if sent.get(id_key) == customer_id:
                sent.move_to_end(id_key)
                continue
            self.outbox.add(self.names.identifiers, id_key.encode(),
                            link_message(customer_id, event_id, occurred_at_ms, id_type, value), timestamp_ms)
            sent[id_key] = customer_id
            if len(sent) > LINK_CACHE_SIZE:
                sent.popitem(last=False)

    def _is_aligned(self, topic: str) -> bool:
        """Records keyed by customer on a topic with as many partitions as the customer table's
        sit where the customer stage would put them: Faust's assignor gives all topics with the
        same partition count the same partition numbers on the same worker."""
        aligned = self._aligned.get(topic)
        if aligned is None:
            aligned = self._aligned[topic] = self._topic_partitions(topic) == self.partitions
        return aligned

    def _written(self, occurred: list[int]) -> Callable[[], None]:
        histogram = self.metrics.clickhouse_latency

        def observe_all() -> None:
            observe_ages(histogram, time.time(), occurred)
        return observe_all

    def _record(self, processed: Counter[str], late: Counter[str], occurred: list[int], emitted: Emitted) -> None:
        metrics = self.metrics
        for channel, count in processed.items():
            metrics.events_processed.labels(channel).inc(count)
        for channel, count in late.items():
            metrics.late_events.labels(channel).inc(count)
        if emitted.merged_journeys:
            metrics.journeys_merged.inc(emitted.merged_journeys)
        if processed:
            now = time.time()
            observe_ages(metrics.processing_latency, now, occurred)
            metrics.last_event_processed.set(now)
            self.last_processed = time.monotonic()
        for outcome, count in Counter(emitted.closed_outcomes).items():
            metrics.journeys_closed.labels(outcome).inc(count)
        count_alerts(metrics, emitted.alerts)


ANONYMOUS_EVENT = b'{"kind":"event","event":'


def anonymous_event_message(wire: bytes) -> bytes:
    """An anonymous event on the identifiers topic: its wire form in a JSON envelope, which the
    resolve stage takes apart by its prefix (parsing and encoding it again was half its work)."""
    return ANONYMOUS_EVENT + wire + b"}"


def unwrap_anonymous_event(value: bytes) -> bytes | None:
    """The event's wire form from :func:`anonymous_event_message`; None for a link."""
    return value[len(ANONYMOUS_EVENT):-1] if value.startswith(ANONYMOUS_EVENT) else None


def link_message(customer_id: str, event_id: str, occurred_at_ms: int, id_type: str, value: str) -> bytes:
    return orjson.dumps({
        "kind": "link", "customer_id": customer_id, "event_id": event_id,
        "occurred_at_ms": occurred_at_ms, "type": id_type, "value": value,
    })


async def publish_alerts(producer: Any, topic: str, alerts: list[AlertEvent],
                         pusher: AlertmanagerPusher | None) -> None:
    """Alerts to their Kafka topic and, when configured, to Alertmanager (queued, never blocking)."""
    if pusher is not None and alerts:
        pusher.push(alerts)
    for alert in alerts:
        await producer.send(topic, alert.alert_id.encode(),
                            orjson.dumps(alert_row(alert, alert.occurred_at_ms)), None, None, None)


def count_alerts(metrics: Metrics, alerts: list[AlertEvent]) -> None:
    for alert in alerts:
        if alert.state == "firing":
            metrics.alerts.labels(alert.rule, alert.severity).inc()
