"""Identity decisions: guard rails, never silent, and two known customers never merged."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import ConfigError, IdentifierRule, IdentityConfig, load_model_config, parse_model_config
from pipeline.identifiers import IdentifierPolicy, identifier_key
from pipeline.identity import (
    BLOCKED_VALUE, CONFIRMED, CONFLICT, DECISIONS, LIMIT, LINKED, REASONS, REFUSED,
    IdentityRules, IdentityState, anonymous_key, decide_link,
)

DAY = 86_400_000
RULES = IdentityRules(IdentityConfig(
    blocked_values=frozenset({"guest"}),
    types={"device_id": IdentifierRule(2, 30 * 86_400, frozenset({"00000000"}))},
))


def link(customer: str, value: str = "dev-1", id_type: str = "device_id", day: float = 0, event: str = "lnk-1") -> dict:
    return {"customer_id": customer, "event_id": event, "occurred_at_ms": int(1_700_000_000_000 + day * DAY),
            "type": id_type, "value": value}


def run(*messages: dict, rules: IdentityRules = RULES) -> tuple[IdentityState, list]:
    state, decisions = None, []
    for message in messages:
        state, decision = rules.decide(state, message)
        decisions.append(decision)
    return state, decisions


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([link("c1")], [(LINKED, "")]),
        ([link("c1"), link("c1", day=1)], [(LINKED, ""), (CONFIRMED, "")]),
        ([link("c1", id_type="email", value="a@x.test"), link("c2", id_type="email", value="a@x.test")],
         [(LINKED, ""), (REFUSED, CONFLICT)]),
        # device_id allows 2 customers in 30 days: the second is a conflict, the third the limit
        ([link("c1"), link("c2", day=1), link("c3", day=2)], [(LINKED, ""), (REFUSED, CONFLICT), (REFUSED, LIMIT)]),
        # ... but claims older than the window do not count
        ([link("c1"), link("c2", day=1), link("c3", day=40)], [(LINKED, ""), (REFUSED, CONFLICT), (REFUSED, CONFLICT)]),
        # the linked customer itself is never refused for the limit
        ([link("c1"), link("c2", day=1), link("c3", day=2), link("c1", day=3)],
         [(LINKED, ""), (REFUSED, CONFLICT), (REFUSED, LIMIT), (CONFIRMED, "")]),
        ([link("c1", value="00000000")], [(REFUSED, BLOCKED_VALUE)]),  # blocked for device_id
        ([link("c1", value=" GUEST ", id_type="loyalty_id")], [(REFUSED, BLOCKED_VALUE)]),  # for every type
        ([link("c1", value="00000000", id_type="loyalty_id")], [(LINKED, "")]),  # device_id only
    ],
)
def test_guard_rails(messages, expected) -> None:
    _, decisions = run(*messages)
    assert [d.labels for d in decisions] == expected


def test_every_decision_has_a_row_and_bounded_labels() -> None:
    _, decisions = run(link("c1"), link("c1", day=1), link("c2", day=1), link("c3", day=2), link("c4", value="00000000"))
    for decision in decisions:
        assert decision.decision in DECISIONS and decision.reason in REASONS
        assert decision.row["decision"] == decision.decision and decision.row["reason"] == decision.reason
        assert decision.row["anonymous_key"] == anonymous_key(identifier_key("device_id", decision.row["identifier_value"]))


def anonymous_event_seen(state: IdentityState | None = None, identifier: str = "device_id:dev-1") -> IdentityState:
    """The state after an anonymous event of the identifier went to its anonymous key."""
    owner, state = (state or IdentityState()).attribute_event(identifier, 0)
    assert owner == anonymous_key(identifier)
    return state


def test_a_new_link_says_which_anonymous_key_to_absorb() -> None:
    state, decision = RULES.decide(anonymous_event_seen(), link("c1"), position=5)
    assert decision.absorb == anonymous_key("device_id:dev-1") and decision.store
    assert state == IdentityState("c1", (("c1", 1_700_000_000_000),), 5, anonymous_events=True)
    _, confirmed = RULES.decide(state, link("c1", day=1))
    assert confirmed.absorb is None


def test_a_link_hands_over_nothing_when_no_event_went_to_the_anonymous_key() -> None:
    state, [decision] = run(link("c1"))
    assert decision.decision == LINKED and decision.absorb is None and decision.store
    assert state == IdentityState("c1", (("c1", 1_700_000_000_000),))


def test_the_first_anonymous_event_marks_the_state_and_later_ones_change_nothing() -> None:
    identifier = "device_id:dev-1"
    marked = anonymous_event_seen()
    assert marked == IdentityState(anonymous_events=True)
    assert marked.attribute_event(identifier, 1) == (anonymous_key(identifier), marked)  # the same object
    linked, _ = RULES.decide(IdentityState(), link("c1"), position=3)
    after_link = linked.attribute_event(identifier, 4)
    assert after_link == ("c1", linked) and after_link[1] is linked  # the customer's: no mark needed
    before_link = linked.attribute_event(identifier, 2)  # a replay of an event read before the link
    assert before_link == (anonymous_key(identifier), IdentityState("c1", linked.claims, 3, True))


def test_states_written_before_the_mark_still_hand_over() -> None:
    """Whether an older state's anonymous key holds state is unknown: a link must hand it over."""
    for legacy in (b'[null,[]]', b'[null,[],null]'):
        state = IdentityState.from_bytes(legacy)
        assert state.anonymous_events
        _, decision = RULES.decide(state, link("c1"))
        assert decision.absorb == anonymous_key("device_id:dev-1")


