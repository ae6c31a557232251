"""Fuzzing the decoder: whatever the bytes, the answer is an Event/IdentityLink or a DeadLetter.

Beyond "never raises" (the decoder has a last-resort catch-all), these tests require that no input
reaches that catch-all, and that anything accepted satisfies every rule of the contract.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.decode import FEEDBACK_RANGES, MAX_FUTURE_MS, MIN_TIMESTAMP_MS, Decoder
from pipeline.identifiers import IdentifierPolicy, primary_identifier
from pipeline.model import CHANNELS, DeadLetter, DeadLetterReason, Event, IdentityLink
from pipeline.schema_registry import BundledSchemas
from pipeline.wireformat import (
    encode_confluent,
    encode_json,
    encode_single_object,
    fingerprint,
    load_schema,
)

NOW_MS = 1_714_557_600_000
EVENT = load_schema("touchpoint_event")
LINK = load_schema("identity_link")
REGISTRY = BundledSchemas()
V2_EVENT = REGISTRY.register(
    {
        "type": "record",
        "name": "TouchpointEvent",
        "namespace": "io.touchpoint",
        "fields": [
            *EVENT["fields"],
            {"name": "session_id", "type": ["null", "string"], "default": None},
        ],
    },
    3,
)
DECODER = Decoder(REGISTRY, IdentifierPolicy(default_country_code="44", hmac_key=b"fuzz"))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


topics = st.sampled_from([None, *CHANNELS])
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
    st.text(max_size=20),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
id_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["unknown", "N/A", "020 7946 0000", "+15550109999", "a@b.c"]),
)
identifier_maps = st.dictionaries(
    st.sampled_from(
        ["anonymous_id", "device_id", "phone", "email", "loyalty_id", "customer_id", "x"]
    ),
    id_values,
    max_size=4,
)
feedbacks = st.none() | st.sampled_from(sorted(FEEDBACK_RANGES)).flatmap(
    lambda kind: st.fixed_dictionaries({"kind": st.just(kind), "score": st.integers(-2, 12)})
)


@st.composite
def event_records(draw: st.DrawFn, finite: bool = False) -> dict[str, Any]:
    """Events that are well-formed for Avro; ``finite`` keeps them representable in JSON too."""
    floats = st.floats(allow_nan=not finite, allow_infinity=not finite)
    scalars = st.one_of(
        st.text(max_size=10), st.integers(-(2**63), 2**63 - 1), floats, st.booleans()
    )
    return {
        "event_id": draw(st.text(min_size=1, max_size=12)),
        "occurred_at": draw(st.integers(MIN_TIMESTAMP_MS - 10, NOW_MS + MAX_FUTURE_MS + 10)),
        "channel": draw(st.sampled_from(CHANNELS)),
        "type": draw(st.text(min_size=1, max_size=12)),
        "customer_id": draw(st.none() | id_values),
        "identifiers": draw(st.none() | identifier_maps),
        "attributes": draw(st.none() | st.dictionaries(st.text(max_size=10), scalars, max_size=4)),
        "feedback": draw(feedbacks),
        "value": draw(st.none() | floats),
    }


@st.composite
def link_records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(st.text(min_size=1, max_size=12)),
        "occurred_at": draw(st.integers(MIN_TIMESTAMP_MS - 10, NOW_MS + MAX_FUTURE_MS + 10)),
        "customer_id": draw(id_values),
        "identifiers": draw(identifier_maps),
    }


def encode(record: dict[str, Any], fmt: str) -> bytes:
    schema = LINK if "channel" not in record else EVENT
    if fmt == "json":
        return encode_json(record)
    if fmt == "confluent":
        return encode_confluent(record, 2 if schema is LINK else 1, schema)
    if fmt == "v2":
        return encode_confluent({**record, "session_id": "s"}, 3, V2_EVENT)
    return encode_single_object(record, schema)


@st.composite
def valid_encodings(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A well-formed message (which may still break a validation rule) and its topic."""
    if draw(st.booleans()):
        record = draw(event_records())
        fmt = draw(st.sampled_from(["json", "confluent", "single_object", "v2"]))
        return encode(record, fmt), record["channel"]
    return encode(
        draw(link_records()), draw(st.sampled_from(["json", "confluent", "single_object"]))
    ), None


