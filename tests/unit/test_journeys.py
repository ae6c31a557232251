"""Journey rules, late events, back-stitching rows and the size bound of the customer state."""

from __future__ import annotations

from dataclasses import replace
import uuid

import pytest

from journey_views import Views
from pipeline.config import load_model_config
from pipeline.customer import MERGED_STATUS, CustomerStep, Emitted
from pipeline.journeys import journey_id_for
from pipeline.model import Event
from pipeline.state_codec import state_to_json

CONFIG = load_model_config()
STEP = CustomerStep(CONFIG)
T0 = 1_700_000_000_000
MIN = 60_000
KEY = "cust-1"


def ev(event_id: str, minute: float, channel: str = "web", type_: str = "page_view", **attributes) -> Event:
    return Event(event_id, T0 + int(minute * MIN), channel, type_, attributes=attributes)


def run(events: list[Event], watermark_minutes: float | None = None):
    state, views, outs = None, Views(), []
    for event in events:
        state, out = STEP.apply_event(state, KEY, event)
        views.write(out)
        outs.append(out)
    if watermark_minutes is not None:
        result = STEP.close_if_idle(state, KEY, T0 + int(watermark_minutes * MIN))
        if result is not None:
            state, out = result
            views.write(out)
            outs.append(out)
    return state, views, outs


def members(views: Views) -> list[list[str]]:
    return sorted(sorted(m) for m, *_ in views.summary().values())


@pytest.mark.parametrize(
    ("first", "gap_minutes", "journeys"),
    [
        ("web", 14, 1),   # web gap 900 s
        ("web", 16, 2),
        ("call", 55, 1),  # call gap 3600 s
        ("call", 61, 2),
        ("app", 29, 1),   # default gap 1800 s
        ("app", 31, 2),
    ],
)
def test_the_inactivity_gap_is_the_last_channels(first, gap_minutes, journeys) -> None:
    _, views, _ = run([ev("a", 0, first), ev("b", gap_minutes, "store")], watermark_minutes=10_000)
    assert len(views.summary()) == journeys


@pytest.mark.parametrize(
    ("follow_up_minutes", "same_journey"),
    [(5, True), (9.9, True), (10.1, False)],  # lateness 600 s after a terminal outcome
)
def test_a_terminal_outcome_ends_the_journey_after_the_lateness(follow_up_minutes, same_journey) -> None:
    _, views, _ = run([ev("a", 0), ev("b", 1, type_="purchase"), ev("c", 1 + follow_up_minutes, "app")],
                      watermark_minutes=10_000)
    outcomes = {tuple(sorted(m)): outcome for m, _s, outcome, *_ in views.summary().values()}
    if same_journey:
        assert outcomes == {("a", "b", "c"): "purchased"}
    else:
        assert outcomes == {("a", "b"): "purchased", ("c",): "inactive"}


def test_a_journey_longer_than_the_maximum_duration_is_cut() -> None:
    # A call every 50 minutes (within the call gap) for 30 hours: cut at 24 hours.
    events = [ev(f"e{i:02d}", 50 * i, "call") for i in range(36)]
    _, views, _ = run(events, watermark_minutes=10_000)
    runs = members(views)
    assert [len(m) for m in runs] == [29, 7]  # 0..1400 minutes, then 1450..1750


def test_journeys_close_on_event_time_when_the_stream_goes_quiet() -> None:
    state, _, _ = run([ev("a", 0), ev("b", 5)])
    assert STEP.close_if_idle(state, KEY, T0 + 10 * MIN) is None  # gap not yet passed
    closed_state, out = STEP.close_if_idle(state, KEY, T0 + 21 * MIN)
    assert [r["status"] for r in out.rows["journeys"]] == ["closed"] and out.closed_outcomes == ["inactive"]
    assert len(closed_state.journeys) == 1  # kept while a late touchpoint may still join
    evicted, out = STEP.close_if_idle(closed_state, KEY, T0 + 31 * MIN)
    assert evicted.journeys == () and out.rows["journeys"] == [] and out.closed_outcomes == []


def test_a_late_touchpoint_within_the_lateness_corrects_a_closed_journey() -> None:
    state, views, _ = run([ev("a", 0), ev("b", 5)], watermark_minutes=21)
    [(jid, row)] = views.customer_journeys().items()
    assert row["status"] == "closed" and row["touchpoint_count"] == 2
    state, out = STEP.apply_event(state, KEY, ev("c", 12))  # 12 >= 21 - 10: within the lateness
    views.write(out)
    corrected = views.customer_journeys()[jid]
    assert corrected["touchpoint_count"] == 3 and corrected["version"] > row["version"]
    assert corrected["ended_at_ms"] == T0 + 12 * MIN and not out.late


