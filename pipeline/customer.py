"""The per-customer keyed step: one event and the previous state in, new state and rows out.

Pure and explicit, after bytewax's ``stateful_map``: ``apply_event(state, key, event) ->
(state, Emitted)``. The agent stores the state in a Faust table and hands ``Emitted`` to the
sinks. Nothing here knows about Kafka or ClickHouse beyond the column names of the rows.

Journeys are recomputed from the touchpoints that late events may still move
(``pipeline.journeys``), so they do not depend on arrival order within the allowed lateness. An
event older than the customer's watermark minus the lateness is stored with ``late = 1`` outside
any journey and counted (``Emitted.late``). ``absorb`` merges an anonymous key's state into a
customer's when the two are stitched.

De-duplication: the last ``recent_limit`` event ids are kept with what is needed to rebuild their
touchpoint row byte for byte (journey id, sequence number, context flags). A replayed event does
not change the state again, but its rows are emitted again, because the first attempt may have
crashed before they were stored.
"""

from __future__ import annotations

from functools import partial
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from pipeline.alerting import AlertEvent, RuleState, evaluate_customer
from pipeline.config import INACTIVE_OUTCOME, ModelConfig
from pipeline.journeys import Journey, Regrouping, Segment, closes_at_ms, fold, journey_id_for, locate, place, regroup
from pipeline.model import Event
from pipeline.scoring import (
    ChangeWindow,
    Score,
    ScoringModel,
    TouchpointContext,
    decay_score,
    dimension_of,
    is_failed_contact,
    is_friction,
    score_change,
)

Row = dict[str, Any]

__all__ = ["CustomerState", "CustomerStep", "Emitted", "Seen", "alert_row", "journey_id_for"]

TABLES = ("touchpoints", "journeys", "merged_journeys", "touchpoint_journeys", "customer_scores", "alerts")
_LISTED_TABLES = tuple(table for table in TABLES if table != "journeys")  # Emitted keeps journeys by id
MERGED_STATUS = "merged"
_ABSORBED = "absorbed:"  # prefix of the seen-ring entry that marks an absorbed key
_HANDED_OVER = "handed-over:"  # prefix of the one seen-ring entry of a key whose state was handed over


# Flags of a touchpoint's score context, as kept in ``Segment.context`` and ``Seen.flags``.
_REPEAT_CONTACT = 1
_CHANNEL_SWITCH = 2
_LATE = 4  # ``Seen`` only: the event was beyond the allowed lateness


class Seen(NamedTuple):
    """Enough of an applied event to emit its touchpoint row again, identically.

    A named tuple of plain values: the state codec rebuilds the whole seen-ring on every read of a
    state, and a frozen dataclass with the flags as booleans took several times as long.
    """

    event_id: str
    journey_id: str
    seq: int
    flags: int  # _REPEAT_CONTACT | _CHANNEL_SWITCH | _LATE

    @property
    def late(self) -> bool:
        return bool(self.flags & _LATE)


def _context_flags(repeat_contact: bool, channel_switch: bool) -> int:
    return int(repeat_contact) * _REPEAT_CONTACT | int(channel_switch) * _CHANNEL_SWITCH


# Every context there is, built once: one is needed per event.
_CONTEXTS = tuple(TouchpointContext(bool(flags & _REPEAT_CONTACT), bool(flags & _CHANNEL_SWITCH))
                  for flags in range(_REPEAT_CONTACT + _CHANNEL_SWITCH + 1))


def _context_of(flags: int) -> TouchpointContext:
    """The context a touchpoint's score was computed with, from its flags."""
    return _CONTEXTS[flags & (_REPEAT_CONTACT | _CHANNEL_SWITCH)]


class CustomerState(NamedTuple):
    """One customer's state between events. A named tuple: it is built on every event and every
    read from the table, and a frozen dataclass of ten fields took four times as long to build."""

    seq: int = 0
    watermark_ms: int = 0  # newest event time seen for this customer (or passed by the timer)
    journeys: tuple[Journey, ...] = ()  # open, and closed but still within the lateness
    rolling_score: float | None = None
    rolling_ms: int | None = None
    touchpoints: int = 0
    lifetime_value: float = 0.0
    last_call_ms: int | None = None
    recent: tuple[Seen, ...] = ()
    alert_states: Mapping[str, RuleState] = MappingProxyType({})  # shared by every new state: read-only
    change_window: ChangeWindow | None = None  # where the rolling score's change is measured from


