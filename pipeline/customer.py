"""The per-customer keyed step: one event and the previous state in, new state and rows out.

Pure and explicit, after bytewax's ``stateful_map``: ``apply_event(state, key, event) ->
(state, Emitted)``. The agent stores the state in a Faust table and hands ``Emitted`` to the
sinks. Nothing here knows about Kafka or ClickHouse beyond the column names of the rows.

De-duplication: the last ``recent_limit`` event ids are kept with what is needed to rebuild their
touchpoint row byte for byte (journey id, sequence number, context flags). A replayed event does
not change the state again, but its rows are emitted again with the same versions, because the
first attempt may have crashed before they were stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from pipeline.alerting import AlertEvent, RuleState, evaluate_customer
from pipeline.config import INACTIVE_OUTCOME, ModelConfig
from pipeline.model import Event
from pipeline.scoring import Score, ScoringModel, TouchpointContext, decay_score, dimension_of, is_failed_contact, is_friction

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class OpenJourney:
    journey_id: str
    started_ms: int
    last_ms: int
    channels: tuple[str, ...]
    last_channel: str
    switches: int
    scores: tuple[Score, ...]
    failed_contacts: int = 0
    outcome: str = ""  # terminal outcome seen; the journey closes once the lateness has passed


@dataclass(frozen=True, slots=True)
class Seen:
    """Enough of an applied event to emit its touchpoint row again, identically."""

    event_id: str
    journey_id: str
    seq: int
    repeat_contact: bool
    channel_switch: bool


@dataclass(frozen=True, slots=True)
class CustomerState:
    seq: int = 0
    journey: OpenJourney | None = None
    rolling_score: float | None = None
    rolling_ms: int | None = None
    touchpoints: int = 0
    lifetime_value: float = 0.0
    last_call_ms: int | None = None
    recent: tuple[Seen, ...] = ()
    alert_states: Mapping[str, RuleState] = field(default_factory=dict)


@dataclass
class Emitted:
    """What one step produced; ``rows`` maps a ClickHouse table to its new rows."""

    rows: dict[str, list[Row]] = field(
        default_factory=lambda: {"touchpoints": [], "journeys": [], "customer_scores": [], "alerts": []}
    )
    alerts: list[AlertEvent] = field(default_factory=list)
    closed_outcomes: list[str] = field(default_factory=list)
    touchpoint_score: Score | None = None
    duplicate: bool = False

    def extend(self, other: Emitted) -> None:
        for table, rows in other.rows.items():
            self.rows[table].extend(rows)
        self.alerts.extend(other.alerts)
        self.closed_outcomes.extend(other.closed_outcomes)


def journey_id_for(customer_key: str, first_event_id: str) -> str:
    """Stable: named after the event that opened it, not its start time, so it survives growth."""
    digest = hashlib.blake2b(f"{customer_key}\x00{first_event_id}".encode(), digest_size=10).hexdigest()
    return f"j-{digest}"


class CustomerStep:
    """The step with its configuration bound once."""

    def __init__(self, config: ModelConfig, recent_limit: int = 32) -> None:
        self.config = config
        self.model = ScoringModel(config.scoring)
        self.recent_limit = recent_limit

    # -- the step -------------------------------------------------------------------------------

    def apply_event(self, state: CustomerState | None, key: str, event: Event) -> tuple[CustomerState, Emitted]:
        state = state or CustomerState()
        emitted = Emitted()
        for seen in state.recent:
            if seen.event_id == event.event_id:
                emitted.duplicate = True
                context = TouchpointContext(seen.repeat_contact, seen.channel_switch)
                score = self.model.score_touchpoint(event, context)
                emitted.rows["touchpoints"].append(self._touchpoint_row(key, event, seen.journey_id, score, seen.seq))
                if state.journey is not None:
                    emitted.rows["journeys"].append(self._journey_row(key, state.journey, "open", "", state.seq))
                return state, emitted

        journey = state.journey
        if journey is not None and self._expired(journey, event.occurred_at_ms, event.channel):
            state, closed = self.close_journey(state, key, outcome=journey.outcome or INACTIVE_OUTCOME)
            emitted.extend(closed)
            journey = None

        repeat_contact = (
            event.channel == "call"
            and state.last_call_ms is not None
            and 0 <= event.occurred_at_ms - state.last_call_ms <= self.config.scoring.repeat_contact_window_seconds * 1000
        )
        channel_switch = journey is not None and journey.last_channel != event.channel
        score = self.model.score_touchpoint(event, TouchpointContext(repeat_contact, channel_switch))
        seq = state.seq + 1

        if journey is None:
            journey = OpenJourney(
                journey_id=journey_id_for(key, event.event_id),
                started_ms=event.occurred_at_ms,
                last_ms=event.occurred_at_ms,
                channels=(event.channel,),
                last_channel=event.channel,
                switches=0,
                scores=(),
            )
        journey = OpenJourney(
            journey_id=journey.journey_id,
            started_ms=min(journey.started_ms, event.occurred_at_ms),
            last_ms=max(journey.last_ms, event.occurred_at_ms),
            channels=journey.channels if event.channel in journey.channels else journey.channels + (event.channel,),
            last_channel=event.channel,
            switches=journey.switches + int(channel_switch),
            scores=(journey.scores + (score,))[-self.config.journeys.max_scored_touchpoints:],
            failed_contacts=journey.failed_contacts + int(is_failed_contact(event)),
            outcome=journey.outcome or self.config.journeys.terminal_outcome(event) or "",
        )

        previous_score = state.rolling_score
        rolling = decay_score(
            state.rolling_score, state.rolling_ms, score.value, event.occurred_at_ms,
            self.config.customer.half_life_seconds,
        )
        lifetime_value = state.lifetime_value + max(event.value or 0.0, 0.0)
        alert_states, alerts = evaluate_customer(
            self.config.alerts, state.alert_states, key, rolling, previous_score,
            journey.failed_contacts, event.occurred_at_ms, lifetime_value,
        )
        seen = Seen(event.event_id, journey.journey_id, seq, repeat_contact, channel_switch)
        state = CustomerState(
            seq=seq,
            journey=journey,
            rolling_score=rolling,
            rolling_ms=max(event.occurred_at_ms, state.rolling_ms or 0),
            touchpoints=state.touchpoints + 1,
            lifetime_value=lifetime_value,
            last_call_ms=event.occurred_at_ms if event.channel == "call" else state.last_call_ms,
            recent=(state.recent + (seen,))[-self.recent_limit:],
            alert_states=alert_states,
        )
        emitted.touchpoint_score = score
        emitted.rows["touchpoints"].append(self._touchpoint_row(key, event, journey.journey_id, score, seq))
        emitted.rows["customer_scores"].append(self._customer_row(key, state, score))
        emitted.alerts.extend(alerts)
        emitted.rows["alerts"].extend(alert_row(alert, seq) for alert in alerts)

        emitted.rows["journeys"].append(self._journey_row(key, journey, "open", journey.outcome, seq))
        return state, emitted

    def close_journey(self, state: CustomerState, key: str, outcome: str) -> tuple[CustomerState, Emitted]:
        """Close the open journey: its final row is emitted and it leaves the state."""
        emitted = Emitted()
        if state.journey is None:
            return state, emitted
        seq = state.seq + 1
        emitted.rows["journeys"].append(self._journey_row(key, state.journey, "closed", outcome, seq))
        emitted.closed_outcomes.append(outcome)
        return replace(state, seq=seq, journey=None), emitted

    def close_if_idle(self, state: CustomerState, key: str, watermark_ms: int) -> tuple[CustomerState, Emitted] | None:
        """For the timer: close a journey that event time has left behind, even if no event comes."""
        journey = state.journey
        if journey is None or not self._expired(journey, watermark_ms, journey.last_channel):
            return None
        return self.close_journey(state, key, outcome=journey.outcome or INACTIVE_OUTCOME)

    def _expired(self, journey: OpenJourney, at_ms: int, channel: str) -> bool:
        """A journey ends after the inactivity gap, its maximum length, or a terminal outcome.

        A terminal outcome closes it only once the allowed lateness has passed in event time, so
        touchpoints that happened before the outcome but arrive after it still join the journey.
        """
        journeys = self.config.journeys
        gap_ms = journeys.gap_seconds(channel) * 1000
        return (
            at_ms - journey.last_ms > gap_ms
            or at_ms - journey.started_ms > journeys.max_duration_seconds * 1000
            or (bool(journey.outcome) and at_ms - journey.last_ms > journeys.allowed_lateness_seconds * 1000)
        )

    # -- rows ----------------------------------------------------------------------------------

    def _touchpoint_row(self, key: str, event: Event, journey_id: str, score: Score, seq: int) -> Row:
        feedback = event.feedback
        return {
            "event_id": event.event_id,
            "customer_key": key,
            "journey_id": journey_id,
            "channel": event.channel,
            "type": event.type,
            "occurred_at": event.occurred_at_ms // 1000,
            "occurred_at_ms": event.occurred_at_ms,
            "dimension": dimension_of(event),
            "score": score.value,
            "component_names": [name for name, _ in score.components],
            "component_points": [points for _, points in score.components],
            "feedback_kind": feedback.kind if feedback else "",
            "feedback_score": feedback.score if feedback else None,
            "value": event.value,
            "friction": int(is_friction(score)),
            "late": 0,
            "version": seq,
        }

    def _journey_row(self, key: str, journey: OpenJourney, status: str, outcome: str, seq: int) -> Row:
        score = self.model.score_journey(journey.scores, journey.switches, outcome or None)
        return {
            "journey_id": journey.journey_id,
            "customer_key": key,
            "started_at": journey.started_ms // 1000,
            "ended_at": journey.last_ms // 1000,
            "started_at_ms": journey.started_ms,
            "ended_at_ms": journey.last_ms,
            "channels": list(journey.channels),
            "channel_switches": journey.switches,
            "touchpoint_count": len(journey.scores),
            "duration_seconds": (journey.last_ms - journey.started_ms) / 1000,
            "status": status,
            "outcome": outcome,
            "score": score.value,
            "component_names": [name for name, _ in score.components],
            "component_points": [points for _, points in score.components],
            "version": seq,
        }

    def _customer_row(self, key: str, state: CustomerState, score: Score) -> Row:
        rolling = state.rolling_score if state.rolling_score is not None else score.value
        return {
            "customer_key": key,
            "as_of": (state.rolling_ms or 0) // 1000,
            "as_of_ms": state.rolling_ms or 0,
            "score": rolling,
            "last_touchpoint_score": score.value,
            "touchpoints": state.touchpoints,
            "at_risk": int(rolling < self.config.customer.at_risk_threshold),
            "version": state.seq,
        }


def alert_row(alert: AlertEvent, version: int) -> Row:
    return {
        "alert_id": alert.alert_id,
        "rule": alert.rule,
        "severity": alert.severity,
        "state": alert.state,
        "subject_kind": alert.subject_kind,
        "channel": alert.channel,
        "dimension": alert.dimension,
        "customer_key": alert.customer_key,
        "value": alert.value,
        "threshold": alert.threshold,
        "occurred_at": alert.occurred_at_ms // 1000,
        "occurred_at_ms": alert.occurred_at_ms,
        "details": alert.details,
        "version": version,
    }
