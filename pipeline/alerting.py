"""Alert rules over one customer or one channel window: pure, with the state made explicit.

The caller keeps one ``RuleState`` per rule name and subject (customer rules in the customer's
state, channel rules next to the channel windows), passes the states in, and stores the ones that
come back; a state that has nothing left to remember is not returned, so state stays small.

For each rule and subject:

* a breach fires one alert, which stays firing while the breach lasts: one cause, one alert;
* it resolves once the value is back on the good side of the threshold by the rule's hysteresis,
  so a value hovering at the threshold does not flap;
* after an alert fired, the same rule and subject fire nothing new for ``cooldown_seconds``; a
  breach that outlasts the cooldown fires then. The first alert is never held back;
* the alert id derives from the rule, the subject and the event time the breach began, so a
  replay of the same events gives the same ids; a resolution carries its firing alert's id.

Times are event times in epoch milliseconds, so a replay evaluates exactly as the first run did.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

from pipeline.config import DIMENSION_BY_CHANNEL, AlertRule
from pipeline.windows import CHANNEL_TOTAL, WindowStats

FIRING = "firing"
RESOLVED = "resolved"
_ALERT_ID_NAMESPACE = uuid.UUID("5f0b7c52-3f7e-4d3c-9a57-1d1e7e0c2a11")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert firing or resolving: the record for the alerts topic and table.

    Customer alerts have channel and dimension ""; channel alerts have customer_key "" and
    dimension "" for the channel total.
    """

    alert_id: str
    rule: str
    severity: str
    state: str  # "firing" | "resolved"
    subject_kind: str  # "customer" | "channel"
    channel: str
    dimension: str
    customer_key: str
    value: float
    threshold: float
    occurred_at_ms: int
    details: str


@dataclass(frozen=True, slots=True)
class RuleState:
    """What one rule remembers about one subject between evaluations."""

    breach_since_ms: int | None = None  # event time the current breach began
    alert_id: str | None = None  # the firing alert; None when not firing
    severity: str | None = None  # the firing alert's severity, repeated on its resolution
    last_fired_ms: int | None = None  # when an alert last fired, for the cooldown
    baseline_score: float | None = None  # customer_score_drop: the score a drop is measured from
    baseline_ms: int | None = None  # customer_score_drop: when its window began

    @property
    def firing(self) -> bool:
        return self.alert_id is not None


States = Mapping[str, RuleState]  # by rule name, for one subject

# The state of a rule that remembers nothing (immutable, so one object serves every subject).
_NOTHING_REMEMBERED = RuleState()


class _Subject(NamedTuple):
    """Who an evaluation is about (a tuple: built once per customer touchpoint, cheaply)."""

    kind: str
    channel: str
    dimension: str
    customer_key: str

    @property
    def key(self) -> str:
        if self.kind == "customer":
            return f"customer:{self.customer_key}"
        return f"channel:{self.channel}:{self.dimension}"


_MEASURES: Mapping[str, str] = {
    "customer_score_below": "rolling score",
    "customer_score_drop": "rolling score drop",
    "customer_failed_contacts": "failed contacts in the journey",
    "channel_score_below": "mean score",
    "channel_nps_below": "NPS",
    "channel_error_rate_above": "error rate",
}

# Each channel kind's value and the number of samples behind it.
_CHANNEL_VALUES: Mapping[str, Callable[[WindowStats], tuple[float | None, int]]] = {
    "channel_score_below": lambda stats: (stats.mean_score, stats.volume),
    "channel_nps_below": lambda stats: (stats.nps, stats.nps_responses),
    "channel_error_rate_above": lambda stats: (stats.error_rate, stats.volume),
}


