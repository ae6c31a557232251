"""Touchpoint, journey and rolling customer scores: 0-100, and explained by their components.

A score carries its components, each a name and the signed points it contributed, and they add up
to the score, so an analyst can read why a touchpoint scored 43 (``base`` 85, ``call.wait`` -30,
``call.transfers`` -16, ...). Component names follow the keys of the ``scoring`` section of the
model file. Every signal is monotone: a better wait, fewer transfers, a resolved call or a higher
survey answer never lowers a score. The weights are documented in ``docs/scoring.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from pipeline.config import DIMENSION_BY_CHANNEL, FeedbackScale, ScoringConfig, WaitScoring
from pipeline.model import AttributeValue, Event

BASE = "base"
# Brings a sum that left 0-100 back onto the scale; present only when it did.
CLAMP = "clamp"
FRICTION_SIGNALS = frozenset({
    "call.wait", "call.transfers", "call.abandoned", "call.unresolved",
    "web.error", "web.slow_load", "web.checkout_abandoned",
    "app.crash", "app.low_rating",
    "store.wait", "store.return",
    "repeat_contact", "channel_switch",
})
SCORE_DECIMALS = 4  # scores and points are rounded to ten-thousandths of a point
NPS_PROMOTER_MIN = 9
NPS_DETRACTOR_MAX = 6

Component = tuple[str, float]


@dataclass(frozen=True, slots=True)
class Score:
    """A 0-100 score and the signed points it is made of, which add up to ``value`` (to 0.001)."""

    value: float
    components: tuple[Component, ...]

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 100.0:
            raise ValueError(f"a score lies within 0-100, got {self.value}")


@dataclass(frozen=True, slots=True)
class TouchpointContext:
    """What the customer step knows about a touchpoint beyond the event itself."""

    repeat_contact: bool = False  # a call within the repeat-contact window of the previous call
    channel_switch: bool = False  # on another channel than the journey's previous touchpoint


class ScoringModel:
    """The scoring section of the model file, applied to touchpoints and journeys."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self._channel_signals: Mapping[str, Callable[[Event], list[Component]]] = {
            "call": self._call_signals,
            "web": self._web_signals,
            "app": self._app_signals,
            "store": self._store_signals,
        }

    def score_touchpoint(self, event: Event, context: TouchpointContext = TouchpointContext()) -> Score:
        """Friction score from the base and the signals; a survey answer, if any, dominates it.

        With feedback the score is ``feedback_weight * answer + (1 - feedback_weight) * friction``,
        and every friction component is scaled by ``1 - feedback_weight`` so the sum still holds.
        """
        friction_value, friction = _clamped([(BASE, self.config.base_points), *self._signals(event, context)])
        feedback = event.feedback
        scale = self.config.feedback_scales.get(feedback.kind) if feedback else None
        if feedback is None or scale is None:  # an unknown kind is no answer; the decoder refuses it
            return _score(friction_value, friction)
        answer = _answer_points(scale, feedback.score)
        weight = self.config.feedback_weight
        return _score(
            weight * answer + (1 - weight) * friction_value,
            [(f"feedback.{feedback.kind}", weight * answer),
             *((name, (1 - weight) * points) for name, points in friction)],
        )

    def score_journey(self, scores: Sequence[Score], channel_switches: int, outcome: str | None) -> Score:
        """Weighted mean of the touchpoint scores (in event-time order), then switches and outcome.

        The last and the worst touchpoint weigh more: the mean is ``(sum + (w_last - 1) * last +
        (w_worst - 1) * worst) / (n + w_last - 1 + w_worst - 1)``, which rises with every
        touchpoint score (weights are >= 1), so a better touchpoint never lowers a journey.
        """
        return self.score_journey_values([score.value for score in scores], channel_switches, outcome)

    def score_journey_values(self, values: Sequence[float], channel_switches: int, outcome: str | None) -> Score:
        """:meth:`score_journey` from the touchpoint scores' values, which is all a journey keeps
        (building a ``Score`` for each of up to ``max_scored_touchpoints`` per row was a hot spot)."""
        if not values:
            raise ValueError("a journey has at least one scored touchpoint")
        config = self.config.journey
        extra_last = config.last_touchpoint_weight - 1
        extra_worst = config.worst_touchpoint_weight - 1
        mean = (sum(values) + extra_last * values[-1] + extra_worst * min(values)) / (
            len(values) + extra_last + extra_worst
        )
        components: list[Component] = [("touchpoints", mean)]
        if channel_switches > 0:
            penalty = min(channel_switches * config.channel_switch_penalty_points,
                          config.channel_switches_max_penalty_points)
            components.append(_penalty("journey.channel_switches", penalty))
        if outcome in config.outcome_points:
            components.append((f"journey.outcome.{outcome}", config.outcome_points[outcome]))
        return _score(*_clamped(components))

    def _signals(self, event: Event, context: TouchpointContext) -> list[Component]:
        config = self.config
        signals: list[Component] = []
        if event.type in config.purchase_types:
            signals.append(("purchase", config.purchase_bonus_points))
        if context.repeat_contact:
            signals.append(_penalty("repeat_contact", config.repeat_contact_penalty_points))
        if context.channel_switch:
            signals.append(_penalty("channel_switch", config.channel_switch_penalty_points))
        channel_signals = self._channel_signals.get(event.channel)
        return signals + channel_signals(event) if channel_signals else signals

    def _call_signals(self, event: Event) -> list[Component]:
        config = self.config.call
        attributes = event.attributes
        signals = _wait_signal("call.wait", attributes, config.wait)
        transfers = _number(attributes, "transfers")
        if transfers is not None and transfers > 0:
            penalty = min(transfers * config.transfer_penalty_points, config.transfers_max_penalty_points)
            signals.append(_penalty("call.transfers", penalty))
        if _abandoned(event):
            signals.append(_penalty("call.abandoned", config.abandoned_penalty_points))
        elif _flag(attributes, "resolved") is True:
            signals.append(("call.resolved", config.resolved_bonus_points))
        elif _unresolved(event):
            signals.append(_penalty("call.unresolved", config.unresolved_penalty_points))
        return signals

    def _web_signals(self, event: Event) -> list[Component]:
        config = self.config.web
        signals: list[Component] = []
        if _web_error(event):
            signals.append(_penalty("web.error", config.error_penalty_points))
        load_ms = _number(event.attributes, "load_ms")
        if load_ms is not None and load_ms > config.slow_load_threshold_ms:
            signals.append(_penalty("web.slow_load", config.slow_load_penalty_points))
        if event.type in config.checkout_abandoned_types:
            signals.append(_penalty("web.checkout_abandoned", config.checkout_abandoned_penalty_points))
        return signals

    def _app_signals(self, event: Event) -> list[Component]:
        config = self.config.app
        signals: list[Component] = []
        if _app_crash(event):
            signals.append(_penalty("app.crash", config.crash_penalty_points))
        rating = _number(event.attributes, "rating")
        if rating is not None and rating <= config.low_rating_max_stars:
            signals.append(_penalty("app.low_rating", config.low_rating_penalty_points))
        return signals

    def _store_signals(self, event: Event) -> list[Component]:
        config = self.config.store
        signals = _wait_signal("store.wait", event.attributes, config.wait)
        if event.type in config.return_types:
            signals.append(_penalty("store.return", config.return_penalty_points))
        return signals


