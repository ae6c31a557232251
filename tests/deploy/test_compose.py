"""docker-compose.yml: valid for docker-compose 1.29, scalable workers, ordered start-up."""

from __future__ import annotations

import re

import pytest
import yaml

from ._support import DEPLOY, ROOT, require_tool, run

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_docker_compose_config_is_valid():
    compose = require_tool("docker-compose")
    result = run([compose, "-f", str(COMPOSE), "config", "-q"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_expected_services(services):
    assert {"kafka", "kafka-init", "karapace", "register-schemas", "clickhouse", "migrate", "worker",
            "generator", "prometheus", "alertmanager", "grafana"} <= set(services)


def test_images_are_pinned(services):
    for name, svc in services.items():
        if "image" in svc and "build" not in svc:
            assert re.search(r":[\w.\-]+$", svc["image"]) and not svc["image"].endswith(":latest"), name
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["karapace"]["image"].startswith("ghcr.io/aiven-open/karapace:")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")


def test_worker_scales(services):
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert worker["command"] == ["worker"]
    env = worker["environment"]
    assert env["TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["TOUCHPOINT_CLICKHOUSE_URL"] == "clickhouse://touchpoint:touchpoint@clickhouse:9000/cx"
    assert env["TOUCHPOINT_METRICS_PORT"] == "9108"
    assert env["TOUCHPOINT_SCHEMA_REGISTRY_URL"] == "http://karapace:8081"


def test_startup_order(services):
    worker = services["worker"]["depends_on"]
    assert worker["migrate"]["condition"] == "service_completed_successfully"
    assert worker["kafka-init"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("kafka", "karapace", "clickhouse", "prometheus", "alertmanager", "grafana"):
        assert "test" in services[name]["healthcheck"], f"{name} has no health check"


def test_kafka_is_kraft_without_auto_create_and_topics_have_8_partitions(services):
    env = services["kafka"]["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    assert re.fullmatch(r"[A-Za-z0-9_\-]{22}", env["CLUSTER_ID"]), "KRaft needs a base64 UUID cluster id"
    init = services["kafka-init"]
    assert init["environment"]["TOPIC_PARTITIONS"] == "8"
    assert services["worker"]["environment"]["TOUCHPOINT_PARTITIONS"] == "8"
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text()
    for topic in ("calls", "web", "store", "app", "identity"):
        assert re.search(rf"\b{topic}\b", script)
    assert run(["bash", "-n", str(DEPLOY / "kafka" / "create-topics.sh")]).returncode == 0


def test_generator_is_behind_a_profile(services):
    gen = services["generator"]
    assert gen["profiles"] == ["generate"]
    assert gen["command"] == ["generate", "--customers", "500", "--rate", "200"]


def test_mounted_files_exist(services):
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_schemas_are_registered_before_workers_and_generator_start(services):
    register = services["register-schemas"]
    assert register["command"] == ["schemas", "register"]
    assert register["environment"]["TOUCHPOINT_SCHEMA_REGISTRY_URL"] == "http://karapace:8081"
    assert register["depends_on"]["karapace"]["condition"] == "service_healthy"
    assert register["healthcheck"] == {"disable": True}, "a one-shot command serves no /healthz"
    for name in ("worker", "generator"):
        assert services[name]["depends_on"]["register-schemas"]["condition"] == "service_completed_successfully"


def test_every_touchpoint_service_runs_a_real_command(services):
    """Each container built from the Dockerfile runs a `touchpoint` subcommand that exists."""
    from touchpoint.cli import parser

    for name, svc in services.items():
        if "build" in svc:
            parser().parse_args(svc["command"])  # exits (SystemExit) on an unknown command or option