def evaluate_customer(rules: Sequence[AlertRule], states: States, customer_key: str, rolling_score: float,
                      previous_score: float | None, failed_contacts: int, at_ms: int,
                      lifetime_value: float | None) -> tuple[dict[str, RuleState], list[AlertEvent]]:
    """Evaluate the customer rules after one touchpoint of this customer.

    ``previous_score`` is the rolling score before this touchpoint (None for the first one) and
    ``failed_contacts`` the failed contacts in the customer's open journey. A drop is measured
    from the highest rolling score since the rule's window began; a new window begins at the first
    touchpoint after the previous one ran its ``window_seconds``.
    """
    subject = _Subject("customer", "", "", customer_key)
    new_states: dict[str, RuleState] = {}
    events: list[AlertEvent] = []
    for rule in rules:
        if rule.subject != "customer":
            continue
        state = states.get(rule.name, _NOTHING_REMEMBERED)
        value: float | None
        if rule.kind == "customer_score_drop":
            state = _rebase(rule, state, previous_score, at_ms)
            value = None if state.baseline_score is None else state.baseline_score - rolling_score
        elif rule.kind == "customer_score_below":
            value = rolling_score
        else:  # customer_failed_contacts
            value = float(failed_contacts)
        if value is not None:
            state, event = _step(rule, state, subject, value, _severity(rule, lifetime_value), at_ms, "")
            if event:
                events.append(event)
        _keep(new_states, rule, state, at_ms)
    return new_states, events


def evaluate_channel(rules: Sequence[AlertRule], states: States, channel: str, dimension: str,
                     stats: WindowStats, at_ms: int) -> tuple[dict[str, RuleState], list[AlertEvent]]:
    """Evaluate the channel rules that watch this channel and dimension ("" is the total).

    A rule with fewer samples than its ``min_samples`` (window touchpoints; NPS answers for NPS)
    is not evaluated and keeps its state: too little traffic is no evidence of recovery. But a
    window with no touchpoint at all resolves a firing alert (value NaN, "quiet" in the details):
    the subject has gone quiet, and an alert that can never be judged again must not fire forever.
    """
    subject = _Subject("channel", channel, dimension, "")
    new_states: dict[str, RuleState] = {}
    events: list[AlertEvent] = []
    for rule in rules:
        if not watches(rule, channel, dimension):
            continue
        state = states.get(rule.name, _NOTHING_REMEMBERED)
        value, samples = _CHANNEL_VALUES[rule.kind](stats)
        scope = f" on {channel}" + (f" {rule.dimension}={dimension}" if dimension else "")
        if stats.volume == 0 and state.alert_id is not None and state.severity is not None:
            events.append(_event(rule, subject, state.alert_id, state.severity, RESOLVED, math.nan, at_ms,
                                 f"{scope}: quiet, no touchpoints in the window"))
            state = _resolved(state)
        elif value is not None and samples >= rule.min_samples:
            note = f"{scope} ({samples} samples)"
            state, event = _step(rule, state, subject, value, rule.severity, at_ms, note)
            if event:
                events.append(event)
        _keep(new_states, rule, state, at_ms)
    return new_states, events


def alert_id_for(rule: str, subject_key: str, breach_since_ms: int) -> str:
    """Deterministic: the same breach of the same rule and subject always has the same id."""
    return str(uuid.uuid5(_ALERT_ID_NAMESPACE, f"{rule}\x00{subject_key}\x00{breach_since_ms}"))


def watches(rule: AlertRule, channel: str, dimension: str) -> bool:
    """Whether the rule judges this subject: a channel rule, for this channel, and for its total
    or its dimension values. Only the channel and whether ``dimension`` is the total matter."""
    if rule.subject != "channel" or rule.channel not in (None, channel):
        return False
    if rule.dimension is None:
        return dimension == CHANNEL_TOTAL
    return dimension != CHANNEL_TOTAL and DIMENSION_BY_CHANNEL.get(channel) == rule.dimension


def _step(rule: AlertRule, state: RuleState, subject: _Subject, value: float, severity: str, at_ms: int,
          note: str) -> tuple[RuleState, AlertEvent | None]:
    """One evaluation of one rule for one subject: the new state and the alert it causes, if any."""
    if state.alert_id is not None and state.severity is not None:  # firing
        if not _recovered(rule, value):
            return state, None
        event = _event(rule, subject, state.alert_id, state.severity, RESOLVED, value, at_ms, note)
        return _resolved(state), event
    if not _breached(rule, value):
        return _breach_since(state, None), None
    since = state.breach_since_ms if state.breach_since_ms is not None else at_ms
    if _cooling(rule, state, at_ms):
        return _breach_since(state, since), None
    alert_id = alert_id_for(rule.name, subject.key, since)
    fired = RuleState(since, alert_id, severity, at_ms, state.baseline_score, state.baseline_ms)
    return fired, _event(rule, subject, alert_id, severity, FIRING, value, at_ms, note)