def decay_score(previous: float | None, previous_ms: int | None, new: float, at_ms: int,
                half_life_seconds: float) -> float:
    """The customer's rolling score after a touchpoint scored ``new`` at ``at_ms`` (event time).

    The previous rolling score stands for the customer's history as one touchpoint at
    ``previous_ms``: the two are blended equally when equally recent, and whichever is older
    loses half its weight per half-life between them. So a new touchpoint weighs at least half,
    and a history many half-lives old hardly counts. The result lies between the two inputs and
    rises with each of them.

    Arrival order: for one previous score and one touchpoint the result is symmetric in time (a
    late touchpoint is weighted as its event time says). Over three or more touchpoints it is
    not order-independent: swapping two touchpoints that arrive close together can move the score
    by up to a quarter of their difference, because the later arrival always weighs at least half.
    Replaying the same stream in the same order gives the same score.
    """
    if previous is None or previous_ms is None:
        return new
    newest_ms = max(previous_ms, at_ms)
    previous_weight = _halvings(newest_ms - previous_ms, half_life_seconds)
    new_weight = _halvings(newest_ms - at_ms, half_life_seconds)
    return (previous * previous_weight + new * new_weight) / (previous_weight + new_weight)


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """Where a customer's current change window began: the rolling score then, and when."""

    baseline_score: float
    baseline_ms: int


def score_change(window: ChangeWindow | None, previous_score: float | None, rolling_score: float, at_ms: int,
                 window_seconds: int) -> tuple[ChangeWindow, float]:
    """The rolling score's change over the customer's change window, after a touchpoint at ``at_ms``.

    ``previous_score`` is the rolling score before this touchpoint (None for the first one, whose
    change is 0). A window begins at the first touchpoint after the previous window ran
    ``window_seconds`` of event time, with the score as it stood just before that touchpoint; so
    "-25" reads "25 points lower than at the start of this day's contacts". Kept in the
    customer's state (two numbers), so it costs no history.
    """
    if window is None or at_ms - window.baseline_ms >= window_seconds * 1000:
        baseline = previous_score if previous_score is not None else rolling_score
        window = ChangeWindow(baseline, at_ms)
    return window, round(rolling_score - window.baseline_score, SCORE_DECIMALS) + 0.0


