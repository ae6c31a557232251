"""Typed customer identifiers: cleaning, junk filtering, optional keyed hashing, routing precedence.

Identity stitching joins events on identifier values, so two spellings of one phone number must
become one value, and placeholder values ("unknown", "0", "test") must never become keys: one such
value would merge every anonymous visitor who sent it into a single giant customer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

CUSTOMER_ID = "customer_id"
KNOWN_TYPES: frozenset[str] = frozenset(
    {CUSTOMER_ID, "anonymous_id", "device_id", "phone", "email", "loyalty_id"}
)
# Most specific first: a loyalty card or e-mail names one person, a device or cookie may be shared.
PRIMARY_PRECEDENCE: tuple[str, ...] = ("loyalty_id", "email", "phone", "device_id", "anonymous_id")
DEFAULT_BLOCKED_VALUES: frozenset[str] = frozenset(
    {"", "unknown", "0", "null", "none", "undefined", "n/a", "-", "test"}
)
HASH_HEX_CHARS = 32

_PHONE_NOISE = str.maketrans("", "", " \t-().")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


@dataclass(frozen=True, slots=True)
class IdentifierPolicy:
    """How identifiers are accepted at ingest; one policy per deployment, shared by all workers.

    ``hmac_key`` turns on hashing of every identifier value except ``customer_id`` (the business
    key BI joins on), so no raw phone number or e-mail address leaves the ingest stage. Cleaning
    alone is idempotent; hashing is applied once, at ingest, and is not.
    """

    extra_types: frozenset[str] = frozenset()
    blocked_values: frozenset[str] = DEFAULT_BLOCKED_VALUES
    hmac_key: bytes | None = None
    default_country_code: str | None = None
    max_value_length: int = 256

    def __post_init__(self) -> None:
        # Blocked values are compared case-insensitively; normalise the configured list once.
        object.__setattr__(
            self, "blocked_values", frozenset(v.strip().lower() for v in self.blocked_values)
        )
        object.__setattr__(self, "extra_types", frozenset(self.extra_types))
        if self.default_country_code is not None and not re.fullmatch(
            r"\+?[1-9][0-9]{0,2}", self.default_country_code
        ):
            raise ValueError("default_country_code must be a 1-3 digit calling code, e.g. '44'")

    def accepts_type(self, id_type: str) -> bool:
        return id_type in KNOWN_TYPES or id_type in self.extra_types

    def is_blocked(self, value: str) -> bool:
        return value.strip().lower() in self.blocked_values

    def clean_value(self, id_type: str, value: str) -> str | None:
        """The canonical spelling of one value, or None when it is junk or invalid."""
        if self.is_blocked(value):
            return None
        if id_type == "phone":
            cleaned = normalise_phone(value, self.default_country_code)
        elif id_type == "email":
            cleaned = normalise_email(value)
        else:
            cleaned = value.strip()
        if cleaned is None or self.is_blocked(cleaned) or len(cleaned) > self.max_value_length:
            return None
        return cleaned

    def clean(self, identifiers: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
        """Clean every identifier; returns the usable ones and the types that were dropped."""
        kept: dict[str, str] = {}
        dropped: list[str] = []
        for raw_type, raw_value in identifiers.items():
            id_type = raw_type.strip().lower()
            value = self.clean_value(id_type, raw_value) if self.accepts_type(id_type) else None
            if value is None:
                dropped.append(raw_type)
            else:
                kept[id_type] = value
        return kept, dropped

    def protect(self, id_type: str, value: str) -> str:
        """The value as it may leave ingest: hashed when a key is set, except the customer id."""
        if self.hmac_key is None or id_type == CUSTOMER_ID:
            return value
        return hash_value(self.hmac_key, value)

    def normalise(self, identifiers: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
        """Clean, then hash when configured: the identifiers an accepted event carries."""
        kept, dropped = self.clean(identifiers)
        if self.hmac_key is not None:
            kept = {t: self.protect(t, v) for t, v in kept.items()}
        return kept, dropped


def normalise_phone(value: str, default_country_code: str | None = None) -> str | None:
    """E.164 (``+`` and 8-15 digits), or None when the number cannot be made unambiguous.

    A national number (no ``+`` or ``00``) only becomes E.164 with a configured country code,
    whose trunk prefix ``0`` is dropped (``020 7946 0000`` with ``44`` -> ``+442079460000``).
    """
    number = value.translate(_PHONE_NOISE)
    if number.startswith("00"):
        number = "+" + number[2:]
    elif not number.startswith("+"):
        if not default_country_code:
            return None
        number = "+" + default_country_code.lstrip("+") + number.removeprefix("0")
    return number if _E164.fullmatch(number) else None


def normalise_email(value: str) -> str | None:
    """Lower-cased address with exactly one ``@`` and both sides non-empty, else None."""
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain:
        return None
    return email


def hash_value(key: bytes, value: str) -> str:
    """Keyed so that a leaked table cannot be reversed by hashing a phone-number list."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]


def primary_identifier(identifiers: Mapping[str, str]) -> tuple[str, str] | None:
    """The identifier an anonymous event is routed by: the most specific one it carries.

    Extra (configured) types come after the known ones, alphabetically, so every worker picks the
    same key for the same event.
    """
    for id_type in PRIMARY_PRECEDENCE:
        value = identifiers.get(id_type)
        if value:
            return id_type, value
    for id_type in sorted(t for t in identifiers if t not in KNOWN_TYPES):
        value = identifiers[id_type]
        if value:
            return id_type, value
    return None


def identifier_key(id_type: str, value: str) -> str:
    """The key of an identifier on ``touchpoints.identifiers`` and in the identity table."""
    return f"{id_type}:{value}"
