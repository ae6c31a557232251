"""Erased customers stay erased: the pure check a worker applies to each decoded event.

``touchpoint forget`` deletes a customer's rows and state, but the events that built them may
still sit in Kafka, in a replay file or in a producer's retry queue. The suppression list names
what was erased so those events are dropped at ingest instead of bringing the customer back.

The list holds digests, not keys: an erasure must not leave the erased identifiers behind in a
table of its own. A digest covers a kind (``customer`` for customer and anonymous keys,
``identifier`` for identifier keys ``type:value`` in their stored form, HMAC-ed when hashing is
on) and the key, so the same string in two namespaces never collides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.identifiers import identifier_key
from pipeline.identity import anonymous_key
from pipeline.model import Event, IdentityLink

CUSTOMER = "customer"
IDENTIFIER = "identifier"
KINDS = (CUSTOMER, IDENTIFIER)


def suppression_token(kind: str, key: str) -> str:
    """The digest stored for one erased key."""
    if kind not in KINDS:
        raise ValueError(f"suppression kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return hashlib.blake2b(f"{kind}\x00{key}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class SuppressionList:
    """The digests of every erased key; empty when nobody was erased."""

    tokens: frozenset[str] = frozenset()

    @classmethod
    def of(cls, tokens: Iterable[str]) -> SuppressionList:
        return cls(frozenset(tokens))

    def __len__(self) -> int:
        return len(self.tokens)

    def suppresses_customer_key(self, key: str) -> bool:
        """For state keyed by customer (or anonymous) key, e.g. the worker's customer table."""
        return bool(self.tokens) and suppression_token(CUSTOMER, key) in self.tokens

    def suppresses_identifier_key(self, key: str) -> bool:
        """For state keyed by identifier key ``type:value``, e.g. the worker's identity table."""
        return bool(self.tokens) and suppression_token(IDENTIFIER, key) in self.tokens

    def suppresses(self, item: Event | IdentityLink) -> bool:
        """Whether a decoded event or identity link belongs to an erased customer.

        An event is dropped when its customer, any of its identifiers, or the anonymous key one
        of them routes to was erased. A link is dropped when it names an erased customer; a link
        from another customer that claims an erased identifier is kept, because identifiers such
        as phone numbers are reassigned.
        """
        if not self.tokens:
            return False
        if item.customer_id and self.suppresses_customer_key(item.customer_id):
            return True
        if isinstance(item, IdentityLink):
            return False
        for id_type, value in item.identifiers.items():
            key = identifier_key(id_type, value)
            if self.suppresses_identifier_key(key) or self.suppresses_customer_key(anonymous_key(key)):
                return True
        return False
