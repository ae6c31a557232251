"""Operator commands on the real local stack, run as a user runs them: ``python -m touchpoint.cli ...``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import fastavro
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.decode import Decoder
from pipeline.identifiers import IdentifierPolicy
from pipeline.model import DeadLetter, Event
from pipeline.schema_registry import BundledSchemas
from pipeline.synthetic import Scenario, generate
from pipeline.wireformat import load_schema
from sinks.migrations import migrate
from touchpoint.harness import WorkerProcess, clickhouse_client, settings_env, wait_until
from touchpoint.ops.forget import changelog_topic
from touchpoint.ops.records import contract_record
from touchpoint.settings import Settings
from touchpoint.topics import ensure_topics, topic_names

pytestmark = pytest.mark.integration

SNAPSHOT_COLUMNS = ("event_id", "customer_key", "journey_id", "channel", "type", "occurred_at_ms", "dimension",
                    "score", "feedback_kind", "feedback_score", "value", "late")
SNAPSHOT = f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM {{db}}.customer_touchpoints ORDER BY event_id"


def touchpoint_cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run([sys.executable, "-m", "touchpoint.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def scenario_records(scenario: Scenario) -> tuple[list[dict], list[dict]]:
    """The valid messages of a scenario as producer records: (touchpoint events, identity links)."""
    decoder = Decoder(BundledSchemas(), IdentifierPolicy())
    events, links = [], []
    for message in scenario.messages:
        if not message.valid:
            continue
        channel = None if message.topic == "identity" else ("call" if message.topic == "calls" else message.topic)
        decoded = decoder.decode(message.value, channel, int(time.time() * 1000))
        assert not isinstance(decoded, DeadLetter), decoded
        (events if isinstance(decoded, Event) else links).append(contract_record(decoded))
    return events, links


def write_files(tmp_path: Path, events: list[dict], links: list[dict]) -> list[Path]:
    """Half the events as Avro, the rest and the links as JSON lines, plus two bad lines."""
    avro, jsonl = tmp_path / "events.avro", tmp_path / "events.jsonl"
    with open(avro, "wb") as out:
        fastavro.writer(out, load_schema("touchpoint_event"), events[::2])
    lines = [orjson.dumps(r).decode() for r in events[1::2] + links]
    lines += ['{"event_id": "bad-1", "channel": "web"}', orjson.dumps(events[1]).decode()]
    jsonl.write_text("\n".join(lines) + "\n")
    return [avro, jsonl]


def wait_drained(settings: Settings, timeout: float = 120) -> None:
    """Until the worker's group has committed every message on the topics it reads, twice in a row."""
    names = [t for t in topic_names(settings) if t != settings.topics.alerts]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    streak = [0]

    def drained() -> bool:
        tps = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(tps)
        committed = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
        behind = [tp for tp, end in ends.items() if end and (committed.get(tp) is None or committed[tp].offset < end)]
        streak[0] = 0 if behind else streak[0] + 1
        return streak[0] >= 2

    try:
        wait_until(drained, timeout, interval=1.5, describe="the worker drained its topics")
    finally:
        consumer.close()
        admin.close()


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    migrate(settings.clickhouse)
    ensure_topics(settings)
    process = WorkerProcess.start(settings, tmp_path / "worker.log")
    yield process
    process.stop()


@pytest.fixture
def backfilled(settings: Settings, worker: WorkerProcess, tmp_path: Path) -> tuple[Scenario, list[Path], int]:
    """A small scenario backfilled from files into a running worker and fully stored."""
    scenario = generate(customers=15, seed=5, start_ms=int(time.time() * 1000) - 48 * 3600_000)
    events, links = scenario_records(scenario)
    files = write_files(tmp_path, events, links)
    done = touchpoint_cli(settings, "backfill", *map(str, files))
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary == (f"read {len(events) + len(links) + 2} records: sent {len(events) + len(links)}, skipped 2 "
                       "(1 invalid (missing_field), 1 event_id repeated in the input)")
    assert "about" in done.stderr and "left" in done.stderr  # progress with an estimate
    client = clickhouse_client(settings)
    db = settings.clickhouse.database
    try:
        wait_until(lambda: client.execute(f"SELECT uniqExact(event_id) FROM {db}.touchpoints")[0][0] == len(events),
                   timeout=120, on_tick=lambda: worker.alive() or pytest.fail("worker exited"),
                   describe="every backfilled event stored")
    finally:
        client.disconnect()
    wait_drained(settings)
    return scenario, files, len(events)


