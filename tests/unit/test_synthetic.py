"""The synthetic scenario: deterministic, internally consistent, and its manifest tells the truth.

The messages are read back here with a small reader of our own (orjson and fastavro), so these
tests do not lean on the pipeline's decoder; one test at the end checks that the decoder agrees.
"""

from __future__ import annotations

import io
import re
import struct
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import fastavro
import orjson
import pytest

from pipeline.decode import Decoder
from pipeline.model import DeadLetter, Event, IdentityLink
from pipeline.schema_registry import BundledSchemas
from pipeline.synthetic import (
    DEFECTS,
    EVENT_SCHEMA_ID,
    HOUR_MS,
    IDENTITY_LINK_SCHEMA_ID,
    IDENTITY_TOPIC,
    MAX_TOUCHPOINTS_PER_SESSION,
    OVERSIZED_BYTES,
    SESSION_GAP_MS,
    TOPIC_SUFFIX,
    Scenario,
    SyntheticMessage,
    generate,
)
from pipeline.wireformat import fingerprint, load_schema

START_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z
SPAN_MS = 48 * HOUR_MS
MAX_TOUCHPOINT_GAP_MS = 8 * 60_000
INACTIVITY_GAP_MS = 30 * 60_000
CHANNEL_OF_TOPIC = {suffix: channel for channel, suffix in TOPIC_SUFFIX.items()}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
Record = dict[str, Any]
SYNTHETIC_CUSTOMER_ID = re.compile(r"cust-(\d{6}|unhappy-001|happy-001)")
FICTIONAL_PHONE = re.compile(r"\+447700900\d{3}")
EMAIL = re.compile(r"user\d{4,}@example\.invalid")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(customers=200, seed=7, start_ms=START_MS)


@pytest.fixture(scope="module")
def events(scenario: Scenario) -> list[Record]:
    """Every valid touchpoint event, read back, in stream order."""
    return [read(m) for m in scenario.messages if m.valid and m.topic != IDENTITY_TOPIC]


@pytest.fixture(scope="module")
def links(scenario: Scenario) -> list[Record]:
    return [read(m) for m in scenario.messages if m.valid and m.topic == IDENTITY_TOPIC]


def read(message: SyntheticMessage) -> Record:
    """Decode one valid message whatever its wire format, with ``occurred_at`` as epoch ms."""
    raw = message.value
    schema = load_schema("identity_link" if message.topic == IDENTITY_TOPIC else "touchpoint_event")
    if raw[:1] == b"\x00":
        (schema_id,) = struct.unpack(">I", raw[1:5])
        assert schema_id == (IDENTITY_LINK_SCHEMA_ID if message.topic == IDENTITY_TOPIC else EVENT_SCHEMA_ID)
        record = fastavro.schemaless_reader(io.BytesIO(raw[5:]), schema)
    elif raw[:2] == b"\xc3\x01":
        assert raw[2:10] == fingerprint(schema)
        record = fastavro.schemaless_reader(io.BytesIO(raw[10:]), schema)
    else:
        record = orjson.loads(raw)
    occurred_at = record["occurred_at"]
    if isinstance(occurred_at, str):
        occurred_at = datetime.fromisoformat(occurred_at)
    if isinstance(occurred_at, datetime):
        record["occurred_at"] = (occurred_at - EPOCH) // timedelta(milliseconds=1)
    return record


def identifiers(record: Record) -> Record:
    return record.get("identifiers") or {}


def is_terminal(event: Record) -> bool:
    attributes = event.get("attributes") or {}
    return event["type"] in ("purchase", "checkout") or (
        event["type"] == "call_ended" and attributes.get("resolved") is True
    )


