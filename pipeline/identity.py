"""Identity resolution for the stage keyed by identifier.

The resolve stage sees, in order, every link and every anonymous event for one identifier, so a
decision here does not depend on which worker or partition saw what first. Its state per
identifier is an :class:`IdentityState`: the customer the identifier is linked to and, for types
with a limit (a device may be shared), the distinct customers that claimed it recently.

:meth:`IdentityRules.decide` applies one ``identifier -> customer`` statement and says what
happened, never silently: ``linked`` (the identifier's anonymous history moves to the customer),
``confirmed``, or ``refused`` with a reason. Two different known customers are never merged: a
second customer claiming a linked identifier is refused as a ``conflict``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from pipeline.config import IdentityConfig
from pipeline.identifiers import identifier_key

LINKED = "linked"
CONFIRMED = "confirmed"
REFUSED = "refused"
DECISIONS: tuple[str, ...] = (LINKED, CONFIRMED, REFUSED)

CONFLICT = "conflict"  # the identifier is linked to another known customer
LIMIT = "limit"  # too many distinct customers claimed it within the type's window
BLOCKED_VALUE = "blocked_value"  # a configured junk value for the type
REASONS: tuple[str, ...] = ("", CONFLICT, LIMIT, BLOCKED_VALUE)  # bounded: metric label values

Protect = Callable[[str, str], str]


ANONYMOUS_PREFIX = "anon-"


def anonymous_key(identifier_key: str) -> str:
    """Deterministic, and carries no identifier value: anonymous keys reach BI and logs."""
    return ANONYMOUS_PREFIX + hashlib.blake2b(identifier_key.encode(), digest_size=12).hexdigest()


def is_anonymous_key(key: str | None) -> bool:
    """The key is one :func:`anonymous_key` made, not a customer's."""
    return bool(key) and key.startswith(ANONYMOUS_PREFIX)


@dataclass(frozen=True, slots=True)
class IdentityState:
    """What one identifier is: its customer, and who claimed it lately (limited types only).

    ``linked_at`` is the position (offset in the identifier's partition) of the message that
    linked it, when known: see :meth:`owner_of_event`. ``anonymous_events``: an event went to
    the identifier's anonymous key, so that key may hold state a link must hand over (see
    :meth:`attribute_event`).
    """

    customer_key: str | None = None
    claims: tuple[tuple[str, int], ...] = ()  # (customer key, last claim ms), oldest first
    linked_at: int | None = None
    anonymous_events: bool = False

    def to_bytes(self) -> bytes:
        return orjson.dumps((self.customer_key, self.claims, self.linked_at, int(self.anonymous_events)))

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> IdentityState:
        if raw is None:
            return cls()
        # States written before linked_at have two fields, before anonymous_events three: whether
        # their anonymous key holds state is not known, so a link still hands it over.
        customer_key, claims, *rest = orjson.loads(raw)
        return cls(customer_key, tuple((customer, int(ms)) for customer, ms in claims),
                   rest[0] if rest else None, bool(rest[1]) if len(rest) > 1 else True)

    def attribute_event(self, identifier: str, position: int | None) -> tuple[str, IdentityState]:
        """The key of an anonymous event (:meth:`owner_of_event`), and the identifier's state after it.

        The first event that goes to the anonymous key marks the state (a write of a few bytes,
        once per identifier): only then does a link send the anonymous key a hand-over. Sending
        it on every new link made most of them a round trip through the customers topic to a key
        with no state (21,500 of 24,700 links on the bench's data).
        """
        owner = self.owner_of_event(identifier, position)
        if self.anonymous_events or owner == self.customer_key:
            return owner, self
        return owner, IdentityState(self.customer_key, self.claims, self.linked_at, True)

    def owner_of_event(self, identifier: str, position: int | None) -> str:
        """The key an anonymous event at ``position`` in the identifier's stream belongs to.

        The customer once linked, but only for events after the link in the partition's order:
        an event before it belongs to the anonymous key, whose state the link hands over to the
        customer. Deciding by the state alone made the attribution depend on when the event was
        read: after a crash the identifiers partition is read again from its committed offset
        while the identity state (made durable with the batch's acknowledgement) already holds
        the link, so the anonymous events before the link were sent a second time, now to the
        customer. The customer applied them as its own events, and then absorbed the anonymous
        key's state holding the same events: counted in two journeys, or late at the customer and
        in a journey at the anonymous key (the fault suite's disagreeing journeys). Read again,
        they now go where they went the first time (a handed-over key knows them as replays).
        A state without a recorded position (written before it was kept) attributes by the link.
        """
        if self.customer_key is None or (
                self.linked_at is not None and position is not None and position < self.linked_at):
            return anonymous_key(identifier)
        return self.customer_key


