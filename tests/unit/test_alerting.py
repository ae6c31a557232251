"""The rule engine: one table per rule kind, then cooldown, escalation, scoping and replay."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.alerting import FIRING, RESOLVED, AlertEvent, RuleState, evaluate_channel, evaluate_customer
from pipeline.config import AlertRule, Escalation, load_model_config
from pipeline.windows import WindowStats

T0 = 1_700_000_000_000
MINUTE = 60_000
DAY = 24 * 60 * MINUTE


def stats(volume: int = 100, mean_score: float | None = 70.0, nps: float | None = 20.0, nps_responses: int = 50,
          error_rate: float | None = 0.0) -> WindowStats:
    return WindowStats(volume=volume, mean_score=mean_score, nps=nps, nps_responses=nps_responses,
                       mean_csat=None, csat_responses=0, mean_ces=None, ces_responses=0,
                       friction_rate=0.0, error_rate=error_rate)


def customer(rolling: float, previous: float | None = None, failed: int = 0, ltv: float | None = None) -> dict:
    return dict(rolling_score=rolling, previous_score=previous, failed_contacts=failed, lifetime_value=ltv)


def run(rule: AlertRule, steps: list[tuple[int, Any]], subject: tuple[str, str] = ("call", "")) -> list[AlertEvent | None]:
    """Evaluate the rule at each (time, input) in turn; the event (or None) of each step."""
    states: dict[str, RuleState] = {}
    out: list[AlertEvent | None] = []
    for at_ms, given in steps:
        if rule.subject == "customer":
            states, events = evaluate_customer([rule], states, "c-1", at_ms=at_ms, **given)
        else:
            states, events = evaluate_channel([rule], states, *subject, given, at_ms)
        assert len(events) <= 1
        out.append(events[0] if events else None)
    return out


def at(minutes: int) -> int:
    return T0 + minutes * MINUTE


BELOW = AlertRule("at_risk", "customer_score_below", 40, "warning", hysteresis=5)
DROP = AlertRule("drop", "customer_score_drop", 30, "warning", window_seconds=86400, hysteresis=10)
FAILED = AlertRule("failed", "customer_failed_contacts", 2, "warning")
CHANNEL = AlertRule("channel_low", "channel_score_below", 55, "critical", min_samples=20, hysteresis=5)
NPS = AlertRule("nps_low", "channel_nps_below", 0, "warning", min_samples=10, hysteresis=10)
ERRORS = AlertRule("errors", "channel_error_rate_above", 0.05, "critical", min_samples=50, hysteresis=0.01)

# (rule, [(minute, input)], the state of the event each step gives: "firing", "resolved" or None)
TABLE = [
    pytest.param(BELOW, [(0, customer(50)), (1, customer(39)), (2, customer(30)), (3, customer(42)),
                         (4, customer(45)), (5, customer(35))],
                 [None, FIRING, None, None, RESOLVED, FIRING], id="customer_score_below with hysteresis"),
    pytest.param(DROP, [(0, customer(80)), (1, customer(70, 80)), (2, customer(45, 70)), (3, customer(55, 45)),
                        (4, customer(75, 60))],
                 [None, None, FIRING, None, RESOLVED], id="customer_score_drop from the window's highest"),
    pytest.param(DROP, [(0, customer(80, 85)), (2, customer(45, 80)), (24 * 60 + 5, customer(44, 45))],
                 [None, FIRING, RESOLVED], id="customer_score_drop resolves when its window restarts"),
    pytest.param(FAILED, [(0, customer(60, failed=1)), (1, customer(60, failed=2)), (2, customer(60, failed=3)),
                          (3, customer(60, failed=4)), (4, customer(60, failed=0))],
                 [None, None, FIRING, None, RESOLVED], id="customer_failed_contacts above the count"),
    pytest.param(CHANNEL, [(0, stats(volume=10, mean_score=30)), (1, stats(volume=25, mean_score=50)),
                           (2, stats(volume=30, mean_score=58)), (3, stats(volume=5, mean_score=90)),
                           (4, stats(volume=30, mean_score=61))],
                 [None, FIRING, None, None, RESOLVED], id="channel_score_below with min_samples and hysteresis"),
    pytest.param(NPS, [(0, stats(nps=-30, nps_responses=5)), (1, stats(nps=-30, nps_responses=12)),
                       (2, stats(nps=5, nps_responses=12)), (3, stats(nps=None, nps_responses=0)),
                       (4, stats(nps=10, nps_responses=40))],
                 [None, FIRING, None, None, RESOLVED], id="channel_nps_below counts NPS answers"),
    pytest.param(ERRORS, [(0, stats(error_rate=0.04)), (1, stats(error_rate=0.10)), (2, stats(error_rate=0.045)),
                          (3, stats(error_rate=0.04))],
                 [None, FIRING, None, RESOLVED], id="channel_error_rate_above with hysteresis"),
    pytest.param(CHANNEL, [(0, stats(volume=30, mean_score=40)), (1, stats(volume=3, mean_score=45)),
                           (2, stats(volume=0, mean_score=None)), (3, stats(volume=0, mean_score=None)),
                           (4, stats(volume=30, mean_score=40))],
                 [FIRING, None, RESOLVED, None, FIRING], id="a channel that goes quiet resolves on an empty window"),
    pytest.param(NPS, [(0, stats(nps=-30, nps_responses=12)), (1, stats(nps=None, nps_responses=0, volume=8)),
                       (2, stats(volume=0, nps=None, nps_responses=0))],
                 [FIRING, None, RESOLVED], id="no NPS answers keep the alert; no touchpoints at all resolve it"),
]


@pytest.mark.parametrize(("rule", "steps", "expected"), TABLE)
def test_each_rule_kind_fires_once_per_breach_and_resolves_past_its_hysteresis(
        rule: AlertRule, steps: list[tuple[int, Any]], expected: list[str | None]) -> None:
    events = run(rule, [(at(minute), given) for minute, given in steps])
    assert [event.state if event else None for event in events] == expected
    open_alert: AlertEvent | None = None
    for event, (minute, _) in zip(events, steps):
        if event is None:
            continue
        assert (event.rule, event.threshold, event.subject_kind) == (rule.name, rule.threshold, rule.subject)
        assert event.occurred_at_ms == at(minute)
        if event.state == RESOLVED:  # carries the id of the alert it ends
            assert open_alert is not None and event.alert_id == open_alert.alert_id
        open_alert = event if event.state == FIRING else None


def test_cooldown_holds_back_a_new_alert_then_fires_a_breach_that_outlasts_it() -> None:
    rule = replace(BELOW, cooldown_seconds=3600, hysteresis=0)
    events = run(rule, [(at(0), customer(30)), (at(1), customer(50)), (at(10), customer(30)),
                        (at(30), customer(25)), (at(61), customer(20)), (at(62), customer(50))])
    assert [e.state if e else None for e in events] == [FIRING, RESOLVED, None, None, FIRING, RESOLVED]
    first, refire = events[0], events[4]
    assert first and refire and first.alert_id != refire.alert_id
    # the held-back breach began at minute 10: its id says so, whenever it fired
    states, _ = evaluate_customer([rule], {}, "c-1", 30, None, 0, at(10), None)
    assert states["at_risk"].alert_id == refire.alert_id


def test_a_recovery_during_the_cooldown_forgets_the_held_back_breach() -> None:
    rule = replace(BELOW, cooldown_seconds=3600, hysteresis=0)
    events = run(rule, [(at(0), customer(30)), (at(1), customer(50)), (at(10), customer(30)),
                        (at(20), customer(60)), (at(70), customer(30))])
    assert [e.state if e else None for e in events] == [FIRING, RESOLVED, None, None, FIRING]


def test_high_value_customers_escalate_and_the_resolution_keeps_the_severity() -> None:
    rule = replace(BELOW, escalation=Escalation(lifetime_value_at_least=5000, severity="critical"))
    vip = run(rule, [(at(0), customer(30, ltv=9000)), (at(1), customer(90, ltv=100))])
    assert [(e.state, e.severity) for e in vip if e] == [(FIRING, "critical"), (RESOLVED, "critical")]
    regular = run(rule, [(at(0), customer(30, ltv=4999.99))])
    assert regular[0] and regular[0].severity == "warning"


def test_a_replay_gives_the_same_alerts_with_the_same_ids() -> None:
    steps = [(at(minute), customer(score)) for minute, score in enumerate([70, 35, 20, 60, 30, 80])]
    first, second = run(BELOW, steps), run(BELOW, steps)
    assert first == second
    assert len({e.alert_id for e in first if e}) == 2


@pytest.mark.parametrize(
    ("rule", "subject", "watched"),
    [
        (CHANNEL, ("call", ""), True),
        (CHANNEL, ("call", "billing"), False),  # no dimension: the channel total only
        (replace(CHANNEL, dimension="queue", channel="call"), ("call", "billing"), True),
        (replace(CHANNEL, dimension="queue", channel="call"), ("call", ""), False),
        (replace(CHANNEL, dimension="queue", channel="call"), ("web", "checkout"), False),
        (replace(CHANNEL, channel="web"), ("web", ""), True),
        (replace(CHANNEL, channel="web"), ("app", ""), False),
        (BELOW, ("call", ""), False),  # customer rules are not channel rules
    ],
)
def test_channel_rules_watch_their_channel_and_dimension(rule: AlertRule, subject: tuple[str, str],
                                                         watched: bool) -> None:
    states, events = evaluate_channel([rule], {}, *subject, stats(mean_score=10), at(0))
    assert bool(events) is watched
    if events:
        assert (events[0].channel, events[0].dimension, events[0].customer_key) == (*subject, "")


def test_customer_alerts_name_the_customer_and_no_channel() -> None:
    _, events = evaluate_customer([BELOW, CHANNEL], {}, "c-42", 10.0, None, 0, at(0), None)
    assert [(e.rule, e.customer_key, e.channel, e.dimension) for e in events] == [("at_risk", "c-42", "", "")]
    assert "rolling score 10 below 40" in events[0].details


def test_state_is_kept_only_while_it_remembers_something() -> None:
    rule = replace(BELOW, cooldown_seconds=600)
    states, _ = evaluate_customer([rule], {}, "c-1", 80.0, None, 0, at(0), None)
    assert states == {}
    states, _ = evaluate_customer([rule], states, "c-1", 20.0, 80.0, 0, at(1), None)
    assert states["at_risk"].firing
    states, _ = evaluate_customer([rule], states, "c-1", 90.0, 20.0, 0, at(2), None)
    assert not states["at_risk"].firing and states["at_risk"].last_fired_ms == at(1)  # cooldown still running
    states, _ = evaluate_customer([rule], states, "c-1", 90.0, 90.0, 0, at(12), None)
    assert states == {}
    stale = {"removed_rule": RuleState(alert_id="x", severity="info")}
    assert evaluate_customer([rule], stale, "c-1", 90.0, 90.0, 0, at(13), None)[0] == {}


def test_the_shipped_rules_fire_on_the_shipped_thresholds() -> None:
    rules = load_model_config(None).alerts
    _, events = evaluate_customer(rules, {}, "c-1", 39.0, 45.0, 3, at(0), None)
    assert sorted(e.rule for e in events) == ["customer_at_risk", "customer_repeated_failed_contacts"]
    _, events = evaluate_channel(rules, {}, "call", "", stats(volume=20, mean_score=54.9), at(0))
    assert [(e.rule, e.severity) for e in events] == [("channel_score_low", "critical")]
    _, events = evaluate_channel(rules, {}, "call", "", stats(volume=19, mean_score=10), at(0))
    assert events == []


def test_a_quiet_resolution_says_so_and_has_no_value() -> None:
    queue_rule = replace(CHANNEL, dimension="queue", channel="call")
    events = run(queue_rule, [(at(0), stats(volume=30, mean_score=40)), (at(5), stats(volume=0, mean_score=None))],
                 subject=("call", "billing"))
    resolved = events[1]
    assert resolved is not None and resolved.state == RESOLVED and math.isnan(resolved.value)
    assert resolved.details == "mean score unknown on call queue=billing: quiet, no touchpoints in the window"


@settings(max_examples=200)
@given(st.sampled_from([BELOW, CHANNEL, ERRORS]), st.floats(0.01, 0.99), st.data())
def test_hysteresis_never_flaps_on_a_value_oscillating_inside_the_band(rule: AlertRule, depth: float, data) -> None:
    """Once fired, values between the threshold and threshold +/- hysteresis neither resolve nor re-fire."""
    band = rule.hysteresis
    assert band > 0
    inside = st.floats(0, 0.999).map(
        lambda share: rule.threshold + share * band if rule.fires_below else rule.threshold - share * band)
    breach = rule.threshold - depth * 10 * band if rule.fires_below else rule.threshold + depth * 10 * band
    values = [breach] + data.draw(st.lists(inside, min_size=1, max_size=30))
    steps = [(at(minute), _given(rule, value)) for minute, value in enumerate(values)]
    events = run(rule, steps)
    assert events[0] is not None and events[0].state == FIRING
    assert events[1:] == [None] * (len(values) - 1)


def _given(rule: AlertRule, value: float) -> Any:
    if rule.kind == "customer_score_below":
        return customer(max(value, 0.0))
    if rule.kind == "channel_score_below":
        return stats(volume=30, mean_score=max(value, 0.0))
    return stats(volume=60, error_rate=min(max(value, 0.0), 1.0))
