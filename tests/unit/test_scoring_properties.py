"""Invariants over generated touchpoints, journeys and alert histories (Hypothesis)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.alerting import FIRING, RESOLVED, RuleState, evaluate_channel, evaluate_customer
from pipeline.config import AlertRule, load_model_config
from pipeline.model import Event, Feedback
from pipeline.scoring import Score, ScoringModel, TouchpointContext, decay_score
from pipeline.windows import ChannelWindows, WindowStats

MODEL = ScoringModel(load_model_config(None).scoring)
T0 = 1_700_000_000_000
FEEDBACK_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

maybe = lambda strategy: st.none() | strategy  # noqa: E731 - an attribute may be absent
flags = st.sampled_from([True, False, "true", "false", "yes", 0, 1])


@st.composite
def touchpoints(draw: st.DrawFn) -> tuple[Event, TouchpointContext]:
    attributes = {
        "wait_seconds": draw(maybe(st.floats(0, 7200) | st.integers(0, 7200))),
        "transfers": draw(maybe(st.integers(0, 8))),
        "abandoned": draw(maybe(flags)),
        "resolved": draw(maybe(flags)),
        "error_code": draw(maybe(st.sampled_from(["", "404", "500"]))),
        "load_ms": draw(maybe(st.integers(0, 20000))),
        "crash": draw(maybe(flags)),
        "rating": draw(maybe(st.integers(1, 5))),
    }
    kind = draw(st.sampled_from(sorted(FEEDBACK_RANGES)))
    feedback = draw(maybe(st.integers(*FEEDBACK_RANGES[kind]).map(lambda answer: Feedback(kind, answer))))
    event = Event(
        "e1", T0, draw(st.sampled_from(["call", "web", "store", "app"])),
        draw(st.sampled_from(["visit", "call_ended", "purchase", "checkout", "checkout_abandoned", "app_crash",
                              "return"])),
        attributes={k: v for k, v in attributes.items() if v is not None},
        feedback=feedback,
    )
    return event, TouchpointContext(draw(st.booleans()), draw(st.booleans()))


def _set(event: Event, **changes: object) -> Event:
    attributes = {**event.attributes, **changes}
    return event._replace(attributes={k: v for k, v in attributes.items() if v is not None})


# Each takes a touchpoint and returns it with one signal made better (or unchanged if not there).
Improvement = Callable[[Event, TouchpointContext, random.Random], tuple[Event, TouchpointContext]]
IMPROVEMENTS: dict[str, Improvement] = {
    "shorter wait": lambda e, c, r: (_set(e, wait_seconds=float(e.attributes["wait_seconds"]) * r.random())
                                     if "wait_seconds" in e.attributes else e, c),
    "fewer transfers": lambda e, c, r: (_set(e, transfers=r.randint(0, int(e.attributes["transfers"])))
                                        if "transfers" in e.attributes else e, c),
    "not abandoned": lambda e, c, r: (_set(e, abandoned=False), c),
    "resolved": lambda e, c, r: (_set(e, resolved=True), c),
    "no longer unresolved": lambda e, c, r: (_set(e, resolved=None) if e.attributes.get("resolved") in
                                             (False, "false", 0) else e, c),
    "no error": lambda e, c, r: (_set(e, error_code=None), c),
    "faster page": lambda e, c, r: (_set(e, load_ms=r.randint(0, int(e.attributes["load_ms"])))
                                    if "load_ms" in e.attributes else e, c),
    "no crash": lambda e, c, r: (_set(e._replace(type="visit") if e.type == "app_crash" else e, crash=False), c),
    "higher rating": lambda e, c, r: (_set(e, rating=r.randint(int(e.attributes["rating"]), 5))
                                      if "rating" in e.attributes else e, c),
    "no return or abandoned checkout": lambda e, c, r: (
        e._replace(type="visit") if e.type in ("return", "checkout_abandoned") else e, c),
    "a purchase": lambda e, c, r: (e._replace(type="purchase"), c),
    "no repeat contact": lambda e, c, r: (e, replace(c, repeat_contact=False)),
    "no channel switch": lambda e, c, r: (e, replace(c, channel_switch=False)),
    "better answer": lambda e, c, r: (e._replace(feedback=_better(e.feedback, r)), c),
}


def _better(feedback: Feedback | None, r: random.Random) -> Feedback | None:
    if feedback is None:
        return None
    low, high = FEEDBACK_RANGES[feedback.kind]
    if feedback.kind == "ces":  # effort: lower is better
        return Feedback("ces", r.randint(low, feedback.score))
    return Feedback(feedback.kind, r.randint(feedback.score, high))


def _adds_up(score: Score) -> bool:
    return math.isclose(sum(points for _, points in score.components), score.value, abs_tol=1e-3)


@given(touchpoints())
def test_touchpoint_scores_stay_in_0_100_and_their_components_add_up(touchpoint) -> None:
    score = MODEL.score_touchpoint(*touchpoint)
    assert 0 <= score.value <= 100
    assert _adds_up(score)


@given(touchpoints(), st.randoms(use_true_random=False))
def test_a_better_signal_never_lowers_a_touchpoint_score(touchpoint, r: random.Random) -> None:
    score = MODEL.score_touchpoint(*touchpoint).value
    for name, improve in IMPROVEMENTS.items():
        assert MODEL.score_touchpoint(*improve(*touchpoint, r)).value >= score, name


scores_0_100 = st.floats(0, 100)


@given(st.lists(scores_0_100, min_size=1, max_size=12), st.integers(0, 10),
       st.sampled_from([None, "purchased", "resolved", "inactive"]), st.data())
def test_journey_scores_stay_in_0_100_and_rise_with_any_touchpoint(values, switches, outcome, data) -> None:
    scores = [Score(v, (("base", v),)) for v in values]
    journey = MODEL.score_journey(scores, switches, outcome)
    assert 0 <= journey.value <= 100 and _adds_up(journey)
    i = data.draw(st.integers(0, len(values) - 1))
    raised = data.draw(st.floats(values[i], 100))
    better = [*scores[:i], Score(raised, (("base", raised),)), *scores[i + 1:]]
    assert MODEL.score_journey(better, switches, outcome).value >= journey.value
    assert MODEL.score_journey(scores, max(switches - 1, 0), outcome).value >= journey.value


times = st.integers(0, 60 * 86_400_000)


@given(maybe(scores_0_100), times, scores_0_100, scores_0_100, times)
def test_rolling_score_stays_between_its_inputs_and_rises_with_the_new_score(previous, previous_ms, new, higher,
                                                                           at_ms) -> None:
    rolled = decay_score(previous, previous_ms if previous is not None else None, new, at_ms, 604800)
    low, high = sorted([new, new if previous is None else previous])
    assert low - 1e-9 <= rolled <= high + 1e-9
    if higher >= new:
        assert decay_score(previous, previous_ms, higher, at_ms, 604800) >= rolled - 1e-9


@given(st.lists(st.tuples(st.integers(0, 290), scores_0_100, st.booleans(), st.booleans()), min_size=1,
                max_size=30), st.randoms(use_true_random=False))
def test_window_figures_do_not_depend_on_arrival_order(touchpoints_, r: random.Random) -> None:
    def snapshot(order: list) -> WindowStats:
        windows = ChannelWindows(300)
        for second, score, friction, error in order:
            assert windows.add("web", "checkout", T0 + second * 1000, score, None, friction, error)
        return windows.snapshot("web", "checkout", T0 + 290 * 1000)

    shuffled = list(touchpoints_)
    r.shuffle(shuffled)
    first, second = snapshot(touchpoints_), snapshot(shuffled)
    assert first._replace(mean_score=None) == second._replace(mean_score=None)
    assert math.isclose(first.mean_score, second.mean_score, abs_tol=1e-9)


RULES = [
    AlertRule("low", "customer_score_below", 40, "warning"),
    AlertRule("errors", "channel_error_rate_above", 0.05, "critical", min_samples=5),
]


@settings(max_examples=200)
@given(st.sampled_from(RULES), st.integers(0, 3600), st.floats(0, 0.2),
       st.lists(st.tuples(st.integers(1, 1800), st.floats(0, 1)), min_size=1, max_size=40))
def test_alerts_fire_first_resolve_only_what_fired_and_respect_the_cooldown(rule, cooldown_seconds, hysteresis,
                                                                          steps) -> None:
    rule = replace(rule, cooldown_seconds=cooldown_seconds, hysteresis=hysteresis * (100 if rule.subject == "customer"
                                                                                     else 0.1))
    states: dict[str, RuleState] = {}
    at_ms = T0
    open_id: str | None = None
    fired_at: list[int] = []
    for step, (gap_seconds, level) in enumerate(steps):
        at_ms += gap_seconds * 1000
        if rule.subject == "customer":
            value = 100 * level
            states, events = evaluate_customer([rule], states, "c-1", value, None, 0, at_ms, None)
        else:
            value = 0.1 * level
            stats = WindowStats(50, 70.0, None, 0, None, 0, None, 0, 0.0, value)
            states, events = evaluate_channel([rule], states, "web", "", stats, at_ms)
        breached = value < rule.threshold if rule.fires_below else value > rule.threshold
        if open_id is None and breached and (not fired_at or at_ms - fired_at[-1] >= cooldown_seconds * 1000):
            assert [e.state for e in events] == [FIRING]  # so the cooldown never holds back the first alert
        for event in events:
            if event.state == RESOLVED:  # only what fired resolves, once
                assert event.alert_id == open_id
                open_id = None
            else:
                assert open_id is None
                assert not fired_at or at_ms - fired_at[-1] >= cooldown_seconds * 1000
                open_id = event.alert_id
                fired_at.append(at_ms)
