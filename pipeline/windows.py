"""Sliding event-time windows per channel and dimension: rolling score and the standard CX figures.

Touchpoints are counted into fixed buckets (10 s by default) per (channel, dimension); a snapshot
adds up the buckets of the last ``window_seconds`` before a given time. Buckets older than the
window behind the watermark (the newest event time seen) are dropped, so memory is bounded by
the number of live dimension values times ``window_seconds / bucket_seconds``, however long the
stream runs. Counts are sums, so the figures do not depend on arrival order, only on which
events arrived before the snapshot.

Every touchpoint counts in its channel's total (dimension "") and, when it has one, in its
dimension value (e.g. call queue "billing"): call :meth:`ChannelWindows.add` once per touchpoint.

Several window lengths (e.g. 5 min and 1 h) share the same buckets: ``window_seconds`` is the
longest kept, and a snapshot may cover any whole number of buckets up to it.

Dimension values are bounded per channel: at most ``max_tracked_values`` values hold buckets of
their own at a time (a value beyond that counts in the channel total only, until a tracked value
has left the window). Reports then show the ``top_values`` by volume and fold the rest into
:data:`OTHER`, which is the channel total minus those values, so it is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model import Feedback
from pipeline.scoring import is_detractor, is_promoter

CHANNEL_TOTAL = ""
# The dimension value that stands for every value not reported on its own.
OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class WindowStats:
    """The CX figures of one window; a mean or rate is None when nothing was there to average."""

    volume: int
    mean_score: float | None
    nps: float | None  # % promoters - % detractors, -100..100
    nps_responses: int
    mean_csat: float | None
    csat_responses: int
    mean_ces: float | None
    ces_responses: int
    friction_rate: float | None  # share of touchpoints with a friction signal, 0-1
    error_rate: float | None  # share of touchpoints with a web error or app crash, 0-1


@dataclass(slots=True)
class _Counts:
    """Sums over some touchpoints: what a bucket holds and what a snapshot adds up."""

    volume: int = 0
    score_sum: float = 0.0
    friction: int = 0
    errors: int = 0
    promoters: int = 0
    detractors: int = 0
    nps_responses: int = 0
    csat_sum: int = 0
    csat_responses: int = 0
    ces_sum: int = 0
    ces_responses: int = 0

    def add(self, score: float, feedback: Feedback | None, friction: bool, error: bool) -> None:
        self.volume += 1
        self.score_sum += score
        self.friction += friction
        self.errors += error
        if feedback is None:
            return
        if feedback.kind == "nps":
            self.nps_responses += 1
            self.promoters += is_promoter(feedback.score)
            self.detractors += is_detractor(feedback.score)
        elif feedback.kind == "csat":
            self.csat_responses += 1
            self.csat_sum += feedback.score
        elif feedback.kind == "ces":
            self.ces_responses += 1
            self.ces_sum += feedback.score

    def merge(self, other: _Counts) -> None:
        for name in _Counts.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def subtract(self, other: _Counts) -> None:
        """Remove a part of these counts (a dimension value from its channel total)."""
        for name in _Counts.__slots__:
            setattr(self, name, getattr(self, name) - getattr(other, name))
        if self.volume == 0:
            self.score_sum = 0.0  # no float residue behind an empty remainder

    def stats(self) -> WindowStats:
        return WindowStats(
            volume=self.volume,
            mean_score=_ratio(self.score_sum, self.volume),
            nps=_ratio(100.0 * (self.promoters - self.detractors), self.nps_responses),
            nps_responses=self.nps_responses,
            mean_csat=_ratio(self.csat_sum, self.csat_responses),
            csat_responses=self.csat_responses,
            mean_ces=_ratio(self.ces_sum, self.ces_responses),
            ces_responses=self.ces_responses,
            friction_rate=_ratio(self.friction, self.volume),
            error_rate=_ratio(self.errors, self.volume),
        )


def _ratio(total: float, count: int) -> float | None:
    return total / count if count else None


class ChannelWindows:
    """Bucketed sliding windows for every (channel, dimension) seen, in event time."""

    def __init__(self, window_seconds: int, bucket_seconds: int = 10, max_tracked_values: int | None = None) -> None:
        if window_seconds <= 0 or bucket_seconds <= 0 or window_seconds % bucket_seconds:
            raise ValueError("window_seconds must be a positive multiple of bucket_seconds")
        if max_tracked_values is not None and max_tracked_values < 0:
            raise ValueError("max_tracked_values must be >= 0")
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.max_tracked_values = max_tracked_values
        self._bucket_ms = bucket_seconds * 1000
        self._buckets_per_window = window_seconds // bucket_seconds
        self._buckets: dict[tuple[str, str], dict[int, _Counts]] = {}
        self._tracked: dict[str, int] = {}  # channel -> dimension values holding buckets
        self._watermark_ms: int | None = None

    @property
    def watermark_ms(self) -> int | None:
        """The newest event time added so far (None before the first)."""
        return self._watermark_ms

    def add(self, channel: str, dimension: str, at_ms: int, score: float, feedback: Feedback | None,
            friction: bool, error: bool) -> bool:
        """Count one touchpoint; False when it is older than the window behind the watermark."""
        index = at_ms // self._bucket_ms
        if self._watermark_ms is not None and index <= self._cutoff(self._watermark_ms):
            return False
        previous_watermark = self._watermark_ms
        if previous_watermark is None or at_ms > previous_watermark:
            self._watermark_ms = at_ms
            if previous_watermark is not None and index > previous_watermark // self._bucket_ms:
                self._evict(self._cutoff(at_ms))  # first, so the values that left free their slots
        keys = [(channel, CHANNEL_TOTAL)]
        if dimension and self._admits(channel, dimension):
            keys.append((channel, dimension))
        for key in keys:
            self._buckets.setdefault(key, {}).setdefault(index, _Counts()).add(score, feedback, friction, error)
        return True

    def snapshot(self, channel: str, dimension: str, now_ms: int, window_seconds: int | None = None) -> WindowStats:
        """The figures over the window ending at ``now_ms`` (the bucket holding it included).

        ``dimension`` "" is the channel total. ``window_seconds`` (default: the longest kept) is
        rounded down to whole buckets. Windows further back than the watermark allows are
        incomplete (their buckets were dropped).
        """
        return self._counts(channel, dimension, now_ms, window_seconds).stats()

    def top_values(self, channel: str, now_ms: int, window_seconds: int | None, n: int) -> list[tuple[str, WindowStats]]:
        """The ``n`` tracked dimension values with the most touchpoints in the window (ties by
        name), then :data:`OTHER` for the rest of the channel total (values beyond the top N and
        touchpoints without a value) when anything is left. A channel whose window holds no
        dimension value at all has no breakdown: an empty list, not an "(other)" copy of it."""
        oldest, newest = self._bucket_range(now_ms, window_seconds)
        volumes = [  # ranking needs volumes only: cheaper than the full counts of every value
            (dimension, sum(b.volume for i, b in buckets.items() if oldest < i <= newest))
            for (subject_channel, dimension), buckets in self._buckets.items()
            if subject_channel == channel and dimension != CHANNEL_TOTAL
        ]
        ranked = sorted((item for item in volumes if item[1]), key=lambda item: (-item[1], item[0]))
        top = [(dimension, self._counts(channel, dimension, now_ms, window_seconds)) for dimension, _ in ranked[:n]]
        rest = self._counts(channel, CHANNEL_TOTAL, now_ms, window_seconds)
        for _, counts in top:
            rest.subtract(counts)
        figures = [(dimension, counts.stats()) for dimension, counts in top]
        return figures + [(OTHER, rest.stats())] if top and rest.volume else figures

    def subjects(self) -> list[tuple[str, str]]:
        """Every (channel, dimension) with touchpoints in the kept buckets, sorted."""
        return sorted(self._buckets)

    def _bucket_range(self, now_ms: int, window_seconds: int | None) -> tuple[int, int]:
        """The bucket indexes (oldest excluded, newest included) of the window ending at now_ms."""
        buckets = self._buckets_per_window
        if window_seconds is not None:
            buckets = min(buckets, window_seconds * 1000 // self._bucket_ms)
        newest = now_ms // self._bucket_ms
        return newest - buckets, newest

    def _counts(self, channel: str, dimension: str, now_ms: int, window_seconds: int | None) -> _Counts:
        oldest, newest = self._bucket_range(now_ms, window_seconds)
        counts = _Counts()
        for index, bucket in self._buckets.get((channel, dimension), {}).items():
            if oldest < index <= newest:
                counts.merge(bucket)
        return counts

    def _admits(self, channel: str, dimension: str) -> bool:
        """Whether this value gets buckets of its own: already tracked, or a free slot."""
        if (channel, dimension) in self._buckets:
            return True
        if self.max_tracked_values is not None and self._tracked.get(channel, 0) >= self.max_tracked_values:
            return False
        self._tracked[channel] = self._tracked.get(channel, 0) + 1
        return True

    def _cutoff(self, watermark_ms: int) -> int:
        """The newest bucket index that no window ending at or after the watermark reaches."""
        return watermark_ms // self._bucket_ms - self._buckets_per_window

    def _evict(self, cutoff: int) -> None:
        """Drop the buckets at or before ``cutoff``, and subjects left without any."""
        for key in list(self._buckets):
            buckets = self._buckets[key]
            for index in [i for i in buckets if i <= cutoff]:
                del buckets[index]
            if not buckets:
                del self._buckets[key]
                if key[1] != CHANNEL_TOTAL:
                    self._tracked[key[0]] -= 1