def by_customer(events: list[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = defaultdict(list)
    for event in events:
        if event.get("customer_id"):
            grouped[event["customer_id"]].append(event)
    return grouped


def test_same_seed_gives_byte_identical_messages() -> None:
    first = generate(customers=200, seed=42, start_ms=START_MS)
    second = generate(customers=200, seed=42, start_ms=START_MS)
    assert first.messages == second.messages
    assert first.manifest.to_dict() == second.manifest.to_dict()


def test_different_seed_gives_different_traffic(scenario: Scenario) -> None:
    other = generate(customers=200, seed=8, start_ms=START_MS)
    assert [m.value for m in other.messages] != [m.value for m in scenario.messages]
    ids = {m.event_id for m in scenario.messages if m.event_id}
    assert not ids & {m.event_id for m in other.messages if m.event_id}


def test_valid_event_ids_are_unique(scenario: Scenario, events: list[Record]) -> None:
    ids = [m.event_id for m in scenario.messages if m.valid]
    assert all(ids)
    assert len(ids) == len(set(ids))
    assert [e["event_id"] for e in events] == [m.event_id for m in scenario.messages
                                               if m.valid and m.topic != IDENTITY_TOPIC]


def test_manifest_counts_match_the_messages(scenario: Scenario) -> None:
    manifest = scenario.manifest
    messages = scenario.messages
    assert manifest.messages == len(messages)
    assert manifest.messages_by_topic == dict(Counter(m.topic for m in messages))
    for channel, ids in manifest.valid_event_ids.items():
        assert ids == [m.event_id for m in messages if m.valid and m.topic == TOPIC_SUFFIX[channel]]
    links = [m.event_id for m in messages if m.valid and m.topic == IDENTITY_TOPIC]
    assert manifest.identity_link_ids == links
    invalid = [m for m in messages if not m.valid]
    assert manifest.malformed == len(invalid)
    assert manifest.malformed_by_defect == {d: sum(m.defect == d for m in invalid) for d in DEFECTS}
    assert all(m.defect is None for m in messages if m.valid)
    assert (manifest.start_ms, manifest.end_ms) == (messages[0].occurred_at_ms, messages[-1].occurred_at_ms)
    assert orjson.loads(orjson.dumps(manifest.to_dict()))["journeys"] == manifest.journeys


def test_messages_are_in_event_time_order_within_the_span(scenario: Scenario) -> None:
    times = [m.occurred_at_ms for m in scenario.messages]
    assert times == sorted(times)
    for message in scenario.messages:
        if message.valid:
            record = read(message)
            assert record["occurred_at"] == message.occurred_at_ms
            assert START_MS <= message.occurred_at_ms < START_MS + SPAN_MS
            assert message.topic == IDENTITY_TOPIC or CHANNEL_OF_TOPIC[message.topic] == record["channel"]


def test_every_kind_of_touchpoint_is_present(events: list[Record], links: list[Record]) -> None:
    types = Counter((e["channel"], e["type"]) for e in events)
    for expected in [("web", "page_view"), ("web", "login"), ("web", "checkout"), ("call", "call_ended"),
                     ("store", "store_visit"), ("store", "purchase"), ("store", "return"),
                     ("app", "screen_view"), ("app", "app_crash"), ("app", "purchase")]:
        assert types[expected] > 0, expected
    assert {e["feedback"]["kind"] for e in events if e.get("feedback")} == {"nps", "csat", "ces"}
    calls = [e["attributes"] for e in events if e["type"] == "call_ended"]
    assert all({"queue", "wait_seconds", "handle_seconds", "transfers", "abandoned", "resolved"} <= set(a)
               for a in calls)
    assert any(a["abandoned"] for a in calls) and any(a["transfers"] for a in calls)
    identifier_types = {t for e in events for t in identifiers(e)}
    assert identifier_types == {"anonymous_id", "device_id", "phone", "email", "loyalty_id"}
    assert links and all(link["identifiers"] for link in links)


def test_the_unhappy_customer_has_only_terrible_touchpoints(scenario: Scenario, events: list[Record]) -> None:
    (unhappy,) = scenario.manifest.unhappy_customers
    mine = by_customer(events)[unhappy]
    calls = [e["attributes"] for e in mine if e["type"] == "call_ended"]
    assert calls and all(a["wait_seconds"] >= 900 and not a["resolved"] for a in calls)
    assert any(a["abandoned"] for a in calls) and any(a["transfers"] >= 2 for a in calls)
    answers = [e["feedback"] for e in mine if e.get("feedback")]
    assert answers and all(f["kind"] == "nps" and f["score"] <= 2 for f in answers)
    assert any(e["type"] == "app_crash" for e in mine)
    assert all(e["attributes"]["load_ms"] >= 8000 for e in mine if e["type"] == "page_view")
    assert not any(is_terminal(e) for e in mine)


def test_the_happy_customer_has_only_delightful_touchpoints(scenario: Scenario, events: list[Record]) -> None:
    mine = by_customer(events)[scenario.manifest.happy_customer]
    calls = [e["attributes"] for e in mine if e["type"] == "call_ended"]
    assert calls and all(a["resolved"] and a["wait_seconds"] < 60 and not a["transfers"] for a in calls)
    answers = [e["feedback"] for e in mine if e.get("feedback")]
    assert answers and all(f["score"] == {"nps": 10, "csat": 5, "ces": 7}[f["kind"]] for f in answers)
    assert any(e["type"] in ("purchase", "checkout") for e in mine)
    assert not any(e["type"] in ("app_crash", "return") for e in mine)
    assert not any("error_code" in (e.get("attributes") or {}) for e in mine)


def test_journey_counts_follow_the_session_gap(scenario: Scenario, events: list[Record]) -> None:
    """Recompute each known customer's journeys from the events: split where the gap exceeds 30 min."""
    grouped = by_customer(events)
    journeys = scenario.manifest.journeys
    assert scenario.manifest.unhappy_customers[0] in journeys and scenario.manifest.happy_customer in journeys
    for customer, expected in journeys.items():
        mine = sorted(grouped[customer], key=lambda e: e["occurred_at"])
        sessions = [[mine[0]]]
        for previous, event in zip(mine, mine[1:]):
            gap = event["occurred_at"] - previous["occurred_at"]
            assert gap <= MAX_TOUCHPOINT_GAP_MS or gap >= SESSION_GAP_MS, (customer, gap)
            if gap > INACTIVITY_GAP_MS:
                sessions.append([])
            sessions[-1].append(event)
        assert len(sessions) == expected, customer
        for session in sessions:
            assert len(session) <= MAX_TOUCHPOINTS_PER_SESSION
            assert not any(is_terminal(e) for e in session[:-1]), customer
    assert sum(journeys.values()) > len(journeys)  # some known customers come back


def test_known_customers_never_appear_anonymously(scenario: Scenario, events: list[Record]) -> None:
    """Their journey counts hold only if every one of their events names them."""
    known = set(scenario.manifest.journeys)
    theirs = {pair for e in events if e.get("customer_id") in known for pair in identifiers(e).items()}
    for event in events:
        if not event.get("customer_id"):
            assert not theirs & set(identifiers(event).items())


def test_anonymous_histories_are_stitchable(scenario: Scenario, events: list[Record],
                                            links: list[Record]) -> None:
    stitched = scenario.manifest.stitched
    logins = [c for c, ids in stitched.items() if "anonymous_id" in ids]
    crm = [c for c, ids in stitched.items() if "loyalty_id" in ids]
    assert logins and crm
    for customer in logins:
        cookie = stitched[customer]["anonymous_id"]
        login = next(e for e in events if e["type"] == "login" and e.get("customer_id") == customer)
        assert login["identifiers"]["anonymous_id"] == cookie
        before = [e for e in events
                  if identifiers(e).get("anonymous_id") == cookie and not e.get("customer_id")]
        assert before and all(e["occurred_at"] < login["occurred_at"] for e in before)
    link_time = {link["customer_id"]: link["occurred_at"] for link in links}
    for customer in crm:
        linked = set(stitched[customer].items())
        anonymous = [e for e in events if linked & set(identifiers(e).items())]
        assert anonymous
        assert all(not e.get("customer_id") and e["occurred_at"] > link_time[customer] for e in anonymous)


def test_message_keys_follow_the_customer(scenario: Scenario, events: list[Record]) -> None:
    valid = [m for m in scenario.messages if m.valid and m.topic != IDENTITY_TOPIC]
    for message, event in zip(valid, events):
        if event.get("customer_id"):
            assert message.key == event["customer_id"].encode()
        elif "anonymous_id" in identifiers(event):
            assert message.key == event["identifiers"]["anonymous_id"].encode()
        else:
            assert message.key is None


def test_about_one_percent_is_malformed_with_every_defect(scenario: Scenario) -> None:
    manifest = scenario.manifest
    assert 0.005 <= manifest.malformed / manifest.messages <= 0.02
    assert all(count >= 1 for count in manifest.malformed_by_defect.values())
    (oversized,) = [m for m in scenario.messages if m.defect == "oversized"]
    assert len(oversized.value) >= OVERSIZED_BYTES
    assert all(m.event_id is None for m in scenario.messages if m.defect == "missing_event_id")


def test_a_channel_degrades_for_many_customers(scenario: Scenario, events: list[Record]) -> None:
    degraded = scenario.manifest.degraded
    happy, (unhappy,) = scenario.manifest.happy_customer, scenario.manifest.unhappy_customers
    assert degraded.channel == "web" and degraded.end_ms - degraded.start_ms >= 3 * HOUR_MS
    assert degraded.customers >= 10
    inside = [e for e in events if e["channel"] == degraded.channel
              and degraded.start_ms <= e["occurred_at"] < degraded.end_ms
              and e["type"] not in ("checkout", "survey") and e.get("customer_id") != happy]
    assert len(inside) == degraded.events
    assert all(e["attributes"]["load_ms"] >= 8000 for e in inside)
    assert sum("error_code" in e["attributes"] for e in inside) > len(inside) / 3
    outside = [e for e in events if e["channel"] == degraded.channel and e.get("customer_id") != unhappy
               and not degraded.start_ms <= e["occurred_at"] < degraded.end_ms and e.get("attributes")]
    assert all(e["attributes"]["load_ms"] < 8000 for e in outside)


def test_nothing_looks_like_real_personal_data(
    scenario: Scenario, events: list[Record], links: list[Record]
) -> None:
    texts = [text for record in events + links for text in strings(record)]
    emails = {t for t in texts if "@" in t}
    assert emails and all(EMAIL.fullmatch(e) for e in emails)
    phones = {t for t in texts if t.startswith("+")}
    assert phones and all(FICTIONAL_PHONE.fullmatch(p) for p in phones)
    customer_ids = {r["customer_id"] for r in events + links if r.get("customer_id")}
    assert all(SYNTHETIC_CUSTOMER_ID.fullmatch(c) for c in customer_ids)


def strings(value: Any) -> list[str]:
    """Every string inside a decoded record, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    return []


def test_wire_formats_are_mixed_mostly_json(scenario: Scenario) -> None:
    formats = Counter(
        "confluent" if m.value[:1] == b"\x00" else "single" if m.value[:2] == b"\xc3\x01" else "json"
        for m in scenario.messages if m.valid
    )
    assert formats["json"] > 0.7 * sum(formats.values())
    assert formats["confluent"] > 0 and formats["single"] > 0
    assert any(b'"occurred_at":"' in m.value for m in scenario.messages if m.valid)


def test_span_and_size_arguments_are_checked() -> None:
    short = generate(customers=30, seed=1, start_ms=START_MS, span_hours=12)
    assert all(START_MS <= m.occurred_at_ms < START_MS + 12 * HOUR_MS for m in short.messages)
    with pytest.raises(ValueError):
        generate(customers=1, seed=1, start_ms=START_MS)
    with pytest.raises(ValueError):
        generate(customers=10, seed=1, start_ms=START_MS, span_hours=2)


def test_the_decoder_accepts_exactly_the_valid_messages(scenario: Scenario) -> None:
    decoder = Decoder(BundledSchemas(event_id=EVENT_SCHEMA_ID, identity_link_id=IDENTITY_LINK_SCHEMA_ID))
    now_ms = scenario.manifest.end_ms
    for message in scenario.messages:
        channel = None if message.topic == IDENTITY_TOPIC else CHANNEL_OF_TOPIC[message.topic]
        result = decoder.decode(message.value, channel, now_ms)
        if not message.valid:
            assert isinstance(result, DeadLetter), message.defect
            continue
        assert isinstance(result, IdentityLink if channel is None else Event), result
        assert (result.event_id, result.occurred_at_ms) == (message.event_id, message.occurred_at_ms)