def test_backfill_again_and_replay_twice_change_nothing(settings: Settings, backfilled: tuple) -> None:
    """Re-running a backfill skips what is stored; replaying a range twice gives the same rows.

    The replayed range is the last six hours, whose events every customer's state still remembers
    (its recent events and open journeys): re-sending events older than that memory makes the
    worker apply them again as late ones, which is why backfill and file replay skip stored ones.
    """
    scenario, files, stored = backfilled
    db = settings.clickhouse.database
    client = clickhouse_client(settings)
    try:
        before = client.execute(SNAPSHOT.format(db=db))
        assert len(before) == stored

        again = touchpoint_cli(settings, "backfill", *map(str, files))
        assert again.returncode == 0, again.stderr
        assert f"sent 3, skipped {stored + 2} ({stored} already stored in ClickHouse" in again.stdout  # 3 links
        wait_drained(settings)
        assert client.execute(SNAPSHOT.format(db=db)) == before

        since = scenario.manifest.end_ms - 6 * 3600_000
        window = ("--since", str(since), "--until", str(scenario.manifest.end_ms + 1))
        in_window = sum(1 for row in before if row[SNAPSHOT_COLUMNS.index("occurred_at_ms")] >= since)
        snapshots = []
        for _ in range(2):
            done = touchpoint_cli(settings, "replay", "--from-clickhouse", *window)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip().endswith(f"sent {in_window}, skipped 0") and in_window > 0
            wait_drained(settings)
            snapshots.append(client.execute(SNAPSHOT.format(db=db)))
        assert snapshots[0] == snapshots[1]  # replaying the same range again changes nothing
        # against the original: the same events, customers and facts. The score may differ, since
        # the touchpoints table does not keep the attributes it was computed from (README: Replay).
        facts = [i for i, column in enumerate(SNAPSHOT_COLUMNS) if column != "score"]
        assert [[row[i] for i in facts] for row in snapshots[1]] == [[row[i] for i in facts] for row in before]
        assert client.execute(f"SELECT count() FROM {db}.touchpoints FINAL")[0][0] == stored

        # from a file, only the requested range is sent
        later = touchpoint_cli(settings, "replay", "--file", str(files[1]), "--since", str(scenario.manifest.end_ms + 1))
        assert later.returncode == 0, later.stderr
        assert re.search(r"sent 0, skipped \d+ \(\d+ outside the requested time range", later.stdout), later.stdout
    finally:
        client.disconnect()


