"""Identity stitching and journeys on the real stack, with 1 and with 2 workers on 4 partitions.

Each scenario is a handful of hand-written events whose right answer is obvious, produced into
the source topics in an order that makes the work hard (anonymous history before the login, a
CRM link long after the call, a late event after its journey moved on). The same messages are
processed by one worker and by two workers sharing the partitions; the ClickHouse views must show
the expected attribution and journeys, and the two runs must agree exactly.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from sinks.migrations import migrate
from touchpoint.harness import WorkerProcess, clickhouse_client, wait_until
from touchpoint.settings import ClickHouseTarget, Settings
from touchpoint.topics import ensure_topics

pytestmark = pytest.mark.integration

MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: dict[str, Any]


def touch(event_id: str, at_ms: int, channel: str, type_: str, *, customer: str | None = None,
          key: str | None = None, attributes: dict[str, Any] | None = None, **identifiers: str) -> Message:
    value: dict[str, Any] = {"event_id": event_id, "occurred_at": at_ms, "channel": channel, "type": type_,
                             "identifiers": identifiers, "attributes": attributes or {}}
    if customer:
        value["customer_id"] = customer
    topic = "calls" if channel == "call" else channel
    message_key = key or customer or next(iter(identifiers.values()), None)
    return Message(topic, message_key.encode() if message_key else None, value)


def crm_link(event_id: str, at_ms: int, customer: str, **identifiers: str) -> Message:
    return Message("identity", customer.encode(),
                   {"event_id": event_id, "occurred_at": at_ms, "customer_id": customer, "identifiers": identifiers})


def scenario(t0: int) -> list[Message]:
    """Five stories; ids are synthetic, the phone number is from the UK's drama range."""
    return [
        # 1. anonymous browsing, then a login that names the customer, then more browsing
        touch("s1-1", t0, "web", "page_view", anonymous_id="anon-s1", attributes={"page": "/shop"}),
        touch("s1-2", t0 + MINUTE, "web", "page_view", anonymous_id="anon-s1", attributes={"page": "/shop/tv"}),
        touch("s1-3", t0 + 2 * MINUTE, "web", "add_to_cart", anonymous_id="anon-s1", attributes={"page": "/cart"}),
        touch("s1-4", t0 + 3 * MINUTE, "web", "login", customer="cust-s1", anonymous_id="anon-s1",
              attributes={"page": "/login"}),
        touch("s1-5", t0 + 4 * MINUTE, "web", "checkout", customer="cust-s1", attributes={"page": "/checkout"}),
        # 2. a call known only by its phone number, linked by the CRM an hour later
        touch("s2-1", t0, "call", "call_ended", phone="+447700900123",
              attributes={"queue": "billing", "wait_seconds": 40, "resolved": True}),
        touch("s2-2", t0 + 5 * MINUTE, "web", "page_view", customer="cust-s2", attributes={"page": "/account"}),
        crm_link("s2-link", t0 + HOUR, "cust-s2", phone="+447700900123"),
        # 3. one device shared by two known customers: never one person
        touch("s3-1", t0, "app", "app_open", customer="cust-s3a", device_id="dev-shared-s3"),
        touch("s3-2", t0 + MINUTE, "app", "app_open", customer="cust-s3b", device_id="dev-shared-s3"),
        touch("s3-3", t0 + 2 * MINUTE, "app", "app_open", customer="cust-s3a", device_id="dev-shared-s3"),
        # 4. a long gap splits one customer's activity into two journeys
        touch("s4-1", t0, "web", "page_view", customer="cust-s4", attributes={"page": "/"}),
        touch("s4-2", t0 + 5 * MINUTE, "web", "page_view", customer="cust-s4", attributes={"page": "/faq"}),
        touch("s4-3", t0 + 3 * HOUR, "web", "page_view", customer="cust-s4", attributes={"page": "/"}),
        touch("s4-4", t0 + 3 * HOUR + 2 * MINUTE, "web", "page_view", customer="cust-s4", attributes={"page": "/faq"}),
        # 5. late events: one within the allowed lateness joins its journey, one far beyond is flagged
        touch("s5-1", t0, "web", "page_view", customer="cust-s5", attributes={"page": "/"}),
        touch("s5-2", t0 + 2 * MINUTE, "web", "page_view", customer="cust-s5", attributes={"page": "/a"}),
        touch("s5-3", t0 + 4 * MINUTE, "web", "page_view", customer="cust-s5", attributes={"page": "/b"}),
        touch("s5-4", t0 + MINUTE, "web", "page_view", customer="cust-s5", attributes={"page": "/late"}),
        touch("s5-5", t0 - 3 * HOUR, "web", "page_view", customer="cust-s5", attributes={"page": "/very-late"}),
    ]


EVENT_IDS = {m.value["event_id"] for m in scenario(0) if m.topic != "identity"}


