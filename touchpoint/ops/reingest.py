"""The producing half shared by ``touchpoint replay`` and ``touchpoint backfill``.

Records are checked with the worker's own decoder before anything is sent, so a summary can say
what will be skipped and why instead of filling the dead-letter table; records of erased
customers are skipped too. What remains is sent in event-time order (journeys and channel
windows are defined on event time) as the original records, unchanged: the worker normalises
and hashes identifiers itself, exactly as for live traffic. Event ids are kept.

Idempotence: touchpoints whose ``event_id`` is already in ClickHouse are skipped by default, so a
second run sends nothing new. Re-sending them is possible (replay from ClickHouse does, to rebuild
state), but then idempotence rests on the worker, whose de-duplication remembers only each
customer's recent events and open journeys: an older event arrives as a new, late one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from pipeline.decode import Decoder
from pipeline.model import DeadLetter, Event
from pipeline.suppression import SuppressionList
from pipeline.wireformat import encode_json
from touchpoint.security import kafka_python_config
from sinks.clickhouse import connect
from touchpoint.settings import ClickHouseTarget, Settings, Topics

PROGRESS_EVERY = 500

SUPPRESSED = "customer erased (suppression list)"
OUTSIDE_RANGE = "outside the requested time range"
REPEATED = "event_id repeated in the input"
ALREADY_STORED = "already stored in ClickHouse"
STORED_LOOKUP_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    occurred_at_ms: int
    event_id: str
    touchpoint: bool  # False for an identity link, which has no row in ``touchpoints``


@dataclass
class Plan:
    """What will be sent, in event-time order, and what was skipped, counted by reason."""

    messages: list[Outgoing] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def read(self) -> int:
        return len(self.messages) + sum(self.skipped.values())

    def drop_stored(self, stored: set[str]) -> None:
        """Skip the touchpoints whose ``event_id`` ClickHouse already holds."""
        kept = [m for m in self.messages if not (m.touchpoint and m.event_id in stored)]
        if len(kept) < len(self.messages):
            self.skipped[ALREADY_STORED] += len(self.messages) - len(kept)
        self.messages = kept


class ReingestError(RuntimeError):
    """The broker refused some messages; the run can be repeated safely (event ids are kept)."""


def plan(
    records: Iterable[Mapping[str, Any]],
    decoder: Decoder,
    topics: Topics,
    suppression: SuppressionList,
    since_ms: int | None = None,
    until_ms: int | None = None,
    now_ms: int | None = None,
) -> Plan:
    """Validate, filter and order records; pure apart from the decoder's schema lookups.

    A record with a ``channel`` field is a touchpoint for that channel's topic, one without is an
    identity link for the identity topic. The range is ``since_ms <= occurred_at < until_ms``.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    result = Plan()
    seen: set[str] = set()
    for record in records:
        value = encode_json(record)
        topic_channel = str(record["channel"]) if "channel" in record else None
        decoded = decoder.decode(value, topic_channel, now_ms)
        if isinstance(decoded, DeadLetter):
            result.skipped[f"invalid ({decoded.reason.value})"] += 1
            continue
        if decoded.event_id in seen:
            result.skipped[REPEATED] += 1
            continue
        if (since_ms is not None and decoded.occurred_at_ms < since_ms) or (
                until_ms is not None and decoded.occurred_at_ms >= until_ms):
            result.skipped[OUTSIDE_RANGE] += 1
            continue
        if suppression.suppresses(decoded):
            result.skipped[SUPPRESSED] += 1
            continue
        seen.add(decoded.event_id)
        if isinstance(decoded, Event):
            topic = topics.channel(decoded.channel)
        else:
            topic = topics.identity
        key = (decoded.customer_id or decoded.event_id).encode()
        result.messages.append(Outgoing(topic, key, value, decoded.occurred_at_ms, decoded.event_id,
                                        isinstance(decoded, Event)))
    result.messages.sort(key=lambda message: message.occurred_at_ms)  # stable: ties keep input order
    return result


def send(messages: list[Outgoing], settings: Settings, progress: Callable[[int], None] | None = None) -> int:
    """Produce in order and wait for every acknowledgement; returns how many were sent."""
    failures: list[BaseException] = []
    producer = KafkaProducer(
        **kafka_python_config(settings),
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        enable_idempotence=False,  # not every broker grants InitProducerId; event ids de-duplicate
        client_id="touchpoint-reingest",
    )
    try:
        for number, message in enumerate(messages, start=1):
            producer.send(message.topic, key=message.key, value=message.value).add_errback(failures.append)
            if progress is not None and number % PROGRESS_EVERY == 0:
                progress(number)
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise ReingestError(f"{len(failures)} of {len(messages)} messages were not acknowledged "
                            f"({type(failures[0]).__name__}); running the command again is safe")
    if progress is not None:
        progress(len(messages))
    return len(messages)


def stored_event_ids(target: ClickHouseTarget, event_ids: list[str]) -> set[str]:
    """Which of these event ids have a row in ``touchpoints`` (looked up in chunks)."""
    client = connect(target)
    try:
        found: set[str] = set()
        for start in range(0, len(event_ids), STORED_LOOKUP_CHUNK):
            chunk = tuple(event_ids[start:start + STORED_LOOKUP_CHUNK])
            found.update(event_id for (event_id,) in client.execute(
                f"SELECT DISTINCT event_id FROM {target.database}.touchpoints WHERE event_id IN %(ids)s", {"ids": chunk}))
        return found
    finally:
        client.disconnect()


def describe(plan_: Plan, sent: int) -> str:
    """The summary line printed at the end of a run."""
    line = f"read {plan_.read} records: sent {sent}, skipped {sum(plan_.skipped.values())}"
    if plan_.skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in plan_.skipped.most_common())
        line += f" ({reasons})"
    return line
