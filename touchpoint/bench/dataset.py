"""The bench's traffic: one seeded synthetic scenario, cut to N messages, produced per prefix.

Every contender reads the same messages (same bytes, same order, same partitioning by key) from
topics of its own, so no contender sees another's consumer group, repartition topics or state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from pipeline.synthetic import IDENTITY_TOPIC, MESSAGES_PER_CUSTOMER, Scenario, SyntheticMessage, generate
from touchpoint.generate import produce
from touchpoint.settings import Settings
from touchpoint.topics import ensure_topics

SPAN_MS = 48 * 3600_000


@dataclass(frozen=True)
class Dataset:
    scenario: Scenario

    @property
    def messages(self) -> list[SyntheticMessage]:
        return self.scenario.messages

    @property
    def total(self) -> int:
        """Every message: what the baselines and peers count."""
        return len(self.messages)

    @property
    def touchpoint_units(self) -> int:
        """What the worker's counters add up to: events processed plus messages dead-lettered.

        Identity links feed the identity table and count in neither, so they are left out here.
        """
        return sum(1 for m in self.messages if m.topic != IDENTITY_TOPIC)

    def describe(self) -> dict[str, object]:
        by_topic: dict[str, int] = {}
        for message in self.messages:
            by_topic[message.topic] = by_topic.get(message.topic, 0) + 1
        return {
            "messages": self.total,
            "by_topic": by_topic,
            "invalid": sum(1 for m in self.messages if not m.valid),
            "mean_bytes": round(sum(len(m.value) for m in self.messages) / max(self.total, 1), 1),
        }


def build_dataset(events: int, seed: int, now_ms: int | None = None) -> Dataset:
    """About ``events`` messages of the synthetic mix (channels, identities, wire formats, defects).

    Event times span the 48 hours before now, so none is refused as from the future.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    customers = max(2, math.ceil(events / MESSAGES_PER_CUSTOMER * 1.05))
    scenario = generate(customers=customers, seed=seed, start_ms=now_ms - SPAN_MS)
    return Dataset(Scenario(scenario.messages[:events], scenario.manifest))


def produce_dataset(dataset: Dataset, settings: Settings, progress: Callable[[int], None] | None = None) -> int:
    """Create the prefix's topics with the settings' partition count and produce every message."""
    ensure_topics(settings)
    return produce(dataset.scenario, settings.kafka_bootstrap_servers, settings.topic_prefix,
                   progress=progress)
