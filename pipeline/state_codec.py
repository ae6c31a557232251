"""Customer state to bytes and back, for the Faust table and its changelog.

Compact JSON with short keys (orjson): the state is written once per event, so its size is the
changelog's size and the recovery time after a rebalance.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

import orjson

from pipeline.alerting import RuleState
from pipeline.customer import CustomerState, OpenJourney, Seen
from pipeline.scoring import Score


def _score_out(score: Score) -> list[Any]:
    return [round(score.value, 3), [[name, round(points, 3)] for name, points in score.components]]


def _score_in(data: list[Any]) -> Score:
    return Score(data[0], tuple((name, points) for name, points in data[1]))


def state_to_json(state: CustomerState) -> bytes:
    journey = state.journey
    return orjson.dumps({
        "q": state.seq,
        "j": None if journey is None else [
            journey.journey_id, journey.started_ms, journey.last_ms, list(journey.channels),
            journey.last_channel, journey.switches, [_score_out(s) for s in journey.scores],
            journey.failed_contacts, journey.outcome,
        ],
        "r": state.rolling_score,
        "rt": state.rolling_ms,
        "n": state.touchpoints,
        "v": state.lifetime_value,
        "c": state.last_call_ms,
        "s": [astuple(seen) for seen in state.recent],
        "a": {name: astuple(rule_state) for name, rule_state in state.alert_states.items()},
    })


def state_from_json(raw: bytes | None) -> CustomerState | None:
    if raw is None:
        return None
    data = orjson.loads(raw)
    j = data["j"]
    journey = None if j is None else OpenJourney(
        journey_id=j[0], started_ms=j[1], last_ms=j[2], channels=tuple(j[3]), last_channel=j[4],
        switches=j[5], scores=tuple(_score_in(s) for s in j[6]), failed_contacts=j[7], outcome=j[8],
    )
    return CustomerState(
        seq=data["q"],
        journey=journey,
        rolling_score=data["r"],
        rolling_ms=data["rt"],
        touchpoints=data["n"],
        lifetime_value=data["v"],
        last_call_ms=data["c"],
        recent=tuple(Seen(*seen) for seen in data["s"]),
        alert_states={name: RuleState(*values) for name, values in data["a"].items()},
    )