def isolated(settings: Settings, tmp_path: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    base = ClickHouseTarget.from_url(settings.clickhouse_url)
    return settings.with_overrides(
        topic_prefix=f"t{suffix}", app_id=f"touchpoint-{suffix}", data_dir=str(tmp_path / suffix),
        clickhouse_url=f"clickhouse://{base.user}:{base.password}@{base.host}:{base.port}/cx_{suffix}",
    )


@dataclass
class Views:
    touchpoints: dict[str, tuple[str, str, int]]  # event_id -> (customer, journey_id, late)
    journeys: dict[str, tuple[str, int, str]]  # journey_id -> (customer, touchpoints, status)
    refused_devices: set[str]


def run(settings: Settings, tmp_path: Path, workers: int) -> Views:
    migrate(settings.clickhouse)
    ensure_topics(settings)
    processes = [WorkerProcess.start(settings, tmp_path / f"{settings.app_id}-{n}.log") for n in range(workers)]
    client = clickhouse_client(settings)
    db = settings.clickhouse.database
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        for message in scenario(int(time.time() * 1000) - 6 * HOUR):
            producer.send(f"{settings.topic_prefix}.{message.topic}", key=message.key,
                          value=orjson.dumps(message.value))
        producer.flush()
        producer.close()
        wait_until(lambda: client.execute(f"SELECT uniqExact(event_id) FROM {db}.touchpoints")[0][0]
                   == len(EVENT_IDS), timeout=120, describe="every event stored")
        previous: list[Views] = []

        def settled() -> bool:
            previous.append(snapshot(client, db))
            return len(previous) >= 4 and all(v == previous[-1] for v in previous[-4:])

        wait_until(settled, timeout=90, interval=1.0, describe="the views to settle")
        return previous[-1]
    finally:
        client.disconnect()
        for process in processes:
            assert process.stop() == 0, process.log_path.read_text()[-3000:]


def snapshot(client: Any, db: str) -> Views:
    touchpoints = {event_id: (customer, journey, late) for event_id, customer, journey, late in client.execute(
        f"SELECT event_id, customer_key, journey_id, late FROM {db}.customer_touchpoints")}
    journeys = {journey: (customer, count, status) for journey, customer, count, status in client.execute(
        f"SELECT journey_id, customer_key, touchpoint_count, status FROM {db}.customer_journeys")}
    refused = {value for (value,) in client.execute(
        f"SELECT DISTINCT identifier_value FROM {db}.identity_links FINAL "
        f"WHERE identifier_type = 'device_id' AND decision NOT IN ('linked', 'confirmed')")}
    return Views(touchpoints, journeys, refused)


def journeys_of(views: Views, customer: str) -> list[tuple[str, int]]:
    return sorted((journey, count) for journey, (owner, count, _) in views.journeys.items() if owner == customer)


def check(views: Views) -> None:
    assert set(views.touchpoints) == EVENT_IDS
    owner = {event_id: customer for event_id, (customer, _, _) in views.touchpoints.items()}
    # 1. the anonymous history moved to the customer, as one journey without an orphan
    assert {owner[f"s1-{n}"] for n in range(1, 6)} == {"cust-s1"}
    s1 = journeys_of(views, "cust-s1")
    assert [count for _, count in s1] == [5], s1
    assert {views.touchpoints[f"s1-{n}"][1] for n in range(1, 6)} == {s1[0][0]}
    # 2. the call belongs to the customer the CRM named
    assert owner["s2-1"] == "cust-s2"
    # 3. two known customers sharing a device stay two customers; the refusal is recorded
    assert [owner["s3-1"], owner["s3-2"], owner["s3-3"]] == ["cust-s3a", "cust-s3b", "cust-s3a"]
    assert views.refused_devices, "the second customer on the device must be refused, and recorded"
    # 4. a gap longer than the channel's inactivity gap splits the journey
    assert [count for _, count in journeys_of(views, "cust-s4")] == [2, 2]
    # 5. the late event within the lateness joined its journey; the one beyond it is flagged
    s5_journey = views.touchpoints["s5-1"][1]
    assert views.touchpoints["s5-4"][1] == s5_journey
    assert views.journeys[s5_journey][1] == 4
    assert views.touchpoints["s5-5"][2] == 1
    assert all(late == 0 for event_id, (_, _, late) in views.touchpoints.items() if event_id != "s5-5")
    # no anonymous key keeps a journey of its own once stitched
    assert not [j for j, (customer, _, _) in views.journeys.items() if customer.startswith("anon-")]


def test_one_and_two_workers_give_the_same_stitched_journeys(settings: Settings, tmp_path: Path) -> None:
    one = run(isolated(settings, tmp_path), tmp_path, workers=1)
    check(one)
    two = run(isolated(settings, tmp_path), tmp_path, workers=2)
    check(two)
    assert two == one
