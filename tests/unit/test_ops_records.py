"""Records for replay and backfill: file readers, the rebuild from a touchpoints row, plan()."""

from __future__ import annotations

from pathlib import Path

import fastavro
import orjson
import pytest

from pipeline.decode import Decoder
from pipeline.identifiers import IdentifierPolicy, identifier_key
from pipeline.identity import anonymous_key
from pipeline.model import Event, Feedback, IdentityLink
from pipeline.schema_registry import BundledSchemas
from pipeline.scoring import dimension_of
from pipeline.suppression import CUSTOMER, SuppressionList, suppression_token
from pipeline.wireformat import load_schema
from touchpoint.ops.records import (
    RecordFileError, contract_record, event_from_touchpoint_row, parse_time, read_records,
)
from touchpoint.ops.reingest import ALREADY_STORED, OUTSIDE_RANGE, REPEATED, SUPPRESSED, describe, plan
from touchpoint.settings import Topics

T0 = 1_763_000_000_000
DECODER = Decoder(BundledSchemas(), IdentifierPolicy())


def record(event_id: str, at_ms: int, channel: str = "web", customer: str | None = "cust-1", **extra: object) -> dict:
    return {"event_id": event_id, "occurred_at": at_ms, "channel": channel, "type": "page_view",
            "customer_id": customer, **extra}


def test_jsonl_and_avro_files_read_alike(tmp_path: Path) -> None:
    records = [record("e-1", T0, attributes={"page": "/checkout/1", "load_ms": 900}),
               record("e-2", T0 + 1, channel="call", feedback={"kind": "nps", "score": 3}, value=12.5)]
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("\n".join(orjson.dumps(r).decode() for r in records) + "\n\n")
    avro = tmp_path / "events.avro"
    with open(avro, "wb") as out:
        fastavro.writer(out, load_schema("touchpoint_event"), records)
    from_jsonl, from_avro = list(read_records(jsonl)), list(read_records(avro))
    assert from_jsonl == records
    assert [r["occurred_at"] for r in from_avro] == [T0, T0 + 1]  # timestamp-millis back to epoch ms
    assert [DECODER.decode(orjson.dumps(r), r["channel"], T0) for r in from_avro] == \
           [DECODER.decode(orjson.dumps(r), r["channel"], T0) for r in from_jsonl]


def test_a_broken_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(orjson.dumps(record("e-1", T0)).decode() + "\n{not json\n")
    with pytest.raises(RecordFileError, match=r"bad.jsonl:2"):
        list(read_records(path))


def test_contract_record_decodes_to_the_same_event() -> None:
    event = Event("e-9", T0, "store", "purchase", customer_id="cust-2",
                  identifiers={"loyalty_id": "L-77"}, attributes={"store_id": "s-4", "wait_seconds": 30},
                  feedback=Feedback("csat", 4), value=40.0)
    link = IdentityLink("l-1", T0, "cust-2", {"device_id": "dev-1"})
    assert DECODER.decode(orjson.dumps(contract_record(event)), "store", T0) == event
    assert DECODER.decode(orjson.dumps(contract_record(link)), None, T0) == link


@pytest.mark.parametrize(("channel", "dimension", "attribute"), [
    ("web", "checkout", {"page": "/checkout"}),
    ("call", "billing", {"queue": "billing"}),
    ("store", "s-4", {"store_id": "s-4"}),
    ("app", "", {}),
])
def test_rebuilt_event_keeps_what_the_row_holds(channel: str, dimension: str, attribute: dict) -> None:
    anon = anonymous_key(identifier_key("anonymous_id", "visitor-1"))
    row = {"event_id": "e-5", "customer_key": anon, "channel": channel, "type": "survey",
           "occurred_at_ms": T0 + 7, "dimension": dimension, "feedback_kind": "nps", "feedback_score": 9,
           "value": None}
    event = event_from_touchpoint_row(row)
    assert event == Event("e-5", T0 + 7, channel, "survey", customer_id=anon, attributes=attribute,
                          feedback=Feedback("nps", 9))
    assert dimension_of(event) == dimension
    # the anonymous key comes back as the customer id, which ingest does not re-hash or re-route
    assert DECODER.decode(orjson.dumps(contract_record(event)), channel, T0).customer_id == anon


def test_row_without_feedback() -> None:
    row = {"event_id": "e-6", "customer_key": "cust-1", "channel": "app", "type": "login",
           "occurred_at_ms": T0, "dimension": "", "feedback_kind": "", "feedback_score": None, "value": 3.0}
    assert event_from_touchpoint_row(row).feedback is None


@pytest.mark.parametrize(("text", "ms"), [
    ("1763000000000", 1_763_000_000_000),
    ("2025-11-13T02:13:20Z", 1_763_000_000_000),
    ("2025-11-13T03:13:20+01:00", 1_763_000_000_000),
])
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["2025-11-13T02:13:20", "yesterday"])
def test_parse_time_refuses_ambiguous_input(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_plan_orders_by_event_time_and_counts_every_skip() -> None:
    records = [
        record("e-3", T0 + 3000),
        record("e-1", T0 + 1000),
        record("e-1", T0 + 1000),  # repeated in the input
        record("e-2", T0 + 2000, channel="fax"),  # invalid
        {"event_id": "l-1", "occurred_at": T0 + 1500, "customer_id": "cust-1", "identifiers": {"device_id": "d-1"}},
        record("e-4", T0 + 2500, customer="cust-erased"),
        record("e-5", T0 + 9000),  # after until
        {"event_id": "e-6", "occurred_at": T0, "channel": "web", "type": "x"},  # nobody to credit
    ]
    erased = SuppressionList.of([suppression_token(CUSTOMER, "cust-erased")])
    result = plan(records, DECODER, Topics("p"), erased, since_ms=T0, until_ms=T0 + 5000, now_ms=T0)
    assert [(m.topic, orjson.loads(m.value)["event_id"]) for m in result.messages] == [
        ("p.web", "e-1"), ("p.identity", "l-1"), ("p.web", "e-3")]
    assert result.messages[0].value == orjson.dumps(records[1])  # the original record, unchanged
    assert result.skipped == {REPEATED: 1, "invalid (unknown_channel)": 1, SUPPRESSED: 1, OUTSIDE_RANGE: 1,
                              "invalid (missing_field)": 1}
    assert result.read == len(records)
    assert describe(result, 3).startswith("read 8 records: sent 3, skipped 5 (")


def test_drop_stored_skips_stored_touchpoints_but_never_links() -> None:
    records = [record("e-1", T0), record("e-2", T0 + 1),
               {"event_id": "e-1-link", "occurred_at": T0, "customer_id": "cust-1", "identifiers": {"device_id": "d-1"}}]
    result = plan(records, DECODER, Topics("p"), SuppressionList(), now_ms=T0)
    result.drop_stored({"e-1", "e-1-link"})
    assert [m.event_id for m in result.messages] == ["e-1-link", "e-2"]
    assert result.skipped == {ALREADY_STORED: 1}
