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

Snapshots are taken at every minute of event time for every (channel, dimension), and a replay
crosses thousands of minutes in seconds, so a window's sums are never added up bucket by
bucket: each series keeps running (prefix) sums over its buckets in index order, and a window is
the difference of two of them. Every count is an integer, scores included (in ten-thousandths of
a point, the precision scores are rounded to), so the sums are exact: a window comes out the same
to the last bit whichever way it was reached, and whatever order its touchpoints arrived in.

Dimension values are bounded per channel: at most ``max_tracked_values`` values hold buckets of
their own at a time (a value beyond that counts in the channel total only, until a tracked value
has left the window). Reports then show the ``top_values`` by volume and fold the rest into
:data:`OTHER`, which is the channel total minus those values, so it is exact.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import reduce
from heapq import heappop, heappush
from operator import add, sub
from typing import NamedTuple

from pipeline.model import Feedback
from pipeline.scoring import SCORE_DECIMALS, is_detractor, is_promoter

CHANNEL_TOTAL = ""
# Scores are counted in these units: integers, so sums are exact in any order.
SCORE_UNITS = 10 ** SCORE_DECIMALS
# The dimension value that stands for every value not reported on its own.
OTHER = "(other)"


class WindowStats(NamedTuple):
    """The CX figures of one window; a mean or rate is None when nothing was there to average.

    A named tuple: one is made for every subject at every tick of event time and for every row of
    ``channel_scores``, and a frozen dataclass of these ten fields took 2.6 times as long to build."""

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


def _ratio(total: float, count: int) -> float | None:
    return total / count if count else None


class _Counts(NamedTuple):
    """Sums over some touchpoints: a bucket holds them as a list in this order (updated in place
    for each touchpoint), a window is the difference of two running sums, column by column."""

    volume: int = 0
    score_units: int = 0  # the scores' sum in SCORE_UNITS
    friction: int = 0
    errors: int = 0
    promoters: int = 0
    detractors: int = 0
    nps_responses: int = 0
    csat_sum: int = 0
    csat_responses: int = 0
    ces_sum: int = 0
    ces_responses: int = 0

    def minus(self, part: _Counts) -> _Counts:
        """What is left without a part of these counts (a dimension value of its channel total)."""
        return _Counts._make(map(sub, self, part))

    def stats(self) -> WindowStats:
        return WindowStats(
            volume=self.volume,
            mean_score=_ratio(self.score_units, self.volume * SCORE_UNITS),
            nps=_ratio(100.0 * (self.promoters - self.detractors), self.nps_responses),
            nps_responses=self.nps_responses,
            mean_csat=_ratio(self.csat_sum, self.csat_responses),
            csat_responses=self.csat_responses,
            mean_ces=_ratio(self.ces_sum, self.ces_responses),
            ces_responses=self.ces_responses,
            friction_rate=_ratio(self.friction, self.volume),
            error_rate=_ratio(self.errors, self.volume),
        )


# Bucket columns updated for every touchpoint (positions in _Counts).
_VOLUME, _SCORE_UNITS, _FRICTION, _ERRORS, _PROMOTERS, _DETRACTORS, _NPS_RESPONSES = range(7)
_CSAT_SUM, _CSAT_RESPONSES, _CES_SUM, _CES_RESPONSES = range(7, 11)


class _Sums:
    """The sums over one set of buckets, and their figures once asked for: ranking dimension
    values needs their volumes only."""

    __slots__ = ("counts", "_stats")

    def __init__(self, counts: _Counts) -> None:
        self.counts = counts
        self._stats: WindowStats | None = None

    @property
    def stats(self) -> WindowStats:
        if self._stats is None:
            self._stats = self.counts.stats()
        return self._stats


_NOTHING = _Counts()
_NO_SUMS = _Sums(_NOTHING)


