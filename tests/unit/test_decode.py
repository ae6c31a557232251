"""The decoder against the event contract: every accepted wire format, every dead-letter reason."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from pipeline.decode import Decoder
from pipeline.identifiers import IdentifierPolicy, hash_value
from pipeline.model import DeadLetter, DeadLetterReason, Event, Feedback, IdentityLink
from pipeline.schema_registry import BundledSchemas
from pipeline.wireformat import (
    encode_confluent,
    encode_json,
    encode_single_object,
    fingerprint,
    load_schema,
)

R = DeadLetterReason
NOW_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z
DAY_MS = 86_400_000
DELETE = object()  # marks a field to leave out of a record
EVENT = load_schema("touchpoint_event")
LINK = load_schema("identity_link")

V2_EVENT_SCHEMA = {
    "type": "record",
    "name": "TouchpointEvent",
    "namespace": "io.touchpoint",
    "fields": [
        *[f for f in EVENT["fields"] if f["name"] in ("event_id", "occurred_at", "channel")],
        {"name": "session_id", "type": ["null", "string"], "default": None},
        *[f for f in EVENT["fields"] if f["name"] not in ("event_id", "occurred_at", "channel")],
    ],
}


def event(**changes: Any) -> dict[str, Any]:
    record = {
        "event_id": "evt-1",
        "occurred_at": NOW_MS - 60_000,
        "channel": "web",
        "type": "page_view",
        "customer_id": None,
        "identifiers": {"anonymous_id": "anon-1", "email": "Jane@Example.com"},
        "attributes": {"page": "/basket", "load_ms": 2300, "slow": True, "ratio": 0.5},
        "feedback": {"kind": "nps", "score": 9},
        "value": 19.99,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DELETE}


def link(**changes: Any) -> dict[str, Any]:
    record = {
        "event_id": "lnk-1",
        "occurred_at": NOW_MS - 60_000,
        "customer_id": "cust-1",
        "identifiers": {"email": "Jane@Example.com", "phone": "+44 20 7946 0000"},
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DELETE}


@pytest.fixture
def registry() -> BundledSchemas:
    return BundledSchemas()


@pytest.fixture
def decoder(registry: BundledSchemas) -> Decoder:
    return Decoder(registry, IdentifierPolicy(default_country_code="44"))


EXPECTED_EVENT = Event(
    event_id="evt-1",
    occurred_at_ms=NOW_MS - 60_000,
    channel="web",
    type="page_view",
    customer_id=None,
    identifiers={"anonymous_id": "anon-1", "email": "jane@example.com"},
    attributes={"page": "/basket", "load_ms": 2300, "slow": True, "ratio": 0.5},
    feedback=Feedback("nps", 9),
    value=19.99,
)

ACCEPTED: dict[str, Callable[[BundledSchemas], bytes]] = {
    "json_epoch_ms": lambda reg: encode_json(event()),
    "json_iso_utc": lambda reg: encode_json(event(occurred_at="2024-05-01T09:59:00Z")),
    "json_iso_offset": lambda reg: encode_json(event(occurred_at="2024-05-01T11:59:00.000+02:00")),
    "json_leading_whitespace": lambda reg: b" \n\t" + encode_json(event()),
    "json_unknown_field_ignored": lambda reg: encode_json(event(session_id="s")),
    "json_optional_fields_absent": lambda reg: encode_json(
        {
            k: v
            for k, v in event().items()
            if k not in ("customer_id", "attributes", "feedback", "value")
        }
    ),
    "confluent": lambda reg: encode_confluent(event(), 1, EVENT),
    "single_object": lambda reg: encode_single_object(event(), EVENT),
    "confluent_v2_writer": lambda reg: encode_confluent(
        event(session_id="s-1"), 3, reg.register(V2_EVENT_SCHEMA, 3)
    ),
    "single_object_v2_writer": lambda reg: encode_single_object(
        event(session_id="s-1"), reg.register(V2_EVENT_SCHEMA)
    ),
}


@pytest.mark.parametrize("fmt", ACCEPTED)
def test_accepted_wire_formats(fmt: str, decoder: Decoder, registry: BundledSchemas) -> None:
    result = decoder.decode(ACCEPTED[fmt](registry), "web", NOW_MS)
    if fmt == "json_optional_fields_absent":
        expected = Event(
            "evt-1", NOW_MS - 60_000, "web", "page_view", identifiers=EXPECTED_EVENT.identifiers
        )
        assert result == expected
    else:
        assert result == EXPECTED_EVENT


@pytest.mark.parametrize("fmt", ["json", "confluent", "single_object"])
def test_identity_link_in_every_format(fmt: str, decoder: Decoder) -> None:
    raw = {
        "json": encode_json(link()),
        "confluent": encode_confluent(link(), 2, LINK),
        "single_object": encode_single_object(link(), LINK),
    }[fmt]
    assert decoder.decode(raw, None, NOW_MS) == IdentityLink(
        "lnk-1", NOW_MS - 60_000, "cust-1", {"email": "jane@example.com", "phone": "+442079460000"}
    )


def reason(result: object) -> DeadLetterReason:
    assert isinstance(result, DeadLetter), result
    return result.reason


def json_event(**changes: Any) -> bytes:
    return encode_json(event(**changes))


UNKNOWN_FP = b"\xc3\x01" + b"\x11" * 8
DEAD_LETTERS: list[tuple[str, bytes | None, str | None, DeadLetterReason]] = [
    ("none", None, "web", R.NOT_DECODABLE),
    ("empty", b"", "web", R.NOT_DECODABLE),
    ("json_array", b"[1, 2]", "web", R.NOT_DECODABLE),
    ("plain_text", b"hello", "web", R.NOT_DECODABLE),
    ("broken_json", b'{"event_id": ', "web", R.NOT_DECODABLE),
    ("truncated_confluent_header", b"\x00\x00\x01", "web", R.NOT_DECODABLE),
    ("truncated_single_object_header", b"\xc3\x01\x00", "web", R.NOT_DECODABLE),
    ("unknown_schema_id", encode_confluent(event(), 99, EVENT), "web", R.UNKNOWN_SCHEMA),
    (
        "unknown_fingerprint",
        UNKNOWN_FP + encode_confluent(event(), 1, EVENT)[5:],
        "web",
        R.UNKNOWN_SCHEMA,
    ),
    ("avro_truncated", encode_confluent(event(), 1, EVENT)[:-3], "web", R.SCHEMA_MISMATCH),
    (
        "avro_trailing_bytes",
        encode_confluent(event(), 1, EVENT) + b"\x00",
        "web",
        R.SCHEMA_MISMATCH,
    ),
    (
        "avro_bad_enum_index",
        encode_confluent(event(), 1, EVENT)[:5] + b"\x02a\x00\x0e",
        "web",
        R.SCHEMA_MISMATCH,
    ),
    ("link_schema_on_event_topic", encode_confluent(link(), 2, LINK), "web", R.SCHEMA_MISMATCH),
    (
        "event_schema_on_identity_topic",
        encode_confluent(event(), 1, EVENT),
        None,
        R.SCHEMA_MISMATCH,
    ),
    ("missing_event_id", json_event(event_id=DELETE), "web", R.MISSING_FIELD),
    ("empty_event_id", json_event(event_id=" "), "web", R.MISSING_FIELD),
    ("missing_type", json_event(type=DELETE), "web", R.MISSING_FIELD),
    ("empty_type", encode_confluent(event(type=""), 1, EVENT), "web", R.MISSING_FIELD),
    ("missing_channel", json_event(channel=DELETE), "web", R.MISSING_FIELD),
    ("missing_occurred_at", json_event(occurred_at=None), "web", R.MISSING_FIELD),
    ("no_customer_no_identifiers", json_event(identifiers=DELETE), "web", R.MISSING_FIELD),
    (
        "no_customer_empty_identifiers",
        json_event(identifiers={}, customer_id=""),
        "web",
        R.MISSING_FIELD,
    ),
    ("feedback_without_score", json_event(feedback={"kind": "nps"}), "web", R.MISSING_FIELD),
    ("event_id_not_string", json_event(event_id=42), "web", R.WRONG_TYPE),
    ("event_id_too_long", json_event(event_id="e" * 201), "web", R.WRONG_TYPE),
    ("type_too_long", json_event(type="t" * 101), "web", R.WRONG_TYPE),
    ("channel_not_string", json_event(channel=["web"]), "web", R.WRONG_TYPE),
    ("customer_id_not_string", json_event(customer_id=7), "web", R.WRONG_TYPE),
    ("identifiers_not_map", json_event(identifiers=["anon-1"]), "web", R.WRONG_TYPE),
    ("identifiers_value_not_string", json_event(identifiers={"device_id": 5}), "web", R.WRONG_TYPE),
    ("attributes_not_map", json_event(attributes="page=/"), "web", R.WRONG_TYPE),
    ("attribute_value_nested", json_event(attributes={"page": {"a": 1}}), "web", R.WRONG_TYPE),
    ("attribute_value_null", json_event(attributes={"page": None}), "web", R.WRONG_TYPE),
    ("attribute_int_beyond_long", json_event(attributes={"n": 2**64 - 1}), "web", R.WRONG_TYPE),
    ("feedback_not_record", json_event(feedback=9), "web", R.WRONG_TYPE),
    (
        "feedback_unknown_kind",
        json_event(feedback={"kind": "stars", "score": 3}),
        "web",
        R.WRONG_TYPE,
    ),
    (
        "feedback_score_not_int",
        json_event(feedback={"kind": "nps", "score": 9.5}),
        "web",
        R.WRONG_TYPE,
    ),
    (
        "feedback_score_bool",
        json_event(feedback={"kind": "nps", "score": True}),
        "web",
        R.WRONG_TYPE,
    ),
    ("nps_above_10", json_event(feedback={"kind": "nps", "score": 11}), "web", R.WRONG_TYPE),
    ("csat_zero", json_event(feedback={"kind": "csat", "score": 0}), "web", R.WRONG_TYPE),
    (
        "ces_8",
        encode_confluent(event(feedback={"kind": "ces", "score": 8}), 1, EVENT),
        "web",
        R.WRONG_TYPE,
    ),
    ("value_not_number", json_event(value="19.99"), "web", R.WRONG_TYPE),
    (
        "value_nan_in_avro",
        encode_confluent(event(value=float("nan")), 1, EVENT),
        "web",
        R.WRONG_TYPE,
    ),
    ("occurred_at_float", json_event(occurred_at=float(NOW_MS)), "web", R.WRONG_TYPE),
    ("occurred_at_naive_iso", json_event(occurred_at="2024-05-01T09:59:00"), "web", R.WRONG_TYPE),
    ("occurred_at_not_iso", json_event(occurred_at="yesterday"), "web", R.WRONG_TYPE),
    ("unknown_channel", json_event(channel="fax"), "web", R.UNKNOWN_CHANNEL),
    ("channel_case_differs", json_event(channel="Web"), "web", R.UNKNOWN_CHANNEL),
    ("channel_mismatch_json", json_event(channel="app"), "web", R.CHANNEL_MISMATCH),
    (
        "channel_mismatch_avro",
        encode_confluent(event(channel="call"), 1, EVENT),
        "web",
        R.CHANNEL_MISMATCH,
    ),
    ("future_timestamp", json_event(occurred_at=NOW_MS + DAY_MS + 1), "web", R.TIMESTAMP_ABSURD),
    ("before_floor", json_event(occurred_at="1999-12-31T23:59:59Z"), "web", R.TIMESTAMP_ABSURD),
    ("negative_epoch", json_event(occurred_at=-1), "web", R.TIMESTAMP_ABSURD),
    (
        "avro_far_future",
        encode_confluent(event(occurred_at=2**62), 1, EVENT),
        "web",
        R.TIMESTAMP_ABSURD,
    ),
    ("oversized", json_event(attributes={"blob": "x" * 70_000}), "web", R.OVERSIZED),
    (
        "all_identifiers_junk",
        json_event(identifiers={"device_id": "unknown", "email": "N/A"}),
        "web",
        R.JUNK_IDENTIFIER,
    ),
    (
        "junk_customer_only",
        json_event(customer_id="null", identifiers=DELETE),
        "web",
        R.JUNK_IDENTIFIER,
    ),
    (
        "invalid_identifiers_only",
        json_event(identifiers={"phone": "12", "shoe_size": "9"}),
        "web",
        R.JUNK_IDENTIFIER,
    ),
    ("link_missing_customer", encode_json(link(customer_id=DELETE)), None, R.MISSING_FIELD),
    ("link_missing_identifiers", encode_json(link(identifiers={})), None, R.MISSING_FIELD),
    ("link_identifiers_not_map", encode_json(link(identifiers="x")), None, R.WRONG_TYPE),
    ("link_junk_customer", encode_json(link(customer_id="unknown")), None, R.JUNK_IDENTIFIER),
    (
        "link_junk_identifiers",
        encode_confluent(link(identifiers={"email": "none"}), 2, LINK),
        None,
        R.JUNK_IDENTIFIER,
    ),
    ("link_future", encode_json(link(occurred_at=NOW_MS + 2 * DAY_MS)), None, R.TIMESTAMP_ABSURD),
]


@pytest.mark.parametrize(
    ("raw", "topic_channel", "expected"),
    [case[1:] for case in DEAD_LETTERS],
    ids=[case[0] for case in DEAD_LETTERS],
)
def test_dead_letters(
    decoder: Decoder, raw: bytes | None, topic_channel: str | None, expected: DeadLetterReason
) -> None:
    result = decoder.decode(raw, topic_channel, NOW_MS)
    assert isinstance(result, DeadLetter), result
    assert result.reason is expected, result.detail
    assert result.step == "decode" and result.detail


def test_every_decode_reason_is_covered() -> None:
    covered = {case[3] for case in DEAD_LETTERS}
    assert covered == set(DeadLetterReason) - {R.SINK_REJECTED}


PII = ("Jane@Example.com", "jane@example.com", "+44 20 7946 0000", "020 7946 0000", "secret-cust")


@pytest.mark.parametrize(
    ("raw", "topic_channel"),
    [
        (json_event(identifiers={"email": "Jane@Example.com"}, channel="Jane@Example.com"), "web"),
        (json_event(identifiers={"phone": "020 7946 0000", "email": 3}), "web"),
        (
            json_event(
                customer_id="secret-cust", feedback={"kind": "Jane@Example.com", "score": 1}
            ),
            "web",
        ),
        (json_event(attributes={"+44 20 7946 0000": None}), "web"),
        (json_event(event_id="Jane@Example.com" * 20), "web"),
        (json_event(occurred_at="Jane@Example.com"), "web"),
        (json_event(customer_id="secret-cust", channel="app"), "web"),
        (encode_json(link(customer_id="secret-cust", identifiers={"phone": "unknown"})), None),
        (
            encode_json(
                link(customer_id="secret-cust", identifiers={"email": ["Jane@Example.com"]})
            ),
            None,
        ),
    ],
)
def test_details_never_contain_payload_values(
    decoder: Decoder, raw: bytes, topic_channel: str | None
) -> None:
    result = decoder.decode(raw, topic_channel, NOW_MS)
    assert isinstance(result, DeadLetter)
    assert not any(value.lower() in result.detail.lower() for value in PII), result.detail


def test_bytearray_and_memoryview_are_accepted(decoder: Decoder) -> None:
    raw = encode_confluent(event(), 1, EVENT)
    assert decoder.decode(bytearray(raw), "web", NOW_MS) == EXPECTED_EVENT
    assert decoder.decode(memoryview(raw), "web", NOW_MS) == EXPECTED_EVENT


def test_a_non_bytes_value_is_a_dead_letter_not_a_crash(decoder: Decoder) -> None:
    assert reason(decoder.decode("{}", "web", NOW_MS)) is R.NOT_DECODABLE  # type: ignore[arg-type]


def test_hashing_protects_identifiers_but_keeps_the_customer_id() -> None:
    key = b"k" * 16
    decoder = Decoder(BundledSchemas(), IdentifierPolicy(hmac_key=key))
    raw = json_event(customer_id="cust-1", identifiers={"email": "Jane@Example.com"})
    result = decoder.decode(raw, "web", NOW_MS)
    assert isinstance(result, Event)
    assert result.customer_id == "cust-1"
    assert result.identifiers == {"email": hash_value(key, "jane@example.com")}


def test_junk_identifiers_are_dropped_when_the_event_is_attributable(decoder: Decoder) -> None:
    raw = json_event(customer_id="cust-1", identifiers={"device_id": "undefined", "phone": "123"})
    result = decoder.decode(raw, "web", NOW_MS)
    assert isinstance(result, Event)
    assert result.customer_id == "cust-1" and result.identifiers == {}


def test_customer_id_in_identifiers_is_promoted_only_when_absent(decoder: Decoder) -> None:
    promoted = decoder.decode(json_event(identifiers={"customer_id": "c-2"}), "web", NOW_MS)
    assert isinstance(promoted, Event)
    assert promoted.customer_id == "c-2" and promoted.identifiers == {}
    kept = decoder.decode(
        json_event(customer_id="c-1", identifiers={"customer_id": "c-2", "device_id": "d"}),
        "web",
        NOW_MS,
    )
    assert isinstance(kept, Event)
    assert kept.customer_id == "c-1" and kept.identifiers == {"device_id": "d"}


def test_limits_are_configurable() -> None:
    decoder = Decoder(
        BundledSchemas(), max_payload_bytes=100, min_timestamp_ms=NOW_MS - 1000, max_future_ms=0
    )
    assert reason(decoder.decode(json_event(), "web", NOW_MS)) is R.OVERSIZED
    small = orjson.dumps({"event_id": "e", "occurred_at": NOW_MS + 1, "channel": "web",
                          "type": "t", "customer_id": "c"})  # fmt: skip
    assert reason(decoder.decode(small, "web", NOW_MS)) is R.TIMESTAMP_ABSURD
    assert isinstance(decoder.decode(small, "web", NOW_MS + 1), Event)


def test_schema_ids_are_configurable_and_immutable() -> None:
    registry = BundledSchemas(event_id=10, identity_link_id=11)
    decoder = Decoder(registry)
    assert isinstance(decoder.decode(encode_confluent(event(), 10, EVENT), "web", NOW_MS), Event)
    assert reason(decoder.decode(encode_confluent(event(), 1, EVENT), "web", NOW_MS)) is (
        R.UNKNOWN_SCHEMA
    )
    assert registry.by_id(11) is LINK
    assert registry.by_fingerprint(fingerprint(EVENT)) is EVENT
    registry.register(EVENT, 10)  # same schema again: fine
    with pytest.raises(ValueError):
        registry.register(V2_EVENT_SCHEMA, 10)


def test_unknown_schema_becomes_known_once_registered(registry: BundledSchemas) -> None:
    decoder = Decoder(registry)
    raw = encode_confluent(event(session_id="s"), 5, load_schema("touchpoint_event"))
    assert reason(decoder.decode(raw, "web", NOW_MS)) is R.UNKNOWN_SCHEMA
    registry.register(EVENT, 5)
    assert isinstance(decoder.decode(raw, "web", NOW_MS), Event)


def test_confluent_header_is_big_endian() -> None:
    registry = BundledSchemas(event_id=0x01020304)
    raw = b"\x00" + struct.pack(">I", 0x01020304) + encode_confluent(event(), 0, EVENT)[5:]
    assert isinstance(Decoder(registry).decode(raw, "web", NOW_MS), Event)