class Emitted:
    """What one step produced, or several once extended: ``rows`` maps a ClickHouse table to its
    new rows.

    A journey's rows are kept by journey id, the last one only, and built when ``rows`` is read
    (``add_journey_row``): the events of one batch rewrite the same journeys again and again, and
    each row costs its journey score. On the bench 42% of the journey rows built were replaced
    within their batch (which kept only the last one per journey anyway). A plain class with
    slots: one is made per event, and the dataclass with its default factories was 2-3% of the
    worker's profile.
    """

    __slots__ = ("_rows", "_journeys", "alerts", "closed_outcomes", "touchpoint_score", "duplicate", "late",
                 "merged_journeys")

    def __init__(self, *, duplicate: bool = False, late: bool = False) -> None:
        self._rows: dict[str, list[Row]] = {table: [] for table in _LISTED_TABLES}
        self._journeys: dict[str, Row | Callable[[], Row]] = {}  # journey id -> its row, or its builder
        self.alerts: list[AlertEvent] = []
        self.closed_outcomes: list[str] = []
        self.touchpoint_score: Score | None = None
        self.duplicate = duplicate
        self.late = late  # the event was beyond the allowed lateness: stored flagged, in no journey
        self.merged_journeys = 0  # journeys that became part of another (late bridge or stitching)

    @property
    def rows(self) -> dict[str, list[Row]]:
        """The rows per table; journey rows are built now (once), so add them with
        :meth:`add_journey_row`, not to this dict."""
        journeys = self._journeys
        for journey_id, row in journeys.items():
            if not isinstance(row, dict):
                journeys[journey_id] = row()
        return {**self._rows, "journeys": list(journeys.values())}

    def add_journey_row(self, journey_id: str, row: Row | Callable[[], Row]) -> None:
        """A new version of a journey's row (or what builds it), replacing any emitted before."""
        self._journeys[journey_id] = row

    def add_alerts(self, alerts: list[AlertEvent], version: int | None = None) -> None:
        """Alert transitions and their rows, at ``version`` (default: each alert's event time)."""
        self.alerts.extend(alerts)
        self._rows["alerts"].extend(
            alert_row(alert, alert.occurred_at_ms if version is None else version) for alert in alerts)

    def _fields(self) -> tuple[Any, ...]:
        return (self.rows, self.alerts, self.closed_outcomes, self.touchpoint_score, self.duplicate, self.late,
                self.merged_journeys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Emitted) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return f"Emitted(rows={self.rows!r}, alerts={self.alerts!r}, duplicate={self.duplicate}, late={self.late})"

    def extend(self, other: Emitted) -> None:
        rows = self._rows
        for table, table_rows in other._rows.items():
            if table_rows:
                rows[table].extend(table_rows)
        self._journeys.update(other._journeys)
        self.alerts.extend(other.alerts)
        self.closed_outcomes.extend(other.closed_outcomes)
        self.merged_journeys += other.merged_journeys


