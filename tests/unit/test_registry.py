"""Schema Registry support against an in-process fake registry speaking Confluent's REST API.

Covers registration (subjects, ids, compatibility), the worker's cached lookup (warm-up, misses,
outages), schema evolution in both directions, and re-framing generated traffic with registry ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.decode import Decoder
from pipeline.model import DeadLetter, DeadLetterReason, Event
from pipeline.schema_registry import (
    EVENT_SCHEMA,
    BundledSchemas,
    SchemaLookupUnavailable,
)
from pipeline.synthetic import IDENTITY_TOPIC, generate
from pipeline.wireformat import confluent_schema_id, encode_confluent, encode_json, load_schema
from tests.fake_schema_registry import FakeSchemaRegistry
from touchpoint.registry import (
    DEFAULT_COMPATIBILITY,
    RegistryRefused,
    RegistrySchemas,
    bundled_schema_text,
    connect,
    frame_for_registry,
    frame_scenario,
    masked,
    register_bundled,
    register_with_settings,
    schema_lookup,
    subjects,
)
from touchpoint.settings import Settings, SettingsError, Topics

NOW_MS = 1_714_557_600_000
TOPICS = Topics("touchpoints")
EVENT_SUBJECT = "touchpoints.web-value"

V1 = json.loads(bundled_schema_text(EVENT_SCHEMA))
# v2 adds one optional field with a default: the only kind of change FULL_TRANSITIVE allows.
V2 = {**V1, "fields": [*V1["fields"], {"name": "session_id", "type": ["null", "string"], "default": None}]}
# A new field without a default: new readers cannot read old data.
V2_REQUIRED = {**V1, "fields": [*V1["fields"], {"name": "session_id", "type": "string"}]}


def record(**extra: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-1", "occurred_at": NOW_MS - 60_000, "channel": "web", "type": "page_view",
        "customer_id": "cust-000001", "identifiers": None, "attributes": {"load_ms": 2300},
        "feedback": {"kind": "nps", "score": 9}, "value": None, **extra,
    }  # fmt: skip


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_register_bundled_uses_topic_subjects_and_sets_compatibility(registry):
    done = register_bundled(connect(registry.url), TOPICS)
    assert [d.subject for d in done] == [
        "touchpoints.calls-value", "touchpoints.web-value", "touchpoints.store-value",
        "touchpoints.app-value", "touchpoints.identity-value",
    ]
    event_ids = {d.schema_id for d in done if d.subject != "touchpoints.identity-value"}
    assert len(event_ids) == 1, "one schema, one id, whatever the subject"
    assert done[-1].schema_id not in event_ids
    assert set(registry.compatibility.values()) == {DEFAULT_COMPATIBILITY}
    assert set(registry.compatibility) == {d.subject for d in done}


def test_register_is_idempotent_and_can_keep_compatibility(registry):
    first = register_bundled(connect(registry.url), TOPICS)
    registry.compatibility.clear()
    again = register_bundled(connect(registry.url), TOPICS, compatibility=None)
    assert [d.schema_id for d in again] == [d.schema_id for d in first]
    assert all(len(versions) == 1 for versions in registry.subjects.values())
    assert registry.compatibility == {}


def test_register_with_settings_reports_refusals_without_credentials(registry):
    settings = Settings(schema_registry_url="http://user:secret@127.0.0.1:1")
    with pytest.raises(RegistryRefused) as refused:
        register_with_settings(settings, DEFAULT_COMPATIBILITY)
    assert "secret" not in str(refused.value) and "127.0.0.1:1" in str(refused.value)
    with pytest.raises(RegistryRefused, match="compatibility"):
        register_with_settings(Settings(schema_registry_url=registry.url), "SIDEWAYS")
    registry.unavailable = True
    with pytest.raises(RegistryRefused, match="refused"):
        register_with_settings(Settings(schema_registry_url=registry.url), DEFAULT_COMPATIBILITY)


def test_masked_url_drops_credentials():
    assert masked("https://svc:pw@registry.example.invalid:8081/api") == "https://registry.example.invalid:8081/api"


def test_warm_fetches_every_version_so_the_hot_path_never_asks(registry):
    done = register_bundled(connect(registry.url), TOPICS)
    v2_id = registry.register(EVENT_SUBJECT, json.dumps(V2))
    lookup = RegistrySchemas(connect(registry.url))
    assert lookup.warm(s.name for s in subjects(TOPICS)) == 3  # event v1, event v2, identity link
    registry.requests.clear()
    assert lookup.by_id(done[0].schema_id) is not None and lookup.by_id(v2_id) is not None
    assert registry.requests == [] and lookup.fetches == 0


def test_warm_skips_subjects_nobody_registered(registry):
    lookup = RegistrySchemas(connect(registry.url))
    assert lookup.warm(s.name for s in subjects(TOPICS)) == 0


def test_unknown_id_is_a_dead_letter_and_asked_about_once_per_ttl(registry):
    clock = Clock()
    lookup = RegistrySchemas(connect(registry.url), miss_ttl_seconds=30, clock=clock)
    decoder = Decoder(lookup)
    raw = encode_confluent(record(), 4242, load_schema(EVENT_SCHEMA))
    for _ in range(5):
        result = decoder.decode(raw, "web", NOW_MS)
        assert isinstance(result, DeadLetter) and result.reason is DeadLetterReason.UNKNOWN_SCHEMA
    assert lookup.fetches == 1
    clock.now += 31
    registry.register(EVENT_SUBJECT, bundled_schema_text(EVENT_SCHEMA))  # gets id 1, not 4242
    assert isinstance(decoder.decode(raw, "web", NOW_MS), DeadLetter)
    assert lookup.fetches == 2


def test_schema_registered_after_start_is_fetched_once(registry):
    lookup = RegistrySchemas(connect(registry.url))
    lookup.warm([EVENT_SUBJECT])
    v2_id = registry.register(EVENT_SUBJECT, json.dumps(V2))
    decoder = Decoder(lookup)
    raw = encode_confluent(record(session_id="s-1"), v2_id, _parsed(V2))
    assert isinstance(decoder.decode(raw, "web", NOW_MS), Event)
    assert isinstance(decoder.decode(raw, "web", NOW_MS), Event)
    assert lookup.fetches == 1


def test_outage_raises_instead_of_dead_lettering_but_cached_ids_still_decode(registry):
    (done, *_) = register_bundled(connect(registry.url), TOPICS)
    lookup = RegistrySchemas(connect(registry.url, max_retries=0))
    lookup.warm([EVENT_SUBJECT])
    v2_id = registry.register(EVENT_SUBJECT, json.dumps(V2))
    registry.unavailable = True
    decoder = Decoder(lookup)
    cached = encode_confluent(record(), done.schema_id, load_schema(EVENT_SCHEMA))
    assert isinstance(decoder.decode(cached, "web", NOW_MS), Event)
    uncached = encode_confluent(record(session_id="s-1"), v2_id, _parsed(V2))
    with pytest.raises(SchemaLookupUnavailable):
        decoder.decode(uncached, "web", NOW_MS)
    registry.unavailable = False
    assert isinstance(decoder.decode(uncached, "web", NOW_MS), Event), "an outage is not remembered as a miss"


def test_json_and_single_object_still_decode_with_the_registry_lookup(registry):
    decoder = Decoder(RegistrySchemas(connect(registry.url)))
    assert isinstance(decoder.decode(encode_json(record()), "web", NOW_MS), Event)
    from pipeline.wireformat import encode_single_object

    assert isinstance(decoder.decode(encode_single_object(record(), load_schema(EVENT_SCHEMA)), "web", NOW_MS), Event)


def _parsed(schema: dict[str, Any]) -> dict[str, Any]:
    from fastavro import parse_schema

    return parse_schema(schema)


# -- evolution ------------------------------------------------------------------------------------


def test_v2_writer_read_by_v1_worker(registry):
    """A producer on v2 (new optional field) and a worker still built with v1."""
    v1_id = registry.register(EVENT_SUBJECT, json.dumps(V1))
    v2_id = registry.register(EVENT_SUBJECT, json.dumps(V2))
    v1_worker = Decoder(RegistrySchemas(connect(registry.url)))
    from_v1 = v1_worker.decode(encode_confluent(record(), v1_id, _parsed(V1)), "web", NOW_MS)
    from_v2 = v1_worker.decode(encode_confluent(record(session_id="s-9"), v2_id, _parsed(V2)), "web", NOW_MS)
    assert isinstance(from_v2, Event) and from_v2 == from_v1


def test_v1_writer_read_by_v2_worker(registry):
    """The reverse: the worker was upgraded to v2 first, producers still write v1."""
    v1_id = registry.register(EVENT_SUBJECT, json.dumps(V1))
    v2_id = registry.register(EVENT_SUBJECT, json.dumps(V2))
    v2_worker = Decoder(RegistrySchemas(connect(registry.url)), reader_schemas={EVENT_SCHEMA: V2})
    from_v1 = v2_worker.decode(encode_confluent(record(), v1_id, _parsed(V1)), "web", NOW_MS)
    from_v2 = v2_worker.decode(encode_confluent(record(session_id="s-9"), v2_id, _parsed(V2)), "web", NOW_MS)
    assert isinstance(from_v1, Event) and from_v1 == from_v2


def test_a_field_without_default_breaks_new_readers_of_old_data(registry):
    """Why the rules demand a default: a v2 reader with a required new field refuses v1 data."""
    v1_id = registry.register(EVENT_SUBJECT, json.dumps(V1))
    strict_worker = Decoder(RegistrySchemas(connect(registry.url)), reader_schemas={EVENT_SCHEMA: V2_REQUIRED})
    result = strict_worker.decode(encode_confluent(record(), v1_id, _parsed(V1)), "web", NOW_MS)
    assert isinstance(result, DeadLetter) and result.reason is DeadLetterReason.SCHEMA_MISMATCH


# -- generated traffic with registry ids ------------------------------------------------------------


def _decode_all(scenario, decoder: Decoder) -> list[Any]:
    out = []
    for message in scenario.messages:
        channel = None if message.topic == IDENTITY_TOPIC else _channel(message.topic)
        out.append(decoder.decode(message.value, channel, NOW_MS + 3 * 86_400_000))
    return out


def _channel(topic_suffix: str) -> str:
    return "call" if topic_suffix == "calls" else topic_suffix


@pytest.mark.parametrize("avro_only", [False, True], ids=["mixed", "avro"])
def test_framed_scenario_decodes_exactly_like_the_original(registry, avro_only):
    scenario = generate(customers=30, seed=11, start_ms=NOW_MS - 48 * 3_600_000)
    # The link registered first: the registry's ids are the bundled 1 and 2 swapped, so a frame
    # left with its bundled id would be read with the wrong schema.
    registry.register("touchpoints.identity-value", bundled_schema_text("identity_link"))
    done = register_bundled(connect(registry.url), TOPICS)
    ids = {d.topic: d.schema_id for d in done}
    assert ids["touchpoints.web"] == 2 and ids["touchpoints.identity"] == 1
    framed = frame_for_registry(scenario, "touchpoints", ids, avro_only)

    expected = _decode_all(scenario, Decoder(BundledSchemas()))
    got = _decode_all(framed, Decoder(RegistrySchemas(connect(registry.url))))
    assert got == expected
    assert sum(isinstance(r, DeadLetter) for r in got) == scenario.manifest.malformed
    assert framed.manifest is scenario.manifest
    framed_ids = [(m.topic, confluent_schema_id(m.value)) for m in framed.messages if m.valid]
    assert all(i is None or i == ids[f"touchpoints.{t}"] for t, i in framed_ids)
    framed_share = sum(i is not None for _, i in framed_ids) / len(framed_ids)
    assert framed_share == 1.0 if avro_only else 0.05 < framed_share < 0.5


def test_frame_scenario_without_registry(registry):
    scenario = generate(customers=10, seed=3, start_ms=NOW_MS - 48 * 3_600_000)
    assert frame_scenario(scenario, Settings(), avro_only=False) is scenario
    avro = frame_scenario(scenario, Settings(), avro_only=True)
    assert all(confluent_schema_id(m.value) in (1, 2) for m in avro.messages if m.valid)
    assert _decode_all(avro, Decoder(BundledSchemas())) == _decode_all(scenario, Decoder(BundledSchemas()))
    with_registry = frame_scenario(scenario, Settings(schema_registry_url=registry.url), avro_only=True)
    assert registry.compatibility == {}, "the generator registers but leaves compatibility alone"
    assert _decode_all(with_registry, Decoder(RegistrySchemas(connect(registry.url)))) == _decode_all(
        scenario, Decoder(BundledSchemas())
    )


# -- runtime wiring ---------------------------------------------------------------------------------


def test_schema_lookup_follows_the_setting(registry):
    assert isinstance(schema_lookup(Settings()), BundledSchemas)
    register_bundled(connect(registry.url), TOPICS)
    lookup = schema_lookup(Settings(schema_registry_url=registry.url))
    assert isinstance(lookup, RegistrySchemas) and lookup.fetches == 0
    with pytest.raises(SettingsError, match="schema registry"):
        schema_lookup(Settings(schema_registry_url="http://127.0.0.1:1"))


# -- the command ------------------------------------------------------------------------------------


def test_schemas_register_command(registry, monkeypatch, capsys):
    from touchpoint.cli import main

    monkeypatch.delenv("TOUCHPOINT_CONFIG", raising=False)
    monkeypatch.delenv("TOUCHPOINT_SCHEMA_REGISTRY_URL", raising=False)
    assert main(["schemas", "register"]) == 2
    assert "TOUCHPOINT_SCHEMA_REGISTRY_URL is not set" in capsys.readouterr().err

    monkeypatch.setenv("TOUCHPOINT_SCHEMA_REGISTRY_URL", registry.url)
    monkeypatch.setenv("TOUCHPOINT_TOPIC_PREFIX", "cx-test")
    assert main(["schemas", "register", "--compatibility", "backward"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[0].startswith("cx-test.calls-value: schema id ")
    assert all(line.endswith("compatibility BACKWARD") for line in lines)
    assert registry.compatibility["cx-test.identity-value"] == "BACKWARD"

    assert main(["schemas", "register", "--compatibility", "sideways"]) == 1
    assert "unknown compatibility level SIDEWAYS" in capsys.readouterr().err
    registry.unavailable = True
    assert main(["schemas", "register"]) == 1
    assert "refused" in capsys.readouterr().err
