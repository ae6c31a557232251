"""The suppression check: an erased customer's events are dropped by customer, identifier or anonymous key."""

from __future__ import annotations

import pytest

from pipeline.identifiers import identifier_key
from pipeline.identity import anonymous_key
from pipeline.model import Event, IdentityLink
from pipeline.suppression import CUSTOMER, IDENTIFIER, SuppressionList, suppression_token


def event(customer_id: str | None = None, **identifiers: str) -> Event:
    return Event("e-1", 1_700_000_000_000, "web", "page_view", customer_id=customer_id, identifiers=identifiers)


ERASED = SuppressionList.of([
    suppression_token(CUSTOMER, "cust-erased"),
    suppression_token(IDENTIFIER, identifier_key("device_id", "dev-erased")),
    suppression_token(CUSTOMER, anonymous_key(identifier_key("anonymous_id", "anon-visitor-9"))),
])


@pytest.mark.parametrize(("item", "suppressed"), [
    (event("cust-erased"), True),
    (event("cust-kept"), False),
    (event(None, device_id="dev-erased"), True),
    (event("cust-kept", device_id="dev-erased"), True),
    (event(None, anonymous_id="anon-visitor-9"), True),  # routed to an erased anonymous key
    (event(None, anonymous_id="anon-visitor-1"), False),
    (event("anon-" + "0" * 24), False),
    (IdentityLink("l-1", 1, "cust-erased", {"phone": "+15550000000"}), True),
    (IdentityLink("l-2", 1, "cust-kept", {"device_id": "dev-erased"}), False),  # identifiers get reassigned
])
def test_suppresses(item: Event | IdentityLink, suppressed: bool) -> None:
    assert ERASED.suppresses(item) is suppressed


def test_replayed_anonymous_row_is_suppressed_by_its_key() -> None:
    """Replay from ClickHouse sends an anonymous row with its anonymous key as the customer id."""
    anon = anonymous_key(identifier_key("anonymous_id", "anon-visitor-9"))
    assert ERASED.suppresses(event(anon))
    assert ERASED.suppresses_customer_key(anon)


def test_kinds_do_not_collide_and_empty_list_suppresses_nothing() -> None:
    assert suppression_token(CUSTOMER, "x") != suppression_token(IDENTIFIER, "x")
    assert not ERASED.suppresses_identifier_key("cust-erased")
    assert not SuppressionList().suppresses(event("cust-erased"))
    with pytest.raises(ValueError):
        suppression_token("email", "x")


def test_tokens_hold_no_identifier() -> None:
    token = suppression_token(IDENTIFIER, "email:someone@example.invalid")
    assert "example" not in token and len(token) == 32
