"""Identity resolution for the stage keyed by identifier.

The resolve stage sees, in order, every link and every anonymous event for one identifier, so a
decision here does not depend on which worker or partition saw what first. Its state per
identifier is just the customer it is linked to. Two different known customers are never merged:
a second customer claiming a linked identifier is recorded as a conflict and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

LINKED = "linked"
CONFIRMED = "confirmed"
CONFLICT = "conflict"


def anonymous_key(identifier_key: str) -> str:
    """Deterministic, and carries no identifier value: anonymous keys reach BI and logs."""
    return "anon-" + hashlib.blake2b(identifier_key.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class LinkDecision:
    decision: str
    customer_key: str
    store: bool
    row: dict[str, Any]


def decide_link(identifier: str, linked_to: str | None, link: Mapping[str, Any]) -> LinkDecision:
    """Apply one ``identifier -> customer`` statement to what the identifier is linked to now."""
    customer = link["customer_id"]
    if linked_to is None:
        decision, reason = LINKED, ""
    elif linked_to == customer:
        decision, reason = CONFIRMED, ""
    else:
        decision, reason = CONFLICT, "identifier already linked to another known customer"
    id_type, _, value = identifier.partition(":")
    row = {
        "identifier_type": id_type,
        "identifier_value": value,
        "anonymous_key": anonymous_key(identifier),
        "customer_key": customer,
        "decision": decision,
        "reason": reason,
        "event_id": link["event_id"],
        "occurred_at": int(link["occurred_at_ms"]) // 1000,
        "version": int(link["occurred_at_ms"]),
    }
    return LinkDecision(decision, customer if decision != CONFLICT else linked_to or customer,
                        store=decision == LINKED, row=row)
