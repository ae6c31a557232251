"""Replays around back-stitching leave what BI reads as it was (found by the fault suite).

After a crash, the customers topic holds an anonymous key's events and its hand-over request again
(their offsets were not committed, or resolve forwarded them again), and resolve forwards a
replayed anonymous event to the customer once the identifier is linked. Rows get the versions the
hot path stamps (``HotPath._stamp_versions``), so a later row outranks an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from agents.hot_path import HotPath
from journey_views import Views
from pipeline.config import load_model_config
from pipeline.customer import CustomerState, CustomerStep, Emitted
from pipeline.journeys import journey_id_for
from pipeline.model import Event

STEP = CustomerStep(load_model_config())
T0 = 1_700_000_000_000
MIN = 60_000
DAY = 1440
KEY = "cust-1"
ANON = "anon-1"
BROWSING = ("a1", 0), ("a2", 3)


def ev(event_id: str, minute: float) -> Event:
    return Event(event_id, T0 + int(minute * MIN), "web", "page_view")


@dataclass
class Stamped(Views):
    """Views written with the row versions a worker stamps."""

    worker: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(_version=0))

    def write(self, emitted: Emitted) -> None:  # type: ignore[override]
        HotPath._stamp_versions(self.worker, emitted.rows)  # type: ignore[arg-type]
        super().write([emitted])


def browse(views: Stamped) -> CustomerState:
    """The anonymous key's events, from an empty state."""
    anon = None
    for event_id, minute in BROWSING:
        anon, out = STEP.apply_event(anon, ANON, ev(event_id, minute))
        views.write(out)
    assert anon is not None
    return anon


def stitched_and_moved_on(views: Stamped, anon: CustomerState) -> CustomerState:
    """The customer logs in, absorbs the anonymous key, and goes on for days: the merged journey
    closes and leaves the customer's state (it can no longer be written again from there)."""
    cust, out = STEP.apply_event(None, KEY, ev("login", 5))
    views.write(out)
    cust, out = STEP.absorb(cust, KEY, anon, ANON)
    views.write(out)
    for n, day in enumerate((1, 2)):
        cust, out = STEP.apply_event(cust, KEY, ev(f"later-{n}", day * DAY))
        views.write(out)
    assert journey_id_for("a1") not in {journey.journey_id for journey in cust.journeys}
    assert views.summary()[journey_id_for("a1")][0] == {"a1", "a2", "login"}
    return cust


def test_an_anonymous_event_replayed_after_the_hand_over_changes_nothing() -> None:
    views = Stamped(stitched={ANON: KEY})
    anon = browse(views)
    stitched_and_moved_on(views, anon)
    left = STEP.hand_over(anon, KEY)
    before = views.summary()

    assert STEP.handed_over(left)  # a replayed request finds nothing to hand over
    for event_id, minute in BROWSING:
        again, out = STEP.apply_event(left, ANON, ev(event_id, minute))
        assert again == left and out.duplicate
        views.write(out)
    assert views.summary() == before


def test_an_anonymous_key_computed_again_after_its_hand_over_was_absorbed_changes_nothing() -> None:
    """The worker died after the hand-over reached the customer's partition, before the anonymous
    key's batch was durable: the batch is computed again from the state before it, after the
    customer absorbed the first hand-over, and the hand-over is sent again."""
    views = Stamped(stitched={ANON: KEY})
    cust = stitched_and_moved_on(views, browse(views))
    before = views.summary()

    anon = browse(views)
    again, out = STEP.absorb(cust, KEY, anon, ANON)
    assert again == cust and out.duplicate
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
