"""ChannelHealth over the shipped model: ticks in event time, snapshots, quiet channels resolve."""

from __future__ import annotations

import math

import pytest

from pipeline.alerting import FIRING, RESOLVED
from pipeline.channel_health import ChannelHealth
from pipeline.config import load_model_config
from pipeline.model import Event
from pipeline.scoring import Score
from pipeline.windows import OTHER

T0 = 1_700_000_040_000  # a minute boundary
SECOND = 1000


def touch(health: ChannelHealth, n: int, channel: str, at_ms: int, score: float, attributes: dict | None = None):
    alerts = []
    for i in range(n):
        event = Event(f"e-{channel}-{at_ms}-{i}", at_ms, channel, "visit", attributes=attributes or {})
        alerts += health.observe(event, Score(score, (("base", score),)))
    return alerts


def test_a_channel_that_goes_quiet_while_firing_resolves_once_its_window_is_empty() -> None:
    health = ChannelHealth(load_model_config())
    alerts = touch(health, 30, "web", T0 + SECOND, 20.0, {"page": "/checkout/pay"})
    for minute in range(1, 18):  # only calls from now on: event time moves, the web stays quiet
        alerts += touch(health, 1, "call", T0 + minute * 60 * SECOND, 80.0)
    web = [(a.rule, a.state, a.channel) for a in alerts if a.channel == "web"]
    assert web == [("channel_score_low", FIRING, "web"), ("channel_score_low", RESOLVED, "web")]
    resolved = alerts[-1] if alerts[-1].channel == "web" else next(a for a in alerts if a.state == RESOLVED)
    assert math.isnan(resolved.value)
    assert resolved.details == "mean score unknown on web: quiet, no touchpoints in the window"
    assert resolved.alert_id == next(a.alert_id for a in alerts if a.state == FIRING)
    # resolved at the first tick whose 5-minute window no longer reaches the burst
    assert resolved.occurred_at_ms == T0 + 5 * 60 * SECOND
    assert ("web", "") not in health.states  # the cooldown (15 min) over, nothing to remember


def test_a_quiet_channel_without_a_firing_alert_resolves_nothing() -> None:
    health = ChannelHealth(load_model_config())
    alerts = touch(health, 30, "web", T0 + SECOND, 90.0)
    for minute in range(1, 12):
        alerts += touch(health, 1, "call", T0 + minute * 60 * SECOND, 80.0)
    assert alerts == []


def test_snapshots_are_taken_at_each_tick_and_drained_once() -> None:
    health = ChannelHealth(load_model_config())
    touch(health, 3, "call", T0 + SECOND, 50.0, {"queue": "billing"})
    touch(health, 1, "call", T0 + 2 * SECOND, 70.0)
    assert health.take_figures() == []  # no tick crossed yet
    touch(health, 1, "call", T0 + 61 * SECOND, 90.0, {"queue": "sales"})
    figures = health.take_figures()
    assert {f.window_end_ms for f in figures} == {T0 + 60 * SECOND}
    # the tick is judged before the call at 61 s that moves event time past it
    assert [(f.dimension, f.window_seconds, f.stats.volume) for f in figures] == [
        ("", 300, 4), ("billing", 300, 3), (OTHER, 300, 1),
        ("", 3600, 4), ("billing", 3600, 3), (OTHER, 3600, 1),
    ]
    assert health.take_figures() == []


def test_quiet_evaluation_judges_alerts_but_takes_no_snapshot() -> None:
    health = ChannelHealth(load_model_config())
    touch(health, 25, "store", T0 + SECOND, 10.0, {"store_id": "s-7"})
    alerts = health.evaluate_quiet()
    assert {(a.rule, a.dimension) for a in alerts} == {("channel_score_low", ""), ("store_score_low", "s-7")}
    assert health.evaluate_quiet() == []  # the watermark has not moved
    assert health.take_figures() == []


