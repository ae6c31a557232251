"""Customer state to bytes and back, for the Faust table and its changelog.

Compact JSON with short keys and positional lists (orjson): the state is written once per event,
so its size is the changelog's size and the recovery time after a rebalance. A touchpoint that
late events may still move is a list of seven; a folded journey head a list of eleven.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

import orjson

from pipeline.alerting import RuleState
from pipeline.customer import CustomerState, Seen
from pipeline.journeys import Journey, Segment
from pipeline.scoring import ChangeWindow

_TOUCH_FIELDS = 7
# A rule state as the tuple of its fields, in order (``dataclasses.astuple`` without its deep copy,
# which cost more than the rest of the encoding).
_rule_state_values = attrgetter(*(f.name for f in fields(RuleState)))


def _segment_out(s: Segment) -> list[Any]:
    if s.count == 1:
        return [s.first_ms, s.first_event_id, s.first_channel, s.scores[0], s.outcome, s.failed, s.context]
    return [s.first_ms, s.first_event_id, s.last_ms, s.first_channel, s.last_channel, list(s.channels),
            s.switches, s.count, s.failed, s.outcome, list(s.scores)]


def _segment_in(d: list[Any]) -> Segment:
    if len(d) == _TOUCH_FIELDS:
        return Segment.touch(*d)  # at, id, channel, score, outcome, failed (0/1), context
    return Segment(d[0], d[1], d[2], d[3], d[4], tuple(d[5]), d[6], d[7], d[8], d[9], tuple(d[10]))


def _journey_out(j: Journey) -> list[Any]:
    return [j.journey_id, [_segment_out(s) for s in j.segments], list(j.merged), int(j.closed)]


def _journey_in(d: list[Any]) -> Journey:
    return Journey(d[0], tuple([_segment_in(s) for s in d[1]]), tuple(d[2]), bool(d[3]))


def state_to_json(state: CustomerState) -> bytes:
    return orjson.dumps({
        "q": state.seq,
        "w": state.watermark_ms,
        "j": [_journey_out(j) for j in state.journeys],
        "r": state.rolling_score,
        "rt": state.rolling_ms,
        "n": state.touchpoints,
        "v": state.lifetime_value,
        "c": state.last_call_ms,
        "s": [list(seen) for seen in state.recent],
        "a": {name: _rule_state_values(rule_state) for name, rule_state in state.alert_states.items()},
        "cw": None if state.change_window is None else [state.change_window.baseline_score,
                                                        state.change_window.baseline_ms],
    })


def state_from_json(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    data = orjson.loads(raw)
    return CustomerState(
        seq=data["q"],
        watermark_ms=data["w"],
        journeys=tuple([_journey_in(j) for j in data["j"]]),
        rolling_score=data["r"],
        rolling_ms=data["rt"],
        touchpoints=data["n"],
        lifetime_value=data["v"],
        last_call_ms=data["c"],
        recent=tuple(map(Seen._make, data["s"])),
        alert_states={name: RuleState(*values) for name, values in data["a"].items()},
        change_window=ChangeWindow(*data["cw"]) if data.get("cw") else None,
    )