def dimension_of(event: Event) -> str:
    """The value of the channel's breakdown dimension, "" when the event does not carry it.

    Web pages are grouped by the first segment of their path (``/checkout/step-2`` ->
    ``checkout``) so the dimension stays low-cardinality.
    """
    if event.channel == "web":
        page = event.attributes.get("page")
        path = urlsplit(page).path if isinstance(page, str) else ""
        return next((segment for segment in path.split("/") if segment), "")
    name = DIMENSION_BY_CHANNEL.get(event.channel)
    value = event.attributes.get(name) if name else None
    return "" if value is None else str(value)


def is_friction(score: Score) -> bool:
    """The touchpoint showed at least one friction signal (whatever its weight)."""
    return any(name in FRICTION_SIGNALS for name, _ in score.components)


def is_failed_contact(event: Event) -> bool:
    """A contact that did not help: an abandoned call, or a call that ended unresolved."""
    return _abandoned(event) or _unresolved(event)


def is_error(event: Event) -> bool:
    """A technical failure the customer saw: a web error or an app crash (channel error rate)."""
    return _web_error(event) or _app_crash(event)


def is_promoter(nps_answer: int) -> bool:
    return nps_answer >= NPS_PROMOTER_MIN


def is_detractor(nps_answer: int) -> bool:
    return nps_answer <= NPS_DETRACTOR_MAX


# -- signals read from attributes ----------------------------------------------------------


def _abandoned(event: Event) -> bool:
    return event.channel == "call" and _flag(event.attributes, "abandoned") is True


def _unresolved(event: Event) -> bool:
    """An answered call that ended unresolved (an abandoned call is counted as abandoned)."""
    return event.channel == "call" and not _abandoned(event) and _flag(event.attributes, "resolved") is False


def _web_error(event: Event) -> bool:
    return event.channel == "web" and event.attributes.get("error_code") not in (None, "")


def _app_crash(event: Event) -> bool:
    return event.channel == "app" and (event.type == "app_crash" or _flag(event.attributes, "crash") is True)


def _wait_signal(name: str, attributes: Mapping[str, AttributeValue], config: WaitScoring) -> list[Component]:
    wait = _number(attributes, "wait_seconds")
    if wait is None or wait <= config.threshold_seconds:
        return []
    penalty = (wait - config.threshold_seconds) / 60 * config.penalty_points_per_minute
    return [_penalty(name, min(penalty, config.max_penalty_points))]


def _number(attributes: Mapping[str, AttributeValue], key: str) -> float | None:
    """A numeric attribute, also when a producer sent it as text; None when absent or not a number."""
    value = attributes.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _flag(attributes: Mapping[str, AttributeValue], key: str) -> bool | None:
    """A yes/no attribute sent as a boolean, 0/1 or text; None when absent or unclear."""
    value = attributes.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            value.strip().lower()
        )
    return None


# -- arithmetic ------------------------------------------------------------------------------


def _penalty(name: str, points: float) -> Component:
    return name, -points


def _clamped(components: list[Component]) -> tuple[float, list[Component]]:
    """The components' sum brought onto 0-100, and the components plus what brought it back if
    it had left the scale (their sum is computed once: this runs for every touchpoint and row)."""
    total = math.fsum([points for _, points in components])
    value = _on_scale(total)
    excess = value - total
    return value, ([*components, (CLAMP, excess)] if excess else components)


def _score(value: float, components: list[Component]) -> Score:
    """Rounded to a ten-thousandth of a point: float noise would only confuse an analyst."""
    return Score(
        _rounded(_on_scale(value)),
        tuple([(name, _rounded(points) + 0.0) for name, points in components]),  # no -0.0
    )


def _rounded(number: float) -> float:
    """``round(number, SCORE_DECIMALS)``; a whole number (as most points are) is returned as it is,
    which is what ``round`` returns, without its decimal conversion (a few per touchpoint)."""
    if isinstance(number, float) and number.is_integer():
        return number
    return round(number, SCORE_DECIMALS)


def _answer_points(scale: FeedbackScale, answer: int) -> float:
    share = (answer - scale.worst) / (scale.best - scale.worst)
    return 100.0 * min(max(share, 0.0), 1.0)


def _on_scale(value: float) -> float:
    return min(max(value, 0.0), 100.0)


def _halvings(elapsed_ms: int, half_life_seconds: float) -> float:
    return 0.5 ** (elapsed_ms / 1000 / half_life_seconds)