@pytest.mark.parametrize("values", [60, 150])
def test_dimension_subjects_stay_bounded_by_the_tracked_values(values: int) -> None:
    health = ChannelHealth(load_model_config())
    for i in range(values):
        touch(health, 1, "app", T0 + SECOND + i, 50.0, {"app_version": f"9.{i}"})
    touch(health, 1, "app", T0 + 61 * SECOND, 50.0)
    limit = health.config.windows.dimension_max_tracked
    assert len(health.windows.subjects()) == 1 + min(values, limit)
    reported = {f.dimension for f in health.take_figures()}
    assert len(reported) <= 1 + health.config.windows.dimension_top_n + 1


def test_the_current_figures_follow_the_watermark_between_ticks() -> None:
    health = ChannelHealth(load_model_config())
    assert health.figures_now() == []
    touch(health, 2, "call", T0 + SECOND, 50.0, {"queue": "billing"})
    touch(health, 1, "call", T0 + 30 * SECOND, 80.0, {"queue": "billing"})  # no tick crossed
    now = {(f.dimension, f.window_seconds): (f.window_end_ms, f.stats.volume) for f in health.figures_now()}
    assert now == {("", 300): (T0 + 30 * SECOND, 3), ("billing", 300): (T0 + 30 * SECOND, 3),
                   ("", 3600): (T0 + 30 * SECOND, 3), ("billing", 3600): (T0 + 30 * SECOND, 3)}
    assert health.take_figures() == []  # the current figures are no snapshot


@pytest.mark.parametrize("idle_seconds, resolved", [(0, False), (120, False), (299, False), (310, True), (3600, True)])
def test_an_idle_stream_lets_a_firing_alert_resolve_once_wall_time_empties_its_window(idle_seconds: float,
                                                                                      resolved: bool) -> None:
    health = ChannelHealth(load_model_config())
    touch(health, 30, "web", T0 + SECOND, 20.0)  # the last traffic of the whole stream
    assert [(a.rule, a.state) for a in health.evaluate_quiet()] == [("channel_score_low", FIRING)]
    alerts = health.evaluate_quiet(idle_seconds=idle_seconds)
    assert [(a.rule, a.state) for a in alerts] == ([("channel_score_low", RESOLVED)] if resolved else [])
    if resolved:
        assert "quiet" in alerts[0].details


def test_a_gap_in_the_stream_writes_no_empty_rows() -> None:
    health = ChannelHealth(load_model_config())
    touch(health, 1, "call", T0 + SECOND, 50.0)
    touch(health, 1, "call", T0 + 10 * 3600 * SECOND, 70.0)  # ten hours later: 600 ticks crossed
    figures = health.take_figures()
    assert figures and all(f.stats.volume > 0 or f.window_seconds == 300 for f in figures)
    assert len({f.window_end_ms for f in figures}) == 59  # ticks 1 min .. 59 min: the hour still holds the call


def test_the_gauges_of_an_idle_stream_empty_with_the_wall_clock() -> None:
    health = ChannelHealth(load_model_config())
    touch(health, 3, "store", T0 + SECOND, 70.0, {"store_id": "s-1"})
    assert health.channel_totals(idle_seconds=200)["store"].volume == 3
    assert health.channel_totals(idle_seconds=310)["store"].volume == 0  # the 5-minute window has emptied
    assert {f.window_seconds for f in health.figures_now(idle_seconds=310) if f.stats.volume} == {3600}
    assert health.figures_now(idle_seconds=3610) == []  # quiet for the longest window: no series


def test_touchpoints_older_than_every_window_kept_are_counted_as_refused() -> None:
    health = ChannelHealth(load_model_config())
    touch(health, 2, "call", T0 + 3 * 3600 * SECOND, 70.0)  # event time moves three hours on
    touch(health, 3, "web", T0, 70.0)  # older than the longest window (1 h) behind it
    touch(health, 1, "web", T0 + 2 * 3600 * SECOND + 30 * 60 * SECOND, 70.0)  # within it: counted
    assert health.take_refused() == {"web": 3}
    assert health.take_refused() == {}  # drained
    assert health.windows.snapshot("web", "", T0 + 3 * 3600 * SECOND, 3600).volume == 1
