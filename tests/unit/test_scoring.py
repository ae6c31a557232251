"""The scoring model from one table: every signal, its direction and its points, on the bundled file."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pipeline.config import load_model_config
from pipeline.model import Event, Feedback
from pipeline.scoring import (
    BASE,
    CLAMP,
    FRICTION_SIGNALS,
    Score,
    ScoringModel,
    TouchpointContext,
    decay_score,
    dimension_of,
    is_detractor,
    is_error,
    is_failed_contact,
    is_friction,
    is_promoter,
    score_change,
)

CONFIG = load_model_config(None)
MODEL = ScoringModel(CONFIG.scoring)
BASE_POINTS = CONFIG.scoring.base_points  # 85
HOUR_MS = 3_600_000
WEEK_MS = 7 * 24 * HOUR_MS


def event(channel: str, type_: str = "visit", feedback: Feedback | None = None, **attributes: Any) -> Event:
    return Event("e1", 1_700_000_000_000, channel, type_, attributes=attributes, feedback=feedback)


def signals(score: Score) -> dict[str, float]:
    return {name: points for name, points in score.components if name != BASE}


def assert_adds_up(score: Score) -> None:
    assert math.isclose(sum(points for _, points in score.components), score.value, abs_tol=1e-3)


REPEAT = TouchpointContext(repeat_contact=True)
SWITCH = TouchpointContext(channel_switch=True)
NONE = TouchpointContext()

# (touchpoint, context, the signals it shows with their points). Negative points lower the score.
SIGNALS = [
    pytest.param(event("call", wait_seconds=60), NONE, {}, id="call wait at threshold is free"),
    pytest.param(event("call", wait_seconds=180), NONE, {"call.wait": -8.0}, id="call wait 2 min over: 4/min"),
    pytest.param(event("call", wait_seconds=90), NONE, {"call.wait": -2.0}, id="call wait pro rata"),
    pytest.param(event("call", wait_seconds=3600), NONE, {"call.wait": -30.0}, id="call wait capped"),
    pytest.param(event("call", wait_seconds="180"), NONE, {"call.wait": -8.0}, id="call wait sent as text"),
    pytest.param(event("call", wait_seconds="n/a"), NONE, {}, id="call wait not a number is ignored"),
    pytest.param(event("call", transfers=1), NONE, {"call.transfers": -8.0}, id="one transfer"),
    pytest.param(event("call", transfers=5), NONE, {"call.transfers": -24.0}, id="transfers capped"),
    pytest.param(event("call", transfers=0), NONE, {}, id="no transfer"),
    pytest.param(event("call", abandoned=True), NONE, {"call.abandoned": -40.0}, id="abandoned call"),
    pytest.param(event("call", abandoned="true"), NONE, {"call.abandoned": -40.0}, id="abandoned as text"),
    pytest.param(event("call", abandoned=True, resolved=False), NONE, {"call.abandoned": -40.0},
                 id="abandoned call is not also unresolved"),
    pytest.param(event("call", resolved=False), NONE, {"call.unresolved": -20.0}, id="unresolved call"),
    pytest.param(event("call", resolved=True), NONE, {"call.resolved": 10.0}, id="resolved call"),
    pytest.param(event("call", resolved="yes"), NONE, {"call.resolved": 10.0}, id="resolved as yes"),
    pytest.param(event("call"), REPEAT, {"repeat_contact": -15.0}, id="repeat contact"),
    pytest.param(event("web"), SWITCH, {"channel_switch": -5.0}, id="channel switch"),
    pytest.param(event("web", error_code="500"), NONE, {"web.error": -25.0}, id="web error"),
    pytest.param(event("web", error_code=""), NONE, {}, id="empty error code is no error"),
    pytest.param(event("web", load_ms=3000), NONE, {}, id="page load at threshold"),
    pytest.param(event("web", load_ms=3001), NONE, {"web.slow_load": -10.0}, id="slow page"),
    pytest.param(event("web", "checkout_abandoned"), NONE, {"web.checkout_abandoned": -20.0}, id="checkout abandoned"),
    pytest.param(event("web", "cart_abandoned"), NONE, {"web.checkout_abandoned": -20.0}, id="cart abandoned"),
    pytest.param(event("web", "checkout"), NONE, {"purchase": 10.0}, id="web checkout is a purchase"),
    pytest.param(event("store", "purchase"), NONE, {"purchase": 10.0}, id="store purchase"),
    pytest.param(event("app", crash=True), NONE, {"app.crash": -40.0}, id="app crash attribute"),
    pytest.param(event("app", "app_crash"), NONE, {"app.crash": -40.0}, id="app crash event type"),
    pytest.param(event("app", rating=2), NONE, {"app.low_rating": -20.0}, id="low app rating"),
    pytest.param(event("app", rating=3), NONE, {}, id="fair app rating"),
    pytest.param(event("store", wait_seconds=420), NONE, {"store.wait": -4.0}, id="store wait 2 min over: 2/min"),
    pytest.param(event("store", wait_seconds=36000), NONE, {"store.wait": -20.0}, id="store wait capped"),
    pytest.param(event("store", "return"), NONE, {"store.return": -15.0}, id="product return"),
    pytest.param(event("call", wait_seconds=3600, transfers=5, abandoned=True), REPEAT,
                 {"call.wait": -30.0, "call.transfers": -24.0, "call.abandoned": -40.0,
                  "repeat_contact": -15.0, CLAMP: 24.0}, id="clamped at 0"),
    pytest.param(event("store", "purchase", resolved=True), NONE, {"purchase": 10.0}, id="resolved only counts on calls"),
]


@pytest.mark.parametrize(("touchpoint", "context", "expected"), SIGNALS)
def test_each_signal_moves_the_score_its_way_by_its_points(touchpoint: Event, context: TouchpointContext,
                                                            expected: dict[str, float]) -> None:
    score = MODEL.score_touchpoint(touchpoint, context)
    assert signals(score) == expected
    assert dict(score.components)[BASE] == BASE_POINTS
    assert score.value == min(max(BASE_POINTS + sum(expected.values()), 0), 100)
    assert_adds_up(score)
    assert is_friction(score) == any(name in FRICTION_SIGNALS for name in expected)


@pytest.mark.parametrize(
    ("kind", "answer", "points"),
    [
        ("nps", 0, 0.0), ("nps", 7, 70.0), ("nps", 10, 100.0),
        ("csat", 1, 0.0), ("csat", 3, 50.0), ("csat", 5, 100.0),
        ("ces", 7, 0.0), ("ces", 4, 50.0), ("ces", 1, 100.0),  # effort: 1 is best
    ],
)
def test_feedback_maps_onto_0_100_and_weighs_feedback_weight(kind: str, answer: int, points: float) -> None:
    score = MODEL.score_touchpoint(event("web", feedback=Feedback(kind, answer)))
    assert dict(score.components)[f"feedback.{kind}"] == pytest.approx(0.8 * points)
    assert score.value == pytest.approx(0.8 * points + 0.2 * BASE_POINTS)
    assert_adds_up(score)


def test_feedback_dominates_friction() -> None:
    worst = dict(wait_seconds=3600, transfers=5, abandoned=True)
    delighted_despite_friction = MODEL.score_touchpoint(event("call", feedback=Feedback("nps", 10), **worst), REPEAT)
    unhappy_despite_no_friction = MODEL.score_touchpoint(event("store", "purchase", feedback=Feedback("csat", 1)))
    assert delighted_despite_friction.value >= 80
    assert unhappy_despite_no_friction.value <= 20
    assert is_friction(delighted_despite_friction)  # the friction is still on record
    assert_adds_up(delighted_despite_friction)


def test_an_unknown_feedback_kind_is_no_feedback() -> None:
    assert MODEL.score_touchpoint(event("web", feedback=Feedback("stars", 5))).value == BASE_POINTS


@pytest.mark.parametrize(
    ("values", "switches", "outcome", "expected"),
    [
        ([70.0], 0, None, {"touchpoints": 70.0}),
        ([90.0, 30.0, 60.0], 0, None, {"touchpoints": 54.0}),  # (90+30+60 + last 60 + worst 30) / 5
        ([30.0, 90.0], 0, None, {"touchpoints": 60.0}),  # (30+90 + last 90 + worst 30) / 4
        ([80.0, 80.0], 2, None, {"touchpoints": 80.0, "journey.channel_switches": -6.0}),
        ([80.0, 80.0], 9, None, {"touchpoints": 80.0, "journey.channel_switches": -15.0}),  # capped
        ([80.0], 0, "purchased", {"touchpoints": 80.0, "journey.outcome.purchased": 5.0}),
        ([80.0], 0, "inactive", {"touchpoints": 80.0, "journey.outcome.inactive": 0.0}),
        ([80.0], 0, "unlisted", {"touchpoints": 80.0}),
        ([100.0], 0, "resolved", {"touchpoints": 100.0, "journey.outcome.resolved": 5.0, CLAMP: -5.0}),
        ([5.0], 8, None, {"touchpoints": 5.0, "journey.channel_switches": -15.0, CLAMP: 10.0}),
    ],
)
def test_journey_score_weights_last_and_worst_then_switches_and_outcome(
        values: list[float], switches: int, outcome: str | None, expected: dict[str, float]) -> None:
    scores = [Score(value, ((BASE, value),)) for value in values]
    journey = MODEL.score_journey(scores, switches, outcome)
    assert dict(journey.components) == pytest.approx(expected)
    assert journey.value == pytest.approx(min(max(sum(expected.values()), 0), 100))


def test_a_journey_needs_a_touchpoint() -> None:
    with pytest.raises(ValueError):
        MODEL.score_journey([], 0, None)


@pytest.mark.parametrize(
    ("previous", "previous_ms", "new", "at_ms", "expected"),
    [
        (None, None, 30.0, 0, 30.0),  # first touchpoint
        (80.0, 0, 20.0, 0, 50.0),  # equally recent: blended equally
        (80.0, 0, 20.0, WEEK_MS, (80 * 0.5 + 20) / 1.5),  # history one half-life old
        (80.0, 0, 20.0, 10 * WEEK_MS, pytest.approx(20.0, abs=0.1)),  # old history hardly counts
        (80.0, WEEK_MS, 20.0, 0, (80 + 20 * 0.5) / 1.5),  # a late touchpoint weighs by its event time
    ],
)
def test_rolling_score_decays_with_event_time(previous: float | None, previous_ms: int | None, new: float,
                                              at_ms: int, expected: float) -> None:
    assert decay_score(previous, previous_ms, new, at_ms, WEEK_MS / 1000) == pytest.approx(expected)


def test_rolling_score_of_two_touchpoints_does_not_depend_on_arrival_order() -> None:
    half_life = WEEK_MS / 1000
    assert decay_score(70.0, 5 * HOUR_MS, 20.0, 2 * HOUR_MS, half_life) == pytest.approx(
        decay_score(20.0, 2 * HOUR_MS, 70.0, 5 * HOUR_MS, half_life))


@pytest.mark.parametrize(
    ("touchpoint", "dimension"),
    [
        (event("call", queue="billing"), "billing"),
        (event("store", store_id=12), "12"),
        (event("app", app_version="5.2.1"), "5.2.1"),
        (event("web", page="/checkout/step-2"), "checkout"),
        (event("web", page="https://shop.example/account/orders?tab=1"), "account"),
        (event("web", page="/"), ""),
        (event("web"), ""),
        (event("call"), ""),
    ],
)
def test_dimension_of_each_channel(touchpoint: Event, dimension: str) -> None:
    assert dimension_of(touchpoint) == dimension


@pytest.mark.parametrize(
    ("touchpoint", "failed", "error"),
    [
        (event("call", abandoned=True), True, False),
        (event("call", resolved=False), True, False),
        (event("call", resolved=True), False, False),
        (event("call", wait_seconds=900), False, False),
        (event("web", error_code="503"), False, True),
        (event("app", "app_crash"), False, True),
        (event("app", crash="false"), False, False),
        (event("store", resolved=False), False, False),  # only calls are contacts that fail
    ],
)
def test_failed_contacts_and_errors(touchpoint: Event, failed: bool, error: bool) -> None:
    assert is_failed_contact(touchpoint) is failed
    assert is_error(touchpoint) is error


@pytest.mark.parametrize(("answer", "promoter", "detractor"),
                         [(10, True, False), (9, True, False), (8, False, False), (7, False, False),
                          (6, False, True), (0, False, True)])
def test_nps_classes(answer: int, promoter: bool, detractor: bool) -> None:
    assert (is_promoter(answer), is_detractor(answer)) == (promoter, detractor)


def test_a_score_off_the_scale_is_refused() -> None:
    with pytest.raises(ValueError):
        Score(100.5, ())


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (hours after the first touchpoint, rolling score before, rolling score after) -> change
        ([(0, None, 70.0)], [0.0]),
        ([(0, None, 70.0), (2, 70.0, 50.0), (5, 50.0, 40.0)], [0.0, -20.0, -30.0]),
        ([(0, None, 70.0), (2, 70.0, 50.0), (24, 50.0, 60.0)], [0.0, -20.0, 10.0]),  # a new day: from 50
        ([(0, 60.0, 80.0), (1, 80.0, 90.0)], [20.0, 30.0]),  # measured from the score before the window
    ],
)
def test_the_change_of_the_rolling_score_over_the_change_window(steps, expected) -> None:
    window = None
    changes = []
    for hours, previous, rolling in steps:
        window, change = score_change(window, previous, rolling, 1_700_000_000_000 + hours * HOUR_MS, 86400)
        changes.append(change)
    assert changes == expected
