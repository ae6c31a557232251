"""Reported channel figures: window lengths, top N values plus (other), rows, gauges, config."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from pipeline.channel_scores import ChannelFigure, channel_figures, channel_report, window_label
from pipeline.config import ConfigError, parse_model_config
from pipeline.model import Feedback
from pipeline.windows import OTHER, ChannelWindows, WindowStats
from sinks.clickhouse import TABLE_COLUMNS
from sinks.metrics import Metrics
from tests.unit.test_config import edited

T0 = 1_700_000_000_000
SECOND = 1000


@pytest.mark.parametrize("seconds, label", [(300, "5m"), (3600, "1h"), (7200, "2h"), (90, "90s"), (60, "1m")])
def test_window_labels_are_short_and_stable(seconds: int, label: str) -> None:
    assert window_label(seconds) == label


def test_several_window_lengths_share_the_buckets() -> None:
    w = ChannelWindows(3600, 10)
    w.add("call", "", T0, 20.0, None, True, False)  # 59 min before the snapshot
    w.add("call", "", T0 + 3300 * SECOND, 80.0, None, False, False)  # 4 min before it
    at = T0 + 3540 * SECOND
    assert (w.snapshot("call", "", at, 300).volume, w.snapshot("call", "", at, 300).mean_score) == (1, 80.0)
    assert (w.snapshot("call", "", at, 3600).volume, w.snapshot("call", "", at, 3600).mean_score) == (2, 50.0)
    assert w.snapshot("call", "", at).volume == 2  # default: the longest window kept


def _busy_queues() -> ChannelWindows:
    w = ChannelWindows(300, 10)
    for queue, calls in [("billing", 5), ("sales", 3), ("tech", 3), ("moves", 1)]:
        for i in range(calls):
            w.add("call", queue, T0 + i * SECOND, 10.0 * calls, Feedback("nps", 10), False, False)
    w.add("call", "", T0, 100.0, Feedback("nps", 0), False, False)  # no queue known
    return w


@pytest.mark.parametrize("n, expected", [
    (1, [("billing", 5), (OTHER, 8)]),
    (2, [("billing", 5), ("sales", 3), (OTHER, 5)]),  # a tie goes by name: sales before tech
    (4, [("billing", 5), ("sales", 3), ("tech", 3), ("moves", 1), (OTHER, 1)]),
])
def test_the_top_values_by_volume_then_other_for_the_rest(n: int, expected: list[tuple[str, int]]) -> None:
    top = _busy_queues().top_values("call", T0 + 10 * SECOND, 300, n)
    assert [(dimension, stats.volume) for dimension, stats in top] == expected


def test_other_is_exactly_the_total_minus_the_top_values() -> None:
    w = _busy_queues()
    at = T0 + 10 * SECOND
    (_, billing), (_, other) = w.top_values("call", at, 300, 1)
    total = w.snapshot("call", "", at, 300)
    assert billing.volume + other.volume == total.volume
    assert other.mean_score == pytest.approx((total.mean_score * total.volume - 50.0 * 5) / other.volume)
    assert other.nps == pytest.approx(100 * (7 - 1) / 8)


def test_no_other_when_the_top_values_cover_the_channel() -> None:
    w = ChannelWindows(300, 10)
    w.add("store", "12", T0, 60.0, None, False, False)
    assert [d for d, _ in w.top_values("store", T0, 300, 5)] == ["12"]


def test_tracked_values_are_bounded_and_a_slot_frees_once_a_value_leaves_the_window() -> None:
    w = ChannelWindows(300, 10, max_tracked_values=2)
    for i, page in enumerate(["home", "cart", "search"]):
        w.add("web", page, T0 + i * SECOND, 50.0, None, False, False)
    assert w.subjects() == [("web", ""), ("web", "cart"), ("web", "home")]  # search: total only
    assert w.snapshot("web", "", T0 + 5 * SECOND).volume == 3
    later = T0 + 400 * SECOND  # home and cart have left the window
    w.add("web", "search", later, 50.0, None, False, False)
    assert ("web", "search") in w.subjects()


def test_figures_per_channel_and_window_and_the_report() -> None:
    w = _busy_queues()
    w.add("web", "", T0, 90.0, None, False, False)
    figures = channel_figures(w, T0 + 10 * SECOND, (300, 3600), top_n=1)
    keys = [(f.channel, f.dimension, f.window_seconds) for f in figures]
    assert keys == [("call", "", 300), ("call", "billing", 300), ("call", OTHER, 300),
                    ("call", "", 3600), ("call", "billing", 3600), ("call", OTHER, 3600),
                    ("web", "", 300), ("web", "", 3600)]
    current = [ChannelFigure("web", "", 300, T0 + 70 * SECOND, figures[-2].stats)]
    report = channel_report(figures, version=7, current=current)
    assert len(report.rows) == 8
    assert set(report.gauges) == {("web", "", "5m")}  # the gauges show the current figures only
    row = report.rows[1]
    assert set(row) == set(TABLE_COLUMNS["channel_scores"])
    assert (row["dimension_name"], row["dimension"], row["volume"], row["version"]) == ("queue", "billing", 5, 7)
    assert (row["window_start"], row["window_end"]) == ((T0 + 10 * SECOND) // 1000 - 300, (T0 + 10 * SECOND) // 1000)
    assert report.rows[0]["dimension_name"] == ""  # the channel total
    assert report.rows[0]["mean_csat"] is None  # nothing to average: NULL, not 0


def test_window_gauges_replace_their_series_and_carry_no_empty_means() -> None:
    metrics = Metrics.create()
    stats = WindowStats(volume=4, mean_score=61.5, nps=None, nps_responses=0, mean_csat=None, csat_responses=0,
                        mean_ces=None, ces_responses=0, friction_rate=0.25, error_rate=0.0)
    metrics.set_window_figures({("call", "", "5m"): stats, ("call", "billing", "5m"): stats})
    metrics.set_window_figures({("call", "", "5m"): stats})
    text = generate_latest(metrics.registry).decode()
    assert 'cx_window_score{channel="call",dimension="",window="5m"} 61.5' in text
    assert 'dimension="billing"' not in text
    assert "cx_window_nps{" not in text


@pytest.mark.parametrize("path, value, message", [
    ("windows.report_windows_seconds", [], "windows.report_windows_seconds: expected a non-empty list"),
    ("windows.report_windows_seconds", [300, 300], "windows.report_windows_seconds: expected a non-empty list"),
    ("windows.report_windows_seconds", [300, "1h"], "windows.report_windows_seconds: expected a non-empty list"),
    ("windows.report_windows_seconds", [300, 3605],
     "windows.report_windows_seconds[1]: expected a multiple of bucket_seconds (10), got 3605"),
    ("windows.dimension_top_n", 0, "windows.dimension_top_n: expected an integer >= 1, got 0"),
    ("windows.dimension_top_n", 101, "windows.dimension_top_n: expected at most dimension_max_tracked (100), got 101"),
    ("windows.dimension_max_tracked", 2.5, "windows.dimension_max_tracked: expected an integer >= 1, got 2.5"),
])
def test_window_settings_are_validated_with_the_key_named(path: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_model_config(edited(path, value))
    assert str(error.value).startswith(message)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "a", "b", "c", "d", "e"]), st.integers(0, 600), st.floats(0, 100)),
                min_size=1, max_size=60),
       st.integers(1, 4), st.integers(1, 6), st.sampled_from([60, 300, 600]))
def test_reported_values_always_add_up_to_the_channel_total(touchpoints, n, tracked, window) -> None:
    w = ChannelWindows(600, 10, max_tracked_values=tracked)
    for dimension, second, score in touchpoints:
        w.add("store", dimension, T0 + second * SECOND, score, None, score < 50, False)
    at = T0 + 600 * SECOND
    total = w.snapshot("store", "", at, window)
    reported = w.top_values("store", at, window, n)
    assert len(reported) <= n + 1
    assert all(stats.volume > 0 for _, stats in reported)
    if any(dimension != OTHER for dimension, _ in reported):
        assert sum(stats.volume for _, stats in reported) == total.volume
        assert sum(stats.friction_rate * stats.volume for _, stats in reported) == pytest.approx(
            total.friction_rate * total.volume)
