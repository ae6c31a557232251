"""Sliding channel windows: the CX figures, window edges, late events and bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.model import Feedback
from pipeline.windows import ChannelWindows, WindowStats

T0 = 1_700_000_000_000  # a multiple of 10 s
SECOND = 1000


def windows() -> ChannelWindows:
    return ChannelWindows(window_seconds=300, bucket_seconds=10)


def test_an_empty_window_has_volume_0_and_no_means() -> None:
    assert windows().snapshot("call", "", T0) == WindowStats(
        volume=0, mean_score=None, nps=None, nps_responses=0, mean_csat=None, csat_responses=0,
        mean_ces=None, ces_responses=0, friction_rate=None, error_rate=None)


def test_the_figures_of_a_window() -> None:
    w = windows()
    touchpoints = [
        (90.0, Feedback("nps", 10), False, False),  # promoter
        (80.0, Feedback("nps", 9), False, False),  # promoter
        (60.0, Feedback("nps", 8), True, False),  # passive
        (20.0, Feedback("nps", 3), True, True),  # detractor
        (70.0, Feedback("csat", 4), False, False),
        (50.0, Feedback("csat", 2), True, False),
        (40.0, Feedback("ces", 6), True, True),
        (90.0, None, False, False),
    ]
    for i, (score, feedback, friction, error) in enumerate(touchpoints):
        assert w.add("web", "checkout", T0 + i * SECOND, score, feedback, friction, error)
    stats = w.snapshot("web", "checkout", T0 + 10 * SECOND)
    assert stats.volume == 8
    assert stats.mean_score == pytest.approx(500 / 8)
    assert (stats.nps, stats.nps_responses) == (pytest.approx(100 * (2 - 1) / 4), 4)
    assert (stats.mean_csat, stats.csat_responses) == (3.0, 2)
    assert (stats.mean_ces, stats.ces_responses) == (6.0, 1)
    assert stats.friction_rate == 4 / 8
    assert stats.error_rate == 2 / 8


def test_a_touchpoint_counts_in_its_dimension_and_in_the_channel_total() -> None:
    w = windows()
    w.add("call", "billing", T0, 40.0, None, True, False)
    w.add("call", "sales", T0, 80.0, None, False, False)
    w.add("call", "", T0, 60.0, None, False, False)  # no queue known: the total only
    assert w.snapshot("call", "billing", T0).volume == 1
    assert w.snapshot("call", "sales", T0).mean_score == 80.0
    total = w.snapshot("call", "", T0)
    assert (total.volume, total.mean_score) == (3, 60.0)
    assert w.snapshot("web", "", T0).volume == 0
    assert w.subjects() == [("call", ""), ("call", "billing"), ("call", "sales")]


def test_the_window_covers_the_last_window_seconds_by_bucket() -> None:
    w = windows()
    w.add("app", "", T0, 10.0, None, False, False)
    w.add("app", "", T0 + 150 * SECOND, 50.0, None, False, False)
    assert w.snapshot("app", "", T0 + 299 * SECOND).volume == 2  # T0's bucket is still inside
    assert w.snapshot("app", "", T0 + 300 * SECOND).volume == 1  # 300 s later it has left
    assert w.snapshot("app", "", T0 + 100 * SECOND).volume == 1  # a past window ignores later events


def test_late_events_count_within_the_window_and_are_refused_beyond_it() -> None:
    w = windows()
    w.add("store", "12", T0 + 600 * SECOND, 70.0, None, False, False)
    assert w.watermark_ms == T0 + 600 * SECOND
    assert w.add("store", "12", T0 + 400 * SECOND, 30.0, None, False, False)  # late, inside
    assert w.watermark_ms == T0 + 600 * SECOND  # the watermark only moves forward
    assert not w.add("store", "12", T0 + 300 * SECOND, 30.0, None, False, False)  # beyond the window
    assert w.snapshot("store", "12", T0 + 600 * SECOND).volume == 2


def test_old_buckets_and_silent_subjects_are_dropped() -> None:
    w = windows()
    for i in range(100):  # a dimension value seen once each, 1000 s worth of buckets
        w.add("web", f"page{i}", T0 + i * 10 * SECOND, 50.0, None, False, False)
    kept = w.subjects()
    assert len(kept) <= 1 + 31  # the total and the values still inside the window
    assert ("web", "page0") not in kept
    total_buckets = sum(len(s.buckets) for series in w._series.values() for s in series.values())
    assert total_buckets <= 2 * 31


def test_a_window_must_be_whole_buckets() -> None:
    with pytest.raises(ValueError):
        ChannelWindows(window_seconds=305, bucket_seconds=10)


@given(st.lists(st.tuples(st.integers(0, 59), st.integers(0, 1_000_000)), min_size=1, max_size=60),
       st.randoms(use_true_random=False), st.lists(st.integers(0, 59), max_size=8))
def test_window_sums_are_exact_whatever_the_order_and_the_snapshots_before(touches, rng, looks) -> None:
    """Scores count in ten-thousandths of a point, so a window's mean is the exact mean of its
    scores, however the touchpoints arrived and whatever windows were taken in between."""
    scores = [(offset, units / 10_000) for offset, units in touches]
    at = T0 + 59 * 10 * SECOND
    means = set()
    for arrival in (scores, rng.sample(scores, len(scores))):
        w = ChannelWindows(window_seconds=600, bucket_seconds=10)
        for n, (offset, score) in enumerate(arrival):
            assert w.add("web", "", T0 + offset * 10 * SECOND, score, None, False, False)
            if n < len(looks):
                w.snapshot("web", "", T0 + looks[n] * 10 * SECOND, 10 * (looks[n] % 7 + 1))
        stats = w.snapshot("web", "", at)
        assert stats.volume == len(scores)
        means.add(stats.mean_score)
    assert means == {sum(units for _, units in touches) / (len(touches) * 10_000)}


def test_sums_stay_exact_while_old_buckets_are_dropped() -> None:
    w = ChannelWindows(window_seconds=100, bucket_seconds=10)
    for n in range(40):
        w.add("web", "", T0 + n * 10 * SECOND, n + 0.0001 * n, None, False, False)
        stats = w.snapshot("web", "", T0 + n * 10 * SECOND)
        kept = range(max(0, n - 9), n + 1)
        assert (stats.volume, stats.mean_score) == (len(kept), sum(m * 10_001 for m in kept) / (len(kept) * 10_000))