def test_a_touchpoint_beyond_the_lateness_is_stored_flagged_and_counted_once() -> None:
    state, views, _ = run([ev("a", 0), ev("b", 60)])
    state, out = STEP.apply_event(state, KEY, ev("old", 40))  # 40 < 60 - 10
    views.write(out)
    [row] = out.rows["touchpoints"]
    assert out.late and row["late"] == 1 and row["journey_id"] == "" and out.rows["journeys"] == []
    assert state.touchpoints == 3
    again, replay = STEP.apply_event(state, KEY, ev("old", 40))
    assert replay.duplicate and again == state and replay.rows["touchpoints"] == [row]


def test_a_late_touchpoint_that_bridges_two_journeys_merges_them_into_the_earlier() -> None:
    state, views, _ = run([ev("a", 0), ev("b", 20)])  # 20 > 15: two web journeys
    assert members(views) == [["a"], ["b"]]
    state, out = STEP.apply_event(state, KEY, ev("bridge", 12))
    views.write(out)
    assert out.merged_journeys == 1
    [merged] = [r for r in out.rows["journeys"] if r["status"] == MERGED_STATUS]
    assert merged["journey_id"] == journey_id_for("b")
    assert out.rows["merged_journeys"] == [
        {"journey_id": journey_id_for("b"), "customer_key": KEY, "merged_into": journey_id_for("a"), "version": state.seq}]
    assert members(views) == [["a", "b", "bridge"]]
    assert views.touchpoint_journey("b") == journey_id_for("a")


def test_a_late_touchpoint_that_splits_a_journey_moves_its_tail_to_a_new_journey() -> None:
    """With a lateness longer than the web gap, a late web touchpoint can cut a call journey."""
    step = CustomerStep(replace(CONFIG, journeys=replace(CONFIG.journeys, allowed_lateness_seconds=1800)))
    views = Views()
    state = None
    for event in [ev("a", 0, "call"), ev("b", 25, "call"), ev("x", 5, "web")]:
        state, out = step.apply_event(state, KEY, event)
        views.write(out)
    # x (web, gap 15 min) now precedes b by 20 minutes: b starts a journey of its own.
    assert members(views) == [["a", "x"], ["b"]]
    assert out.rows["touchpoint_journeys"] == [
        {"event_id": "b", "customer_key": KEY, "journey_id": journey_id_for("b"), "version": state.seq}]
    assert views.touchpoint_journey("b") == journey_id_for("b")


def test_the_journey_id_names_the_earliest_touchpoint_only() -> None:
    _, views, outs = run([ev("a", 0), ev("b", 3), ev("c", 6)])
    assert {r["journey_id"] for out in outs for r in out.rows["journeys"]} == {journey_id_for("a")}
    _, views, outs = run([ev("b", 3), ev("a", 0)])
    assert list(views.customer_journeys()) == [journey_id_for("a")]
    assert views.touchpoint_journey("b") == journey_id_for("a")


def test_absorbing_moves_the_anonymous_journey_onto_the_customer() -> None:
    anon, anon_out = STEP.apply_event(None, "anon-1", ev("browse", 0))
    cust, cust_out = STEP.apply_event(None, KEY, ev("login", 5))
    views = Views(stitched={"anon-1": KEY})
    views.write([anon_out, cust_out])
    merged, out = STEP.absorb(cust, KEY, anon, "anon-1")
    views.write(out)
    assert merged.seq > max(anon.seq, cust.seq)  # rows outrank both sides' earlier versions
    assert {r["customer_key"] for r in out.rows["journeys"]} == {KEY}
    assert members(views) == [["browse", "login"]]
    assert list(views.customer_journeys()) == [journey_id_for("browse")]
    assert merged.touchpoints == 2
    assert STEP.absorb(cust, KEY, None, "anon-1") == (cust, out.__class__())


def test_an_old_anonymous_history_keeps_its_journeys_and_moves_to_the_customer() -> None:
    """Linked days later: nothing is lost, the old journey is written under the customer."""
    anon, out_a = STEP.apply_event(None, "anon-1", ev("browse", 0))
    cust, out_c = STEP.apply_event(None, KEY, ev("call", 3 * 1440, "call"))
    views = Views(stitched={"anon-1": KEY})
    views.write([out_a, out_c])
    merged, out = STEP.absorb(cust, KEY, anon, "anon-1")
    views.write(out)
    assert {(r["journey_id"], r["customer_key"], r["status"]) for r in out.rows["journeys"]} == {
        (journey_id_for("browse"), KEY, "closed"), (journey_id_for("call"), KEY, "open")}
    assert [j.journey_id for j in merged.journeys] == [journey_id_for("call")]  # the old one left
    assert members(views) == [["browse"], ["call"]]
    assert {customer for *_, customer in views.summary().values()} == {KEY}


def test_a_replayed_event_emits_its_rows_again_without_changing_the_state() -> None:
    """Again as first written, at version 0: it fills in a row the crash lost, never replaces one."""
    state, _, outs = run([ev("a", 0), ev("b", 3)])
    again, replay = STEP.apply_event(state, KEY, ev("a", 0))
    assert again == state and replay.duplicate
    assert replay.rows["touchpoints"] == [{**outs[0].rows["touchpoints"][0], "version": 0}]


