"""Producer-side encoders and the bundled Avro schemas: the bytes real producers would send."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader

from pipeline.wireformat import (
    encode_confluent,
    encode_json,
    encode_single_object,
    fingerprint,
    load_schema,
)

NOW_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z


def full_record() -> dict:
    return {
        "event_id": "evt-1",
        "occurred_at": NOW_MS,
        "channel": "store",
        "type": "purchase",
        "customer_id": "cust-9",
        "identifiers": {"loyalty_id": "L-77"},
        "attributes": {"store_id": "S1", "wait_seconds": 30, "basket_value": 12.5, "express": True},
        "feedback": {"kind": "csat", "score": 4},
        "value": 12.5,
    }


def test_load_schema_is_parsed_once_and_named_per_contract() -> None:
    event = load_schema("touchpoint_event")
    assert load_schema("touchpoint_event") is event
    assert load_schema("touchpoint_event.avsc") is not None
    assert event["name"] == "io.touchpoint.TouchpointEvent"
    assert load_schema("identity_link")["name"] == "io.touchpoint.IdentityLink"


def test_event_schema_matches_the_contract() -> None:
    fields = {f["name"]: f for f in load_schema("touchpoint_event")["fields"]}
    assert list(fields) == [
        "event_id", "occurred_at", "channel", "type", "customer_id",
        "identifiers", "attributes", "feedback", "value",
    ]  # fmt: skip
    assert fields["occurred_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["channel"]["type"]["symbols"] == ["call", "web", "store", "app"]
    for optional in ("customer_id", "identifiers", "attributes", "feedback", "value"):
        assert fields[optional]["type"][0] == "null"
        assert fields[optional]["default"] is None
    assert fields["attributes"]["type"][1]["values"] == ["string", "long", "double", "boolean"]
    feedback = fields["feedback"]["type"][1]
    assert feedback["fields"][0]["type"]["symbols"] == ["nps", "csat", "ces"]
    assert feedback["fields"][1]["type"] == "int"
    assert all(f.get("doc") for f in fields.values())


def test_identity_link_schema_matches_the_contract() -> None:
    fields = {f["name"]: f["type"] for f in load_schema("identity_link")["fields"]}
    assert fields == {
        "event_id": "string",
        "occurred_at": {"type": "long", "logicalType": "timestamp-millis"},
        "customer_id": "string",
        "identifiers": {"type": "map", "values": "string"},
    }


def test_encode_json_keeps_occurred_at_as_given() -> None:
    iso = {**full_record(), "occurred_at": "2024-05-01T10:00:00+02:00"}
    assert orjson.loads(encode_json(iso))["occurred_at"] == "2024-05-01T10:00:00+02:00"
    assert orjson.loads(encode_json(full_record())) == full_record()


def test_confluent_framing_is_magic_id_then_schemaless_avro() -> None:
    schema = load_schema("touchpoint_event")
    raw = encode_confluent(full_record(), 258, schema)
    assert raw[0] == 0 and struct.unpack(">I", raw[1:5]) == (258,)
    decoded = schemaless_reader(io.BytesIO(raw[5:]), schema)
    assert decoded["occurred_at"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert {k: v for k, v in decoded.items() if k != "occurred_at"} == {
        k: v for k, v in full_record().items() if k != "occurred_at"
    }


def test_single_object_is_magic_fingerprint_then_schemaless_avro() -> None:
    schema = load_schema("identity_link")
    link = {"event_id": "l1", "occurred_at": NOW_MS, "customer_id": "c", "identifiers": {"a": "b"}}
    raw = encode_single_object(link, schema)
    assert raw[:2] == b"\xc3\x01" and raw[2:10] == fingerprint(schema)
    assert schemaless_reader(io.BytesIO(raw[10:]), schema)["identifiers"] == {"a": "b"}


def test_fingerprint_is_crc64_avro_little_endian() -> None:
    # Avro spec test vector: CRC-64-AVRO("null") = 0x63dd24e7cc258f8a, written little-endian.
    assert fingerprint(parse_schema("null")) == bytes.fromhex("8a8f25cce724dd63")
    assert fingerprint(load_schema("touchpoint_event")) != fingerprint(load_schema("identity_link"))


@pytest.mark.parametrize("encode", ["confluent", "single_object"])
def test_avro_encoders_accept_an_iso_occurred_at(encode: str) -> None:
    schema = load_schema("touchpoint_event")
    iso = {**full_record(), "occurred_at": "2024-05-01T12:00:00+02:00"}
    raw = (
        encode_confluent(iso, 1, schema)
        if encode == "confluent"
        else encode_single_object(iso, schema)
    )
    assert raw.endswith(encode_confluent(full_record(), 1, schema)[5:])
