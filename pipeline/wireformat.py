"""Producer-side encoders for the three wire formats the event contract accepts.

Touchpoint itself only decodes (``pipeline.decode``); these encoders exist so the synthetic traffic
generator and the tests produce exactly the bytes a real producer would, from one plain ``dict``
record, without a Kafka client or a schema registry. The re-framing helpers let the generator
swap the bundled schema ids for the ones a live registry assigned.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

import schemas

CONFLUENT_MAGIC = b"\x00"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_HEADER_LEN = 5  # magic byte + 4-byte big-endian schema id
SINGLE_OBJECT_HEADER_LEN = 10  # 2 magic bytes + 8-byte fingerprint

ParsedSchema = dict[str, Any]

# Keyed by id(); the schema is kept in the value so its id cannot be reused by another object.
_fingerprints: dict[int, tuple[ParsedSchema, bytes]] = {}


@cache
def load_schema(name: str) -> ParsedSchema:
    """Parse a bundled schema (``touchpoint_event`` or ``identity_link``) once per process.

    Parsing is far slower than encoding, so every caller shares one parsed copy; callers must not
    mutate it.
    """
    path = schemas.AVRO_DIR / f"{name.removesuffix('.avsc')}.avsc"
    return parse_schema(json.loads(path.read_text(encoding="utf-8")))


def fingerprint(parsed_schema: ParsedSchema) -> bytes:
    """CRC-64-AVRO fingerprint of the schema's canonical form, in single-object byte order.

    fastavro already returns the little-endian byte order the Avro spec (and Java) use on the wire.
    """
    cached = _fingerprints.get(id(parsed_schema))
    if cached is not None and cached[0] is parsed_schema:
        return cached[1]
    canonical = to_parsing_canonical_form(parsed_schema)
    value = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
    _fingerprints[id(parsed_schema)] = (parsed_schema, value)
    return value


def encode_json(record: Mapping[str, Any]) -> bytes:
    """Encode as a JSON object; ``occurred_at`` stays as given (epoch ms or ISO-8601 string)."""
    return orjson.dumps(dict(record))


def encode_confluent(
    record: Mapping[str, Any], schema_id: int, parsed_schema: ParsedSchema
) -> bytes:
    """Confluent Schema Registry framing: 0x00, 4-byte big-endian schema id, schemaless Avro."""
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + _avro_body(record, parsed_schema)


def encode_single_object(record: Mapping[str, Any], parsed_schema: ParsedSchema) -> bytes:
    """Avro single-object encoding: 0xC3 0x01, 8-byte CRC-64-AVRO fingerprint, schemaless Avro."""
    return SINGLE_OBJECT_MAGIC + fingerprint(parsed_schema) + _avro_body(record, parsed_schema)


def confluent_schema_id(raw: bytes) -> int | None:
    """The schema id in a Confluent-framed message's header; None for any other bytes."""
    if raw[:1] != CONFLUENT_MAGIC or len(raw) < CONFLUENT_HEADER_LEN:
        return None
    return int(struct.unpack_from(">I", raw, 1)[0])


def with_schema_id(raw: bytes, schema_id: int) -> bytes:
    """The same Confluent-framed message under another id, e.g. the one a registry assigned.

    Only the header changes, so this also renumbers messages whose body is deliberately broken.
    """
    if confluent_schema_id(raw) is None:
        raise ValueError("not a Confluent-framed message")
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + raw[CONFLUENT_HEADER_LEN:]


def to_confluent(raw: bytes, schema_id: int, parsed_schema: ParsedSchema) -> bytes:
    """Re-frame a valid message of ``parsed_schema`` (JSON, single-object or Confluent) as Confluent.

    For producers that must emit registry-framed Avro only. Avro bodies are kept byte for byte (a
    single-object body is the same schemaless Avro); a JSON object is encoded, with the optional
    fields it left out written as null.
    """
    if confluent_schema_id(raw) is not None:
        return with_schema_id(raw, schema_id)
    if raw[:2] == SINGLE_OBJECT_MAGIC:
        if raw[2:SINGLE_OBJECT_HEADER_LEN] != fingerprint(parsed_schema):
            raise ValueError("single-object message written with another schema")
        return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + raw[SINGLE_OBJECT_HEADER_LEN:]
    record = orjson.loads(raw)
    full = {field["name"]: record.get(field["name"]) for field in parsed_schema["fields"]}
    return encode_confluent(full, schema_id, parsed_schema)


def _avro_body(record: Mapping[str, Any], parsed_schema: ParsedSchema) -> bytes:
    """Schemaless Avro; an ISO-8601 ``occurred_at`` is accepted so one record feeds every format."""
    occurred_at = record.get("occurred_at")
    if isinstance(occurred_at, str):
        record = {**record, "occurred_at": datetime.fromisoformat(occurred_at)}
    out = io.BytesIO()
    schemaless_writer(out, parsed_schema, dict(record))
    return out.getvalue()
