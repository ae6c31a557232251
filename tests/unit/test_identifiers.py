"""Identifier cleaning, junk filtering, hashing and routing precedence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.identifiers import (
    IdentifierPolicy,
    hash_value,
    identifier_key,
    normalise_email,
    normalise_phone,
    primary_identifier,
)

KEY = b"test-key"


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+44 20 7946 0000", None, "+442079460000"),
        ("0044 (20) 7946-0000", None, "+442079460000"),
        ("020 7946 0000", "44", "+442079460000"),
        ("20 7946 0000", "+44", "+442079460000"),
        ("020 7946 0000", None, None),  # national number without a default country
        ("+1 (555) 010-9999", "44", "+15550109999"),
        ("+1234567", None, None),  # 7 digits: too short
        ("+1234567890123456", None, None),  # 16 digits: too long
        ("+0123456789", None, None),  # E.164 never starts with 0
        ("+44 20 CALL NOW", None, None),
        ("+٤٤٢٠٧٩٤٦٠٠٠٠", None, None),  # non-ASCII digits are not E.164
    ],
)
def test_normalise_phone(raw: str, country: str | None, expected: str | None) -> None:
    assert normalise_phone(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("jane@example", "jane@example"),
        ("jane", None),
        ("@example.com", None),
        ("jane@", None),
        ("a@b@c", None),
    ],
)
def test_normalise_email(raw: str, expected: str | None) -> None:
    assert normalise_email(raw) == expected


def test_default_country_code_must_be_a_calling_code() -> None:
    with pytest.raises(ValueError):
        IdentifierPolicy(default_country_code="UK")


@pytest.mark.parametrize(
    "junk", ["", "  ", "Unknown", "NULL", "none", "undefined", "N/A", "-", "0", "TEST"]
)
def test_blocked_values_are_dropped_case_insensitively(junk: str) -> None:
    kept, dropped = IdentifierPolicy().normalise({"device_id": junk, "anonymous_id": "a-1"})
    assert kept == {"anonymous_id": "a-1"}
    assert dropped == ["device_id"]


def test_blocked_values_are_configurable() -> None:
    policy = IdentifierPolicy(blocked_values=frozenset({"  Guest "}))
    assert policy.normalise({"device_id": "GUEST", "anonymous_id": "unknown"}) == (
        {"anonymous_id": "unknown"},
        ["device_id"],
    )


def test_unknown_types_are_dropped_unless_configured() -> None:
    ids = {"cookie_id": "c-1", "device_id": "d-1"}
    assert IdentifierPolicy().normalise(ids) == ({"device_id": "d-1"}, ["cookie_id"])
    extra = IdentifierPolicy(extra_types=frozenset({"cookie_id"}))
    assert extra.normalise(ids) == (ids, [])


def test_invalid_and_overlong_values_are_dropped() -> None:
    policy = IdentifierPolicy(max_value_length=8)
    kept, dropped = policy.normalise(
        {"phone": "12345", "email": "nope", "device_id": "123456789", "loyalty_id": " L1 "}
    )
    assert kept == {"loyalty_id": "L1"}
    assert sorted(dropped) == ["device_id", "email", "phone"]


def test_type_names_are_case_insensitive() -> None:
    assert IdentifierPolicy().normalise({" Email ": "A@B.C"}) == ({"email": "a@b.c"}, [])


def test_hashing_replaces_every_value_but_the_customer_id() -> None:
    policy = IdentifierPolicy(hmac_key=KEY, default_country_code="44")
    kept, _ = policy.normalise(
        {"customer_id": "C-1", "phone": "020 7946 0000", "email": "J@X.COM", "device_id": "d"}
    )
    assert kept["customer_id"] == "C-1"
    assert kept["phone"] == hash_value(KEY, "+442079460000")
    assert kept["email"] == hash_value(KEY, "j@x.com")
    assert kept["device_id"] == hash_value(KEY, "d")
    assert all(len(v) == 32 and int(v, 16) >= 0 for t, v in kept.items() if t != "customer_id")


def test_hash_depends_on_the_key() -> None:
    assert hash_value(b"one", "+442079460000") != hash_value(b"two", "+442079460000")


@pytest.mark.parametrize(
    ("identifiers", "expected"),
    [
        (
            {"anonymous_id": "a", "device_id": "d", "phone": "p", "email": "e", "loyalty_id": "l"},
            ("loyalty_id", "l"),
        ),
        ({"anonymous_id": "a", "device_id": "d", "phone": "p", "email": "e"}, ("email", "e")),
        ({"anonymous_id": "a", "device_id": "d", "phone": "p"}, ("phone", "p")),
        ({"anonymous_id": "a", "device_id": "d", "zz": "z"}, ("device_id", "d")),
        ({"anonymous_id": "a", "zz": "z"}, ("anonymous_id", "a")),
        ({"zz": "z", "cookie": "c"}, ("cookie", "c")),
        ({"customer_id": "c"}, None),
        ({}, None),
    ],
)
def test_primary_identifier_precedence(identifiers: dict, expected: tuple | None) -> None:
    assert primary_identifier(identifiers) == expected


def test_identifier_key() -> None:
    assert identifier_key("phone", "+442079460000") == "phone:+442079460000"


id_types = st.sampled_from(
    ["customer_id", "anonymous_id", "device_id", "phone", "email", "loyalty_id", "cookie", "Email "]
)
id_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["unknown", " 0 ", "+44 20 7946 0000", "020 7946 0000", "0044207946000"]),
    st.builds(
        "{}@{}".format,
        st.text("aB.-_1", min_size=1, max_size=8),
        st.text("xY.9", min_size=1, max_size=8),
    ),
)
id_maps = st.dictionaries(id_types, id_values, max_size=6)
policies = st.builds(
    IdentifierPolicy,
    extra_types=st.just(frozenset({"cookie"})),
    default_country_code=st.sampled_from([None, "44", "1"]),
)


@settings(max_examples=300)
@given(policies, id_maps)
def test_normalising_twice_equals_normalising_once(policy: IdentifierPolicy, ids: dict) -> None:
    once, _ = policy.normalise(ids)
    twice, dropped = policy.normalise(once)
    assert twice == once and dropped == []


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=32), id_maps)
def test_hashing_is_deterministic_and_never_the_raw_value(key: bytes, ids: dict) -> None:
    policy = IdentifierPolicy(hmac_key=key, extra_types=frozenset({"cookie"}))
    first, _ = policy.normalise(ids)
    assert policy.normalise(ids)[0] == first
    raw_values = {v for v in ids.values()} | {v.strip().lower() for v in ids.values()}
    for id_type, value in first.items():
        if id_type != "customer_id":
            assert value not in raw_values
            assert len(value) == 32
