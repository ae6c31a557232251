"""Latencies observed a batch at a time expose exactly what observing them one by one does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from sinks.metrics import LATENCY_BUCKETS, Metrics, observe_ages

NOW = 1_700_000_000.0
# event times around the bucket bounds, on them, and in the future (an age of 0)
EVENT_TIMES = st.one_of(
    st.sampled_from([int((NOW - bound) * 1000) for bound in LATENCY_BUCKETS]),
    st.integers(int((NOW - 100_000) * 1000), int((NOW + 60) * 1000)),
)


@given(st.lists(EVENT_TIMES, max_size=50))
def test_observing_ages_together_is_observing_them_one_by_one(occurred_ms: list[int]) -> None:
    together, one_by_one = Metrics.create(CollectorRegistry()), Metrics.create(CollectorRegistry())
    observe_ages(together.processing_latency, NOW, occurred_ms)
    for at_ms in occurred_ms:
        one_by_one.processing_latency.observe(max(NOW - at_ms / 1000, 0.0))
    assert samples(together.registry) == samples(one_by_one.registry)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    """Every sample but the creation times (the two registries were made at different times)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in registry.collect() for sample in metric.samples if not sample.name.endswith("_created")}