def consume_all(settings: Settings, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, consumer_timeout_ms=3000,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [(record.partition, record.key, record.value) for record in consumer]
    finally:
        consumer.close()


def test_forget_erases_everywhere_and_replays_do_not_bring_the_customer_back(
        settings: Settings, worker: WorkerProcess, backfilled: tuple) -> None:
    _, files, stored = backfilled
    db = settings.clickhouse.database
    client = clickhouse_client(settings)
    try:
        # a customer whose anonymous history was stitched on through identity links
        customer, anon_keys = next(
            (c, [k for (k,) in client.execute(
                f"SELECT DISTINCT anonymous_key FROM {db}.identity_links WHERE customer_key = %(c)s AND decision = 'linked'",
                {"c": c})])
            for (c,) in client.execute(
                f"SELECT customer_key FROM {db}.customer_touchpoints WHERE attributed_key != customer_key "
                "GROUP BY customer_key ORDER BY customer_key"))
        keys = tuple([customer, *anon_keys])
        own = client.execute(f"SELECT count() FROM {db}.customer_touchpoints WHERE customer_key = %(c)s", {"c": customer})[0][0]
        holding = [t for (t,) in client.execute(
            "SELECT DISTINCT table FROM system.columns WHERE database = %(db)s AND name = 'customer_key' AND table IN "
            "(SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree')", {"db": db})]
        assert {"touchpoints", "journeys", "customer_scores", "identity_links"} <= set(holding)
        assert own > 0 and anon_keys

        done = touchpoint_cli(settings, "forget", customer)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"erased customer {customer}: {len(anon_keys)} anonymous key(s)" in done.stdout
        assert re.search(r"  touchpoints: [1-9][0-9]* row\(s\) deleted", done.stdout), done.stdout
        assert "STILL PRESENT" not in done.stdout

        def erased() -> None:
            for table in holding:
                assert client.execute(f"SELECT count() FROM {db}.{table} WHERE customer_key IN %(k)s", {"k": keys})[0][0] == 0, table
            assert client.execute(f"SELECT count() FROM {db}.identity_links WHERE anonymous_key IN %(k)s",
                                  {"k": tuple(anon_keys)})[0][0] == 0
            assert client.execute(f"SELECT count() FROM {db}.customer_touchpoints")[0][0] == stored - own

        erased()

        # tombstones in the key's own partition on both changelogs
        for table, key in (("customers", customer.encode()), ("identity", None)):
            records = consume_all(settings, changelog_topic(settings.app_id, table))
            if key is None:  # an identifier linked to the customer: its state names the customer
                key = next(k for _, k, v in records if v is not None and f'"{customer}"'.encode() in v)
            partitions = {p for p, k, v in records if k == key and v is not None}
            tombstones = [p for p, k, v in records if k == key and v is None]
            assert tombstones and set(tombstones) == partitions, (table, partitions, tombstones)

        # the same files again into the running worker: the erased customer's events are skipped
        # at the source, everyone else's are duplicates, and the customer stays erased
        again = touchpoint_cli(settings, "backfill", *map(str, files))
        assert again.returncode == 0, again.stderr
        suppressed = re.search(r"(\d+) customer erased \(suppression list\)", again.stdout)
        assert suppressed and int(suppressed.group(1)) >= own, again.stdout
        wait_drained(settings)
        erased()
    finally:
        client.disconnect()


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_doctor_health_endpoints_and_json_logs_on_a_running_worker(settings: Settings, worker: WorkerProcess) -> None:
    base = f"http://127.0.0.1:{worker.metrics_port}"
    wait_until(lambda: get(base + "/healthz") == 200, timeout=60, describe="/healthz")
    wait_until(lambda: get(base + "/readyz") == 200, timeout=90, describe="/readyz after joining the group")
    done = touchpoint_cli(settings.with_overrides(metrics_port=worker.metrics_port), "doctor")
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("everything looks right")
    assert "FAIL" not in done.stdout

    assert worker.stop() == 0
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    entries = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert any(e["message"].startswith("metrics on") for e in entries)
    assert {"time", "level", "logger", "message"} <= set(entries[0])


def test_doctor_names_each_problem(settings: Settings) -> None:
    migrate(settings.clickhouse)
    ensure_topics(settings.with_overrides(partitions=2))  # planned for 4 below
    client = clickhouse_client(settings)
    try:
        client.execute(f"ALTER TABLE {settings.clickhouse.database}.schema_migrations DELETE WHERE version = 4")
        wait_until(lambda: client.execute(
            f"SELECT count() FROM {settings.clickhouse.database}.schema_migrations WHERE version = 4")[0][0] == 0,
            timeout=30, interval=0.3)
    finally:
        client.disconnect()
    missing = settings.with_overrides(topic_prefix=settings.topic_prefix + "x")
    done = touchpoint_cli(missing, "doctor", "--metrics-url", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert f"FAIL  topic {missing.topics.channel('web')}: does not exist" in done.stdout
    assert "migration(s) 0004 not applied" in done.stdout and "touchpoint migrate" in done.stdout
    assert "FAIL  metrics: nothing answers on http://127.0.0.1:9/metrics" in done.stdout

    done = touchpoint_cli(settings, "doctor", "--metrics-url", "http://127.0.0.1:9")
    assert f"FAIL  topic {settings.topics.customers}: has 2 partitions, the deployment expects 4" in done.stdout


def test_forget_finds_hashed_identifiers_the_operator_names(settings: Settings) -> None:
    """With identifier hashing on, a raw identifier on the command line finds its HMAC-ed rows."""
    from pipeline.identifiers import hash_value, identifier_key
    from pipeline.identity import anonymous_key
    from pipeline.suppression import IDENTIFIER, suppression_token

    hashed = settings.with_overrides(identifier_hmac_key="test-hmac-key-0001")
    migrate(hashed.clickhouse)
    stored_key = identifier_key("email", hash_value(b"test-hmac-key-0001", "visitor-0001@example.invalid"))
    anon = anonymous_key(stored_key)
    db = hashed.clickhouse.database
    client = clickhouse_client(hashed)
    try:
        client.execute(f"INSERT INTO {db}.touchpoints (event_id, customer_key, channel, occurred_at, occurred_at_ms) VALUES",
                       [("e-anon", anon, "web", 1_763_000_000, 1_763_000_000_000),
                        ("e-other", "cust-other", "web", 1_763_000_000, 1_763_000_000_000)])
        client.execute(f"INSERT INTO {db}.dead_letters (topic, offset, reason, payload, received_at) VALUES",
                       [("t.web", 1, "timestamp_absurd", '{"identifiers":{"email":"visitor-0001@example.invalid"}}', 1_763_000_000),
                        ("t.web", 2, "timestamp_absurd", '{"customer_id":"cust-other"}', 1_763_000_000)])
        done = touchpoint_cli(hashed, "forget", "cust-0001", "--identifier", "email:Visitor-0001@Example.invalid")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "erased customer cust-0001: 1 anonymous key(s), 1 identifier(s)" in done.stdout
        assert "no such topic" in done.stdout  # no worker ever ran: no changelog to tombstone
        assert "visitor-0001" not in done.stdout + done.stderr
        assert client.execute(f"SELECT event_id FROM {db}.touchpoints") == [("e-other",)]
        assert client.execute(f"SELECT offset FROM {db}.dead_letters") == [(2,)]
        tokens = {t for (t,) in client.execute(f"SELECT token FROM {db}.suppressions")}
        assert suppression_token(IDENTIFIER, stored_key) in tokens
    finally:
        client.disconnect()
