"""SIGTERM: the worker stores what it buffered, commits, and exits within its grace period."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.synthetic import Scenario, generate
from sinks.migrations import migrate
from touchpoint.faults import read_topics, stored_touchpoints, valid_event_ids
from touchpoint.generate import produce
from touchpoint.harness import WorkerProcess, metric_value, uncommitted_messages, wait_until
from touchpoint.settings import Settings
from touchpoint.topics import ensure_topics

pytestmark = pytest.mark.integration

GRACE_SECONDS = 20.0


def test_sigterm_flushes_commits_and_exits_within_the_grace_period(settings: Settings, tmp_path: Path) -> None:
    # Rows would wait a minute for the sink's flusher: what is stored after SIGTERM was flushed by the shutdown.
    settings = settings.with_overrides(shutdown_grace_seconds=GRACE_SECONDS, sink_flush_seconds=60.0)
    migrate(settings.clickhouse)
    ensure_topics(settings)
    scenario = generate(customers=40, seed=31, start_ms=int(time.time() * 1000) - 48 * 3600_000)
    expected = set(valid_event_ids(scenario))
    worker = WorkerProcess.start(settings, tmp_path / "worker.log")
    try:
        wait_until(lambda: _ready(worker), timeout=120, describe="the worker serving metrics")
        produce(scenario, settings.kafka_bootstrap_servers, settings.topic_prefix)
        wait_until(lambda: metric_value(worker.scrape(), "cx_events_processed_total") >= len(expected),
                   timeout=120, describe="every event processed")
        # Internal topics (identifiers, customers, hand-overs) read to their end too, twice in a row
        # (the lag gauge is refreshed every 5 s), so what SIGTERM interrupts is only unflushed work.
        read = read_topics(settings)
        wait_until(lambda: _read_to_end(worker, read) and (time.sleep(6) or _read_to_end(worker, read)),
                   timeout=120, describe="every topic read to its end")
        pending = len(expected) - stored_touchpoints(settings)
        assert pending > 0, "nothing was left to flush at SIGTERM: the test would prove nothing"

        signalled = time.monotonic()
        exit_code = worker.stop(grace=GRACE_SECONDS + 30)
        took = time.monotonic() - signalled
    finally:
        worker.kill()
    assert exit_code == 0
    assert took <= GRACE_SECONDS, f"exit took {took:.1f} s"
    assert stored_touchpoints(settings) == len(expected)

    assert uncommitted_messages(settings, read) == {topic: 0 for topic in read}


def _read_to_end(worker: WorkerProcess, topics: list[str]) -> bool:
    """The worker's lag gauge is 0 on every topic it reads (changelogs, which it writes, aside)."""
    exposition = worker.scrape()
    return all(f'cx_consumer_lag_messages{{topic="{topic}"}} 0.0' in exposition for topic in topics)


def _ready(worker: WorkerProcess) -> bool:
    if not worker.alive():
        raise RuntimeError(f"the worker exited early; see {worker.log_path}")
    try:
        worker.scrape()
    except OSError:
        return False
    return True
