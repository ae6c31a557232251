"""``touchpoint doctor``: check a deployment and say in plain words what is wrong and what to do.

Each check returns findings instead of raising, so one broken server does not hide the state of
the others; the command exits non-zero when any finding is a problem.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from sinks.clickhouse import connect
from sinks.migrations import applied_versions, available
from touchpoint.ops.forget import CUSTOMERS_TABLE, IDENTITY_TABLE, changelog_topic
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings, SettingsError
from touchpoint.topics import topic_names


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"{'ok  ' if self.ok else 'FAIL'}  {self.check}: {self.detail}"]
        if self.fix:
            out.append(f"      what to do: {self.fix}")
        return out


def diagnose(settings: Settings, metrics_url: str | None = None) -> list[Finding]:
    """Every check, in the order an operator would look: broker, topics, ClickHouse, metrics."""
    findings = check_kafka(settings)
    findings += check_clickhouse(settings)
    findings += check_metrics(metrics_url or f"http://127.0.0.1:{settings.metrics_port}")
    return findings


def check_kafka(settings: Settings) -> list[Finding]:
    if not settings.kafka_bootstrap_servers:
        return [Finding("kafka", False, "TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS is not set",
                        "set it to the broker list, host:port[,host:port]")]
    try:
        consumer = KafkaConsumer(**kafka_python_config(settings), client_id="touchpoint-doctor",
                                 request_timeout_ms=10_000, bootstrap_timeout_ms=5_000)
    except (KafkaError, SettingsError) as exc:
        return [Finding("kafka", False, f"cannot reach {settings.kafka_bootstrap_servers} ({type(exc).__name__}: {str(exc)[:120]})",
                        "check that the broker is up and the address, port and security settings "
                        "(TOUCHPOINT_KAFKA_SECURITY_PROTOCOL and friends) are right")]
    try:
        existing = consumer.topics()
        findings = [Finding("kafka", True, f"connected to {settings.kafka_bootstrap_servers}")]
        wanted = settings.partitions
        for topic in topic_names(settings):
            if topic not in existing:
                findings.append(Finding(f"topic {topic}", False, "does not exist",
                                        f"run `touchpoint worker` once (it creates its topics with "
                                        f"TOUCHPOINT_PARTITIONS={wanted}) or deploy/kafka/create-topics.sh"))
                continue
            findings.append(_partition_finding(topic, len(consumer.partitions_for_topic(topic) or ()), wanted))
        for table in (CUSTOMERS_TABLE, IDENTITY_TABLE):
            topic = changelog_topic(settings.app_id, table)
            if topic in existing:  # made by the first worker; absent before that, which is fine
                findings.append(_partition_finding(topic, len(consumer.partitions_for_topic(topic) or ()), wanted))
        return findings
    finally:
        consumer.close()


def _partition_finding(topic: str, count: int, wanted: int) -> Finding:
    if count == wanted:
        return Finding(f"topic {topic}", True, f"{count} partitions")
    return Finding(f"topic {topic}", False, f"has {count} partitions, the deployment expects {wanted}",
                   f"the worker's tables are co-partitioned with its topics, so all must have the same "
                   f"count: set TOUCHPOINT_PARTITIONS={count} if {count} is intended, else recreate or "
                   f"grow the topic to {wanted} partitions (growing moves keys: drain the workers first)")


def check_clickhouse(settings: Settings) -> list[Finding]:
    if not settings.clickhouse_url:
        return [Finding("clickhouse", False, "TOUCHPOINT_CLICKHOUSE_URL is not set",
                        "set it to clickhouse://user:password@host:9000/database")]
    target = settings.clickhouse
    try:
        client = connect(target, database="default")
        try:
            version = client.execute("SELECT version()")[0][0]
            applied = applied_versions(client, target.database)
        finally:
            client.disconnect()
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        return [Finding("clickhouse", False, f"cannot query {target.masked_url()} ({type(exc).__name__})",
                        "check that the server is up and the URL, user and password are right")]
    findings = [Finding("clickhouse", True, f"connected to {target.masked_url()} (server {version})")]
    known = {m.version for m in available()}
    missing = sorted(known - applied)
    newer = sorted(applied - known)
    if missing:
        findings.append(Finding("clickhouse schema", False,
                                f"migration(s) {', '.join(f'{v:04d}' for v in missing)} not applied "
                                f"(database {target.database} is at version {max(applied, default=0)})",
                                "run `touchpoint migrate` (idempotent); workers refuse to start until then"))
    elif newer:
        findings.append(Finding("clickhouse schema", False,
                                f"database has migration(s) {', '.join(f'{v:04d}' for v in newer)} this release does not know",
                                "run a Touchpoint release at least as new as the one that migrated the database"))
    else:
        findings.append(Finding("clickhouse schema", True, f"at version {max(applied)}, as this release expects"))
    return findings


def check_metrics(base_url: str) -> list[Finding]:
    base_url = base_url.rstrip("/")
    findings = []
    for path, what in (("/metrics", "metrics"), ("/readyz", "readiness")):
        url = base_url + path
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                findings.append(Finding(what, True, f"{url} answers {response.status}"))
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace").strip()[:200]
            findings.append(Finding(what, False, f"{url} answers {exc.code}: {body}",
                                    "the worker is up but not ready; the reason is above"))
        except OSError as exc:
            findings.append(Finding(what, False, f"nothing answers on {url} ({type(exc).__name__})",
                                    "start a worker (`touchpoint worker`), or point --metrics-url at a "
                                    "running one (in Kubernetes: run doctor inside the worker's pod)"))
            break
    return findings
