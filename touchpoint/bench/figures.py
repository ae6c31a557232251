"""Pure arithmetic over what the bench observed: throughput windows, CPU cost, percentiles.

Kept free of I/O so the rules that decide the reported numbers (what counts as start-up, how a
percentile is taken) are unit-tested on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Sample:
    """A contender's progress at wall-clock time ``at``: ``count`` units of work done."""

    at: float
    count: int


@dataclass(frozen=True)
class Window:
    """The measured stretch: from the first observed progress to the moment the total was reached.

    Starting at the first sample that shows progress, not at process start, leaves start-up and
    the consumer group join out of the figure; the events done before that sample are left out of
    the count too, so the rate stays honest. The end is the first sample at the total, so it is
    late by up to a sampling period: peers report the moment they reach it, and Touchpoint's
    scrapes come at every poll of the bench (0.2 s) near the end (``contenders.NEAR_END_SHARE``).
    A sample past the total (a counter that overshoots) is brought back to it by interpolating
    within its interval.
    """

    start: Sample
    end: Sample
    complete: bool

    @property
    def seconds(self) -> float:
        return self.end.at - self.start.at

    @property
    def events(self) -> int:
        return self.end.count - self.start.count

    @property
    def rate(self) -> float | None:
        """Events per second, or None when the window is too short to say."""
        if self.seconds <= 0 or self.events <= 0:
            return None
        return self.events / self.seconds


def throughput_window(samples: Sequence[Sample], total: int) -> Window | None:
    """The window over ``samples`` (sorted by time) for a run of ``total`` units; None if no progress.

    ``complete`` is False when the total was never reached (a timed-out contender): the window
    then ends at the last sample, so the figure still says how fast it went while it went.
    """
    first = next((i for i, s in enumerate(samples) if s.count > 0), None)
    if first is None:
        return None
    started = samples[first]
    last = next((i for i, s in enumerate(samples) if s.count >= total), None)
    if last is None:
        return Window(started, samples[-1], complete=False)
    finished = samples[last]
    if last > first:
        before = samples[last - 1]
        share = (total - before.count) / (finished.count - before.count)
        finished = Sample(before.at + share * (finished.at - before.at), total)
    return Window(started, finished, complete=True)


def interpolate(points: Sequence[tuple[float, float]], at: float) -> float | None:
    """The value of a sampled, non-decreasing series at time ``at`` (linear between samples).

    CPU time is sampled on its own clock; this reads it at the throughput window's edges.
    Outside the sampled range the nearest sample is used.
    """
    if not points:
        return None
    if at <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= at <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (at - t0) / (t1 - t0)
    return points[-1][1]


def cpu_per_thousand(cpu_points: Sequence[tuple[float, float]], window: Window) -> float | None:
    """CPU seconds spent per 1,000 events over the throughput window."""
    before = interpolate(cpu_points, window.start.at)
    after = interpolate(cpu_points, window.end.at)
    if before is None or after is None or window.events <= 0:
        return None
    return (after - before) * 1000.0 / window.events


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method: always an observed value."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies in seconds."""
    return {
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
