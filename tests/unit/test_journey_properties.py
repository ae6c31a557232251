"""Properties of journeys and back-stitching, read the way BI reads them (``journey_views``).

* any arrival order within the allowed lateness gives the same journeys (ids, members, outcomes);
* absorbing an anonymous key gives the journeys the customer would have had with every
  touchpoint from the start, and never loses or duplicates a touchpoint;
* replaying an event changes nothing; the state round-trips through its codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from journey_views import Views
from pipeline.config import load_model_config
from pipeline.customer import CustomerState, CustomerStep, Emitted
from pipeline.model import Event
from pipeline.state_codec import state_from_json, state_to_json

CONFIG = load_model_config()
STEP = CustomerStep(CONFIG)
# A lateness longer than the web gap: a late touchpoint can then also split a journey.
LONG_STEP = CustomerStep(replace(CONFIG, journeys=replace(CONFIG.journeys, allowed_lateness_seconds=2400)))
BASE_MS = 1_700_000_000_000
END_OF_TIME = BASE_MS + 10**12
MINUTE = 60_000

KINDS = {
    "view": lambda ch: ("page_view", {}),
    "purchase": lambda ch: ("purchase", {}),
    "resolved": lambda ch: ("call_ended", {"resolved": True}),
    "abandoned": lambda ch: ("call_ended", {"abandoned": True}),
}

# Gaps between consecutive touchpoints: same session, around the web and default gaps, long.
gaps = st.one_of(
    st.integers(0, 5 * MINUTE),
    st.integers(10 * MINUTE, 40 * MINUTE),
    st.integers(55 * MINUTE, 70 * MINUTE),
    st.integers(20 * 60 * MINUTE, 30 * 60 * MINUTE),
)
touch = st.tuples(gaps, st.sampled_from(["web", "call", "app", "store"]),
                  st.sampled_from(["view", "view", "view", "purchase", "resolved", "abandoned"]))


def make_events(spec: list[tuple[int, str, str]], prefix: str = "ev") -> list[Event]:
    events, at = [], BASE_MS
    for index, (gap, channel, kind) in enumerate(spec):
        at += gap
        event_type, attributes = KINDS[kind](channel)
        events.append(Event(f"{prefix}-{index:03d}", at, channel, event_type, attributes=attributes))
    return events


def lateness_ms(step: CustomerStep) -> int:
    return step.rules.allowed_lateness_seconds * 1000


def within_lateness(events: list[Event], jitter: list[float], step: CustomerStep = STEP) -> list[Event]:
    """An arrival order where no event is more than the lateness behind the newest before it:
    sorted by event time plus a delay of up to the lateness (``jitter`` in [0, 1])."""
    delay = lateness_ms(step)
    return [e for _, e in sorted(zip(jitter, events), key=lambda pair: pair[1].occurred_at_ms + int(pair[0] * delay))]


@dataclass
class Run:
    step: CustomerStep = STEP
    views: Views = field(default_factory=Views)
    states: dict[str, CustomerState] = field(default_factory=dict)
    emitted: list[Emitted] = field(default_factory=list)

    def apply(self, key: str, event: Event) -> Emitted:
        self.states[key], out = self.step.apply_event(self.states.get(key), key, event)
        self.views.write(out)
        self.emitted.append(out)
        return out

    def finish(self) -> Run:
        for key, state in list(self.states.items()):
            result = self.step.close_if_idle(state, key, END_OF_TIME)
            if result is not None:
                self.states[key], out = result
                self.views.write(out)
                self.emitted.append(out)
        return self


def process(events: list[Event], step: CustomerStep = STEP, key: str = "cust-1") -> Run:
    run = Run(step)
    for event in events:
        run.apply(key, event)
    return run.finish()


jitters = st.lists(st.integers(0, 1000).map(lambda n: n / 1000), min_size=40, max_size=40)
steps = st.sampled_from([STEP, LONG_STEP])


@settings(max_examples=150, deadline=None)
@given(st.lists(touch, min_size=1, max_size=30), jitters, steps)
def test_any_order_within_the_lateness_gives_the_same_journeys(spec, jitter, step) -> None:
    events = make_events(spec)
    in_order = process(events, step).views.summary()
    shuffled = process(within_lateness(events, jitter, step), step)
    assert shuffled.views.summary() == in_order
    assert not any(out.late for out in shuffled.emitted)


# sampled_from rather than integers: hypothesis favours small integers, and these gaps must
# straddle the web gap (15 min), the lateness (40 min) and the call gap (60 min) evenly.
dense_gaps = st.sampled_from([0, 2, 5, 8, 11, 14, 16, 19, 23, 27, 31, 35, 39, 44]).map(lambda m: m * MINUTE)
dense_touch = st.tuples(dense_gaps, st.sampled_from(["web", "call"]),
                       st.sampled_from(["view", "view", "view", "purchase"]))


@settings(max_examples=500, deadline=None)
@given(st.lists(dense_touch, min_size=2, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
def test_late_touchpoints_that_split_or_bridge_journeys_land_where_event_time_puts_them(spec, jitter) -> None:
    """Dense traffic with a lateness longer than the web gap: late touchpoints often bridge two
    journeys or cut one, so touchpoints written earlier must follow (moved and merged rows).
    Each touchpoint is delayed by nothing or by the whole lateness: the extremes reorder most."""
    events = make_events(spec)
    shuffled = process(within_lateness(events, [float(j) for j in jitter], LONG_STEP), LONG_STEP)
    assert shuffled.views.summary() == process(events, LONG_STEP).views.summary()


@settings(max_examples=150, deadline=None)
@given(st.lists(touch, min_size=1, max_size=30), jitters, steps)
def test_every_touchpoint_is_in_exactly_one_live_journey_whose_row_counts_it(spec, jitter, step) -> None:
    views = process(within_lateness(make_events(spec), jitter, step), step).views
    summary = views.summary()
    members = [e for m, *_ in summary.values() for e in m]
    assert sorted(members) == sorted(views.tables["touchpoints"])
    for event_ids, status, _outcome, count, _customer in summary.values():
        assert count == len(event_ids) and status == "closed"


@settings(max_examples=150, deadline=None)
@given(st.lists(touch, min_size=1, max_size=30), st.lists(st.booleans(), min_size=30, max_size=30),
       jitters, st.integers(0, 30), steps)
def test_absorbing_an_anonymous_key_gives_the_journeys_of_one_customer(spec, anonymous, jitter, cut, step) -> None:
    """Anonymous touchpoints first go to their own key; at the link that state moves to the
    customer, and the customer's touchpoints arrive before and after, all within the lateness:
    the hand-over comes while the anonymous touchpoints are within the lateness of the newest
    touchpoint seen (an older anonymous history keeps journeys of its own, see docs/design.md)."""
    events = make_events(spec)
    arrival = within_lateness(events, jitter, step)
    owner = {e.event_id: "anon-1" if a else "cust-1" for e, a in zip(events, anonymous)}
    last_anonymous = max((i for i, e in enumerate(arrival) if owner[e.event_id] == "anon-1"), default=-1)
    absorb_at = max(last_anonymous + 1, min(cut, len(arrival)))
    newest = max((e.occurred_at_ms for e in arrival[:absorb_at]), default=0)
    assume(all(e.occurred_at_ms >= newest - lateness_ms(step) for e in arrival if owner[e.event_id] == "anon-1"))
    run = Run(step, Views(stitched={"anon-1": "cust-1"}))
    for index, event in enumerate(arrival):
        if index == absorb_at:
            absorb(run)
        run.apply(owner[event.event_id], event)
    if absorb_at >= len(arrival):
        absorb(run)
    run.finish()
    assert run.views.summary() == process(events, step).views.summary()
    state = run.states["cust-1"]
    assert state.touchpoints == len(events)


def absorb(run: Run) -> None:
    absorbed = run.states.pop("anon-1", None)
    run.states["cust-1"], out = run.step.absorb(run.states.get("cust-1"), "cust-1", absorbed, "anon-1")
    run.views.write(out)
    again, replayed = run.step.absorb(run.states["cust-1"], "cust-1", absorbed, "anon-1")
    assert again == run.states["cust-1"] and replayed.duplicate == (absorbed is not None)
    run.views.write(replayed)


@settings(max_examples=100, deadline=None)
@given(st.lists(touch, min_size=1, max_size=25), jitters, st.data())
def test_replaying_an_event_changes_nothing(spec, jitter, data) -> None:
    """A replay within the seen-ring is recognised wherever its event sits in time (the promise;
    an older replay beyond the lateness too is the documented limit, docs/design.md)."""
    arrival = within_lateness(make_events(spec), jitter)
    replay_after = data.draw(st.integers(0, len(arrival) - 1))
    replayed = data.draw(st.integers(max(0, replay_after - STEP.recent_limit + 1), replay_after))
    run = Run()
    for index, event in enumerate(arrival):
        run.apply("cust-1", event)
        if index == replay_after:
            before = run.states["cust-1"]
            out = run.apply("cust-1", arrival[replayed])
            assert out.duplicate and run.states["cust-1"] == before
    assert run.finish().views.summary() == process(arrival).views.summary()


@settings(max_examples=100, deadline=None)
@given(st.lists(touch, min_size=1, max_size=40), jitters, st.integers(0, 39))
def test_state_round_trips_through_the_codec(spec, jitter, stop) -> None:
    run = Run()
    for event in within_lateness(make_events(spec), jitter)[:stop + 1]:
        run.apply("cust-1", event)
        state = run.states["cust-1"]
        assert state_from_json(state_to_json(state)) == state


@given(st.lists(touch, min_size=1, max_size=30), jitters, steps)
def test_the_idle_timer_may_skip_a_customer_until_its_quiet_until_watermark(spec, jitter, step) -> None:
    """Up to ``quiet_until_ms`` closing finds nothing to close or evict; one millisecond later it does."""
    run = Run(step)
    for event in within_lateness(make_events(spec), jitter, step):
        run.apply("cust-1", event)
    state = run.states["cust-1"]
    due = step.quiet_until_ms(state)
    assume(due is not None)
    assert due >= state.watermark_ms
    quiet = step.close_if_idle(state, "cust-1", due)
    if quiet is not None:  # only folding (a compaction) may happen: nothing closes or leaves
        quiet_state, out = quiet
        assert out.closed_outcomes == []
        assert [j.journey_id for j in quiet_state.journeys] == [j.journey_id for j in state.journeys]
    after = step.close_if_idle(state, "cust-1", due + 1)
    assert after is not None
    later_state, out = after
    assert out.closed_outcomes or len(later_state.journeys) < len(state.journeys)
