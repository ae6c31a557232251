"""The metrics port serves /metrics, /healthz and /readyz; readiness follows the worker's state."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from sinks.metrics import Metrics
from touchpoint.localstack import free_port
from touchpoint.readiness import Readiness


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[str, Metrics, Readiness]]:
    metrics, readiness, port = Metrics.create(CollectorRegistry()), Readiness(), free_port()
    server = metrics.serve(port, addr="127.0.0.1", ready=readiness.check)
    yield f"http://127.0.0.1:{port}", metrics, readiness
    server.shutdown()
    server.server_close()


def test_metrics_and_liveness(served: tuple[str, Metrics, Readiness]) -> None:
    base, metrics, _ = served
    metrics.events_processed.labels("web").inc(3)
    status, body = get(base + "/metrics")
    assert status == 200 and 'cx_events_processed_total{channel="web"} 3.0' in body
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/nope")[0] == 404


def test_metrics_of_the_names_asked_for_only(served: tuple[str, Metrics, Readiness]) -> None:
    base, metrics, _ = served
    metrics.events_processed.labels("web").inc(3)
    metrics.events_invalid.labels("web", "bad_json").inc()
    status, body = get(base + "/metrics?name[]=cx_events_processed_total")
    assert status == 200 and 'cx_events_processed_total{channel="web"} 3.0' in body
    assert "cx_events_invalid_total" not in body and "cx_sink" not in body


def test_readiness_follows_partitions_sink_and_shutdown(served: tuple[str, Metrics, Readiness]) -> None:
    base, _, readiness = served
    status, body = get(base + "/readyz")
    assert status == 503 and "no partitions assigned" in body
    readiness.partitions_assigned(4)
    assert get(base + "/readyz") == (200, "ready\n")
    readiness.write_finished(ok=False, pending_rows=120)
    status, body = get(base + "/readyz")
    assert status == 503 and "120 rows are waiting" in body
    readiness.write_finished(ok=False, pending_rows=0)  # failed, but nothing is held back
    assert get(base + "/readyz")[0] == 200
    readiness.write_finished(ok=True, pending_rows=50)
    assert get(base + "/readyz")[0] == 200
    readiness.partitions_assigned(0)
    assert get(base + "/readyz")[0] == 503
    readiness.partitions_assigned(2)
    readiness.shutting_down()
    status, body = get(base + "/readyz")
    assert status == 503 and body.startswith("not ready: shutting down")
    assert get(base + "/healthz")[0] == 200  # alive while it drains


def test_without_a_check_ready_means_alive() -> None:
    port = free_port()
    server = Metrics.create(CollectorRegistry()).serve(port, addr="127.0.0.1")
    try:
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, "ready\n")
    finally:
        server.shutdown()
        server.server_close()