def _count(bucket: list[int], score: float, feedback: Feedback | None, friction: bool, error: bool) -> None:
    """Add one touchpoint to a bucket."""
    bucket[_VOLUME] += 1
    bucket[_SCORE_UNITS] += round(score * SCORE_UNITS)
    bucket[_FRICTION] += friction
    bucket[_ERRORS] += error
    if feedback is None:
        return
    if feedback.kind == "nps":
        bucket[_NPS_RESPONSES] += 1
        bucket[_PROMOTERS] += is_promoter(feedback.score)
        bucket[_DETRACTORS] += is_detractor(feedback.score)
    elif feedback.kind == "csat":
        bucket[_CSAT_RESPONSES] += 1
        bucket[_CSAT_SUM] += feedback.score
    elif feedback.kind == "ces":
        bucket[_CES_RESPONSES] += 1
        bucket[_CES_SUM] += feedback.score


class _Series:
    """The buckets of one (channel, dimension), their running sums, and the window sums last
    taken from them."""

    __slots__ = ("buckets", "indexes", "running", "sums")

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {}  # by bucket index
        self.indexes: list[int] = []  # the same indexes sorted: a window's buckets are a slice of it
        # running[k]: the sums of the buckets indexes[:k], plus what the dropped buckets left in
        # running[0] (windows only take differences). Computed up to where a bucket last changed.
        self.running: list[tuple[int, ...]] = [_NOTHING]
        # (first, stop) slice of ``indexes`` -> its sums; cleared whenever a bucket changes
        self.sums: dict[tuple[int, int], _Sums] = {}

    def window(self, oldest: int, newest: int) -> _Sums:
        """The sums of the buckets after ``oldest`` up to ``newest`` (included)."""
        first = bisect_right(self.indexes, oldest)
        stop = bisect_right(self.indexes, newest)
        if first == stop:
            return _NO_SUMS
        found = self.sums.get((first, stop))
        if found is None:
            running = self._running_to(stop)
            found = self.sums[first, stop] = _Sums(_Counts._make(map(sub, running[stop], running[first])))
        return found

    def _running_to(self, stop: int) -> list[tuple[int, ...]]:
        running = self.running
        if len(running) <= stop:
            buckets, indexes = self.buckets, self.indexes
            last = running[-1]
            for position in range(len(running) - 1, stop):
                last = tuple(map(add, last, buckets[indexes[position]]))
                running.append(last)
        return running

    def holds(self, oldest: int, newest: int) -> bool:
        """Whether any bucket lies after ``oldest`` up to ``newest`` (included)."""
        return bisect_right(self.indexes, oldest) < bisect_right(self.indexes, newest)

    def bucket(self, index: int) -> tuple[list[int], bool]:
        """The bucket at ``index`` for a touchpoint to count in (the sums from it on are stale
        from now on), and whether it was opened just now."""
        self.sums.clear()
        position = bisect_left(self.indexes, index)
        del self.running[position + 1:]
        bucket = self.buckets.get(index)
        if bucket is not None:
            return bucket, False
        bucket = self.buckets[index] = list(_NOTHING)
        self.indexes.insert(position, index)
        return bucket, True

    def drop_oldest(self) -> None:
        del self.buckets[self.indexes.pop(0)]
        del self.running[0]  # running[1] held the dropped bucket; differences stay the same
        if not self.running:
            self.running.append(_NOTHING)
        self.sums.clear()


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
        self._series: dict[str, dict[str, _Series]] = {}  # channel -> dimension -> its buckets
        # (bucket index, channel, dimension) of every bucket held: dropped oldest first
        self._expiry: list[tuple[int, str, str]] = []
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
        dimensions = [CHANNEL_TOTAL, dimension] if dimension and self._admits(channel, dimension) else [CHANNEL_TOTAL]
        series = self._series.setdefault(channel, {})
        for name in dimensions:
            bucket, opened = series.setdefault(name, _Series()).bucket(index)
            if opened:
                heappush(self._expiry, (index, channel, name))
            _count(bucket, score, feedback, friction, error)
        return True

    def snapshot(self, channel: str, dimension: str, now_ms: int, window_seconds: int | None = None) -> WindowStats:
        """The figures over the window ending at ``now_ms`` (the bucket holding it included).

        ``dimension`` "" is the channel total. ``window_seconds`` (default: the longest kept) is
        rounded down to whole buckets. Windows further back than the watermark allows are
        incomplete (their buckets were dropped).
        """
        return self._window(channel, dimension, *self._bucket_range(now_ms, window_seconds)).stats

    def top_values(self, channel: str, now_ms: int, window_seconds: int | None, n: int) -> list[tuple[str, WindowStats]]:
        """The ``n`` tracked dimension values with the most touchpoints in the window (ties by
        name), then :data:`OTHER` for the rest of the channel total (values beyond the top N and
        touchpoints without a value) when anything is left. A channel whose window holds no
        dimension value at all has no breakdown: an empty list, not an "(other)" copy of it."""
        oldest, newest = self._bucket_range(now_ms, window_seconds)
        values = [
            (dimension, series.window(oldest, newest))
            for dimension, series in self._series.get(channel, {}).items()
            if dimension != CHANNEL_TOTAL
        ]
        top = sorted((value for value in values if value[1].counts.volume),
                     key=lambda value: (-value[1].counts.volume, value[0]))[:n]
        if not top:
            return []
        total = self._window(channel, CHANNEL_TOTAL, oldest, newest).counts
        rest = reduce(_Counts.minus, (sums.counts for _, sums in top), total)
        figures = [(dimension, sums.stats) for dimension, sums in top]
        return figures + [(OTHER, rest.stats())] if rest.volume else figures

    def subjects(self) -> list[tuple[str, str]]:
        """Every (channel, dimension) with touchpoints in the kept buckets, sorted."""
        return sorted((channel, dimension) for channel, series in self._series.items() for dimension in series)

    def active(self, now_ms: int, window_seconds: int | None = None) -> list[tuple[str, str]]:
        """The (channel, dimension) subjects with touchpoints in the window ending at ``now_ms``."""
        oldest, newest = self._bucket_range(now_ms, window_seconds)
        return [(channel, dimension) for channel, series in self._series.items()
                for dimension, buckets in series.items() if buckets.holds(oldest, newest)]

    def channels(self) -> list[str]:
        """Every channel with touchpoints in the kept buckets, sorted."""
        return sorted(self._series)

    def _window(self, channel: str, dimension: str, oldest: int, newest: int) -> _Sums:
        series = self._series.get(channel, {}).get(dimension)
        return _NO_SUMS if series is None else series.window(oldest, newest)

    def _bucket_range(self, now_ms: int, window_seconds: int | None) -> tuple[int, int]:
        """The bucket indexes (oldest excluded, newest included) of the window ending at now_ms."""
        buckets = self._buckets_per_window
        if window_seconds is not None:
            buckets = min(buckets, window_seconds * 1000 // self._bucket_ms)
        newest = now_ms // self._bucket_ms
        return newest - buckets, newest

    def _admits(self, channel: str, dimension: str) -> bool:
        """Whether this value gets buckets of its own: already tracked, or a free slot."""
        if dimension in self._series.get(channel, {}):
            return True
        if self.max_tracked_values is not None and self._tracked.get(channel, 0) >= self.max_tracked_values:
            return False
        self._tracked[channel] = self._tracked.get(channel, 0) + 1
        return True

    def _cutoff(self, watermark_ms: int) -> int:
        """The newest bucket index that no window ending at or after the watermark reaches."""
        return watermark_ms // self._bucket_ms - self._buckets_per_window

    def _evict(self, cutoff: int) -> None:
        """Drop the buckets at or before ``cutoff``, and subjects left without any.

        A bucket index at or before a cutoff is never opened again (``add`` refuses it), so each
        series' oldest bucket is the next of its own to leave the heap.
        """
        expiry = self._expiry
        while expiry and expiry[0][0] <= cutoff:
            _, channel, dimension = heappop(expiry)
            series = self._series[channel]
            series[dimension].drop_oldest()
            if series[dimension].buckets:
                continue
            del series[dimension]
            if dimension != CHANNEL_TOTAL:
                self._tracked[channel] -= 1
            if not series:
                del self._series[channel]