def check(result: object, topic_channel: str | None) -> None:
    """The result is one of the three outcomes, and an accepted one obeys the contract."""
    if isinstance(result, DeadLetter):
        assert isinstance(result.reason, DeadLetterReason)
        assert "unexpected" not in result.detail, result.detail
        return
    assert isinstance(result, (Event, IdentityLink))
    assert result.event_id.strip() and len(result.event_id) <= 200
    assert MIN_TIMESTAMP_MS <= result.occurred_at_ms <= NOW_MS + MAX_FUTURE_MS
    assert all(isinstance(v, str) and v for v in result.identifiers.values())
    if isinstance(result, IdentityLink):
        assert topic_channel is None and result.customer_id and result.identifiers
        return
    assert result.channel == topic_channel
    assert result.type.strip() and len(result.type) <= 100
    # Ingest routes an anonymous event by its primary identifier, so one must always exist.
    assert result.customer_id or primary_identifier(result.identifiers)
    assert "customer_id" not in result.identifiers
    if result.feedback is not None:
        low, high = FEEDBACK_RANGES[result.feedback.kind]
        assert low <= result.feedback.score <= high
    for value in result.attributes.values():
        assert isinstance(value, (str, int, float, bool))
        assert not isinstance(value, float) or math.isfinite(value)
    assert result.value is None or math.isfinite(result.value)


@fuzz(2000)
@given(st.binary(max_size=200), topics)
def test_arbitrary_bytes(raw: bytes, topic_channel: str | None) -> None:
    check(DECODER.decode(raw, topic_channel, NOW_MS), topic_channel)


AVRO_HEADERS = [
    b"\x00\x00\x00\x00\x01",
    b"\x00\x00\x00\x00\x02",
    b"\x00\x00\x00\x00\x03",
    b"\xc3\x01" + fingerprint(EVENT),
    b"\xc3\x01" + fingerprint(LINK),
]


@fuzz(1500)
@given(st.sampled_from(AVRO_HEADERS), st.binary(max_size=120), topics)
def test_known_avro_header_with_arbitrary_body(
    header: bytes, body: bytes, topic: str | None
) -> None:
    check(DECODER.decode(header + body, topic, NOW_MS), topic)


@fuzz(1500)
@given(valid_encodings(), st.data())
def test_mutated_valid_encodings(encoded: tuple[bytes, str | None], data: st.DataObject) -> None:
    raw, topic = encoded
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if mutation == "flip":
        raw = raw[:at] + bytes([raw[at] ^ (1 << data.draw(st.integers(0, 7)))]) + raw[at + 1 :]
    elif mutation == "truncate":
        raw = raw[:at]
    elif mutation == "insert":
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    else:
        raw = raw[:at] + raw[at + 1 :]
    check(DECODER.decode(raw, topic, NOW_MS), topic)


@fuzz(1500)
@given(st.one_of(event_records(), link_records()), st.data())
def test_json_field_deletions_and_type_swaps(record: dict[str, Any], data: st.DataObject) -> None:
    topic = record.get("channel")
    fields = sorted(record)
    for name in data.draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        del record[name]
    for name in data.draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        record[name] = data.draw(json_values)
    check(DECODER.decode(orjson.dumps(record), topic, NOW_MS), topic)


@fuzz(500)
@given(json_values, topics)
def test_arbitrary_json_documents(value: Any, topic: str | None) -> None:
    check(DECODER.decode(orjson.dumps(value), topic, NOW_MS), topic)


@fuzz(500)
@given(valid_encodings())
def test_well_formed_messages_decode_the_same_in_every_format(
    encoded: tuple[bytes, str | None],
) -> None:
    raw, topic = encoded
    check(DECODER.decode(raw, topic, NOW_MS), topic)


@fuzz(300)
@given(event_records(finite=True))
def test_formats_agree(record: dict[str, Any]) -> None:
    results = {
        fmt: DECODER.decode(encode(record, fmt), record["channel"], NOW_MS)
        for fmt in ("json", "confluent", "single_object", "v2")
    }
    assert len({repr(r) for r in results.values()}) == 1, results
