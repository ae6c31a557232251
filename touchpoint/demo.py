"""``touchpoint demo``: the whole product on the embedded default, then where to look.

Starts a local broker and ClickHouse (or uses the configured ones), applies the migrations,
produces a seeded synthetic scenario, runs one real worker process until every valid event is in
ClickHouse and every malformed one is dead-lettered, and prints a summary.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.synthetic import Scenario, generate
from sinks.migrations import migrate
from touchpoint.cli import ProgressLine
from touchpoint.generate import produce
from touchpoint.harness import WorkerProcess, clickhouse_client, metric_value, wait_until
from touchpoint.localstack import LocalStack, start_local_stack
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings
from touchpoint.topics import ensure_topics

DEMO_SPAN_MS = 48 * 3600_000


@dataclass
class Progress:
    touchpoints: int
    dead_letters: int


def expected_counts(scenario: Scenario) -> Progress:
    manifest = scenario.manifest
    valid = sum(len(ids) for ids in manifest.valid_event_ids.values())
    return Progress(valid, manifest.malformed)


def progress(settings: Settings) -> Progress:
    client = clickhouse_client(settings)
    try:
        db = settings.clickhouse.database
        touchpoints = client.execute(f"SELECT uniqExact(event_id) FROM {db}.touchpoints")[0][0]
        dead = client.execute(f"SELECT count() FROM {db}.dead_letters FINAL")[0][0]
        return Progress(touchpoints, dead)
    finally:
        client.disconnect()


def run_scenario(settings: Settings, scenario: Scenario, workdir: Path, rate: float = 20.0,
                 timeout: float = 600) -> WorkerProcess:
    """Start a worker, stream the scenario to it live, and wait until it is fully in ClickHouse.

    The traffic is replayed as a live stream (paced, in event-time order, after the worker has
    joined its group): a worker reading several topics sees them in the order they happened,
    within the allowed lateness, which is what journeys are defined on.
    """
    migrate(settings.clickhouse)
    ensure_topics(settings)
    worker = WorkerProcess.start(settings, workdir / "worker.log")
    first_valid = next(i for i, m in enumerate(scenario.messages) if m.valid and m.topic != "identity")
    warm_up = Scenario(scenario.messages[: first_valid + 1], scenario.manifest)
    rest = Scenario(scenario.messages[first_valid + 1:], scenario.manifest)
    client_config = kafka_python_config(settings)
    produce(warm_up, settings.kafka_bootstrap_servers, settings.topic_prefix, client_config=client_config)
    wait_until(lambda: _alive(worker) and progress(settings).touchpoints >= 1, timeout=120,
               describe="the worker consuming")
    streamed = ProgressLine("streamed", len(rest.messages))
    produce(rest, settings.kafka_bootstrap_servers, settings.topic_prefix, rate=rate, progress=streamed.update,
            client_config=client_config)
    streamed.done()
    want = expected_counts(scenario)
    tty = sys.stderr.isatty()

    def done() -> bool:
        _alive(worker)
        now = progress(settings)
        line = (f"processed {now.touchpoints}/{want.touchpoints} events, "
                f"{now.dead_letters}/{want.dead_letters} dead letters")
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        return now.touchpoints >= want.touchpoints and now.dead_letters >= want.dead_letters

    wait_until(done, timeout, interval=2.0, describe="all events in ClickHouse")
    if tty:
        print(file=sys.stderr)
    return worker


def _alive(worker: WorkerProcess) -> bool:
    if not worker.alive():
        raise RuntimeError(f"the worker exited early; see {worker.log_path}")
    return True


def summary(settings: Settings, worker: WorkerProcess) -> str:
    db = settings.clickhouse.database
    client = clickhouse_client(settings)
    try:
        events = client.execute(f"SELECT channel, count(), round(avg(score), 1) FROM {db}.customer_touchpoints GROUP BY channel ORDER BY channel")
        journeys = client.execute(f"SELECT count(), countIf(status = 'closed') FROM {db}.customer_journeys")[0]
        customers = client.execute(f"SELECT count(), countIf(at_risk = 1) FROM {db}.customer_latest")[0]
        alerts = client.execute(f"SELECT rule, severity, count() FROM {db}.alerts FINAL WHERE state = 'firing' GROUP BY rule, severity ORDER BY rule")
        dead = client.execute(f"SELECT reason, count() FROM {db}.dead_letters FINAL GROUP BY reason ORDER BY reason")
    finally:
        client.disconnect()
    exposition = worker.scrape()
    target = settings.clickhouse
    lines = ["", "Touchpoint demo: summary", "=" * 24]
    lines.append(f"events processed: {sum(row[1] for row in events)}  "
                 f"(metrics say {metric_value(exposition, 'cx_events_processed_total'):.0f})")
    for channel, count, score in events:
        lines.append(f"  {channel:<6} {count:>6} events, mean score {score}")
    lines.append(f"journeys: {journeys[0]} ({journeys[1]} closed)")
    lines.append(f"customers: {customers[0]} ({customers[1]} at risk)")
    lines.append("alerts fired: " + (", ".join(f"{r} [{s}] x{n}" for r, s, n in alerts) or "none"))
    lines.append("dead letters: " + (", ".join(f"{r} x{n}" for r, n in dead) or "none"))
    lines += [
        "",
        "Where to look",
        f"  metrics:    {worker.metrics_url}",
        f"  ClickHouse: clickhouse-client --port {target.port} --database {target.database}",
        "    SELECT channel, count(), avg(score) FROM customer_touchpoints GROUP BY channel;",
        "    SELECT * FROM customer_journeys ORDER BY started_at DESC LIMIT 10;",
        "    SELECT customer_key, score FROM customer_latest ORDER BY score LIMIT 10;",
        "    SELECT rule, severity, customer_key, channel, value FROM alerts FINAL;",
        "    SELECT * FROM channel_scores FINAL ORDER BY window_end DESC LIMIT 20;",
    ]
    return "\n".join(lines)


def run_demo(settings: Settings, customers: int, seed: int, hold: bool | None) -> int:
    workdir = Path(settings.data_dir).resolve() / "demo"
    if not (settings.kafka_bootstrap_servers and settings.clickhouse_url):
        # Embedded servers start empty each run: rows of an earlier demo would inflate the summary.
        shutil.rmtree(workdir, ignore_errors=True)
    stack: LocalStack = start_local_stack(settings.kafka_bootstrap_servers or None,
                                          settings.clickhouse_url or None, workdir=workdir)
    worker = None
    try:
        settings = settings.with_overrides(kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
                                           clickhouse_url=stack.clickhouse_url,
                                           data_dir=str(stack.workdir / "worker"))
        print(f"local stack up: kafka {stack.kafka_bootstrap_servers}, "
              f"clickhouse {settings.clickhouse.masked_url()}", file=sys.stderr)
        scenario = generate(customers=customers, seed=seed, start_ms=int(time.time() * 1000) - DEMO_SPAN_MS)
        print(f"generated {len(scenario.messages)} messages for {customers} customers; "
              "streaming them to a worker", file=sys.stderr)
        worker = run_scenario(settings, scenario, stack.workdir)
        time.sleep(6)  # one more round of the journey and channel timers
        print(summary(settings, worker))
        if hold if hold is not None else sys.stdout.isatty():
            print("\nServers stay up until Ctrl-C.", flush=True)
            while worker.alive():
                time.sleep(1)
        return 0
    finally:
        if worker is not None:
            worker.stop()
        stack.stop()