class CustomerStep:
    """The step with its configuration bound once."""

    def __init__(self, config: ModelConfig, recent_limit: int = 16, unfolded_limit: int = 48) -> None:
        """``recent_limit``: event ids in the seen-ring (replays of older events are still caught
        while their touchpoint is in a journey of the state). ``unfolded_limit``: touchpoints per
        journey kept one by one within the lateness (see ``pipeline.journeys.fold``)."""
        self.config = config
        self.rules = config.journeys
        self.model = ScoringModel(config.scoring)
        self.recent_limit = recent_limit
        self.unfolded_limit = unfolded_limit

    # -- the step -------------------------------------------------------------------------------

    def apply_event(self, state: CustomerState | None, key: str, event: Event) -> tuple[CustomerState, Emitted]:
        state = state or CustomerState()
        if self.handed_over(state):
            # Only a replay reaches a handed-over key (resolve sends later events to the customer),
            # and the event's rows were written before the hand-over: stored, or ahead of it in
            # the sink (a crash before they are stored replays the hand-over too).
            return state, Emitted(duplicate=True)
        seen = next((s for s in state.recent if s.event_id == event.event_id), None)
        if seen is not None or _is_touch(state.journeys, event.event_id):
            return state, self._replay(state, key, event, seen)
        if event.occurred_at_ms < self._horizon(state.watermark_ms):
            return self._apply_late(state, key, event)

        emitted = Emitted()
        seq = state.seq + 1
        watermark = max(state.watermark_ms, event.occurred_at_ms)
        outcome = self.rules.terminal_outcome(event) or ""
        failed_contact = is_failed_contact(event)
        placement = place(state.journeys, Segment.touch(event.occurred_at_ms, event.event_id, event.channel, 0.0,
                                                        outcome, failed_contact), self.rules)
        repeat_contact = self._repeat_contact(state, event)
        channel_switch = placement.previous is not None and placement.previous.last_channel != event.channel
        flags = _context_flags(repeat_contact, channel_switch)
        score = self.model.score_touchpoint(event, _context_of(flags))
        touch = Segment.touch(event.occurred_at_ms, event.event_id, event.channel,
                              round(score.value, 3),  # as the state codec keeps it
                              outcome, failed_contact, flags)
        regrouped, journey = placement.complete(touch, self.rules.max_scored_touchpoints)

        previous_score = state.rolling_score
        rolling, rolling_ms, touchpoints, lifetime_value, last_call_ms = self._figures(state, event, score)
        failed = journey.summary(self.rules.max_scored_touchpoints).failed
        alert_states, alerts = evaluate_customer(
            self.config.alerts, state.alert_states, key, rolling, previous_score,
            failed, event.occurred_at_ms, lifetime_value,
        )
        change_window, change = score_change(state.change_window, previous_score, rolling, event.occurred_at_ms,
                                             self.config.customer.change_window_seconds)
        new_state = CustomerState(
            seq=seq, watermark_ms=watermark,
            journeys=self._settle(key, state.journeys, regrouped, seq, watermark, emitted),
            rolling_score=rolling, rolling_ms=rolling_ms, touchpoints=touchpoints, lifetime_value=lifetime_value,
            last_call_ms=last_call_ms,
            recent=self._remember(state.recent, Seen(event.event_id, journey.journey_id, seq, flags)),
            alert_states=alert_states,
            change_window=change_window,
        )
        emitted.touchpoint_score = score
        emitted._rows["touchpoints"].append(self._touchpoint_row(key, event, journey.journey_id, score, seq, late=False))
        emitted._rows["customer_scores"].append(self._customer_row(key, new_state, score, change))
        if alerts:
            emitted.add_alerts(alerts, seq)
        return new_state, emitted

    def absorb(self, target: CustomerState | None, target_key: str, absorbed: CustomerState | None,
               absorbed_key: str) -> tuple[CustomerState, Emitted]:
        """Merge the state of ``absorbed_key`` (an anonymous key now stitched) into ``target_key``.

        The topology sends the absorbed state keyed by the target once the absorbed key's
        partition has applied all of its earlier events, then deletes the absorbed key. Journeys
        are recomputed from both sides' touchpoints, so the result is the same as if every
        touchpoint had reached the target directly (within the lateness); journeys that become one
        keep the id of the earliest touchpoint and the other ids get a ``merged`` row. Absorbing
        the same key twice (a replayed hand-over) changes nothing.
        """
        target = target or CustomerState()
        marker = _ABSORBED + absorbed_key
        if absorbed is None or absorbed_key == target_key:
            return target, Emitted()
        if any(s.event_id == marker for s in target.recent):
            return target, self._replay(target, target_key, None, None)
        emitted = Emitted()
        seq = max(target.seq, absorbed.seq) + 1
        regrouped = regroup(target.journeys + absorbed.journeys, [], self.rules)
        rolling = target.rolling_score
        rolling_ms = target.rolling_ms
        if absorbed.rolling_score is not None and absorbed.rolling_ms is not None:
            rolling = decay_score(rolling, rolling_ms, absorbed.rolling_score, absorbed.rolling_ms,
                                  self.config.customer.half_life_seconds)
            rolling_ms = max(rolling_ms or 0, absorbed.rolling_ms)
        recent = self._remember(target.recent, *absorbed.recent, Seen(marker, "", seq, 0))
        watermark = max(target.watermark_ms, absorbed.watermark_ms)
        # Every journey gets a row (no previous journeys): the absorbed ones change customer key.
        journeys = self._settle(target_key, (), regrouped, seq, watermark, emitted)
        merged = CustomerState(
            seq=seq,
            watermark_ms=watermark,
            journeys=journeys,
            rolling_score=rolling,
            rolling_ms=rolling_ms,
            touchpoints=target.touchpoints + absorbed.touchpoints,
            lifetime_value=target.lifetime_value + absorbed.lifetime_value,
            last_call_ms=max((ms for ms in (target.last_call_ms, absorbed.last_call_ms) if ms is not None), default=None),
            recent=recent,
            alert_states=target.alert_states,
            change_window=target.change_window,
        )
        return merged, emitted

    def hand_over(self, state: CustomerState, target_key: str) -> CustomerState:
        """What stays of an anonymous key once its state went to ``target_key``: a marker only.

        Deleting the key instead made a replay harmful: an anonymous event read again after the
        hand-over (its offset was not committed yet when a worker died, or resolve forwarded it
        again) met no state, was applied as new, and the key's own partial journeys were written
        again over the customer's merged ones. With the marker it is recognised as a replay, and a
        replayed hand-over request finds nothing left to send. The marker keeps the sequence and
        watermark, and is one seen-ring entry, so the key costs a few dozen bytes from then on, as
        the identifier's own entry in the identity table does.
        """
        return CustomerState(seq=state.seq + 1, watermark_ms=state.watermark_ms,
                             recent=(Seen(_HANDED_OVER + target_key, "", state.seq + 1, 0),))

    @staticmethod
    def handed_over(state: CustomerState) -> bool:
        """The key's state was handed over to a customer (see :meth:`hand_over`)."""
        return bool(state.recent) and state.recent[-1].event_id.startswith(_HANDED_OVER)

    def close_if_idle(self, state: CustomerState, key: str, watermark_ms: int) -> tuple[CustomerState, Emitted] | None:
        """For the timer: close journeys that event time has left behind, even if no event comes.

        ``watermark_ms`` becomes the customer's watermark when it is newer, so journeys past the
        lateness also leave the state. None when nothing changes (no state write needed).
        """
        watermark = max(state.watermark_ms, watermark_ms)
        seq = state.seq + 1
        emitted = Emitted()
        journeys = self._settle(key, state.journeys, Regrouping(state.journeys, {}, {}), seq, watermark, emitted)
        if journeys == state.journeys:
            return None
        return state._replace(seq=seq, watermark_ms=watermark, journeys=journeys), emitted

    def quiet_until_ms(self, state: CustomerState) -> int | None:
        """The watermark up to which :meth:`close_if_idle` finds nothing to close or evict here.

        An open journey closes once the watermark passes its closing time, a closed one leaves the
        state once the watermark passes that time plus the allowed lateness; until the earliest of
        these, the timer need not decode this customer again (with a 30-minute gap and many
        customers mid-journey, looking at every one every few seconds would stall the worker).
        None without journeys. The state's own watermark is never past it (the journey would
        have been closed when the state was written).
        """
        lateness_ms = self.rules.allowed_lateness_seconds * 1000
        max_scores = self.rules.max_scored_touchpoints
        return min((closes_at_ms(journey.summary(max_scores), self.rules) + (lateness_ms if journey.closed else 0)
                    for journey in state.journeys), default=None)

    # -- internals -----------------------------------------------------------------------------

    def _horizon(self, watermark_ms: int) -> int:
        """Events before this are beyond the allowed lateness."""
        return watermark_ms - self.rules.allowed_lateness_seconds * 1000

    def _settle(self, key: str, previous: tuple[Journey, ...], regrouped: Regrouping, seq: int, watermark_ms: int,
                emitted: Emitted) -> tuple[Journey, ...]:
        """Close, emit and evict: rows for every journey that changed, then the journeys to keep.

        A journey is closed once the watermark passes its closing time, and leaves the state once
        the watermark is the allowed lateness beyond that: no event can reach it any more.
        """
        before = {journey.journey_id: journey for journey in previous}
        horizon = self._horizon(watermark_ms)
        max_scores = self.rules.max_scored_touchpoints
        kept: list[Journey] = []
        for journey in regrouped.journeys:
            summary = journey.summary(max_scores)
            closes_at = closes_at_ms(summary, self.rules)
            closed = watermark_ms > closes_at
            if closed and not journey.closed:
                emitted.closed_outcomes.append(summary.outcome or INACTIVE_OUTCOME)
            journey = journey.with_closed(closed)
            old = before.get(journey.journey_id)
            if old is not journey and old != journey:
                self._emit_journey(emitted, key, journey.journey_id, summary, closed, seq)
            if closes_at >= horizon:
                kept.append(fold(journey, horizon, self.unfolded_limit, max_scores))
        if regrouped.merged or regrouped.moved:  # only a regrouping merges or moves
            self._rows_of_changes(key, regrouped, seq, emitted)
        return tuple(kept)

    def _rows_of_changes(self, key: str, regrouped: Regrouping, seq: int, emitted: Emitted) -> None:
        for old_id, survivor in regrouped.merged.items():
            _add_merged(emitted, key, old_id, survivor, seq)
        emitted.merged_journeys += len(regrouped.merged)
        emitted._rows["touchpoint_journeys"].extend(
            _membership_row(key, event_id, journey_id, seq) for event_id, journey_id in regrouped.moved.items()
        )

    def _replay(self, state: CustomerState, key: str, event: Event | None, seen: Seen | None) -> Emitted:
        """The rows of an event (or hand-over) applied before: the current truth, state unchanged.

        The first attempt may have crashed before its rows were stored, so the touchpoint row is
        written again: as first written when the seen-ring has it, else (an event that left the
        ring but is still a touchpoint of the state) in its current journey, same score. It is
        written at version 0, so it only fills in a row that is missing and never replaces the
        first one: a replay at a customer of an event first applied to an anonymous key (resolve
        forwards the replayed event to the customer once the identifier is linked) would otherwise
        move the row to the customer's key, away from the anonymous key's customer_scores rows,
        and a stale journey id would outrank the row that moved the touchpoint since.
        """
        emitted = Emitted(duplicate=True)
        if event is not None and seen is not None:
            score = self.model.score_touchpoint(event, _context_of(seen.flags))
            emitted._rows["touchpoints"].append(
                self._touchpoint_row(key, event, seen.journey_id, score, 0, late=seen.late))
        elif event is not None:
            journey_index, index = locate(state.journeys, event.event_id)
            journey = state.journeys[journey_index]
            score = self.model.score_touchpoint(event, _context_of(journey.segments[index].context))
            emitted._rows["touchpoints"].append(
                self._touchpoint_row(key, event, journey.journey_id, score, 0, late=False))
        max_scores = self.rules.max_scored_touchpoints
        for journey in state.journeys:
            summary = journey.summary(max_scores)
            closed = state.watermark_ms > closes_at_ms(summary, self.rules)
            self._emit_journey(emitted, key, journey.journey_id, summary, closed, state.seq)
            for alias in journey.merged:
                _add_merged(emitted, key, alias, journey.journey_id, state.seq)
            emitted._rows["touchpoint_journeys"].extend(
                _membership_row(key, event_id, journey.journey_id, state.seq) for event_id in journey.touch_ids)
        return emitted

    def _apply_late(self, state: CustomerState, key: str, event: Event) -> tuple[CustomerState, Emitted]:
        """Beyond the lateness: stored with ``late = 1`` in no journey, counted, never dropped.

        Its row has version 0, so it only shows when no row placed the event in a journey.
        """
        emitted = Emitted(late=True)
        seq = state.seq + 1
        repeat_contact = self._repeat_contact(state, event)
        flags = _context_flags(repeat_contact, False)
        score = self.model.score_touchpoint(event, _context_of(flags))
        previous_score = state.rolling_score
        rolling, rolling_ms, touchpoints, lifetime_value, last_call_ms = self._figures(state, event, score)
        change_window, change = score_change(state.change_window, previous_score, rolling, event.occurred_at_ms,
                                             self.config.customer.change_window_seconds)
        new_state = state._replace(
            seq=seq, rolling_score=rolling, rolling_ms=rolling_ms, touchpoints=touchpoints,
            lifetime_value=lifetime_value, last_call_ms=last_call_ms,
            recent=self._remember(state.recent, Seen(event.event_id, "", seq, flags | _LATE)),
            change_window=change_window,
        )
        emitted.touchpoint_score = score
        # Version 0: a replay that looks late (it left the seen-ring and the lateness) must never
        # replace the row that placed the event in a journey; a truly late event has no other row.
        emitted._rows["touchpoints"].append(self._touchpoint_row(key, event, "", score, 0, late=True))
        emitted._rows["customer_scores"].append(self._customer_row(key, new_state, score, change))
        return new_state, emitted

    def _repeat_contact(self, state: CustomerState, event: Event) -> bool:
        window_ms = self.config.scoring.repeat_contact_window_seconds * 1000
        return (
            event.channel == "call"
            and state.last_call_ms is not None
            and 0 <= event.occurred_at_ms - state.last_call_ms <= window_ms
        )

    def _figures(self, state: CustomerState, event: Event, score: Score) -> tuple[float, int, int, float, int | None]:
        """Rolling score and its time, touchpoint count, lifetime value, last call time."""
        rolling = decay_score(state.rolling_score, state.rolling_ms, score.value, event.occurred_at_ms,
                              self.config.customer.half_life_seconds)
        last_call = state.last_call_ms
        if event.channel == "call":
            last_call = max(last_call or event.occurred_at_ms, event.occurred_at_ms)
        return (
            rolling,
            max(event.occurred_at_ms, state.rolling_ms or 0),
            state.touchpoints + 1,
            state.lifetime_value + max(event.value or 0.0, 0.0),
            last_call,
        )

    def _remember(self, recent: tuple[Seen, ...], *seen: Seen) -> tuple[Seen, ...]:
        return (recent + seen)[-self.recent_limit:]

    # -- rows ----------------------------------------------------------------------------------

    def _touchpoint_row(self, key: str, event: Event, journey_id: str, score: Score, seq: int, *, late: bool) -> Row:
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
            "late": int(late),
            "version": seq,
        }

    def _emit_journey(self, emitted: Emitted, key: str, journey_id: str, summary: Segment, closed: bool,
                      seq: int) -> None:
        """A journey's new row, built only if no later row of it replaces it (see Emitted)."""
        emitted.add_journey_row(journey_id, partial(self._journey_row, key, journey_id, summary, closed, seq))

    def _journey_row(self, key: str, journey_id: str, summary: Segment, closed: bool, seq: int) -> Row:
        outcome = (summary.outcome or INACTIVE_OUTCOME) if closed else summary.outcome
        score = self.model.score_journey_values(summary.scores, summary.switches, outcome or None)
        return {
            "journey_id": journey_id,
            "customer_key": key,
            "started_at": summary.first_ms // 1000,
            "ended_at": summary.last_ms // 1000,
            "started_at_ms": summary.first_ms,
            "ended_at_ms": summary.last_ms,
            "channels": list(summary.channels),
            "channel_switches": summary.switches,
            "touchpoint_count": summary.count,
            "duration_seconds": (summary.last_ms - summary.first_ms) / 1000,
            "status": "closed" if closed else "open",
            "outcome": outcome,
            "score": score.value,
            "component_names": [name for name, _ in score.components],
            "component_points": [points for _, points in score.components],
            "version": seq,
        }

    def _customer_row(self, key: str, state: CustomerState, score: Score, change: float) -> Row:
        rolling = state.rolling_score if state.rolling_score is not None else score.value
        return {
            "customer_key": key,
            "as_of": (state.rolling_ms or 0) // 1000,
            "as_of_ms": state.rolling_ms or 0,
            "score": rolling,
            "score_change": change,
            "last_touchpoint_score": score.value,
            "touchpoints": state.touchpoints,
            "at_risk": int(rolling < self.config.customer.at_risk_threshold),
            "version": state.seq,
        }