# RuleState changes are spelled out rather than made with ``dataclasses.replace``, which costs
# several times as much, and evaluation runs for every rule at every customer touchpoint.

def _breach_since(state: RuleState, since_ms: int | None) -> RuleState:
    """``state`` with its breach begun at ``since_ms`` (None: no breach). Mostly that is already
    so: ``state`` itself then."""
    if state.breach_since_ms == since_ms:
        return state
    return RuleState(since_ms, state.alert_id, state.severity, state.last_fired_ms, state.baseline_score,
                     state.baseline_ms)


def _resolved(state: RuleState) -> RuleState:
    """``state`` once its alert resolved: no breach nor alert; the cooldown and the drop baseline stay."""
    return RuleState(None, None, None, state.last_fired_ms, state.baseline_score, state.baseline_ms)


def _rebased(state: RuleState, baseline_score: float, baseline_ms: int) -> RuleState:
    return RuleState(state.breach_since_ms, state.alert_id, state.severity, state.last_fired_ms, baseline_score,
                     baseline_ms)


def _breached(rule: AlertRule, value: float) -> bool:
    return value < rule.threshold if rule.fires_below else value > rule.threshold


def _recovered(rule: AlertRule, value: float) -> bool:
    if rule.fires_below:
        return value >= rule.threshold + rule.hysteresis
    return value <= rule.threshold - rule.hysteresis


def _cooling(rule: AlertRule, state: RuleState, at_ms: int) -> bool:
    return state.last_fired_ms is not None and at_ms - state.last_fired_ms < rule.cooldown_seconds * 1000


def _event(rule: AlertRule, subject: _Subject, alert_id: str, severity: str, kind: str, value: float,
           at_ms: int, note: str) -> AlertEvent:
    if kind == FIRING:
        relation = f"{'below' if rule.fires_below else 'above'} {rule.threshold:g}"
    elif math.isnan(value):  # resolved on a quiet window: nothing to compare
        relation = ""
    else:
        bound = rule.threshold + rule.hysteresis if rule.fires_below else rule.threshold - rule.hysteresis
        relation = f"back {'at or above' if rule.fires_below else 'at or below'} {bound:g}"
    return AlertEvent(
        alert_id=alert_id,
        rule=rule.name,
        severity=severity,
        state=kind,
        subject_kind=subject.kind,
        channel=subject.channel,
        dimension=subject.dimension,
        customer_key=subject.customer_key,
        value=value,
        threshold=rule.threshold,
        occurred_at_ms=at_ms,
        details=" ".join(part for part in (_MEASURES[rule.kind], "unknown" if math.isnan(value) else f"{value:.4g}",
                                          relation) if part) + note,
    )


def _severity(rule: AlertRule, lifetime_value: float | None) -> str:
    escalation = rule.escalation
    if escalation and lifetime_value is not None and lifetime_value >= escalation.lifetime_value_at_least:
        return escalation.severity
    return rule.severity


def _rebase(rule: AlertRule, state: RuleState, previous_score: float | None, at_ms: int) -> RuleState:
    """Track the drop baseline: the highest score since the window began, restarting after it."""
    if previous_score is None:
        return state
    window_ms = 1000 * (rule.window_seconds or 0)
    if state.baseline_ms is None or state.baseline_score is None or at_ms - state.baseline_ms >= window_ms:
        return _rebased(state, previous_score, at_ms)
    if previous_score > state.baseline_score:  # the window's highest score so far
        return _rebased(state, previous_score, state.baseline_ms)
    return state


def _keep(states: dict[str, RuleState], rule: AlertRule, state: RuleState, at_ms: int) -> None:
    """Keep a state only while it remembers something: a breach, a baseline or a live cooldown."""
    remembers = state.breach_since_ms is not None or state.firing or state.baseline_score is not None
    if remembers or _cooling(rule, state, at_ms):
        states[rule.name] = state
