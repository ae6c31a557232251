"""A real worker over TLS on both sides: Kafka (SSL) and ClickHouse (secure native port, password).

Its own servers, not the session's: a ClickHouse 18.16 with a TLS port and a password user, and a
Tansu broker that advertises a TLS terminator in front of it (Tansu 0.6.0 cannot serve TLS
itself, see tests/tls_terminator.py). Every client Touchpoint makes (the worker's Faust consumer,
producer and admin, the topic admin, the generator, the migrations and the progress queries)
must verify the servers against the test's CA; one that ignored the settings would find no
plaintext listener to talk to. SASL cannot be run here: Tansu 0.6.0 takes SCRAM users only over
an authenticated connection and its in-memory storage keeps none to begin with, so the SASL
builders stay unit-tested (tests/unit/test_security.py).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from clickhouse_driver.errors import NetworkError

from pipeline.synthetic import generate
from sinks.clickhouse import connect
from touchpoint.demo import run_scenario
from touchpoint.harness import clickhouse_client
from touchpoint.localstack import ChildServer, ServerTls, free_port, start_clickhouse, start_tansu
from touchpoint.settings import ClickHouseTarget, Settings

from tests.certificates import self_signed
from tests.tls_terminator import TlsTerminator

pytestmark = pytest.mark.integration

PASSWORD = "tls-test-" + uuid.uuid4().hex  # random per run: the log scan must not find it


def _password_user(name: str, password: str) -> str:
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"""        <{name}>
            <password_sha256_hex>{digest}</password_sha256_hex>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{name}>"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, TlsTerminator, Path]]:
    folder = tmp_path_factory.mktemp("secured")
    cert, key = self_signed(folder, "server", "localhost", "DNS:localhost,IP:127.0.0.1")  # its own CA
    tls_port, clickhouse_tls_port = free_port(), free_port()
    servers: list[ChildServer] = []
    try:
        servers.append(start_tansu(folder, advertised_port=tls_port))
        servers.append(start_clickhouse(folder, tls=ServerTls(clickhouse_tls_port, cert, key),
                                        extra_users=_password_user("touchpoint", PASSWORD)))
        settings = Settings(
            kafka_bootstrap_servers=f"127.0.0.1:{tls_port}",
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=str(cert),
            clickhouse_url=f"clickhouses://touchpoint@localhost:{clickhouse_tls_port}/cx",
            clickhouse_password=PASSWORD,
            clickhouse_ca_file=str(cert),
            topic_prefix="secured",
            app_id="touchpoint-secured",
            data_dir=str(folder / "worker"),
            partitions=4,
            session_timeout_seconds=6.0,
            sink_flush_seconds=0.3,
        )
        with TlsTerminator(tls_port, servers[0].port, cert, key) as terminator:
            yield settings, terminator, folder
    finally:
        for server in reversed(servers):
            server.stop()


def test_a_worker_runs_end_to_end_over_tls_to_kafka_and_clickhouse(
        secured: tuple[Settings, TlsTerminator, Path]) -> None:
    settings, terminator, folder = secured
    scenario = generate(customers=12, seed=31, start_ms=int(time.time() * 1000) - 24 * 3600_000)
    valid = sum(1 for message in scenario.messages if message.valid and message.topic != "identity")

    worker = run_scenario(settings, scenario, folder, rate=100.0, timeout=240)
    try:
        client = clickhouse_client(settings)
        try:
            stored = client.execute(f"SELECT uniqExact(event_id) FROM {settings.clickhouse.database}.customer_touchpoints")[0][0]
            users = client.execute("SELECT groupUniqArray(user) FROM system.processes")[0][0]
        finally:
            client.disconnect()
    finally:
        assert worker.stop() == 0
    assert stored == valid
    assert users == ["touchpoint"]  # the query itself, as the password user
    # the worker alone opens a consumer, a producer and an admin connection, each through TLS
    assert terminator.handshakes >= 4
    logs = worker.log_path.read_text(errors="replace")
    assert len(logs) > 500 and PASSWORD not in logs


def test_clickhouse_refuses_an_unverified_server_and_a_wrong_password(
        secured: tuple[Settings, TlsTerminator, Path]) -> None:
    settings, _, _ = secured
    target = settings.clickhouse
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(ClickHouseTarget(target.host, target.port, "default", target.user, target.password,
                                 secure=True)).execute("SELECT 1")
    with pytest.raises(Exception, match="(?i)password|authentication"):
        connect(ClickHouseTarget(target.host, target.port, "default", target.user, "wrong",
                                 secure=True, ca_certs=target.ca_certs)).execute("SELECT 1")