def _is_touch(journeys: Iterable[Journey], event_id: str) -> bool:
    """The event is a touchpoint of its own in one of the journeys (so it was applied before)."""
    return any(s.first_event_id == event_id and s.count == 1 for journey in journeys for s in journey.segments)


def _add_merged(emitted: Emitted, key: str, journey_id: str, survivor: str, seq: int) -> None:
    """A journey that became part of ``survivor``: a new version of its row with status
    ``merged``, which the views leave out, and the survivor its touchpoints now belong to."""
    emitted.add_journey_row(journey_id, {
        "journey_id": journey_id, "customer_key": key, "started_at": 0, "ended_at": 0,
        "started_at_ms": 0, "ended_at_ms": 0, "channels": [], "channel_switches": 0,
        "touchpoint_count": 0, "duration_seconds": 0.0, "status": MERGED_STATUS, "outcome": "",
        "score": 0.0, "component_names": [], "component_points": [], "version": seq,
    })
    emitted._rows["merged_journeys"].append(
        {"journey_id": journey_id, "customer_key": key, "merged_into": survivor, "version": seq})


def _membership_row(key: str, event_id: str, journey_id: str, seq: int) -> Row:
    """A touchpoint that moved to another journey (a late event split or bridged journeys)."""
    return {"event_id": event_id, "customer_key": key, "journey_id": journey_id, "version": seq}


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
