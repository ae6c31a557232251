"""Raw Kafka bytes to an ``Event``, an ``IdentityLink`` or a ``DeadLetter``; never an exception.

Ingest reads raw bytes itself because one bad message must cost one dead letter, not a crashed
worker or a silently skipped offset. Every refusal names the field, never its value: dead-letter
details end up in logs and metrics-adjacent tables, and values may be phone numbers or e-mails.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import orjson
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from pipeline.identifiers import CUSTOMER_ID, IdentifierPolicy
from pipeline.model import (
    CHANNELS,
    AttributeValue,
    DeadLetter,
    DeadLetterReason,
    Event,
    Feedback,
    IdentityLink,
)
from pipeline.schema_registry import (
    EVENT_SCHEMA,
    IDENTITY_LINK_SCHEMA,
    SchemaLookup,
    SchemaLookupUnavailable,
)
from pipeline.wireformat import (
    CONFLUENT_MAGIC,
    SINGLE_OBJECT_HEADER_LEN,
    SINGLE_OBJECT_MAGIC,
    ParsedSchema,
    load_schema,
)

R = DeadLetterReason

MIN_TIMESTAMP_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_MS = 86_400_000  # one day of producer clock skew
MAX_PAYLOAD_BYTES = 65_536
MAX_EVENT_ID_CHARS = 200
MAX_TYPE_CHARS = 100
FEEDBACK_RANGES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_JSON_WHITESPACE = b" \t\r\n"
_CONFLUENT_HEADER = struct.Struct(">BI")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


class _Reject(Exception):
    """Internal: stops validation at the first problem; always turned into a DeadLetter."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _reject(reason: DeadLetterReason, detail: str) -> NoReturn:
    raise _Reject(reason, detail)


