"""Where the decoder finds a message's writer schema, by Confluent id or single-object fingerprint.

Avro bytes can only be read with the schema they were written with, so the decoder looks that
schema up and resolves it to Touchpoint's reader schema; producers can then add optional fields
without a coordinated deploy. The lookup is a Protocol so a live Schema Registry client can stand
in for the bundled, in-memory one without touching the decoder.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastavro import parse_schema

from pipeline.wireformat import ParsedSchema, fingerprint, load_schema

EVENT_SCHEMA = "touchpoint_event"
IDENTITY_LINK_SCHEMA = "identity_link"


class SchemaLookupUnavailable(RuntimeError):
    """The lookup cannot answer right now (registry down, timeout); retry the message later.

    Distinct from "not known" (``None``): an unknown id is the message's fault and makes a dead
    letter, whereas an outage is nobody's fault and must not turn valid messages into dead
    letters. It is the one exception ``Decoder.decode`` lets through.
    """


class SchemaLookup(Protocol):
    """Writer schemas by Confluent schema id or by 8-byte CRC-64-AVRO fingerprint.

    Both return ``None`` for a schema the lookup does not know, and may raise
    :class:`SchemaLookupUnavailable` when they cannot tell.
    """

    def by_id(self, schema_id: int) -> ParsedSchema | None: ...

    def by_fingerprint(self, fp: bytes) -> ParsedSchema | None: ...


class BundledSchemas:
    """The schemas shipped in ``schemas/avro``, plus any registered at run time (e.g. in tests).

    Ids are immutable once assigned, as in a real registry: re-registering an id with a different
    schema is refused, because messages already written under that id would be misread.
    """

    def __init__(self, event_id: int = 1, identity_link_id: int = 2) -> None:
        self._by_id: dict[int, ParsedSchema] = {}
        self._by_fingerprint: dict[bytes, ParsedSchema] = {}
        self.register(load_schema(EVENT_SCHEMA), event_id)
        self.register(load_schema(IDENTITY_LINK_SCHEMA), identity_link_id)

    def register(self, schema: dict[str, Any], schema_id: int | None = None) -> ParsedSchema:
        """Make a writer schema (parsed, or JSON data) known by fingerprint, and by id if given."""
        parsed = parse_schema(schema)
        fp = fingerprint(parsed)
        if schema_id is not None:
            existing = self._by_id.get(schema_id)
            if existing is not None and fingerprint(existing) != fp:
                raise ValueError(f"schema id {schema_id} is already taken by another schema")
            self._by_id[schema_id] = parsed
        self._by_fingerprint.setdefault(fp, parsed)
        return parsed

    def by_id(self, schema_id: int) -> ParsedSchema | None:
        return self._by_id.get(schema_id)

    def by_fingerprint(self, fp: bytes) -> ParsedSchema | None:
        return self._by_fingerprint.get(fp)