@dataclass(frozen=True, slots=True)
class LinkDecision:
    decision: str
    customer_key: str  # the customer the identifier belongs to after the decision
    store: bool  # the identifier's state changed and must be written
    row: dict[str, Any]  # the identity_links row; every decision has one
    reason: str = ""
    # on ``linked``, when events went to the identifier's anonymous key: the key whose state moves
    # to customer_key
    absorb: str | None = None

    @property
    def labels(self) -> tuple[str, str]:
        """Metric labels (decision, reason): both from small fixed sets, never an identifier."""
        return self.decision, self.reason


class IdentityRules:
    """The configured guard rails, with blocked values hashed like the identifiers they match.

    ``protect`` is ``IdentifierPolicy.protect`` when identifiers are hashed at ingest, so that a
    configured junk value is recognised in its hashed form too.
    """

    def __init__(self, config: IdentityConfig | None = None, protect: Protect | None = None) -> None:
        self.config = config or IdentityConfig()
        self._protect = protect

    def is_blocked(self, id_type: str, value: str) -> bool:
        blocked = self.config.blocked(id_type)
        if value.strip().lower() in blocked:
            return True
        return self._protect is not None and any(self._protect(id_type, b) == value for b in blocked)

    def decide(self, state: IdentityState | None, message: Mapping[str, Any],
               position: int | None = None) -> tuple[IdentityState, LinkDecision]:
        """Apply one link message (``customer_id``, ``event_id``, ``occurred_at_ms``, ``type``, ``value``)
        read at ``position`` (its offset in the identifier's partition), which a ``linked``
        decision records (see :meth:`IdentityState.owner_of_event`)."""
        state = state or IdentityState()
        id_type, value, customer = message["type"], message["value"], message["customer_id"]
        at_ms = int(message["occurred_at_ms"])
        if self.is_blocked(id_type, value):
            return state, _decision(REFUSED, BLOCKED_VALUE, state.customer_key or customer, False, message)
        rule = self.config.rule(id_type)
        claims = state.claims
        if rule is not None and rule.max_customers is not None:
            recent = [(c, ms) for c, ms in claims if c != customer and ms >= at_ms - rule.window_seconds * 1000]
            claims = tuple(sorted(recent + [(customer, max(at_ms, dict(claims).get(customer, at_ms)))],
                                  key=lambda claim: (claim[1], claim[0])))[-(rule.max_customers + 1):]
            if customer != state.customer_key and len(claims) > rule.max_customers:
                new_state = IdentityState(state.customer_key, claims, state.linked_at, state.anonymous_events)
                return new_state, _decision(REFUSED, LIMIT, state.customer_key or customer, True, message)
        if state.customer_key is None:
            absorb = anonymous_key(identifier_key(id_type, value)) if state.anonymous_events else None
            decision = _decision(LINKED, "", customer, True, message, absorb=absorb)
            return IdentityState(customer, claims, position, state.anonymous_events), decision
        if state.customer_key == customer:
            return IdentityState(customer, claims, state.linked_at, state.anonymous_events), _decision(
                CONFIRMED, "", customer, claims != state.claims, message)
        return IdentityState(state.customer_key, claims, state.linked_at, state.anonymous_events), _decision(
            REFUSED, CONFLICT, state.customer_key, claims != state.claims, message)


def _decision(decision: str, reason: str, customer_key: str, store: bool, message: Mapping[str, Any],
              absorb: str | None = None) -> LinkDecision:
    id_type, value = message["type"], message["value"]
    row = {
        "identifier_type": id_type,
        "identifier_value": value,
        "anonymous_key": anonymous_key(identifier_key(id_type, value)),
        "customer_key": message["customer_id"],
        "decision": decision,
        "reason": reason,
        "event_id": message["event_id"],
        "occurred_at": int(message["occurred_at_ms"]) // 1000,
        "version": int(message["occurred_at_ms"]),
    }
    return LinkDecision(decision, customer_key, store, row, reason, absorb)


def decide_link(identifier: str, linked_to: str | None, link: Mapping[str, Any]) -> LinkDecision:
    """The former interface (state = linked customer key), kept until the resolve agent switches
    to :meth:`IdentityRules.decide` with :class:`IdentityState`; no guard rails beyond conflicts."""
    id_type, _, value = identifier.partition(":")
    _, decision = IdentityRules().decide(IdentityState(linked_to), {**link, "type": id_type, "value": value})
    return decision