def test_blocked_values_are_recognised_after_hashing() -> None:
    policy = IdentifierPolicy(hmac_key=b"test-key")
    rules = IdentityRules(RULES.config, protect=policy.protect)
    hashed = policy.protect("device_id", "00000000")
    _, [decision] = run(link("c1", value=hashed), rules=rules)
    assert decision.labels == (REFUSED, BLOCKED_VALUE)


def test_identity_state_round_trips() -> None:
    state, _ = run(link("c1"), link("c2", day=1), link("c3", day=2))
    assert IdentityState.from_bytes(state.to_bytes()) == state
    for marked in (anonymous_event_seen(), IdentityState("c1", state.claims, 7, anonymous_events=True)):
        assert IdentityState.from_bytes(marked.to_bytes()) == marked
    assert IdentityState.from_bytes(None) == IdentityState()


def test_decide_link_keeps_its_former_contract() -> None:
    message = {"customer_id": "c1", "event_id": "lnk-1", "occurred_at_ms": 1_700_000_000_000}
    first = decide_link("email:a@x.test", None, message)
    assert (first.decision, first.customer_key, first.store) == (LINKED, "c1", True)
    conflict = decide_link("email:a@x.test", "c0", message)
    assert (conflict.decision, conflict.reason, conflict.customer_key, conflict.store) == (REFUSED, CONFLICT, "c0", False)


# -- configuration -----------------------------------------------------------------------------

def default_document() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("touchpoint").joinpath("defaults/model.yaml").read_text("utf-8"))


def test_the_bundled_model_configures_identity() -> None:
    identity = load_model_config().identity
    assert identity.rule("device_id").max_customers == 2
    assert "00000000-0000-0000-0000-000000000000" in identity.blocked("device_id")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"types": {"device_id": {"max_customers": 0, "window_seconds": 60}}},
         "identity.types.device_id.max_customers: expected an integer >= 1, got 0"),
        ({"types": {"device_id": {"max_customers": 2}}},
         "identity.types.device_id.window_seconds: max_customers and window_seconds go together"),
        ({"types": {"Device": {}}}, "identity.types.Device: expected an identifier type in lower_snake_case"),
        ({"types": {"device_id": {"limit": 2}}}, "identity.types.device_id.limit: unknown key"),
        ({"blocked_values": "unknown"}, "identity.blocked_values: expected a list of texts"),
        ({"block": []}, "identity.block: unknown key"),
    ],
)
def test_a_bad_identity_section_names_the_key(section, message) -> None:
    document = copy.deepcopy(default_document())
    document["identity"] = section
    with pytest.raises(ConfigError) as error:
        parse_model_config(document)
    assert str(error.value).startswith(message)


def test_the_identity_section_is_optional() -> None:
    document = default_document()
    del document["identity"]
    assert parse_model_config(document).identity == IdentityConfig()


# -- properties --------------------------------------------------------------------------------

claims = st.lists(
    st.tuples(st.sampled_from(["c1", "c2", "c3", "c4"]), st.sampled_from(["device_id", "email", "phone"]),
              st.sampled_from(["v-1", "v-2", "00000000"]), st.integers(0, 90)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(claims)
def test_two_known_customers_are_never_merged(statements) -> None:
    """Per identifier: linked at most once, and never moved to another customer afterwards."""
    states: dict[str, IdentityState] = {}
    linked: dict[str, str] = {}
    for customer, id_type, value, day in sorted(statements, key=lambda s: s[3]):
        key = identifier_key(id_type, value)
        if key not in linked:  # an anonymous event before each statement, so a link hands over
            states[key] = anonymous_event_seen(states.get(key), key)
        states[key], decision = RULES.decide(states.get(key), link(customer, value, id_type, day))
        assert decision.decision in DECISIONS and decision.reason in REASONS
        if decision.decision == LINKED:
            assert key not in linked and decision.absorb == anonymous_key(key)
            linked[key] = customer
        else:
            assert decision.absorb is None
        assert states[key].customer_key == linked.get(key)
        assert decision.customer_key == linked.get(key, customer)
