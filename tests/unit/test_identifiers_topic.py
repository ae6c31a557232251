"""The identifiers topic's two kinds of message: links, and anonymous events in an envelope that
the resolve stage takes apart without parsing."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from agents.hot_path import anonymous_event_message, link_message, unwrap_anonymous_event
from pipeline.model import Event, from_wire, to_wire

text = st.text(max_size=12)
events = st.builds(
    Event, event_id=text, occurred_at_ms=st.integers(0, 2**53), channel=st.sampled_from(["web", "app", "call", "store"]),
    type=text, customer_id=st.none(), identifiers=st.dictionaries(text, text, max_size=3),
    attributes=st.dictionaries(text, st.one_of(text, st.integers(-10**6, 10**6), st.booleans()), max_size=3),
    feedback=st.none(), value=st.none() | st.floats(-1e6, 1e6),
)


@given(events)
def test_an_anonymous_event_comes_out_of_its_envelope_as_it_went_in(event: Event) -> None:
    message = anonymous_event_message(to_wire(event))
    assert orjson.loads(message) == {"kind": "event", "event": event.to_dict()}  # still JSON, as before
    assert from_wire(unwrap_anonymous_event(message) or b"") == event


def test_a_link_is_not_taken_for_an_event() -> None:
    link = link_message("cust-1", "lnk-1", 1_700_000_000_000, "device_id", "dev-1")
    assert orjson.loads(link)["kind"] == "link" and unwrap_anonymous_event(link) is None