class Decoder:
    """Decodes and validates one message against the event contract (see PRODUCT.md).

    Schemas are parsed once: the reader schemas at construction, each writer schema the first time
    its id or fingerprint is seen. Writer schemas are read without logical types, so a timestamp
    arrives as the epoch-ms long it is on the wire (no datetime round trip, no overflow on absurd
    values, which are then refused as TIMESTAMP_ABSURD rather than as undecodable).
    """

    def __init__(
        self,
        schemas: SchemaLookup,
        policy: IdentifierPolicy | None = None,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        min_timestamp_ms: int = MIN_TIMESTAMP_MS,
        max_future_ms: int = MAX_FUTURE_MS,
        reader_schemas: Mapping[str, ParsedSchema] | None = None,
    ) -> None:
        """``reader_schemas`` overrides the bundled reader schema of a kind (``EVENT_SCHEMA`` or
        ``IDENTITY_LINK_SCHEMA``): how a worker built for another schema version is simulated."""
        self._schemas = schemas
        self._policy = policy if policy is not None else IdentifierPolicy()
        self._max_payload_bytes = max_payload_bytes
        self._min_timestamp_ms = min_timestamp_ms
        self._max_future_ms = max_future_ms
        readers = {kind: load_schema(kind) for kind in (EVENT_SCHEMA, IDENTITY_LINK_SCHEMA)}
        readers.update({kind: parse_schema(schema) for kind, schema in (reader_schemas or {}).items()})
        self._readers = {
            kind: (schema, to_parsing_canonical_form(schema)) for kind, schema in readers.items()
        }
        # (lookup key, reader kind) -> (writer without logical types, reader or None if identical)
        self._plans: dict[tuple[object, str], tuple[ParsedSchema, ParsedSchema | None]] = {}

    def decode(
        self, raw: bytes | None, topic_channel: str | None, now_ms: int
    ) -> Event | IdentityLink | DeadLetter:
        """Decode one message from a channel topic, or from the identity topic (``None``).

        Raises only :class:`SchemaLookupUnavailable` (schema registry unreachable): the message
        is fine, so the caller must retry it rather than dead-letter it.
        """
        try:
            record = self._parse(raw, topic_channel)
            if topic_channel is None:
                return self._identity_link(record, now_ms)
            return self._event(record, topic_channel, now_ms)
        except _Reject as rejected:
            return DeadLetter(rejected.reason, rejected.detail)
        except SchemaLookupUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the contract is "never raise"
            return DeadLetter(R.NOT_DECODABLE, f"unexpected {type(exc).__name__} while decoding")

    # -- wire formats -------------------------------------------------------------------------

    def _parse(self, raw: bytes | None, topic_channel: str | None) -> Mapping[str, Any]:
        if raw is None:
            _reject(R.NOT_DECODABLE, "empty message (no value)")
        if isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        elif not isinstance(raw, bytes):
            _reject(R.NOT_DECODABLE, "message value is not bytes")
        if len(raw) > self._max_payload_bytes:
            _reject(R.OVERSIZED, f"{len(raw)} bytes, limit {self._max_payload_bytes}")
        kind = EVENT_SCHEMA if topic_channel is not None else IDENTITY_LINK_SCHEMA
        if raw[:1] == CONFLUENT_MAGIC:
            if len(raw) < _CONFLUENT_HEADER.size:
                _reject(R.NOT_DECODABLE, "truncated Confluent header")
            _, schema_id = _CONFLUENT_HEADER.unpack_from(raw)
            writer = self._schemas.by_id(schema_id)
            if writer is None:
                _reject(R.UNKNOWN_SCHEMA, f"schema id {schema_id} not known")
            return self._read_avro(("id", schema_id), writer, kind, raw, _CONFLUENT_HEADER.size)
        if raw[:2] == SINGLE_OBJECT_MAGIC:
            if len(raw) < SINGLE_OBJECT_HEADER_LEN:
                _reject(R.NOT_DECODABLE, "truncated single-object header")
            fp = raw[2:SINGLE_OBJECT_HEADER_LEN]
            writer = self._schemas.by_fingerprint(fp)
            if writer is None:
                _reject(R.UNKNOWN_SCHEMA, f"schema fingerprint {fp.hex()} not known")
            return self._read_avro(("fp", fp), writer, kind, raw, SINGLE_OBJECT_HEADER_LEN)
        if raw.lstrip(_JSON_WHITESPACE)[:1] == b"{":
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                _reject(R.NOT_DECODABLE, "invalid JSON")
            if not isinstance(record, dict):
                _reject(R.NOT_DECODABLE, "JSON is not an object")
            return record
        _reject(R.NOT_DECODABLE, "neither Avro framing nor a JSON object")

    def _read_avro(
        self, key: object, writer: ParsedSchema, kind: str, raw: bytes, offset: int
    ) -> Mapping[str, Any]:
        try:
            plan = self._plans.get((key, kind))
            if plan is None:
                plan = self._plans[(key, kind)] = self._plan(writer, kind)
            body = io.BytesIO(raw)
            body.seek(offset)
            record = schemaless_reader(body, plan[0], plan[1])
        except Exception as exc:  # noqa: BLE001 - any fastavro failure means the bytes don't fit
            _reject(
                R.SCHEMA_MISMATCH,
                f"Avro body does not fit its writer schema ({type(exc).__name__})",
            )
        if body.tell() != len(raw):
            _reject(R.SCHEMA_MISMATCH, "trailing bytes after the Avro record")
        if not isinstance(record, dict):
            _reject(R.SCHEMA_MISMATCH, "writer schema is not a record")
        return record

    def _plan(self, writer: ParsedSchema, kind: str) -> tuple[ParsedSchema, ParsedSchema | None]:
        # The canonical form drops logical types (and docs, defaults), which a writer never needs.
        canonical = to_parsing_canonical_form(writer)
        raw_writer = parse_schema(orjson.loads(canonical))
        reader, reader_canonical = self._readers[kind]
        return raw_writer, (None if canonical == reader_canonical else reader)

    # -- validation ---------------------------------------------------------------------------

    def _event(self, record: Mapping[str, Any], topic_channel: str, now_ms: int) -> Event:
        event_id = _required_str(record, "event_id", MAX_EVENT_ID_CHARS)
        channel = record.get("channel")
        if channel is None:
            _reject(R.MISSING_FIELD, "channel: missing")
        if not isinstance(channel, str):
            _reject(R.WRONG_TYPE, "channel: not a string")
        if channel not in CHANNELS:
            _reject(R.UNKNOWN_CHANNEL, f"channel: not one of {', '.join(CHANNELS)}")
        if channel != topic_channel:
            _reject(R.CHANNEL_MISMATCH, f"channel {channel} on the {topic_channel} topic")
        event_type = _required_str(record, "type", MAX_TYPE_CHARS)
        occurred_at_ms = self._timestamp(record, now_ms)
        customer_id, identifiers = self._attribution(record)
        return Event(
            event_id=event_id,
            occurred_at_ms=occurred_at_ms,
            channel=channel,
            type=event_type,
            customer_id=customer_id,
            identifiers=identifiers,
            attributes=_attributes(record.get("attributes")),
            feedback=_feedback(record.get("feedback")),
            value=_value(record.get("value")),
        )

    def _identity_link(self, record: Mapping[str, Any], now_ms: int) -> IdentityLink:
        event_id = _required_str(record, "event_id", MAX_EVENT_ID_CHARS)
        occurred_at_ms = self._timestamp(record, now_ms)
        raw_customer = _required_str(record, "customer_id", None)
        customer_id = self._policy.clean_value(CUSTOMER_ID, raw_customer)
        if customer_id is None:
            _reject(R.JUNK_IDENTIFIER, "customer_id: junk or invalid value")
        raw_identifiers = _string_map(record.get("identifiers"), "identifiers")
        if not raw_identifiers:
            _reject(R.MISSING_FIELD, "identifiers: missing or empty")
        identifiers, _ = self._policy.normalise(raw_identifiers)
        identifiers.pop(CUSTOMER_ID, None)
        if not identifiers:
            _reject(R.JUNK_IDENTIFIER, "identifiers: every value was junk or invalid")
        return IdentityLink(event_id, occurred_at_ms, customer_id, identifiers)

    def _timestamp(self, record: Mapping[str, Any], now_ms: int) -> int:
        value = record.get("occurred_at")
        if value is None:
            _reject(R.MISSING_FIELD, "occurred_at: missing")
        if isinstance(value, str):
            ms = _iso_to_ms(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            ms = value
        else:
            _reject(R.WRONG_TYPE, "occurred_at: not epoch milliseconds or an ISO-8601 string")
        if ms < self._min_timestamp_ms:
            _reject(R.TIMESTAMP_ABSURD, "occurred_at: before the configured floor")
        if ms > now_ms + self._max_future_ms:
            _reject(R.TIMESTAMP_ABSURD, "occurred_at: too far in the future")
        return ms

    def _attribution(self, record: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        """The customer id and cleaned identifiers; refuses an event nobody can be credited with.

        ``identifiers.customer_id`` is promoted when the top-level field is absent and dropped
        otherwise: the top-level field is the contract's business key and wins.
        """
        raw_customer = record.get("customer_id")
        if raw_customer is not None and not isinstance(raw_customer, str):
            _reject(R.WRONG_TYPE, "customer_id: not a string")
        supplied_customer = bool(raw_customer and raw_customer.strip())
        customer_id = (
            self._policy.clean_value(CUSTOMER_ID, raw_customer) if supplied_customer else None
        )
        raw_identifiers = _string_map(record.get("identifiers"), "identifiers")
        identifiers, _ = self._policy.normalise(raw_identifiers)
        promoted = identifiers.pop(CUSTOMER_ID, None)
        if customer_id is None:
            customer_id = promoted
        if customer_id is None and not identifiers:
            if supplied_customer or raw_identifiers:
                _reject(
                    R.JUNK_IDENTIFIER, "no usable customer_id or identifier: all junk or invalid"
                )
            _reject(R.MISSING_FIELD, "customer_id or identifiers: one is required")
        return customer_id, identifiers


def _required_str(record: Mapping[str, Any], name: str, max_chars: int | None) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        _reject(R.MISSING_FIELD, f"{name}: missing or empty")
    if not isinstance(value, str):
        _reject(R.WRONG_TYPE, f"{name}: not a string")
    if max_chars is not None and len(value) > max_chars:
        _reject(R.WRONG_TYPE, f"{name}: longer than {max_chars} characters")
    return value


def _iso_to_ms(value: str) -> int:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _reject(R.WRONG_TYPE, "occurred_at: not a valid ISO-8601 timestamp")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        _reject(R.WRONG_TYPE, "occurred_at: ISO-8601 timestamp without a zone")
    try:
        return (parsed - _EPOCH) // _ONE_MS
    except OverflowError:
        _reject(R.TIMESTAMP_ABSURD, "occurred_at: out of range")


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _reject(R.WRONG_TYPE, f"{name}: not a map")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            _reject(R.WRONG_TYPE, f"{name}: not a map of strings")
    return value


def _attributes(value: Any) -> dict[str, AttributeValue]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _reject(R.WRONG_TYPE, "attributes: not a map")
    for key, item in value.items():
        if not isinstance(key, str):
            _reject(R.WRONG_TYPE, "attributes: key not a string")
        if isinstance(item, (str, bool)):
            continue
        if isinstance(item, int):
            if not _LONG_MIN <= item <= _LONG_MAX:
                _reject(R.WRONG_TYPE, "attributes: integer value out of range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                _reject(R.WRONG_TYPE, "attributes: number value not finite")
        else:
            _reject(R.WRONG_TYPE, "attributes: value not a string, number or boolean")
    return value


def _feedback(value: Any) -> Feedback | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _reject(R.WRONG_TYPE, "feedback: not a record")
    kind, score = value.get("kind"), value.get("score")
    if kind is None or score is None:
        _reject(R.MISSING_FIELD, "feedback: kind and score are required")
    if not isinstance(kind, str) or kind not in FEEDBACK_RANGES:
        _reject(R.WRONG_TYPE, f"feedback.kind: not one of {', '.join(FEEDBACK_RANGES)}")
    if not isinstance(score, int) or isinstance(score, bool):
        _reject(R.WRONG_TYPE, "feedback.score: not an integer")
    low, high = FEEDBACK_RANGES[kind]
    if not low <= score <= high:
        _reject(R.WRONG_TYPE, f"feedback.score: outside {low}-{high} for {kind}")
    return Feedback(kind, score)


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _reject(R.WRONG_TYPE, "value: not a number")
    if not math.isfinite(value):
        _reject(R.WRONG_TYPE, "value: not a finite number")
    return float(value)
