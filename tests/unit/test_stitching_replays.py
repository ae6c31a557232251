"""Replays around back-stitching leave what BI reads as it was (found by the fault suite).

After a crash, the customers topic holds an anonymous key's events and its hand-over request again
(their offsets were not committed, or resolve forwarded them again), and resolve forwards a
replayed anonymous event to the customer once the identifier is linked. Rows are versioned as the
hot path stamps them (``HotPath._stamp_versions``): rising in emission order, so a replay's rows
outrank the first ones unless written at version 0.
"""

from __future__ import annotations

from itertools import count
from typing import Iterator

from journey_views import Views
from pipeline.config import load_model_config
from pipeline.customer import CustomerStep, Emitted
from pipeline.journeys import journey_id_for
from pipeline.model import Event

STEP = CustomerStep(load_model_config())
T0 = 1_700_000_000_000
MIN = 60_000
DAY = 1440
KEY = "cust-1"
ANON = "anon-1"


def ev(event_id: str, minute: float) -> Event:
    return Event(event_id, T0 + int(minute * MIN), "web", "page_view")


class Stamped(Views):
    """Views written with the hot path's row versions: the worker's clock, 0 kept as 0."""

    clock: Iterator[int] = count(1)

    def write(self, emitted: Emitted) -> None:  # type: ignore[override]
        for rows in emitted.rows.values():
            for row in rows:
                if row["version"] != 0:
                    row["version"] = next(self.clock)
        super().write([emitted])


def test_an_anonymous_event_replayed_after_the_hand_over_changes_nothing() -> None:
    views = Stamped(stitched={ANON: KEY})
    anon = None
    for event in (ev("a1", 0), ev("a2", 3)):
        anon, out = STEP.apply_event(anon, ANON, event)
        views.write(out)
    cust, out = STEP.apply_event(None, KEY, ev("login", 5))
    views.write(out)
    cust, out = STEP.absorb(cust, KEY, anon, ANON)
    views.write(out)
    left = STEP.hand_over(anon, KEY)
    for n, day in enumerate((1, 2)):  # the merged journey closes and leaves the customer's state
        cust, out = STEP.apply_event(cust, KEY, ev(f"later-{n}", day * DAY))
        views.write(out)
    assert journey_id_for("a1") not in {journey.journey_id for journey in cust.journeys}
    before = views.summary()
    assert before[journey_id_for("a1")][0] == {"a1", "a2", "login"}

    assert STEP.handed_over(left)  # a replayed request finds nothing to hand over
    for event in (ev("a1", 0), ev("a2", 3)):
        again, out = STEP.apply_event(left, ANON, event)
        assert again == left and out.duplicate
        views.write(out)
    assert views.summary() == before


def test_an_absorbed_event_replayed_at_the_customer_keeps_its_row_where_it_was_written() -> None:
    """Else the row moves to the customer's key, away from the anonymous key's score rows."""
    views = Stamped(stitched={ANON: KEY})
    anon, first = STEP.apply_event(None, ANON, ev("a1", 0))
    views.write(first)
    cust, out = STEP.apply_event(None, KEY, ev("login", 5))
    views.write(out)
    cust, out = STEP.absorb(cust, KEY, anon, ANON)
    views.write(out)

    again, replay = STEP.apply_event(cust, KEY, ev("a1", 0))
    assert again == cust and replay.duplicate
    views.write(replay)
    assert views.tables["touchpoints"]["a1"]["customer_key"] == ANON
    assert [row["customer_key"] for row in first.rows["customer_scores"]] == [ANON]
    assert views.touchpoint_journey("a1") == journey_id_for("a1")
