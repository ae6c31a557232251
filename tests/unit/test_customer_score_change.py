"""The customer's score change over the change window, as written to customer_scores."""

from __future__ import annotations

from pipeline.config import load_model_config
from pipeline.customer import CustomerStep
from pipeline.model import Event, Feedback
from pipeline.state_codec import state_from_json, state_to_json

CONFIG = load_model_config()
STEP = CustomerStep(CONFIG)
T0 = 1_700_000_000_000
HOUR = 3_600_000
WINDOW_MS = CONFIG.customer.change_window_seconds * 1000


def nps(event_id: str, at_ms: int, score: int) -> Event:
    return Event(event_id, at_ms, "web", "survey", feedback=Feedback("nps", score))


def apply(events: list[Event]) -> list[dict]:
    state, rows = None, []
    for event in events:
        state, emitted = STEP.apply_event(state, "cust-1", event)
        state = state_from_json(state_to_json(state))  # the change window survives the codec
        rows.extend(emitted.rows["customer_scores"])
    return rows


def test_the_first_touchpoint_has_no_change_and_a_worse_one_shows_the_drop() -> None:
    rows = apply([nps("a", T0, 10), nps("b", T0 + HOUR, 0)])
    assert rows[0]["score_change"] == 0.0
    assert rows[1]["score_change"] < 0
    assert abs(rows[1]["score_change"] - (rows[1]["score"] - rows[0]["score"])) < 0.01


def test_a_new_window_measures_from_the_score_just_before_it() -> None:
    rows = apply([nps("a", T0, 10), nps("b", T0 + HOUR, 0), nps("c", T0 + WINDOW_MS + HOUR, 0)])
    # the third touchpoint opens a new window whose baseline is the score after the second one
    assert abs(rows[2]["score_change"] - (rows[2]["score"] - rows[1]["score"])) < 0.01