def test_a_replay_older_than_the_seen_ring_writes_its_touchpoint_again_with_the_same_score() -> None:
    """The first attempt may have crashed before its rows were stored: the row must come again."""
    step = CustomerStep(CONFIG, recent_limit=2)
    state, first = step.apply_event(None, KEY, ev("a", 0, "call"))
    state, switched = step.apply_event(state, KEY, ev("b", 1, "web"))  # a channel switch
    for n, minute in enumerate((2, 3, 4)):
        state, _ = step.apply_event(state, KEY, ev(f"later-{n}", minute))
    assert "b" not in {seen.event_id for seen in state.recent}
    again, replay = step.apply_event(state, KEY, ev("b", 1, "web"))
    [row] = replay.rows["touchpoints"]
    [original] = switched.rows["touchpoints"]
    assert replay.duplicate and again == state
    assert (row["score"], row["component_names"], row["journey_id"]) == (
        original["score"], original["component_names"], original["journey_id"])
    assert row["version"] == 0


def test_a_replay_beyond_the_ring_and_the_lateness_never_displaces_the_stored_row() -> None:
    """It cannot be told from a late event, so it is written as one, at version 0: the row that
    placed it in a journey (any version >= 1) keeps winning."""
    step = CustomerStep(CONFIG, recent_limit=1)
    views = Views()
    state = None
    for event in (ev("a", 0), ev("b", 120), ev("c", 240)):
        state, out = step.apply_event(state, KEY, event)
        views.write(out)
    state, out = step.apply_event(state, KEY, ev("a", 0))
    assert out.late and out.rows["touchpoints"][0]["version"] == 0
    views.write(out)
    assert views.tables["touchpoints"]["a"]["late"] == 0 and views.touchpoint_journey("a") == journey_id_for("a")


# -- state size ---------------------------------------------------------------------------

# The documented bounds (docs/design.md, "State and stitching"), with UUID event ids.
TYPICAL_BOUND = 2 * 1024
WORST_BOUND = 8 * 1024


def uuid_ids(seed: int):
    import random

    rng = random.Random(seed)
    while True:
        yield str(uuid.UUID(int=rng.getrandbits(128)))


def test_a_typical_customer_state_stays_under_two_kilobytes() -> None:
    """Three page views every third day for three months: an open journey and a full seen-ring."""
    ids = uuid_ids(1)
    state, largest = None, 0
    for day in range(0, 90, 3):
        for n in range(3):
            event = Event(next(ids), T0 + day * 1440 * MIN + n * 4 * MIN, "web", "page_view")
            state, _ = STEP.apply_event(state, KEY, event)
            largest = max(largest, len(state_to_json(state)))
    assert len(state.recent) == STEP.recent_limit
    assert largest < TYPICAL_BOUND


def test_a_heavy_customer_state_stays_under_the_documented_worst_case() -> None:
    """A bot-like customer: 5000 touchpoints on every channel, one every 10 s for 14 hours, all
    in one journey: at most ``unfolded_limit`` touchpoints stay one by one, the rest is folded."""
    ids = uuid_ids(2)
    state, largest = None, 0
    for i in range(5000):
        channel = ("web", "app", "call", "store")[i % 4]
        state, _ = STEP.apply_event(state, KEY, Event(next(ids), T0 + i * 10_000, channel, "page_view"))
        largest = max(largest, len(state_to_json(state)))
    [journey] = state.journeys
    assert journey.summary(CONFIG.journeys.max_scored_touchpoints).count == 5000
    assert len(journey.segments) <= STEP.unfolded_limit + 1
    assert largest < WORST_BOUND


def test_quiet_until_is_the_next_closing_then_the_end_of_the_lateness() -> None:
    state, _, _ = run([ev("a", 0), ev("b", 5)])
    assert STEP.quiet_until_ms(state) == T0 + 20 * MIN  # the web gap after the last touchpoint
    closed_state, _ = STEP.close_if_idle(state, KEY, T0 + 21 * MIN)
    assert STEP.quiet_until_ms(closed_state) == T0 + 30 * MIN  # then kept for the lateness
    evicted, _ = STEP.close_if_idle(closed_state, KEY, T0 + 31 * MIN)
    assert STEP.quiet_until_ms(evicted) is None


def test_emitted_together_a_journey_keeps_its_last_row_and_builds_no_other() -> None:
    """What a batch emits holds one row per journey, the newest, and only that one is built."""
    state, first = STEP.apply_event(None, KEY, ev("a", 0))
    _, second = STEP.apply_event(state, KEY, ev("b", 1))
    batch = Emitted()
    batch.extend(first)
    batch.extend(second)
    [row] = batch.rows["journeys"]
    assert row == second.rows["journeys"][0] and row["touchpoint_count"] == 2
    assert batch.rows["journeys"][0] is row  # built once: version stamps made on it stay

    replaced = Emitted()
    replaced.add_journey_row("j", lambda: pytest.fail("a replaced journey row was built"))
    replaced.add_journey_row("j", {"journey_id": "j"})
    assert replaced.rows["journeys"] == [{"journey_id": "j"}]
